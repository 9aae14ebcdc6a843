"""The umhctl command line: a thin typer layer that maps options onto the library and results onto views."""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from umhctl import __version__, options
from umhctl.errors import UmhctlError
from umhctl.options import (
    DEFAULT_PARALLEL,
    BlueprintOpt,
    DeviceOpt,
    Output,
    OutputOpt,
    boundary,
    count,
    default_blueprint,
)
from umhctl.sim.cli import sim_app

if TYPE_CHECKING:
    from rich.console import Console

    from umhctl.blueprint.loader import LoadedBlueprint
    from umhctl.converge import Target
    from umhctl.gitinfo import BlueprintVersion

app = typer.Typer(
    name="umhctl",
    help="Declarative provisioning for United Manufacturing Hub edge sites.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(sim_app, name="sim")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"umhctl {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    options.debug["on"] = debug


@app.command()
@boundary
def validate(file: BlueprintOpt, output: OutputOpt = Output.text) -> None:
    """Check a blueprint: schema and cross-references, every problem at once."""
    from umhctl import views
    from umhctl.blueprint.loader import validate_file

    blueprint, _, diagnostics = validate_file(file)
    if output is Output.json:
        views.print_json(
            {
                "command": "validate",
                "file": str(file),
                "valid": blueprint is not None,
                "diagnostics": [d.to_dict() for d in diagnostics],
            }
        )
    else:
        views.show_diagnostics(diagnostics)
        if blueprint is not None:
            counts = (
                count(len(blueprint.devices), "device"),
                count(len(blueprint.io_link_masters), "IO-Link master"),
                count(len(blueprint.sensors), "sensor"),
                count(len(blueprint.dashboards), "dashboard"),
            )
            views.show_line(f"{file}: valid ({', '.join(counts)})")
        else:
            views.show_line(f"{file}: {count(sum(d.severity == 'error' for d in diagnostics), 'error')}")
    raise typer.Exit(0 if blueprint is not None else 1)


@app.command()
@boundary
def schema() -> None:
    """Print the blueprint JSON Schema (Draft 2020-12), for editors and CI."""
    from umhctl.blueprint.model import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command()
@boundary
def render(
    file: BlueprintOpt,
    out: Annotated[Path, typer.Option("--out", help="Directory to write DIR/<device>/... into.")],
    device: DeviceOpt = None,
    redact: Annotated[
        bool, typer.Option("--redact", help="Write placeholders instead of secret values (to review renders).")
    ] = False,
    update_known_hosts: Annotated[
        bool,
        typer.Option(
            "--update-known-hosts",
            help="Also record the devices' host keys in the site's known_hosts (commit it afterwards).",
        ),
    ] = False,
    output: OutputOpt = Output.text,
) -> None:
    """Write each device's Ignition config, Butane twin and desired file tree. No network."""
    from umhctl import views
    from umhctl.blueprint.loader import load_blueprint
    from umhctl.knownhosts import record_site_host_keys
    from umhctl.render import render_site
    from umhctl.render.output import write_render
    from umhctl.secrets import SecretStore

    loaded = load_blueprint(file)
    secrets = SecretStore.for_blueprint(loaded.blueprint, loaded.path.parent)
    renders = render_site(loaded, secrets, devices=device, redact=redact)
    seal = secrets.sealer()
    written = [(r, write_render(r, out, seal)) for r in renders]
    recorded = record_site_host_keys(loaded, secrets, [r.device for r in renders]) if update_known_hosts else []
    if output is Output.json:
        views.print_json(
            {
                "command": "render",
                "out": str(out),
                "redacted": redact,
                "devices": [
                    {"device": r.device, "path": str(path), "files": len(r.state.files), "links": len(r.state.links)}
                    for r, path in written
                ],
                "known_hosts_updated": recorded,
            }
        )
    else:
        for r, path in written:
            views.show_line(f"{r.device}: {len(r.state.files)} files, {len(r.state.links)} links -> {path}")
        views.show_line(f"rendered {count(len(written), 'device')}{' (secrets redacted)' if redact else ''}")
        if recorded:
            known_hosts = loaded.path.parent / loaded.blueprint.access.known_hosts_file
            views.show_line(
                f"recorded the host keys of {', '.join(recorded)} in {known_hosts}: commit it, so that everyone "
                "connecting to the site checks the devices' keys"
            )


SimOpt = Annotated[bool, typer.Option("--sim", help="Talk to the local simulated site (`umhctl sim up`).")]
IdentityOpt = Annotated[
    Path | None,
    typer.Option(
        "-i",
        "--identity",
        help="SSH private key (default: ssh-agent and ~/.ssh keys).",
        show_default=False,
        exists=True,
        dir_okay=False,
    ),
]
ParallelOpt = Annotated[int, typer.Option("--parallel", min=1, max=64, help="Devices worked on at once.")]


def _fleet(
    file: Path, device: list[str] | None, sim: bool, identity: Path | None
) -> tuple[LoadedBlueprint, BlueprintVersion, list[Target]]:
    from umhctl.blueprint.loader import load_blueprint
    from umhctl.converge import targets
    from umhctl.gitinfo import blueprint_version
    from umhctl.secrets import SecretStore

    loaded = load_blueprint(file)
    secrets = SecretStore.for_blueprint(loaded.blueprint, loaded.path.parent)
    fleet = targets(loaded, secrets, devices=device, sim=sim, identity=identity)
    return loaded, blueprint_version(loaded.path), fleet


def _stderr_console() -> Console:
    from umhctl.views import _console

    return _console(stderr=True)


@app.command()
@boundary
def plan(
    file: BlueprintOpt,
    device: DeviceOpt = None,
    sim: SimOpt = False,
    identity: IdentityOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Save the plan for a later `umhctl apply PLANFILE`.")
    ] = None,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 0 when nothing changes, 2 when changes are pending.")
    ] = False,
    parallel: ParallelOpt = DEFAULT_PARALLEL,
    output: OutputOpt = Output.text,
) -> None:
    """Show, per device, what apply would change (desired state vs what is really on the device)."""
    from umhctl import views
    from umhctl.converge import ContentCache, plan_site, save_plan
    from umhctl.plan.views import plan_json, show_plan

    loaded, version, fleet = _fleet(file, device, sim, identity)
    result = plan_site(loaded, version, fleet, parallel=parallel, console=_stderr_console(), cache=ContentCache())
    if out is not None:
        save_plan(result, out)
    if output is Output.json:
        views.print_json(plan_json(result))
    else:
        show_plan(result, views._console())
        if out is not None:
            views.show_line(f"Saved the plan to {out}; apply it with: umhctl apply {out}")
    if result.has_errors:
        raise typer.Exit(1)
    raise typer.Exit(2 if detailed_exitcode and result.has_changes else 0)


