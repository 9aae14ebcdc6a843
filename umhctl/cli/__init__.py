"""The umhctl command line: a thin typer layer that maps options onto umhctl.api and results onto views."""

# No `from __future__ import annotations`: typer reads every command's signature on each start (also for
# --help), and evaluating string annotations again there costs more than the annotations cost at import.

import copy
import gc
import os
import sys
import types
from enum import StrEnum
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
    Via,
    ViaOpt,
    between,
    boundary,
    default_blueprint,
)
from umhctl.cli.secrets import secrets_app
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
app.add_typer(secrets_app, name="secrets")

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


def _hints(file: Path | None, sim: bool, identity: Path | None, via: Via | None = None) -> "Hints":
    from umhctl.hints import Hints

    selection = [*(["-f", str(file)] if file is not None else []), *(["--sim"] if sim else [])]
    selection += ["-i", str(identity)] if identity is not None else []
    selection += ["--via", via.value] if via is not None else []
    return Hints(tuple(selection))


def _reporter() -> "ConsoleReporter":
    from umhctl.cli.progress import ConsoleReporter

    return ConsoleReporter()


@app.command(cls=CliCommand)
@boundary
def plan(
    file: BlueprintOpt,
    device: DeviceOpt = None,
    sim: SimOpt = False,
    identity: IdentityOpt = None,
    via: ViaOpt = None,
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
      umhctl plan -f site.yaml --via management
    """
    from umhctl import api
    from umhctl.cli import views

    result = api.plan(
        file,
        devices=device,
        inventory=_inventory(sim),
        identity=identity,
        via=via.value if via else None,
        parallel=parallel,
        out=out,
        reporter=_reporter(),
        hints=_hints(file, sim, identity, via),
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
    via: ViaOpt = None,
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
      umhctl apply -f site.yaml --via tailscale
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
        via=via.value if via else None,
        parallel=parallel,
        retry_failed=retry_failed,
        allow_dirty=allow_dirty,
        force_unlock=force_unlock,
        confirm=confirm,
        unattended=yes,
        reporter=_reporter(),
        hints=_hints(file, sim, identity, via),
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


@app.command(cls=CliCommand)
@boundary
def init(
    directory: Annotated[
        Path,
        typer.Argument(
            metavar="[DIR]", help="A new or empty directory (default: the current one).", show_default=False
        ),
    ] = Path("."),
    site: Annotated[
        str | None,
        typer.Option("--site", metavar="NAME", help="The site's name (default: DIR's name).", show_default=False),
    ] = None,
    recipient: Annotated[
        list[str] | None,
        typer.Option(
            "--recipient",
            metavar="KEY",
            help="Encrypt the secrets to this key (repeatable). Default: the public half of your key (see -i).",
            show_default=False,
        ),
    ] = None,
    identity: Annotated[
        Path | None,
        typer.Option(
            "-i",
            "--identity",
            metavar="KEY",
            help="Your age identity file or SSH private key (default: $UMHCTL_AGE_IDENTITY, else ~/.ssh/id_ed25519).",
            show_default=False,
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    git_hook: Annotated[
        bool, typer.Option("--git-hook", help="Also install a plain .git/hooks/pre-commit running validate.")
    ] = False,
    output: OutputOpt = Output.text,
) -> None:
    """Create a site repository: a small valid blueprint, its schema, dashboards/, known_hosts, the secrets
    encrypted to your key, .gitignore, a pre-commit configuration running validate, and a first commit.
    Refuses a directory that is not empty.

    \b
    Examples:
      umhctl init plant-cologne
      umhctl init plant-cologne --site cologne --git-hook
    """
    from umhctl.cli import views
    from umhctl.siteinit import init_site

    result = init_site(directory, site=site, recipients=recipient, identity=identity, git_hook_install=git_hook)
    if output is Output.json:
        views.show_json(result)
        return
    out = views.console()
    out.print(f"Site '{result.site}' created in {result.directory} (commit {result.commit[:12]}):")
    for name in result.files:
        out.print(f"  {name}")
    out.print("Secrets encrypted to: " + ", ".join(r[:40] for r in result.recipients))
    if result.hook is not None:
        out.print(f"Git hook: {result.hook} validates every commit.")
    for note in result.notes:
        out.print(f"Note: {note}")
    out.print(f"Next: cd {directory} && umhctl validate && umhctl secrets add-recipient COLLEAGUE_KEY")


class DiffOutput(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


@app.command(cls=CliCommand)
@boundary
def diff(
    file: BlueprintOpt,
    rev1: Annotated[str | None, typer.Argument(metavar="[REV1]", help="Old side (default: HEAD).")] = None,
    rev2: Annotated[str | None, typer.Argument(metavar="[REV2]", help="New side (default: the working tree).")] = None,
    output: Annotated[
        DiffOutput, typer.Option("-o", "--output", metavar="FORMAT", help="text, json or markdown (a PR comment).")
    ] = DiffOutput.text,
) -> None:
    """Show per device what changes in the desired state between two commits: files, links, images. Renders
    from git objects (the working tree is never touched), reads no secret, connects to nothing. As `git diff`:
    no revision compares HEAD with the working tree, one compares REV1 with it, two compare REV1 with REV2.

    \b
    Examples:
      umhctl diff -f site.yaml
      umhctl diff origin/main HEAD -f site.yaml -o markdown > comment.md
    """
    from umhctl.cli import diffview, views
    from umhctl.sitediff import site_diff

    result = site_diff(file, rev1, rev2)
    if output is DiffOutput.json:
        views.show_json(result)
    else:
        sys.stdout.write(diffview.markdown(result) if output is DiffOutput.markdown else diffview.text(result))


@app.command(cls=CliCommand)
@boundary
def history(
    file: BlueprintOpt,
    device: DeviceOpt = None,
    live: Annotated[
        bool, typer.Option("--live", help="Also ask each device (over SSH) what it last got, and compare.")
    ] = False,
    sim: SimOpt = False,
    identity: IdentityOpt = None,
    via: ViaOpt = None,
    parallel: ParallelOpt = DEFAULT_PARALLEL,
    output: OutputOpt = Output.text,
) -> None:
    """Show per device which commits were applied to it, when and by whom (from refs/umhctl/applied/...).
    With --live, exits 1 when a device's own record names another commit than its ref.

    \b
    Examples:
      umhctl history -f site.yaml
      umhctl history -f site.yaml --device edge-01 --live -o json
    """
    from umhctl import api
    from umhctl.cli import statusview, views

    result = api.history(
        file,
        devices=device,
        live=live,
        inventory=_inventory(sim),
        identity=identity,
        via=via.value if via else None,
        parallel=parallel,
    )
    if output is Output.json:
        views.show_json(result)
    else:
        statusview.show_history(result)
    raise typer.Exit(0 if result.ok else 1)


@app.command(cls=CliCommand)
@boundary
def status(
    file: BlueprintOpt,
    device: DeviceOpt = None,
    sim: SimOpt = False,
    identity: IdentityOpt = None,
    via: ViaOpt = None,
    parallel: ParallelOpt = DEFAULT_PARALLEL,
    output: OutputOpt = Output.text,
) -> None:
    """Check every device in one SSH round trip: reachable, latency, applied commit vs HEAD, drift, failed units,
    k3s, Flatcar version. Exits 0 only when every device is healthy.

    \b
    Examples:
      umhctl status -f site.yaml
      umhctl status --sim -f blueprints/demo-site.yaml --device edge-01 -o json
    """
    from umhctl import api
    from umhctl.cli import statusview, views

    result = api.status(
        file,
        devices=device,
        inventory=_inventory(sim),
        identity=identity,
        via=via.value if via else None,
        parallel=parallel,
        reporter=_reporter(),
        hints=_hints(file, sim, identity, via),
    )
    if output is Output.json:
        views.show_json(result)
    else:
        statusview.show_status(result)
    raise typer.Exit(0 if result.ok else 1)


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
    via: ViaOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Rebuild one device: stage flatcar-reset with its Ignition config, reboot, wait, apply, verify.

    \b
    Examples:
      umhctl reset device edge-01 -f site.yaml
      umhctl reset device edge-02 -f site.yaml --media /media/usb
      umhctl reset device edge-02 -f site.yaml --wait
      umhctl reset device edge-01 -f site.yaml --via tailscale
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
        via=via.value if via else None,
        media=media,
        wait=wait,
        backup=backup,
        rotate_host_key=rotate_host_key,
        force=force,
        allow_dirty=allow_dirty,
        timeout=timeout,
        confirm=confirm,
        reporter=_reporter(),
        hints=_hints(file, sim, identity, via),
    )
    if output is Output.json:
        views.show_json(result)
    else:
        views.show_reset(result)
    if result.outcome is not None and result.outcome.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(0 if result.ok else 1)


def _narrowed(argv: list[str]) -> typer.Typer:
    """The app with only the command (or group) the command line names. typer builds a click command from the
    signature of every registered command before it runs one (~7 ms for all of umhctl's); no other command is
    looked at by a run of one. Without a known name (--help, a typo: its did-you-mean lists them all), all."""
    import typer.main

    name = next((arg for arg in argv if not arg.startswith("-")), None)

    def named(command: typer.models.CommandInfo) -> str | None:
        return command.name or (command.callback and typer.main.get_command_name(command.callback.__name__))

    commands = [c for c in app.registered_commands if named(c) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    narrowed = copy.copy(app)  # the module's app stays whole (tests and library users run it)
    narrowed.registered_commands, narrowed.registered_groups = commands, groups
    return narrowed


def _known_plugin_answer() -> None:
    """With plugins switched off, pydantic's loader answers "none" without looking; importing it still costs
    ~10 ms of every command that builds the blueprint models (`from importlib.metadata import entry_points` at its
    top pulls in email, zipfile, csv). Its only user, pydantic/plugin/_schema_validator.py, imports get_plugins
    from it when the first model is built, which is after this runs (umhctl.api is imported by the commands)."""
    name = "pydantic.plugin._loader"
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS") not in ("__all__", "1", "true") or name in sys.modules:
        return  # plugins may be wanted, or pydantic already looked: its own loader decides
    loader = types.ModuleType(name, "pydantic's plugin loader, as it answers when plugins are disabled")
    loader.get_plugins = lambda: ()  # type: ignore[attr-defined]
    sys.modules[name] = loader


def main() -> None:
    # No third-party pydantic plugins hook into the blueprint models of this command line (pydantic/plugin/
    # _loader.py honours this switch); looking for them reads the metadata of every installed distribution.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    _known_plugin_answer()
    # The cyclic garbage collector's defaults (a young collection every 700 new objects) are made for long-lived
    # programs; a command allocates in bursts and frees nearly everything by reference counting. With them, full
    # collections over every loaded module and schema took 0.37 s of a 500-device render (bench/render_scale.py),
    # 65 ms with this; cycles are still collected, and 50,000 young objects are a few MB at most.
    gc.set_threshold(50_000, 20, 10)
    # paramiko imports invoke, and with it asyncio and unittest.mock (~30 ms), only to run the `Match exec` lines
    # of an OpenSSH client config (paramiko/config.py: `try: import invoke`), which umhctl never reads. Only the
    # command line does without it: a program that imports umhctl as a library keeps its own imports.
    sys.modules.setdefault("invoke", None)  # type: ignore[arg-type]  # None: "import invoke" raises ImportError
    if sys.argv[1:] == ["--version"]:
        # What the eager --version option prints, without typer first building every command's parameters
        # from its signature (bench/cli_startup.py).
        _print_version()
        return
    try:
        # prog_name also under `python -m umhctl`: usage lines and hints name the command people type
        _narrowed(sys.argv[1:])(prog_name="umhctl")
    finally:
        # The interpreter's exit ends with full garbage collections over every object still alive: with pydantic's
        # schemas, paramiko and jinja2 loaded that took ~100 ms, a tenth of a no-op plan of 30 devices
        # (bench/plan_fleet.py). Frozen objects are left out of those collections; at exit they would be freed
        # anyway, atexit handlers still run and stdout/stderr are still flushed.
        gc.freeze()
