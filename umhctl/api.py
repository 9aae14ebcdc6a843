"""umhctl's public API: one function per verb, keyword-only options, a typed result (umhctl.results).

The CLI maps options onto these functions and results onto views; nothing here prints. Where a device is
reached, the caller may hand in an inventory (where each device is, which known_hosts and key): by default the
blueprint's own. Confirmation is a callback, so a program can decide without a terminal.
"""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from umhctl.blueprint.loader import LoadedBlueprint, load_blueprint, validate_file
from umhctl.errors import UmhctlError
from umhctl.hints import Hints
from umhctl.results import (
    ApplyResult,
    FetchedArtifact,
    FetchResult,
    LockedArtifact,
    LockResult,
    Media,
    PlanResult,
    RenderedDevice,
    RenderResult,
    ResetResult,
    ValidateResult,
)

if TYPE_CHECKING:
    from umhctl.artifacts import ArtifactCache, ArtifactSource
    from umhctl.converge import Target
    from umhctl.gitinfo import BlueprintVersion
    from umhctl.inventory import Inventory
    from umhctl.phases import Outcome, Reporter
    from umhctl.plan.model import Plan
    from umhctl.secrets import SecretStore
    from umhctl.sitestatus import HistoryResult, StatusResult

# Only what `validate` needs is imported here: plan, apply and reset bring in rendering, SSH and git, which
# would double the start-up of a validate run (bench/validate_startup.py). Each verb imports its own.
InventoryFor = Callable[[LoadedBlueprint], "Inventory"]  # builds the inventory once the blueprint is loaded
DEFAULT_PARALLEL = 16  # SSH sessions mostly wait on the network; 16 keep 2 cores busy on a no-op plan


def validate(file: Path) -> ValidateResult:
    blueprint, _, diagnostics = validate_file(file)
    counts = {}
    if blueprint is not None:
        counts = {
            "devices": len(blueprint.devices),
            "io_link_masters": len(blueprint.io_link_masters),
            "sensors": len(blueprint.sensors),
            "dashboards": len(blueprint.dashboards),
        }
    return ValidateResult(str(file), blueprint is not None, diagnostics, counts)


def render(
    file: Path,
    *,
    out: Path,
    devices: list[str] | None = None,
    redact: bool = False,
    update_known_hosts: bool = False,
) -> RenderResult:
    from umhctl.knownhosts import record_site_host_keys, site_known_hosts
    from umhctl.render import render_site
    from umhctl.render.output import write_render
    from umhctl.resolver import RedactedSecrets, SecretResolver
    from umhctl.secrets import SecretStore

    loaded = load_blueprint(file)
    # A redacted render reads no secret and writes no store: CI renders for review with no secrets at all.
    secrets: SecretResolver = (
        RedactedSecrets() if redact else SecretStore.for_blueprint(loaded.blueprint, loaded.path.parent)
    )
    renders = render_site(loaded, secrets, devices=devices, redact=redact)
    seal = secrets.sealer()
    written = [
        RenderedDevice(r.device, write_render(r, out, seal), len(r.state.files), len(r.state.links)) for r in renders
    ]
    if not update_known_hosts:
        return RenderResult(out, redact, written)
    store = SecretStore.for_blueprint(loaded.blueprint, loaded.path.parent)
    recorded = record_site_host_keys(loaded, store, [r.device for r in renders])
    return RenderResult(out, redact, written, site_known_hosts(loaded), recorded)


# -- plan and apply ---------------------------------------------------------------------------------------------


def _source(loaded: LoadedBlueprint, inventory: Inventory | None) -> ArtifactSource:
    from umhctl.artifacts import ArtifactCache, site_source

    source = inventory.artifacts if inventory is not None and inventory.artifacts is not None else None
    source = source or site_source(loaded.blueprint, loaded.path)
    # A hash from a SHA256SUMS comes without a size; the verified copy in the cache knows it (plan shows it).
    cache = ArtifactCache()
    for name, pin in source.lock.pins.items():
        if pin.size is None and cache.has(pin):
            source.lock.pins[name] = dataclasses.replace(pin, size=cache.path(pin).stat().st_size)
    return source


