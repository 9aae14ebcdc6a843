"""`umhctl sim up / down / status`: the typer sub-app, mounted by the main app as `umhctl sim`.

Shared flags and the error boundary come from umhctl.cli.options, as for the main commands; the work is done by
umhctl.sim.api.
"""

# No `from __future__ import annotations`: typer reads every command's signature on each start (also for
# --help), and evaluating string annotations again there costs more than the annotations cost at import.

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from umhctl.cli.options import (
    EXIT_CODES_HELP,
    BlueprintOpt,
    CliCommand,
    DeviceOpt,
    Output,
    OutputOpt,
    between,
    boundary,
)

if TYPE_CHECKING:
    from umhctl.sim.api import SimStatusResult, SimUpResult

sim_app = typer.Typer(
    name="sim",
    help="A simulated site: every blueprint device as a real sshd in a root provisioned by the real Ignition.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
)


StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        metavar="DIR",
        help="The simulated site's state dir. Default: the one `sim up` used for the blueprint, else "
        "$UMHCTL_SIM_STATE/<site>, else $XDG_STATE_HOME/umhctl/sim/<site> (~/.local/state/umhctl/sim/<site>).",
        show_default=False,
    ),
]


@sim_app.command(cls=CliCommand)
@boundary
def up(
    file: BlueprintOpt,
    state_dir: StateDirOpt = None,
    base_address: Annotated[
        str | None,
        typer.Option(
            "--base-address",
            metavar="IP",
            help="First device address (127.0.0.0/8 only). Default: derived from the site name.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", metavar="PORT", callback=between(1, 65535), help="SSH port of every device.")
    ] = 22,
    device: DeviceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Build and start one simulated device per blueprint device (running ones are left alone); with --device,
    only those (a part of a large site).

    \b
    Example:
      umhctl sim up -f blueprints/demo-site.yaml
    """
    from umhctl.cli import views
    from umhctl.errors import UmhctlError
    from umhctl.sim.api import sim_up

    progress = views.console(stderr=True)

    def say(device: str, what: str) -> None:
        progress.print(f"{device}: {what}", markup=False, highlight=False)

    result = sim_up(file, state_dir=state_dir, base_address=base_address, port=port, devices=device, progress=say)
    if output is Output.json:
        views.show_json(result)
    else:
        _show_up(result)
    if not result.ok:
        raise UmhctlError(
            f"{views.count(len(result.failed), 'device')} failed to start: "
            f"{', '.join(r.device for r in result.failed)}",
            hint=f"see {result.site.state_dir}/devices/<device>/sshd.log",
        )


@sim_app.command(cls=CliCommand)
@boundary
def down(file: BlueprintOpt, state_dir: StateDirOpt = None, output: OutputOpt = Output.text) -> None:
    """Stop and remove every device of the simulated site (no process, no mount is left).

    \b
    Example:
      umhctl sim down -f blueprints/demo-site.yaml
    """
    from umhctl.cli import views
    from umhctl.sim.api import sim_down

    result = sim_down(file, state_dir=state_dir)
    if output is Output.json:
        views.show_json(result)
    else:
        views.show_line(f"removed {views.count(len(result.removed), 'simulated device')} ({result.state_dir})")


@sim_app.command(cls=CliCommand)
@boundary
def status(
    file: BlueprintOpt,
    state_dir: StateDirOpt = None,
    login: Annotated[bool, typer.Option("--login/--no-login", help="Also log in over SSH (strict host keys).")] = True,
    output: OutputOpt = Output.text,
) -> None:
    """List the simulated devices, their addresses and whether their sshd answers.

    \b
    Example:
      umhctl sim status -f blueprints/demo-site.yaml
    """
    from umhctl.cli import views
    from umhctl.sim.api import sim_status

    result = sim_status(file, state_dir=state_dir, login=login)
    if output is Output.json:
        views.show_json(result)
    else:
        _show_status(result)
    raise typer.Exit(0 if result.ok else 1)


# -- views ------------------------------------------------------------------------------------------------------


def _address(address: str, port: int) -> str:
    return address if port == 22 else f"{address}:{port}"


def _show_up(result: "SimUpResult") -> None:
    from rich.markup import escape
    from rich.table import Table

    from umhctl.cli.views import console as _console

    site, results = result.site, result.devices

    table = Table(title=f"simulated site {site.site}", title_justify="left")
    for column in ("device", "address", "status"):
        table.add_column(column)
    for r in results:
        state = r.status if r.action in ("started", "failed") else f"{r.status} ({r.action})"
        colour = {"running": "green", "failed": "red"}.get(r.status, "yellow")
        table.add_row(escape(r.device), _address(r.address, r.port), f"[{colour}]{escape(state)}[/{colour}]")
    console = _console()
    console.print(table)
    for r in results:
        if r.message:
            console.print(f"[red]{escape(r.device)}:[/red] {escape(r.message)}")
    first = next((r for r in results if r.status == "running"), None)
    if first is not None:
        port = "" if first.port == 22 else f" -p {first.port}"
        console.print(
            escape(
                f"ssh -o StrictHostKeyChecking=yes -o UserKnownHostsFile={site.known_hosts} -i {site.identity}"
                f"{port} {site.user}@{first.address}"
            )
        )


def _show_status(result: "SimStatusResult") -> None:
    from rich.markup import escape
    from rich.table import Table

    from umhctl.cli.views import console as _console

    site, states = result.site, result.devices

    table = Table(title=f"simulated site {site.site} ({site.state_dir})", title_justify="left")
    for column in ("device", "address", "sshd", "login"):
        table.add_column(column)
    for s in states:
        sshd = "[green]answers[/green]" if s.answers else ("[red]silent[/red]" if s.running else "[red]stopped[/red]")
        login = {True: f"[green]ok[/green] ({escape(s.hostname or '')})", False: "[red]refused[/red]", None: "-"}[
            s.login
        ]
        table.add_row(escape(s.device), _address(s.address, s.port), sshd, login)
    console = _console()
    console.print(table)
    for s in states:
        if s.message and not s.answers:
            console.print(f"[red]{escape(s.device)}:[/red] {escape(s.message)}")
    console.print(f"{sum(s.answers for s in states)}/{len(states)} devices answer")