@app.command()
@boundary
def apply(
    file: BlueprintOpt,
    planfile: Annotated[Path | None, typer.Argument(help="A plan saved with `umhctl plan --out`.")] = None,
    device: DeviceOpt = None,
    sim: SimOpt = False,
    identity: IdentityOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    parallel: ParallelOpt = DEFAULT_PARALLEL,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Only the devices that failed in the last apply.")
    ] = False,
    allow_dirty: Annotated[
        bool, typer.Option("--allow-dirty", help="Apply a blueprint with uncommitted changes (recorded as dirty).")
    ] = False,
    force_unlock: Annotated[
        bool, typer.Option("--force-unlock", help="Remove a device lock left by an apply that died (asks first).")
    ] = False,
    output: OutputOpt = Output.text,
) -> None:
    """Converge devices to the blueprint over SSH. A second apply changes nothing."""
    import sys

    from umhctl import views
    from umhctl.converge import ContentCache, apply_plan, load_plan, plan_site
    from umhctl.fleet import Outcome
    from umhctl.plan.views import show_plan
    from umhctl.runstate import last_failed, save_outcomes

    saved = load_plan(planfile) if planfile is not None else None
    if saved is not None and file == default_blueprint():
        file = Path(saved.blueprint["path"])
    if retry_failed:
        failed = last_failed(file)
        if not failed:
            views.show_line("No device failed in the last apply: nothing to retry.", stderr=output is Output.json)
            raise typer.Exit(0)
        device = sorted(set(device or failed) & set(failed))
        if not device:
            views.show_line(
                "None of the selected devices failed in the last apply: nothing to retry.",
                stderr=output is Output.json,
            )
            raise typer.Exit(0)
    loaded, version, fleet = _fleet(file, device, sim, identity)
    if version.dirty and not allow_dirty:
        raise UmhctlError(
            f"{file} has uncommitted changes ({version.describe()}); refusing to apply what is not in git",
            hint="commit the blueprint first, or pass --allow-dirty (the apply is then recorded as dirty)",
        )
    console = views._console()
    cache = ContentCache()
    if saved is not None:
        if saved.blueprint.get("commit") != version.commit or saved.blueprint.get("dirty") != version.dirty:
            raise UmhctlError(
                f"the plan was made for blueprint commit {saved.blueprint.get('commit')}, "
                f"the repository is now at {version.describe()}; run plan again"
            )
        names = {t.device for t in fleet}
        work = type(saved)(saved.blueprint, [d for d in saved.devices if d.device in names], saved.umhctl_version)
    else:
        work = plan_site(loaded, version, fleet, parallel=parallel, console=_stderr_console(), cache=cache)
    if output is Output.text:
        show_plan(work, console)
    if work.has_errors and saved is None:
        failed_devices = [d.device for d in work.devices if d.error]
        views.show_error(f"could not plan {', '.join(failed_devices)}; nothing was applied there")
    if not work.has_changes and not force_unlock:
        if output is Output.json:
            views.print_json({"command": "apply", "plan": work.to_dict(), "results": []})
        raise typer.Exit(1 if work.has_errors else 0)
    targets_named = ", ".join(d.device for d in work.devices if d.has_changes) or "the selected devices"
    if not yes:
        if not sys.stdin.isatty():
            raise UmhctlError("refusing to apply without confirmation: no terminal to ask on", hint="pass --yes")
        prompt = (
            f"Apply these changes to {targets_named}?"
            if not force_unlock
            else (
                f"Force-remove the device lock on {targets_named} and apply? Only do this if no other apply is running."
            )
        )
        if typer.prompt(f"{prompt} Only 'yes' is accepted", default="", show_default=False) != "yes":
            views.show_line("Apply cancelled.")
            raise typer.Exit(1)
    outcomes = apply_plan(
        work, fleet, parallel=parallel, console=_stderr_console(), cache=cache, force_unlock=force_unlock
    )
    # Devices that could not even be planned (unreachable, ...) belong in the results too.
    outcomes = [
        Outcome(d.device, ok=False, error=d.error, failed_phase="planning") for d in work.devices if d.error
    ] + outcomes
    save_outcomes(loaded.path, outcomes)
    if output is Output.json:
        views.print_json(
            {
                "command": "apply",
                "plan": work.to_dict(),
                "results": [
                    {
                        "device": o.device,
                        "ok": o.ok,
                        "error": o.error,
                        "failed_phase": o.failed_phase,
                        "seconds": round(o.seconds, 3),
                        "notes": o.notes,
                    }
                    for o in outcomes
                ],
            }
        )
    else:
        views.show_outcomes(outcomes, title="Apply")
    raise typer.Exit(1 if work.has_errors or any(not o.ok for o in outcomes) else 0)