def _pinned(loaded: LoadedBlueprint, source: ArtifactSource, hints: Hints) -> None:
    """Plan and apply need every artifact pinned: a device is never given an image nobody vouched for."""
    from umhctl.artifacts import needed

    unpinned = [a.filename for a in needed(loaded.blueprint) if source.pin(a) is None]
    if unpinned:
        raise UmhctlError(
            f"{', '.join(unpinned)} not pinned in {source.lock.path}",
            hint=f"record the hashes: {hints.command('lock')}, then {hints.command('fetch')}",
        )


def _cached(loaded: LoadedBlueprint, source: ArtifactSource, hints: Hints) -> None:
    """A reset must be able to finish: the apply after its reboot may have to upload every image."""
    from umhctl.artifacts import ArtifactCache, needed

    cache = ArtifactCache()
    missing = [a.filename for a in needed(loaded.blueprint) if not cache.has(source.require(a))]
    if missing:
        raise UmhctlError(
            f"{', '.join(missing)} not in the local artifact cache: the rebuilt device could need it, and nothing "
            "was changed",
            hint=f"download and verify it first: {hints.command('fetch')}",
        )


def _targets(
    loaded: LoadedBlueprint,
    secrets: SecretStore,
    inventory: Inventory,
    version: BlueprintVersion,
    devices: list[str] | None,
    hints: Hints,
) -> list[Target]:
    from umhctl.converge import Target
    from umhctl.plan.planner import Stamp
    from umhctl.render import render_site

    source = _source(loaded, inventory)
    _pinned(loaded, source, hints)
    seal = secrets.sealer()
    targets = []
    for r in render_site(loaded, secrets, source, devices=devices, first_boot=False):
        stamp = Stamp(version.commit, version.dirty, r.state.fingerprint(seal))
        disk = loaded.blueprint.device(r.device).install_disk
        targets.append(Target(r.device, inventory.endpoint(r.device), r.state, disk, seal, stamp))
    return targets


def _fleet(
    loaded: LoadedBlueprint,
    version: BlueprintVersion,
    devices: list[str] | None,
    inventory: InventoryFor | None,
    identity: Path | None,
    via: str | None,
    hints: Hints,
    command: str,
) -> tuple[SecretStore, list[Target]]:
    """The secrets and the devices (reached as `via` says) of a plan, apply or status run."""
    from umhctl.secrets import SecretStore

    secrets = SecretStore.for_blueprint(loaded.blueprint, loaded.path.parent, login_key=identity)
    site = _inventory(loaded, inventory, identity, via, hints.via_management(command))
    return secrets, _targets(loaded, secrets, site, version, devices, hints)


def _version(loaded: LoadedBlueprint) -> BlueprintVersion:
    from umhctl.gitinfo import blueprint_version
    from umhctl.render import render_inputs

    return blueprint_version(loaded.path, render_inputs(loaded))


def _info(loaded: LoadedBlueprint, version: BlueprintVersion) -> dict[str, object]:
    return {
        "path": str(loaded.path),
        "site": loaded.blueprint.metadata.name,
        "commit": version.commit,
        "dirty": version.dirty,
    }


def _inventory(
    loaded: LoadedBlueprint,
    inventory: InventoryFor | None,
    identity: Path | None,
    via: str | None = None,
    management_hint: str | None = None,
) -> Inventory:
    """`via`: how to reach the devices for this run (management or tailscale); None: the blueprint's access.via.
    `management_hint`: the same command through the management addresses, for a device the tailnet cannot reach."""
    from umhctl.inventory import blueprint_inventory

    found = blueprint_inventory(loaded, identity) if inventory is None else inventory(loaded).with_identity(identity)
    if (via or loaded.blueprint.access.via) != "tailscale":
        return found
    from umhctl.inventory import through_tailnet

    hint = "reach it through its management address" + (f": {management_hint}" if management_hint else "")
    return through_tailnet(found, loaded.blueprint, hint)


