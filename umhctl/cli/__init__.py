"""The umhctl command line: a thin typer layer that maps options onto umhctl.api and results onto views."""

# No `from __future__ import annotations`: typer reads every command's signature on each start (also for
# --help), and evaluating string annotations again there costs more than the annotations cost at import.

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from umhctl import __version__
from umhctl.cli import options
from umhctl.cli.options import (
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    BlueprintOpt,
    CliCommand,
    CliGroup,
    DeviceArg,
    DeviceOpt,
    Output,
    OutputOpt,
    between,
    boundary,
    default_blueprint,
)
from umhctl.cli.sim import sim_app
from umhctl.errors import UmhctlError

if TYPE_CHECKING:
    from umhctl.api import InventoryFor
    from umhctl.cli.progress import ConsoleReporter
    from umhctl.hints import Hints
    from umhctl.plan.model import Plan

app = typer.Typer(
    name="umhctl",
    cls=CliGroup,
    help="Declarative provisioning for United Manufacturing Hub edge sites: validate a site blueprint, render "
    "each device's configuration, plan and apply it over SSH, rebuild a device.",
    epilog=f"Every command takes --debug (tracebacks) and -o json (a JSON document, errors included). "
    f"{EXIT_CODES_HELP}",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(sim_app, name="sim")

DEFAULT_PARALLEL = 16  # umhctl.api.DEFAULT_PARALLEL, repeated so --help does not import the library


def _print_version() -> None:
    typer.echo(f"umhctl {__version__}")


def _version(value: bool) -> None:
    if value:
        _print_version()
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors (on any command).")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    options.debug["on"] = options.debug["on"] or debug


@app.command(cls=CliCommand)
@boundary
def validate(file: BlueprintOpt, output: OutputOpt = Output.text) -> None:
    """Check a blueprint: schema and cross-references, every problem at once.

    \b
    Example:
      umhctl validate -f blueprints/demo-site.yaml
    """
    from umhctl import api
    from umhctl.cli import views

    result = api.validate(file)
    if output is Output.json:
        views.show_json(result)
    else:
        views.show_validate(result)
    raise typer.Exit(0 if result.ok else 1)


@app.command(cls=CliCommand)
@boundary
def schema() -> None:
    """Print the blueprint JSON Schema (Draft 2020-12), for editors and CI.

    \b
    Example:
      umhctl schema > schema/site-blueprint.schema.json
    """
    import json

    from umhctl.blueprint.model import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command(cls=CliCommand)
@boundary
def render(
    file: BlueprintOpt,
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Directory to write DIR/<device>/... into.")],
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
    """Write each device's Ignition config, Butane twin and desired file tree. No network.

    \b
    Example:
      umhctl render -f blueprints/demo-site.yaml --out out/render --redact
    """
    from umhctl import api
    from umhctl.cli import views

    result = api.render(file, out=out, devices=device, redact=redact, update_known_hosts=update_known_hosts)
    if output is Output.json:
        views.show_json(result)
    else:
        views.show_render(result)


SimOpt = Annotated[bool, typer.Option("--sim", help="Talk to the local simulated site (`umhctl sim up`).")]
IdentityOpt = Annotated[
    Path | None,
    typer.Option(
        "-i",
        "--identity",
        metavar="KEY",
        help="SSH private key (default: ssh-agent and ~/.ssh keys).",
        show_default=False,
        exists=True,
        dir_okay=False,
    ),
]
ParallelOpt = Annotated[
    int, typer.Option("--parallel", metavar="N", callback=between(1, 64), help="Devices worked on at once (1-64).")
]


def _inventory(sim: bool) -> "InventoryFor | None":
    """The simulated site's inventory with --sim (the only place the production commands meet the simulator)."""
    if not sim:
        return None
    from umhctl.sim.state import sim_inventory

    return sim_inventory


def _hints(file: Path | None, sim: bool, identity: Path | None) -> "Hints":
    from umhctl.hints import Hints

    selection = [*(["-f", str(file)] if file is not None else []), *(["--sim"] if sim else [])]
    selection += ["-i", str(identity)] if identity is not None else []
    return Hints(tuple(selection))


def _reporter() -> "ConsoleReporter":
    from umhctl.cli import views
    from umhctl.cli.progress import ConsoleReporter

    return ConsoleReporter(views.console(stderr=True))


@app.command(cls=CliCommand)
@boundary
def plan(
    file: BlueprintOpt,
    device: DeviceOpt = None,
    sim: SimOpt = False,
    identity: IdentityOpt = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="PLANFILE", help="Save the plan for a later `umhctl apply PLANFILE`."),
    ] = None,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 0 when nothing changes, 2 when changes are pending.")
    ] = False,
    parallel: ParallelOpt = DEFAULT_PARALLEL,
    output: OutputOpt = Output.text,
) -> None:
    """Show, per device, what apply would change (desired state vs what is really on the device).

    \b
    Examples:
      umhctl plan -f site.yaml
      umhctl plan -f site.yaml --detailed-exitcode --out plan.json
      umhctl plan --sim -f blueprints/demo-site.yaml --device edge-01
    """
    from umhctl import api
    from umhctl.cli import views

    result = api.plan(
        file,
        devices=device,
        inventory=_inventory(sim),
        identity=identity,
        parallel=parallel,
        out=out,
        reporter=_reporter(),
        hints=_hints(file, sim, identity),
    )
    if output is Output.json:
        views.show_json(result)
    else:
        views.show_plan(result)
    if not result.ok:
        raise typer.Exit(1)
    raise typer.Exit(2 if detailed_exitcode and result.plan.has_changes else 0)


