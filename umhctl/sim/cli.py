"""`umhctl sim up / down / status`: the typer sub-app, mounted by umhctl/cli.py as `umhctl sim`.

Shared flags and the error boundary come from umhctl.options, as for the main commands.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from umhctl.options import BlueprintOpt, Output, OutputOpt, boundary, count

if TYPE_CHECKING:
    from umhctl.sim.site import DeviceResult, DeviceStatus
    from umhctl.sim.state import SimSite

sim_app = typer.Typer(
    name="sim",
    help="A simulated site: every blueprint device as a real sshd in a root provisioned by the real Ignition.",
    no_args_is_help=True,
)


StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="The simulated site's state dir. Default: $UMHCTL_SIM_STATE/<site>, else "
        "$XDG_STATE_HOME/umhctl/sim/<site> (~/.local/state/umhctl/sim/<site>).",
        show_default=False,
    ),
]


def _state_dir(file: Path, state_dir: Path | None) -> Path:
    if state_dir is not None:
        return state_dir.absolute()
    from umhctl.sim.state import resolve_state_dir

    return resolve_state_dir(file)


@sim_app.command()
@boundary
def up(
    file: BlueprintOpt,
    state_dir: StateDirOpt = None,
    base_address: Annotated[
        str | None,
        typer.Option(
            "--base-address",
            help="First device address (127.0.0.0/8 only). Default: derived from the site name.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="SSH port of every device.", min=1, max=65535)] = 22,
    output: OutputOpt = Output.text,
) -> None:
    """Build and start one simulated device per blueprint device (running ones are left alone)."""
    from umhctl.errors import UmhctlError
    from umhctl.sim import site as sim_site

    site, results = sim_site.up(file, state_dir=state_dir, base_address=base_address, port=port)
    failed = [r for r in results if r.status == "failed"]
    if output is Output.json:
        _print_json({"command": "sim up", **_site_data(site), "devices": [_result_data(r) for r in results]})
    else:
        _show_results(site, results)
    if failed:
        raise UmhctlError(
            f"{count(len(failed), 'device')} failed to start: {', '.join(r.device for r in failed)}",
            hint=f"see {site.state_dir}/devices/<device>/sshd.log",
        )


@sim_app.command()
@boundary
def down(file: BlueprintOpt, state_dir: StateDirOpt = None, output: OutputOpt = Output.text) -> None:
    """Stop and remove every device of the simulated site (no process, no mount is left)."""
    from umhctl.sim import site as sim_site

    directory = _state_dir(file, state_dir)
    stopped = sim_site.down(directory)
    if output is Output.json:
        _print_json({"command": "sim down", "state_dir": str(directory), "removed": stopped})
    else:
        _line(f"removed {count(len(stopped), 'simulated device')} ({directory})")


@sim_app.command()
@boundary
def status(
    file: BlueprintOpt,
    state_dir: StateDirOpt = None,
    login: Annotated[bool, typer.Option("--login/--no-login", help="Also log in over SSH (strict host keys).")] = True,
    output: OutputOpt = Output.text,
) -> None:
    """List the simulated devices, their addresses and whether their sshd answers."""
    from umhctl.sim import site as sim_site
    from umhctl.sim.state import SimSite

    site = SimSite.load(_state_dir(file, state_dir))
    states = sim_site.status(site, login=login)
    if output is Output.json:
        _print_json({"command": "sim status", **_site_data(site), "devices": [_status_data(s) for s in states]})
    else:
        _show_status(site, states)
    answering = sum(s.answers for s in states)
    raise typer.Exit(0 if answering == len(states) else 1)


# -- views ------------------------------------------------------------------------------------------------------


def _console() -> Any:
    from rich.console import Console

    plain = not sys.stdout.isatty() or "NO_COLOR" in os.environ
    return Console(highlight=False, soft_wrap=True, no_color=plain, emoji=False)


def _line(text: str) -> None:
    from rich.markup import escape

    _console().print(escape(text))


def _print_json(document: dict[str, Any]) -> None:
    from umhctl import views

    views.print_json(document)


def _site_data(site: SimSite) -> dict[str, Any]:
    return {
        "site": site.site,
        "state_dir": str(site.state_dir),
        "user": site.user,
        "known_hosts": str(site.known_hosts),
        "identity": str(site.identity),
    }


def _result_data(r: DeviceResult) -> dict[str, Any]:
    return dataclasses.asdict(r)


def _status_data(s: DeviceStatus) -> dict[str, Any]:
    return {**dataclasses.asdict(s), "answers": s.answers}


def _address(address: str, port: int) -> str:
    return address if port == 22 else f"{address}:{port}"


def _show_results(site: SimSite, results: list[DeviceResult]) -> None:
    from rich.markup import escape
    from rich.table import Table

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


def _show_status(site: SimSite, states: list[DeviceStatus]) -> None:
    from rich.markup import escape
    from rich.table import Table

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