def plan(
    file: Path,
    *,
    devices: list[str] | None = None,
    inventory: InventoryFor | None = None,
    identity: Path | None = None,
    via: str | None = None,
    parallel: int = DEFAULT_PARALLEL,
    out: Path | None = None,
    reporter: Reporter | None = None,
    hints: Hints | None = None,
) -> PlanResult:
    from umhctl.converge import ContentCache, Phases, plan_site, save_plan

    hints = hints or Hints()
    loaded = load_blueprint(file)
    version = _version(loaded)
    _, fleet = _fleet(loaded, version, devices, inventory, identity, via, hints, "plan")
    info = _info(loaded, version)
    phases = Phases(info, ContentCache(), hints, command="plan")
    result = plan_site(info, fleet, phases, parallel=parallel, reporter=reporter)
    if out is not None:
        save_plan(result, out)
    return PlanResult(result, out)


def apply(
    file: Path | None,
    *,
    planfile: Path | None = None,
    devices: list[str] | None = None,
    inventory: InventoryFor | None = None,
    identity: Path | None = None,
    via: str | None = None,
    parallel: int = DEFAULT_PARALLEL,
    retry_failed: bool = False,
    allow_dirty: bool = False,
    force_unlock: bool = False,
    confirm: Callable[[Plan], bool] | None = None,
    unattended: bool = False,
    reporter: Reporter | None = None,
    hints: Hints | None = None,
) -> ApplyResult:
    """Plan (or load a saved plan), ask `confirm` (None: yes), execute. `file` None: the saved plan's blueprint.
    `unattended`: `confirm` says yes without anyone reading the plan (--yes); then, as with no `confirm`, a device
    behind its desired state is locked by the plan's own round trip (Phases.lock_early)."""
    from umhctl.converge import ContentCache, Phases, apply_plan, load_plan, plan_site
    from umhctl.plan.model import Plan
    from umhctl.runstate import last_failed, save_outcomes

    started = time.monotonic()
    hints = hints or Hints()
    saved = load_plan(planfile) if planfile is not None else None
    if file is None:
        if saved is None:
            raise UmhctlError("no blueprint given")
        file = Path(saved.blueprint["path"])
        hints = hints.with_file(str(file))
    loaded = load_blueprint(file)  # first: a wrong -f is an error, also with --retry-failed
    if retry_failed:
        failed = last_failed(file)
        devices = sorted(set(devices or failed) & set(failed))
        if not devices:
            nothing = "No device failed in the last apply: nothing to retry."
            return ApplyResult(Plan({"path": str(file)}, []), [], message=nothing)
    version = _version(loaded)
    if version.dirty and not allow_dirty:
        message, hint = version.refusal(file, "apply")
        raise UmhctlError(message, hint=hint)
    secrets, fleet = _fleet(loaded, version, devices, inventory, identity, via, hints, "apply")
    _uncommitted_secrets(secrets, allow_dirty)
    info = _info(loaded, version)
    # Locks are taken early only when no one reads the plan first: they are not held while a person reviews it.
    early = saved is None and (confirm is None or unattended)
    phases = Phases(info, ContentCache(), hints, command="apply", force_unlock=force_unlock, lock_early=early)
    if saved is not None:
        if saved.blueprint.get("commit") != version.commit or saved.blueprint.get("dirty") != version.dirty:
            raise UmhctlError(
                f"the plan was made for blueprint commit {saved.blueprint.get('commit')}, "
                f"the repository is now at {version.describe()}",
                hint=f"make a new plan: {hints.command('plan')}",
            )
        names = {t.device for t in fleet}
        work = Plan(saved.blueprint, [d for d in saved.devices if d.device in names], saved.umhctl_version)
    try:
        if saved is None:
            work = plan_site(info, fleet, phases, parallel=parallel, reporter=reporter, keep=True)
        if not work.has_changes and not force_unlock:
            return ApplyResult(work, [_unplanned(d.device, d.error) for d in work.devices if d.error])
        if confirm is not None and not confirm(work):
            return ApplyResult(work, [], cancelled=True)
        outcomes = apply_plan(work, fleet, phases, parallel=parallel, reporter=reporter)
    finally:
        phases.close()
    # Devices that could not even be planned (unreachable, ...) belong in the results too.
    outcomes = [_unplanned(d.device, d.error) for d in work.devices if d.error] + outcomes
    _record_applied(loaded, version, [o for o in outcomes if o.ok], "applied")
    save_outcomes(loaded.path, outcomes)
    any_failed = any(not o.ok for o in outcomes)
    if saved is not None:
        # A saved plan was reviewed as it stands: where it failed, what is owed is a new plan to review, not a
        # rerun that would plan and apply unseen changes.
        replan = hints.command("plan", "--out", str(planfile)) if any_failed else None
        return ApplyResult(work, outcomes, replan_hint=replan, seconds=time.monotonic() - started)
    # A locked device fails a retry the same way: its own result carries the --force-unlock command instead.
    retry = (
        hints.command("apply", "--retry-failed")
        if any(not o.ok and o.failed_phase != "lock" for o in outcomes)
        else None
    )
    return ApplyResult(work, outcomes, retry_hint=retry, seconds=time.monotonic() - started)