reset_app = typer.Typer(name="reset", help="Rebuild a device from the blueprint.", no_args_is_help=True)
app.add_typer(reset_app, name="reset")


@reset_app.command("device")
@boundary
def reset_device(
    name: Annotated[str, typer.Argument(help="The device to rebuild.")],
    file: BlueprintOpt,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    media: Annotated[
        Path | None,
        typer.Option("--media", help="Write install media for a dead or replaced device into DIR/<device>/."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for a reinstalled device to come up, then apply and verify.")
    ] = False,
    backup: Annotated[
        Path | None, typer.Option("--backup", help="Save the blueprint's data paths into DIR first.")
    ] = None,
    rotate_host_key: Annotated[
        bool, typer.Option("--rotate-host-key", help="Give the device a new SSH host key (known_hosts is updated).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Reset a hub even while edge devices depend on it.")] = False,
    allow_dirty: Annotated[
        bool, typer.Option("--allow-dirty", help="Use a blueprint with uncommitted changes.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=5, help="Seconds to wait for the device to come back.")
    ] = 900.0,
    sim: SimOpt = False,
    identity: IdentityOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Rebuild one device: stage flatcar-reset with its Ignition config, reboot, wait, apply, verify."""
    import sys

    from umhctl import views
    from umhctl.blueprint.loader import load_blueprint
    from umhctl.converge import Applier, ContentCache, blueprint_info, targets
    from umhctl.device.ssh import key_fingerprint
    from umhctl.gitinfo import blueprint_version
    from umhctl.render import render_site
    from umhctl.render.ignition import ignition_json
    from umhctl.reset import (
        BEFORE_REBOOT,
        ResetRun,
        dependent_edges,
        run_reset,
        trust_host_key,
        validate_ignition,
        write_media,
    )
    from umhctl.secrets import SecretStore

    loaded = load_blueprint(file)
    bp = loaded.blueprint
    if name not in [d.name for d in bp.devices]:
        raise UmhctlError(f"no device '{name}' in {file}", hint="devices: " + ", ".join(d.name for d in bp.devices))
    version = blueprint_version(loaded.path)
    if version.dirty and not allow_dirty:
        raise UmhctlError(
            f"{file} has uncommitted changes ({version.describe()}); a rebuilt device must match what is in git",
            hint="commit the blueprint first, or pass --allow-dirty",
        )
    edges = dependent_edges(loaded, name)
    if edges and not force and media is None:
        raise UmhctlError(
            f"{name} is the hub of {', '.join(edges)}: they lose their broker while it is rebuilt",
            hint="pass --force to reset it anyway",
        )
    touches_device = media is None or wait
    if touches_device and not yes:
        if not sys.stdin.isatty():
            raise UmhctlError("refusing to reset without confirmation: no terminal to ask on", hint="pass --yes")
        action = "wait for and configure" if wait else "wipe and rebuild"
        answer = typer.prompt(f"This will {action} {name}. Type the device name to confirm", default="")
        if answer != name:
            views.show_line("Reset cancelled.")
            raise typer.Exit(1)
    # Only now, after the confirmation, may the host key change.
    secrets = SecretStore.for_blueprint(bp, loaded.path.parent)
    trust_new_key, old_key = None, None
    if rotate_host_key:
        old_key = key_fingerprint(base64.b64decode(secrets.host_key(name).public.split()[1]))
        key = secrets.rotate_host_key(name)
        trust_new_key = functools.partial(trust_host_key, loaded, name, key.public, sim=sim)
        views.show_line(
            f"{name}: new host key {key.public.split()[1][:20]}… (known_hosts switches after the reboot)",
            stderr=output is Output.json,
        )
    (render,) = render_site(loaded, secrets, devices=[name])
    ignition = ignition_json(render.ignition)
    if media is not None:
        target_dir = write_media(loaded, name, ignition, media)
        problem = validate_ignition(target_dir / "ignition.json")
        if problem:
            raise UmhctlError(f"ignition-validate rejects the media's config: {problem}")
        install = (target_dir / "install-command.txt").read_text().strip()
        if output is Output.json and not wait:
            views.print_json(
                {"command": "reset device", "device": name, "media": str(target_dir), "install_command": install}
            )
        else:
            quiet = output is Output.json
            views.show_line(f"Install media for {name} written to {target_dir}:", stderr=quiet)
            views.show_line(install, stderr=quiet)
            views.show_line(f"Instructions: {target_dir / 'INSTRUCTIONS.txt'}", stderr=quiet)
        if not wait:
            if trust_new_key is not None:
                trust_new_key()
            raise typer.Exit(0)
    (target,) = targets(loaded, secrets, devices=[name], sim=sim, identity=identity)
    cache = ContentCache()
    info = blueprint_info(loaded, version)
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
    )
    outcome = run_reset(run, Applier(info, cache, force_unlock=False), cache, _stderr_console())
    if output is Output.json:
        views.print_json(
            {
                "command": "reset device",
                "device": name,
                "ok": outcome.ok,
                "error": outcome.error,
                "failed_phase": outcome.failed_phase,
                "phases": [{"phase": title, "seconds": round(t, 3)} for title, t in outcome.timings],
                "seconds": round(outcome.seconds, 3),
                "notes": outcome.notes,
            }
        )
    else:
        views.show_timings(outcome, title=f"reset device {name}")
    if not outcome.ok and rotate_host_key and outcome.failed_phase in BEFORE_REBOOT:
        # The device still has its old key and known_hosts still names it: the new key must not linger.
        secrets.restore_host_key(name)
        views.show_line(f"{name}: the host key rotation was undone; the device keeps its key", stderr=True)
    if not outcome.ok:
        if outcome.failed_phase in BEFORE_REBOOT:
            hint = "nothing was changed on the device: fix the problem and run the same command again"
        elif outcome.failed_phase == "rebooting":
            hint = f"the reset is staged: once the device has rebooted, run: umhctl reset device {name} --wait"
        else:
            hint = f"the device was reset; once it answers, finish with: umhctl reset device {name} --wait"
        raise UmhctlError(f"reset of {name} failed while {outcome.failed_phase}: {outcome.error}", hint=hint)


def main() -> None:
    app()