@app.command(cls=CliCommand)
@boundary
def apply(
    file: Annotated[
        Path | None,
        typer.Option(
            "-f",
            "--file",
            metavar="FILE",
            help="Site blueprint. Default: the saved plan's, else $UMHCTL_BLUEPRINT, else ./blueprint.yaml.",
            show_default=False,
        ),
    ] = None,
    planfile: Annotated[
        Path | None, typer.Argument(metavar="[PLANFILE]", help="A plan saved with `umhctl plan --out`.")
    ] = None,
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
    """Converge devices to the blueprint over SSH. A second apply changes nothing.

    \b
    Examples:
      umhctl apply -f site.yaml
      umhctl apply plan.json --yes
      umhctl apply --sim -f blueprints/demo-site.yaml --retry-failed --yes
    """
    from umhctl import api
    from umhctl.cli import views
    from umhctl.results import PlanResult

    blueprint = file if file is not None or planfile is not None else default_blueprint()

    shown: list[Plan] = []

    def confirm(work: "Plan") -> bool:
        if output is Output.text:
            views.show_plan(PlanResult(work))
            shown.append(work)
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UmhctlError("refusing to apply without confirmation: no terminal to ask on", hint="pass --yes")
        targets = ", ".join(d.device for d in work.devices if d.has_changes) or "the selected devices"
        prompt = (
            f"Force-remove the device lock on {targets} and apply? Only do this if no other apply is running."
            if force_unlock
            else f"Apply these changes to {targets}?"
        )
        return bool(typer.prompt(f"{prompt} Only 'yes' is accepted", default="", show_default=False) == "yes")

    result = api.apply(
        blueprint,
        planfile=planfile,
        devices=device,
        inventory=_inventory(sim),
        identity=identity,
        parallel=parallel,
        retry_failed=retry_failed,
        allow_dirty=allow_dirty,
        force_unlock=force_unlock,
        confirm=confirm,
        reporter=_reporter(),
        hints=_hints(file, sim, identity),
    )
    if output is Output.json:
        views.show_json(result)
    else:
        if not shown and not result.message:
            views.show_plan(PlanResult(result.plan))  # nothing to do, or nothing could be planned: it says so
        views.show_apply(result)
    if any(o.interrupted for o in result.outcomes):
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(0 if result.ok else 1)


@app.command(cls=CliCommand)
@boundary
def lock(
    file: BlueprintOpt,
    sim: Annotated[
        bool, typer.Option("--sim", help="Pin the simulated site's stand-in images (in its own lock).")
    ] = False,
    download: Annotated[
        bool, typer.Option("--download", help="Hash an image by downloading it when no SHA256SUMS lists it.")
    ] = False,
    output: OutputOpt = Output.text,
) -> None:
    """Pin every artifact the devices need (the k3s system extension) by sha256 in the lock file.

    \b
    Example:
      umhctl lock -f site.yaml && git commit site.lock.json -m "Pin k3s"
    """
    from umhctl import api
    from umhctl.cli import views

    if sim:
        from umhctl.sim.api import sim_lock

        result = sim_lock(file)
    else:
        result = api.lock(file, download=download)
    if output is Output.json:
        views.show_json(result)
    else:
        views.show_lock(result)


@app.command(cls=CliCommand)
@boundary
def fetch(
    file: BlueprintOpt,
    sim: Annotated[bool, typer.Option("--sim", help="Fetch the simulated site's stand-in images.")] = False,
    output: OutputOpt = Output.text,
) -> None:
    """Download every pinned artifact into the local cache and verify its hash (do it where there is internet).

    \b
    Example:
      umhctl fetch -f site.yaml
    """
    from umhctl import api
    from umhctl.cli import views

    source = None
    if sim:
        from umhctl.blueprint.loader import load_blueprint
        from umhctl.sim.state import SimSite

        source = SimSite.load(load_blueprint(file)).artifact_source()
    result = api.fetch(file, artifacts=source)
    if output is Output.json:
        views.show_json(result)
    else:
        views.show_fetch(result)


reset_app = typer.Typer(
    name="reset",
    help="Rebuild a device from the blueprint.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(reset_app, name="reset")


@reset_app.command("device", cls=CliCommand)
@boundary
def reset_device(
    name: DeviceArg,
    file: BlueprintOpt,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    media: Annotated[
        Path | None,
        typer.Option(
            "--media", metavar="DIR", help="Write install media for a dead or replaced device into DIR/<device>/."
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for a reinstalled device to come up, then apply and verify.")
    ] = False,
    backup: Annotated[
        Path | None,
        typer.Option("--backup", metavar="DIR", help="Save the blueprint's data paths into DIR first."),
    ] = None,
    rotate_host_key: Annotated[
        bool, typer.Option("--rotate-host-key", help="Give the device a new SSH host key (known_hosts is updated).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Reset a hub even while edge devices depend on it.")] = False,
    allow_dirty: Annotated[
        bool, typer.Option("--allow-dirty", help="Use a blueprint with uncommitted changes.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", metavar="SECONDS", callback=between(5), help="Seconds to wait for the device (at least 5)."
        ),
    ] = 900.0,
    sim: SimOpt = False,
    identity: IdentityOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Rebuild one device: stage flatcar-reset with its Ignition config, reboot, wait, apply, verify.

    \b
    Examples:
      umhctl reset device edge-01 -f site.yaml
      umhctl reset device edge-02 -f site.yaml --media /media/usb
      umhctl reset device edge-02 -f site.yaml --wait
    """
    from umhctl import api
    from umhctl.cli import views

    def confirm(what: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UmhctlError("refusing to reset without confirmation: no terminal to ask on", hint="pass --yes")
        return bool(typer.prompt(f"{what} Type the device name to confirm", default="") == name)

    result = api.reset_device(
        file,
        name,
        inventory=_inventory(sim),
        identity=identity,
        media=media,
        wait=wait,
        backup=backup,
        rotate_host_key=rotate_host_key,
        force=force,
        allow_dirty=allow_dirty,
        timeout=timeout,
        confirm=confirm,
        reporter=_reporter(),
        hints=_hints(file, sim, identity),
    )
    if output is Output.json:
        views.show_json(result)
    else:
        views.show_reset(result)
    if result.outcome is not None and result.outcome.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(0 if result.ok else 1)


def main() -> None:
    # No third-party pydantic plugins hook into the blueprint models of this command line (pydantic/plugin/
    # _loader.py honours this switch); looking for them reads the metadata of every installed distribution.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if sys.argv[1:] == ["--version"]:
        # What the eager --version option prints, without typer first building every command's parameters
        # from its signature (bench/cli_startup.py).
        _print_version()
        return
    app(prog_name="umhctl")  # also under `python -m umhctl`: usage lines and hints name the command people type