def _record_applied(loaded: LoadedBlueprint, version: BlueprintVersion, done: list[Outcome], verb: str) -> None:
    """refs/umhctl/applied/<site>/<device> at the applied commit, with a reflog entry (umhctl.appliedrefs); a
    device whose ref could not be moved says so in its result."""
    from umhctl.appliedrefs import record_applied
    from umhctl.gitinfo import operator

    if version.commit is None or not done:
        return
    site = loaded.blueprint.metadata.name
    missed = record_applied(
        loaded.path, site, [o.device for o in done], version.commit, operator(), version.dirty, verb
    )
    for outcome in done:
        if outcome.device in missed:
            outcome.notes.append(f"git did not record this {verb} in refs/umhctl/applied/{site}/ (history lacks it)")


def _uncommitted_secrets(secrets: SecretStore, allow_dirty: bool, verb: str = "apply") -> None:
    """A value generated just now into the repository's encrypted store must be committed before a device gets
    it: otherwise a colleague's render generates another one and the site's record names a commit without it."""
    if secrets.encrypted and secrets.created and not allow_dirty:
        done = "nothing was applied" if verb == "apply" else "nothing was changed"
        raise UmhctlError(
            f"new secrets were generated for this {verb} ({', '.join(sorted(secrets.created))}); {done}",
            hint=f"commit them so the team shares them (git add {secrets.directory} && git commit), then apply again",
        )


def _unplanned(device: str, error: str | None) -> Outcome:
    from umhctl.phases import Outcome

    return Outcome(device, ok=False, error=error, failed_phase="plan", failed_title="planning")


# -- reset ------------------------------------------------------------------------------------------------------


