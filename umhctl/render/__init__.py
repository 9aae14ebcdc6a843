"""Rendering: blueprint → each device's desired state → Ignition, Butane and a root file tree. No network."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from umhctl.artifacts import ArtifactSource, lock_path, site_source
from umhctl.blueprint.loader import LoadedBlueprint
from umhctl.blueprint.model import Device, SiteBlueprint
from umhctl.blueprint.repofiles import RepoFiles
from umhctl.errors import UmhctlError
from umhctl.render.converters import render_converters
from umhctl.render.desired import DesiredState, File
from umhctl.render.ignition import butane_yaml, ignition_config
from umhctl.render.k8s import CONVERTER_NAMESPACE, UMH_NAMESPACE, namespace
from umhctl.render.system import K3S_MANIFESTS, render_system
from umhctl.render.tailscale import render_tailscale
from umhctl.render.umh import render_hub
from umhctl.render.yamltext import to_yaml_documents
from umhctl.resolver import RedactedSecrets, SecretResolver, require_env
from umhctl.templating import TemplateProblem, render_extra_file


@dataclass(frozen=True)
class DeviceRender:
    device: str
    state: DesiredState
    blueprint: SiteBlueprint = field(repr=False, compare=False)
    redacted: bool = False

    # The first-boot transport of the same desired state, built when asked: plan and apply compare and write
    # `state` over SSH and never read these (a third of the render time of a large site).
    @functools.cached_property
    def ignition(self) -> dict[str, Any]:
        return ignition_config(self.blueprint, self.state)

    @functools.cached_property
    def butane(self) -> str:
        return butane_yaml(self.blueprint, self.state)

    @property
    def carries_secrets(self) -> bool:
        return not self.redacted and any(f.secret for f in self.state.files)


def render_device(
    loaded: LoadedBlueprint,
    device: Device,
    secrets: SecretResolver,
    artifacts: ArtifactSource,
    *,
    redact: bool = False,
    self_contained: bool = False,
    kept_images: bool = False,
) -> DeviceRender:
    """`self_contained`: an Ignition config that fetches nothing at first boot (reset's: a rebuild must not
    depend on a mirror; the apply that follows pushes the images)."""
    bp = loaded.blueprint
    state = DesiredState(device.name)
    render_system(bp, device, secrets, artifacts, state, self_contained=self_contained)
    render_tailscale(bp, device, secrets, artifacts, state, self_contained=self_contained, kept_images=kept_images)
    # One file owns the namespaces; the name sorts first, so k3s applies it before the files that use them.
    namespaces = [UMH_NAMESPACE, CONVERTER_NAMESPACE] if device.role == "hub" else [CONVERTER_NAMESPACE]
    state.add(
        File(f"{K3S_MANIFESTS}/umhctl-00-namespaces.yaml", to_yaml_documents(map(namespace, namespaces)).encode())
    )
    if device.role == "hub":
        render_hub(bp, device, secrets, loaded.path.parent, state)
    render_converters(bp, device, state)
    _render_extra_files(bp, device, loaded.path.parent, state)
    state = state.sorted()
    if redact:
        state = redacted(state)
    return DeviceRender(device.name, state, bp, redact)


def chosen_devices(bp: SiteBlueprint, devices: Sequence[str] | None) -> list[Device]:
    """The blueprint's devices named in `devices` (all for None), in blueprint order; a name it does not have is an
    error that lists the ones it has."""
    names = [d.name for d in bp.devices]
    for name in devices or []:
        if name not in names:
            raise UmhctlError(f"no device '{name}' in the blueprint", hint="devices: " + ", ".join(names))
    return [d for d in bp.devices if devices is None or d.name in devices]


def render_site(
    loaded: LoadedBlueprint,
    secrets: SecretResolver,
    artifacts: ArtifactSource | None = None,
    *,
    devices: list[str] | None = None,
    redact: bool = False,
    self_contained: bool = False,
    kept_images: bool = False,
    first_boot: bool = True,
) -> list[DeviceRender]:
    """Every (or the chosen) device's render. `artifacts`: where images come from and their pins; default: the
    blueprint's mirror or publisher and its lock file. `kept_images`: a reset in place (see render_tailscale).
    `first_boot`: build Ignition and Butane now, so that a problem with them (an unpinned image) stops the render
    before anything is written; False for plan and apply, which do not use them."""
    bp = loaded.blueprint
    chosen = chosen_devices(bp, devices)
    source = artifacts or site_source(bp, loaded.path)
    if redact:
        secrets = RedactedSecrets()  # a render for review reads no secret at all: CI needs none
    else:
        require_env(bp)
    renders = [
        render_device(loaded, d, secrets, source, redact=redact, self_contained=self_contained, kept_images=kept_images)
        for d in chosen
    ]
    if first_boot:
        for r in renders:
            r.ignition, r.butane  # noqa: B018 - built here, see above
    return renders


def render_inputs(loaded: LoadedBlueprint) -> list[Path]:
    """The files of the repository a render reads: the blueprint, its dashboards and templates, its lock file.
    Only these make a blueprint "dirty" (a note in the same directory does not)."""
    bp = loaded.blueprint
    repo = RepoFiles(loaded.path.parent)
    referenced = [repo.resolve(d.file) for d in bp.dashboards] + [repo.resolve(f.template) for f in bp.files]
    # The encrypted secrets (umhctl secrets init) are inputs too: a rotated, uncommitted value makes the site dirty.
    from umhctl.agestore import site_secrets_dir

    encrypted = site_secrets_dir(loaded.path.parent, bp.metadata.name)
    stores = [encrypted] if encrypted.is_dir() else []
    return [loaded.path, lock_path(loaded.path), *sorted({p for p in referenced if p is not None}), *stores]


def redacted(state: DesiredState) -> DesiredState:
    """The state with every secret file's content replaced by a placeholder (for reviewing renders in a PR)."""
    files = [
        replace(f, content=f"(redacted by umhctl: {f.path} holds a secret)\n".encode()) if f.secret else f
        for f in state.files
    ]
    return replace(state, files=files)


def _render_extra_files(bp: SiteBlueprint, device: Device, base_dir: Path, state: DesiredState) -> None:
    repo = RepoFiles(base_dir)
    for extra in bp.files:
        if extra.devices is not None and device.name not in extra.devices:
            continue
        template = repo.resolve(extra.template)
        if template is None:  # validate refuses this; kept so render never reads outside the repository
            raise UmhctlError(f"template '{extra.template}' is outside the blueprint's repository")
        try:
            text = render_extra_file(bp, device, extra, template)
        except TemplateProblem as problem:
            raise UmhctlError(f"{extra.template}: {problem} (rendering for '{device.name}')") from None
        state.add(File(extra.path, text.encode(), mode=int(extra.mode, 8), restarts=tuple(extra.restart)))
