"""Text views into a pipe skip rich, and must print exactly what rich would have printed there."""

from __future__ import annotations

import contextlib
import io

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.markup import escape

from umhctl.cli import views
from umhctl.diagnostics import Diagnostic
from umhctl.plan.model import Action, Change, DevicePlan, Plan
from umhctl.results import PlanResult

_text = (
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t"), max_size=40)
    | st.sampled_from(
        ["[bold]x[/bold]", "a\\b", "\\[red]", "[/]", "\r\n", "\x07\x08\x0b\x0c", ":smile:", "é😀", "[link=x]y"]
    )
).filter(lambda text: not text.endswith("\\"))
# rich prints a trailing backslash twice (escape() adds one so that it cannot escape a closing tag); the pipe
# gets the text as it is. Everything else must match exactly.


def _rich(markup_lines: list[str]) -> str:
    out = io.StringIO()
    console = Console(file=out, highlight=False, soft_wrap=True, no_color=True, emoji=False)
    for line in markup_lines:
        console.print(line)
    return out.getvalue()


def _piped(show: object, *args: object) -> str:
    out = io.StringIO()  # not a terminal: the plain path
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        show(*args)  # type: ignore[operator]
    return out.getvalue()


@settings(max_examples=200, deadline=None)
@given(_text, _text, st.sampled_from(["error", "warning"]), st.booleans())
def test_diagnostics_into_a_pipe_read_as_rich_prints_them(message: str, hint: str, severity: str, hinted: bool) -> None:
    d = Diagnostic("f [x].yaml", 3, 4, message, hint=hint if hinted else None, severity=severity)  # type: ignore[arg-type]
    colour = "red" if severity == "error" else "yellow"
    expected = [f"[bold]{escape('f [x].yaml:3:4:')}[/bold] [{colour}]{severity}:[/{colour}] {escape(message)}"]
    if hinted and hint:  # an empty hint is no hint
        expected.append(f"  [cyan]hint:[/cyan] {escape(hint)}")
    assert _piped(views.show_diagnostics, [d]) == _rich(expected)


@settings(max_examples=200, deadline=None)
@given(_text, _text)
def test_errors_and_lines_into_a_pipe_read_as_rich_prints_them(message: str, hint: str) -> None:
    expected = [f"[red]error:[/red] {escape(message)}"] + ([f"  [cyan]hint:[/cyan] {escape(hint)}"] if hint else [])
    assert _piped(views.show_error, message, hint) == _rich(expected)
    assert _piped(views.show_line, message) == _rich([escape(message)])


def test_validate_into_a_pipe_does_not_import_rich() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = (
        "import sys; from umhctl.cli import main\n"
        "sys.argv = ['umhctl', 'validate', '-f', 'blueprints/demo-site.yaml']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "[]", done.stdout
    assert "blueprints/demo-site.yaml: valid" in done.stdout


def test_the_command_line_answers_pydantics_plugin_question_only_when_plugins_are_off() -> None:
    """pydantic's plugin loader imports importlib.metadata (~10 ms); with plugins off its answer is known."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = (
        "import sys; from umhctl.cli import main\n"
        "sys.argv = ['umhctl', 'validate', '-f', 'blueprints/retrofit-site.yaml']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        "from pydantic.plugin._loader import get_plugins\n"
        "print('importlib.metadata' in sys.modules, list(get_plugins()))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    for switch, metadata_read in ((None, False), ("1", False), ("some-plugin", True)):
        run_env = env if switch is None else {**env, "PYDANTIC_DISABLE_PLUGINS": switch}
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=root, env=run_env, capture_output=True, text=True, check=True
        )
        assert "valid (30 devices" in done.stdout, done.stdout
        # Only a named plugin is off: pydantic's own loader looks through the installed distributions.
        assert done.stdout.splitlines()[-1] == f"{metadata_read} []", (switch, done.stdout)


def test_version_prints_the_version_both_ways() -> None:
    import subprocess
    import sys
    from pathlib import Path

    from umhctl import __version__

    root = Path(__file__).resolve().parent.parent
    for argv in (["--version"], ["--debug", "--version"]):  # the short way, and through typer's eager option
        done = subprocess.run([sys.executable, "-m", "umhctl", *argv], cwd=root, capture_output=True, text=True)
        assert (done.returncode, done.stdout, done.stderr) == (0, f"umhctl {__version__}\n", ""), argv


_DIFF_STYLES = (("+++", "bold"), ("---", "bold"), ("+", "green"), ("-", "red"), ("@@", "cyan"))


# What the plan view printed through rich before it printed into a pipe directly: the reference it must match.
def _plan_markup(plan: Plan) -> list[str]:
    from umhctl.cli.planview import _STYLE, summary_line

    lines = []
    for d in plan.devices:
        header = f"[bold]{escape(d.device)}[/bold] [dim]({escape(d.address)})[/dim]"
        if d.error:
            lines.append(f"{header}: [red]error:[/red] {escape(d.error)}")
            continue
        if not d.changes:
            lines.append(f"{header}: no changes")
            continue
        lines.append(header)
        for c in d.changes:
            style = _STYLE[c.action]
            label = escape(c.target) + (" [dim](sensitive)[/dim]" if c.sensitive else "")
            label += " [bold yellow](drift)[/bold yellow]" if c.drift else ""
            kind = "" if c.kind in ("file", "unit") else f"[dim]{c.kind}[/dim] "
            lines.append(f"  [{style}]{c.action.value}[/{style}] {kind}{label}  [dim]{escape(c.reason)}[/dim]")
            for line in (c.diff or "").rstrip("\n").split("\n") if c.diff else []:
                colour = next((s for p, s in _DIFF_STYLES if line.startswith(p)), None)
                lines.append(f"      [{colour}]{escape(line)}[/{colour}]" if colour else f"      {escape(line)}")
        if d.daemon_reload:
            lines.append("  [cyan]↻[/cyan] systemd daemon-reload  [dim]unit files change[/dim]")
        lines += [f"  [yellow]warning:[/yellow] {escape(w)}" for w in d.warnings]
    return [*lines, "", f"[bold]{escape(summary_line(plan))}[/bold]"]


@settings(max_examples=100, deadline=None)
@given(_text, _text, st.sampled_from(list(Action)), st.sampled_from(["file", "link", "unit", "record"]), st.booleans())
def test_a_plan_into_a_pipe_reads_as_rich_printed_it(
    text: str, other: str, action: Action, kind: str, flag: bool
) -> None:
    diff = f"--- a\n+++ b\n@@ -1 +1 @@\n-{text}\n+{other}\n {text}\n"
    change = Change(action, kind, f"/etc/{text}", other, sensitive=flag, drift=not flag, diff=diff if flag else None)
    plan = Plan(
        {"path": "site.yaml"},
        [
            DevicePlan("edge-01", "192.0.2.10", [change, change], daemon_reload=flag, warnings=[text, other]),
            DevicePlan("edge-02", "192.0.2.11", error=other or "unreachable"),
            DevicePlan("edge-03", "192.0.2.12"),
        ],
    )
    assert _piped(views.show_plan, PlanResult(plan)) == _rich(_plan_markup(plan))