def reset_device(
    file: Path,
    name: str,
    *,
    inventory: InventoryFor | None = None,
    identity: Path | None = None,
    via: str | None = None,
    media: Path | None = None,
    wait: bool = False,
    backup: Path | None = None,
    rotate_host_key: bool = False,
    force: bool = False,
    allow_dirty: bool = False,
    timeout: float = 900.0,
    confirm: Callable[[str], bool] | None = None,
    reporter: Reporter | None = None,
    hints: Hints | None = None,
) -> ResetResult:
    """Rebuild one device. `confirm` gets what is about to happen and says yes or no (None: yes)."""
    from umhctl.converge import ContentCache, Phases, Target
    from umhctl.plan.planner import Stamp
    from umhctl.remote.ssh import key_fingerprint
    from umhctl.render import render_site
    from umhctl.render.ignition import ignition_json
    from umhctl.reset import (
        ResetPhases,
        ResetRun,
        dependent_edges,
        failure_hint,
        run_reset,
        trust_host_key,
        validate_ignition,
        write_media,
    )
    from umhctl.secrets import SecretStore

    hints = hints or Hints()
    loaded = load_blueprint(file)
    bp = loaded.blueprint
    if name not in [d.name for d in bp.devices]:
        raise UmhctlError(f"no device '{name}' in {file}", hint="devices: " + ", ".join(d.name for d in bp.devices))
    version = _version(loaded)
    if version.dirty and not allow_dirty:
        message, hint = version.refusal(file, "rebuild from")
        raise UmhctlError(message + " (a rebuilt device must match what is in git)", hint=hint)
    shared = SecretStore.for_blueprint(bp, loaded.path.parent, login_key=identity)
    if shared.encrypted:
        shared.ensure_all()  # before anything happens: a rebuilt device gets only values the team has in git
        _uncommitted_secrets(shared, allow_dirty, "reset")
    edges = dependent_edges(loaded, name)
    if edges and not force and media is None:
        raise UmhctlError(
            f"{name} is the hub of {', '.join(edges)}: they lose their broker while it is rebuilt",
            hint="pass --force to reset it anyway",
        )
    touches_device = media is None or wait
    if touches_device and confirm is not None:
        action = "wait for and configure" if wait else "wipe and rebuild"
        if not confirm(f"This will {action} {name}."):
            return ResetResult(name, None, cancelled=True)
    site_inventory = _inventory(loaded, inventory, identity, via, hints.via_management("reset", "device", name))
    # Only now, after the confirmation, may the host key change.
    secrets = SecretStore.for_blueprint(bp, loaded.path.parent, login_key=identity)
    trust_new_key: Callable[[], None] | None = None
    old_key, new_key = None, None
    if rotate_host_key:
        old_key = key_fingerprint(base64.b64decode(secrets.host_key(name).public.split()[1]))
        new_key = secrets.rotate_host_key(name).public

        def trust_new_key() -> None:
            assert new_key is not None
            trust_host_key(loaded, name, new_key, site_inventory, secrets.host_key_files(name))

    # A rebuild never depends on a mirror: its Ignition config fetches nothing; the apply that follows the
    # reboot pushes the images from the operator's cache (and /opt/extensions is kept across the reset anyway).
    source = _source(loaded, site_inventory)
    if touches_device:
        _pinned(loaded, source, hints)  # install media alone need no pin: their config fetches nothing
        _cached(loaded, source, hints)
    # In place (no --media), the device keeps its images: the tailnet's is linked at first boot (and checked first).
    in_place = media is None
    (render,) = render_site(loaded, secrets, source, devices=[name], self_contained=True, kept_images=in_place)
    ignition = ignition_json(render.ignition)
    written: Media | None = None
    if media is not None:
        target_dir = write_media(loaded, name, ignition, media, hints)
        problem = validate_ignition(target_dir / "ignition.json")
        if problem:
            raise UmhctlError(f"ignition-validate rejects the media's config: {problem}")
        written = Media(target_dir, (target_dir / "install-command.txt").read_text().strip())
        if not wait:
            if trust_new_key is not None:
                trust_new_key()
            return ResetResult(name, None, written, new_key)
    seal = secrets.sealer()
    stamp = Stamp(version.commit, version.dirty, render.state.fingerprint(seal))
    target = Target(name, site_inventory.endpoint(name), render.state, bp.device(name).install_disk, seal, stamp)
    converge = Phases(_info(loaded, version), ContentCache(), hints, command="reset")
    run = ResetRun(
        name,
        target,
        ignition=ignition,
        keep=list(bp.reset.keep),
        data=list(bp.reset.data),
        backup=backup,
        wait_only=wait,
        timeout=timeout,
        hostname=bp.device(name).host_name,
        trust_new_key=trust_new_key,
        old_key_fingerprint=old_key,
        boot_images=[(a.path, a.sha256 or "") for a in render.state.artifacts if a.boot_link],
    )
    outcome = run_reset(run, ResetPhases(converge), reporter)
    if outcome.ok:
        _record_applied(loaded, version, [outcome], "reset")
    undone = False
    if not outcome.ok:
        outcome.hint = failure_hint(outcome, name, hints, wait_only=wait)
        if rotate_host_key and not outcome.past_no_return and not wait:
            # Nothing was staged: the device keeps its key and known_hosts still names it.
            secrets.restore_host_key(name)
            undone = True
    return ResetResult(name, outcome, written, new_key, rotation_undone=undone)


# -- artifacts --------------------------------------------------------------------------------------------------


def lock(file: Path, *, artifacts: ArtifactSource | None = None, download: bool = False) -> LockResult:
    """Pin every artifact the site needs by sha256 in its lock file (or `artifacts`' lock); entries no longer
    needed are dropped."""
    from umhctl.artifacts import LockFile, needed, resolve, site_source

    loaded = load_blueprint(file)
    source = artifacts or site_source(loaded.blueprint, loaded.path)
    wanted = needed(loaded.blueprint)
    old = dict(source.lock.pins)
    locked = []
    pins = {}
    for artifact in wanted:
        pin = resolve(artifact, source.base, download=download)
        before = old.get(artifact.filename)
        change = "added" if before is None else ("unchanged" if before.sha256 == pin.sha256 else "changed")
        if before is not None and before.sha256 == pin.sha256 and pin.size is None:
            pin = before  # keep a size an earlier download learnt
        pins[artifact.filename] = pin
        locked.append(LockedArtifact(artifact.filename, pin.sha256, pin.source, change))
    updated = LockFile(source.lock.path, pins)
    updated.save()
    return LockResult(updated.path, locked, sorted(set(old) - set(pins)))


def fetch(file: Path, *, artifacts: ArtifactSource | None = None, cache: ArtifactCache | None = None) -> FetchResult:
    """Download every pinned artifact into the local cache, verifying each hash (cached ones are verified again)."""
    from umhctl.artifacts import ArtifactCache, needed, site_source

    loaded = load_blueprint(file)
    source = artifacts or site_source(loaded.blueprint, loaded.path)
    cache = cache or ArtifactCache()
    fetched = []
    for artifact in needed(loaded.blueprint):
        pin = source.require(artifact)
        if cache.has(pin):
            cache.verify(artifact, pin)
            status = "cached"
        else:
            cache.fetch(artifact, pin, source.base)
            status = "downloaded"
        size = cache.path(pin).stat().st_size
        fetched.append(FetchedArtifact(artifact.filename, pin.sha256, size, status))
    return FetchResult(cache.directory, fetched)


# -- the team's questions: what runs where, is it healthy ------------------------------------------------------


def history(
    file: Path,
    *,
    devices: list[str] | None = None,
    live: bool = False,
    inventory: InventoryFor | None = None,
    identity: Path | None = None,
    via: str | None = None,
    parallel: int = DEFAULT_PARALLEL,
) -> HistoryResult:
    """Per device, the commits applied to it (refs/umhctl/applied/<site>/<device> and its reflog), newest first;
    with `live`, checked against each device's own record."""
    from umhctl.appliedrefs import device_history
    from umhctl.sitestatus import HistoryResult, live_records

    loaded = load_blueprint(file)
    site = loaded.blueprint.metadata.name
    names = _device_names(loaded, devices)
    found = [device_history(loaded.path, site, name) for name in names]
    if live:
        records = live_records(_inventory(loaded, inventory, identity, via), names, parallel)
        for entry in found:
            record = records[entry.device]
            entry.live = record
            current = entry.current.commit if entry.current else None
            entry.live_match = "error" not in record and record.get("commit") == current
    return HistoryResult(site, found, live)


def status(
    file: Path,
    *,
    devices: list[str] | None = None,
    inventory: InventoryFor | None = None,
    identity: Path | None = None,
    via: str | None = None,
    parallel: int = DEFAULT_PARALLEL,
    reporter: Reporter | None = None,
    hints: Hints | None = None,
) -> StatusResult:
    """Each device's health in one SSH round trip: reachable, applied commit vs HEAD, drift, failed units, k3s,
    Flatcar version (umhctl.sitestatus)."""
    from umhctl.converge import plan_site
    from umhctl.sitestatus import StatusPhases, StatusResult, judge

    hints = hints or Hints()
    loaded = load_blueprint(file)
    version = _version(loaded)
    _, fleet = _fleet(loaded, version, devices, inventory, identity, via, hints, "status")
    info = _info(loaded, version)
    phases = StatusPhases(info, hints)
    plan = plan_site(info, fleet, phases, parallel=parallel, reporter=reporter)
    pinned = loaded.blueprint.versions.flatcar.version
    health = [judge(d.device, d, phases, loaded.path, version.commit, pinned) for d in plan.devices]
    return StatusResult(version.commit, health)


def _device_names(loaded: LoadedBlueprint, devices: list[str] | None) -> list[str]:
    names = [d.name for d in loaded.blueprint.devices]
    unknown = [d for d in devices or [] if d not in names]
    if unknown:
        raise UmhctlError(f"no device {', '.join(unknown)} in {loaded.path}", hint="devices: " + ", ".join(names))
    return [n for n in names if not devices or n in devices]
