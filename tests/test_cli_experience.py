"""The command line as an operator and a CI job meet it: exit codes, every problem at once, JSON on every path,
hints that work pasted, help that reads well in 80 columns. Through typer's runner or a subprocess only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umhctl.cli import app

from .conftest import BLUEPRINTS, ROOT, git

runner = CliRunner()
DEMO = BLUEPRINTS / "demo-site.yaml"
HELP = ROOT / "tests" / "golden" / "help"
COMMANDS = [
    ["validate"],
    ["schema"],
    ["render"],
    ["plan"],
    ["apply"],
    ["lock"],
    ["fetch"],
    ["reset", "device"],
    ["sim", "up"],
    ["sim", "down"],
    ["sim", "status"],
    ["init"],
    ["diff"],
    ["history"],
    ["status"],
    ["secrets", "init"],
    ["secrets", "add-recipient"],
    ["secrets", "remove-recipient"],
    ["secrets", "rotate"],
    ["secrets", "list"],
]


def umhctl(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a shell runs it (no terminal: output is piped)."""
    return subprocess.run(
        [sys.executable, "-m", "umhctl", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {}), "COLUMNS": "80", "PYTHONPATH": str(ROOT)},
        timeout=60,
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    repo = tmp_path / "site"
    shutil.copytree(BLUEPRINTS, repo)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "site")
    return repo / "demo-site.yaml"


# -- 1. exit codes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_mistyped_option_exits_1_never_the_changes_pending_code(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--devcie", "edge-01"])
    assert result.exit_code == 1, result.output
    assert "No such option: --devcie" in result.output


def test_the_ci_typo_from_the_issue_and_its_json_document() -> None:
    done = umhctl("plan", "--sim", "--detailed-exitcode", "--devcie", "edge-01", "-f", str(DEMO))
    assert done.returncode == 1
    done = umhctl("plan", "--devcie", "edge-01", "-o", "json")
    document = json.loads(done.stdout)
    assert done.returncode == 1 and document["command"] == "plan" and document["format_version"] == "1"
    assert "--devcie" in document["error"]["message"] and document["error"]["hint"] == "see: umhctl plan --help"


def test_an_out_of_range_number_is_said_in_words() -> None:
    result = runner.invoke(app, ["plan", "-f", str(DEMO), "--parallel", "0"])
    assert result.exit_code == 1 and "it must be from 1 to 64" in result.output and "<=" not in result.output


# -- 2. every problem at once ----------------------------------------------------------------------------------------


def test_a_field_typo_does_not_hide_an_unknown_master_or_secret(site: Path) -> None:
    text = site.read_text()
    text = text.replace("master: master-line1, port: 1,", "master: master-line1, porrt: 1,", 1)
    text = text.replace("master: master-line2, port: 2,", "master: master-line9, port: 2,", 1)
    text = text.replace("passwordSecret: db-nodered", "passwordSecret: db-nodred")
    site.write_text(text)
    result = runner.invoke(app, ["validate", "-f", str(site), "-o", "json"])
    messages = [d["message"] for d in json.loads(result.stdout)["diagnostics"]]
    assert result.exit_code == 1
    assert "unknown field 'porrt'" in messages
    assert "unknown IO-Link master 'master-line9'" in messages
    assert "unknown secret 'db-nodred'" in messages


def test_a_broken_device_is_not_reported_again_as_an_unknown_one(site: Path) -> None:
    site.write_text(
        site.read_text().replace("  - name: edge-01\n    role: edge", "  - name: edge-01\n    rolle: edge", 1)
    )
    result = runner.invoke(app, ["validate", "-f", str(site), "-o", "json"])
    messages = [d["message"] for d in json.loads(result.stdout)["diagnostics"]]
    assert "unknown field 'rolle'" in messages
    assert not any("unknown device 'edge-01'" in m for m in messages), messages


def test_a_problem_after_a_dropped_item_is_reported_at_its_own_line(site: Path) -> None:
    # The first sensor is broken and left out of the cross-reference checks; a problem in the last one must
    # still point at the last one's line (indices of the shortened list mapped back exactly once).
    text = site.read_text()
    text = text.replace("master: master-line1, port: 1,", "master: master-line1, porrt: 1,", 1)
    text = text.replace("master: master-line2, port: 5,", "master: master-line7, port: 5,", 1)
    site.write_text(text)
    result = runner.invoke(app, ["validate", "-f", str(site), "-o", "json"])
    found = {d["message"]: d for d in json.loads(result.stdout)["diagnostics"]}
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "master-line7" in row)
    assert result.exit_code == 1
    assert found["unknown IO-Link master 'master-line7'"]["line"] == line
    assert found["unknown IO-Link master 'master-line7'"]["path"] == "sensors[5].master"


def test_missing_environment_secrets_are_reported_together(site: Path, tmp_path: Path) -> None:
    text = site.read_text().replace(
        "  db-nodered:\n    generate: {type: password}", "  db-nodered:\n    env: NODERED_PW"
    )
    text = text.replace("  grafana-admin:\n    generate: {type: password}", "  grafana-admin:\n    env: GRAFANA_PW")
    site.write_text(text)
    env = {k: v for k, v in os.environ.items() if k not in ("NODERED_PW", "GRAFANA_PW")}
    done = subprocess.run(
        [sys.executable, "-m", "umhctl", "render", "-f", str(site), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env={**env, "UMHCTL_SECRETS_DIR": str(tmp_path / "secrets"), "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 1
    assert "GRAFANA_PW (secret 'grafana-admin')" in done.stderr and "NODERED_PW (secret 'db-nodered')" in done.stderr


# -- 3. JSON on every path ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "-f", "nope.yaml"],
        ["render", "-f", "nope.yaml", "--out", "x"],
        ["plan", "-f", "nope.yaml"],
        ["apply", "-f", "nope.yaml", "--yes"],
        ["lock", "-f", "nope.yaml"],
        ["fetch", "-f", "nope.yaml"],
        ["reset", "device", "edge-01", "-f", "nope.yaml", "--yes"],
        ["sim", "status", "-f", "nope.yaml"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_every_command_prints_a_json_document_on_failure(args: list[str], tmp_path: Path) -> None:
    done = umhctl(*args, "-o", "json", cwd=tmp_path)
    document = json.loads(done.stdout)
    assert done.returncode == 1
    assert document["format_version"] == "1" and document["command"] == " ".join(
        a for a in args[:2] if not a.startswith("-")
    )
    assert document["error"]["message"] == "nope.yaml: no such file" and document["error"]["location"] == "nope.yaml"


def test_an_invalid_blueprint_in_json_carries_its_diagnostics(tmp_path: Path) -> None:
    broken = tmp_path / "site.yaml"
    broken.write_text(DEMO.read_text().replace("role: hub", "role: hubb"))
    result = runner.invoke(app, ["plan", "-f", str(broken), "-o", "json"])
    document = json.loads(result.stdout)
    assert result.exit_code == 1 and document["error"]["message"].startswith("blueprint is invalid")
    assert any("hubb" in d["message"] for d in document["diagnostics"])


# -- 4. render --redact without secrets ----------------------------------------------------------------------------


def test_render_redact_needs_no_secret_at_all(site: Path, tmp_path: Path) -> None:
    site.write_text(
        site.read_text().replace("  db-nodered:\n    generate: {type: password}", "  db-nodered:\n    env: NODERED_PW")
    )
    store = tmp_path / "no-store"
    done = subprocess.run(
        [sys.executable, "-m", "umhctl", "render", "-f", str(site), "--out", str(tmp_path / "out"), "--redact"],
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if k != "NODERED_PW"},
            "UMHCTL_SECRETS_DIR": str(store),
            "PYTHONPATH": str(ROOT),
        },
    )
    assert done.returncode == 0, done.stderr
    assert not store.exists(), "nothing was generated or read"
    secrets = (tmp_path / "out/hub-01/rootfs/var/lib/rancher/k3s/server/manifests/umhctl-secrets.yaml").read_text()
    assert "redacted" in secrets


# -- 6. hints that work pasted --------------------------------------------------------------------------------------


def test_a_missing_blueprint_hints_at_the_ones_that_exist(tmp_path: Path) -> None:
    shutil.copytree(BLUEPRINTS, tmp_path / "blueprints")
    done = umhctl("plan", "--sim", "-f", "nope.yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert "umhctl plan --sim -f blueprints/demo-site.yaml" in done.stderr


def test_retry_failed_with_a_missing_blueprint_is_an_error(tmp_path: Path) -> None:
    done = umhctl("apply", "--retry-failed", "-f", "nope.yaml", "--yes", cwd=tmp_path)
    assert done.returncode == 1 and "no such file" in done.stderr and "nothing to retry" not in done.stdout


# -- 7. what makes a blueprint dirty --------------------------------------------------------------------------------


def test_only_files_the_render_reads_make_the_blueprint_dirty(site: Path) -> None:
    (site.parent / "notes.txt").write_text("an unrelated note\n")
    dashboard = site.parent / "dashboards" / "line-overview.json"
    dashboard.write_text(dashboard.read_text().replace('"title"', '"title" ', 1))
    result = runner.invoke(app, ["apply", "-f", str(site), "--yes"])
    assert result.exit_code == 1
    assert "uncommitted changes in dashboards/line-overview.json:" in result.output
    assert "notes.txt" not in result.output


def test_outside_git_says_so_plainly(tmp_path: Path) -> None:
    shutil.copytree(BLUEPRINTS, tmp_path / "plain")
    result = runner.invoke(app, ["apply", "-f", str(tmp_path / "plain" / "demo-site.yaml"), "--yes"])
    assert result.exit_code == 1 and "is not in a git repository" in result.output


# -- 8. values a device would misapply -------------------------------------------------------------------------------


def test_an_unknown_time_zone_is_refused_with_a_guess(tmp_path: Path) -> None:
    for zone, guess in (("Mars/Olympus", "example: Europe/Berlin"), ("Europe/Berln", "did you mean 'Europe/Berlin'?")):
        shutil.copytree(BLUEPRINTS, tmp_path / zone.replace("/", "-"))
        blueprint = tmp_path / zone.replace("/", "-") / "demo-site.yaml"
        blueprint.write_text(blueprint.read_text().replace("timezone: Europe/Berlin", f"timezone: {zone}"))
        result = runner.invoke(app, ["validate", "-f", str(blueprint)])
        assert result.exit_code == 1 and f"unknown time zone '{zone}'" in result.output and guess in result.output


# -- 9. --debug anywhere, completion -----------------------------------------------------------------------------------


def test_debug_is_accepted_after_the_command(tmp_path: Path) -> None:
    done = umhctl("validate", "-f", "nope.yaml", "--debug", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" in done.stderr and "BlueprintMissing" in done.stderr


def test_shell_completion_offers_the_blueprints_device_names() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "umhctl"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "_UMHCTL_COMPLETE": "complete_bash",
            "COMP_WORDS": f"umhctl reset device -f {DEMO} e",
            "COMP_CWORD": "5",
        },
    )
    assert done.stdout.split() == ["edge-01", "edge-02"]
    for shell in ("bash", "zsh", "fish"):
        shown = umhctl("--show-completion", shell)
        assert shown.returncode == 0 and "umhctl" in shown.stdout, shell


# -- 10. help -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], *COMMANDS], ids=lambda c: " ".join(c) or "umhctl")
def test_help_reads_well_in_80_columns(command: list[str], request: pytest.FixtureRequest) -> None:
    text = umhctl(*command, "--help").stdout
    golden = HELP / f"{'-'.join(command) or 'umhctl'}.txt"
    if request.config.getoption("--update-golden"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert not re.search(r"<(bool|str|int|float|path|file|list\[str\]|[a-z]+ range)>|\{name\}|x>=|<=x", text), text
    if command and command != ["reset"]:
        assert "Example" in text, "every command shows an example"
    assert text == golden.read_text(), f"{golden.name} changed: rerun with --update-golden and review"


def test_a_run_builds_only_the_command_it_names() -> None:
    """typer reads every command's signature before running one: a run names one, and only that one is built.
    The help goldens above go through it (python -m umhctl); without a known name, the whole app."""
    from umhctl.cli import _narrowed

    whole = (list(app.registered_commands), list(app.registered_groups))
    plan = _narrowed(["--debug", "plan", "-f", "site.yaml"])
    assert [c.callback.__name__ for c in plan.registered_commands if c.callback] == ["plan"]
    assert plan.registered_groups == []
    reset = _narrowed(["reset", "device", "edge-01"])
    assert reset.registered_commands == [] and [g.name for g in reset.registered_groups] == ["reset"]
    for argv in ([], ["--help"], ["plna"], ["device"]):
        assert _narrowed(argv) is app, argv
    assert (app.registered_commands, app.registered_groups) == whole, "the module's app stays whole"
    done = umhctl("plna", "-f", "x.yaml")
    assert done.returncode == 1 and "Did you mean 'plan'?" in done.stderr


def test_help_states_the_exit_codes() -> None:
    text = " ".join(umhctl("--help").stdout.split())
    assert "1 error, a mistyped command line included" in text and "2 changes pending" in text


# -- 11. output off a terminal ---------------------------------------------------------------------------------------


def test_no_ansi_codes_when_output_is_not_a_terminal(tmp_path: Path) -> None:
    for args in (
        ["validate", "-f", str(DEMO)],
        ["validate", "-f", "nope.yaml"],
        ["render", "-f", str(DEMO), "--out", str(tmp_path / "o"), "--redact"],
    ):
        done = umhctl(*args, env={"FORCE_COLOR": "", "TERM": "xterm-256color"})
        assert "\x1b[" not in done.stdout + done.stderr, args


# -- 14. YAML errors in plain words, where they are ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        (
            "  timezone: Europe/Berlin\n",
            "  timezone Europe/Berlin\n",
            "timezone",
            "'timezone Europe/Berlin' has no ':' after its key",
        ),
        (
            "  description: Demo plant",
            "  description: Demo: plant",
            "description",
            "a ': ' inside the value of 'description'",
        ),
        (
            "  timezone: Europe/Berlin\n",
            "  timezone: Europe/Berlin\n bad: indent\n",
            "bad: indent",
            "lines up with no section",
        ),
    ],
    ids=["missing colon", "colon in a value", "odd indentation"],
)
def test_yaml_errors_are_said_in_plain_words_at_their_line(
    tmp_path: Path, old: str, new: str, line: str, words: str
) -> None:
    blueprint = tmp_path / "site.yaml"
    blueprint.write_text(DEMO.read_text().replace(old, new, 1))
    expected_line = next(i for i, text in enumerate(blueprint.read_text().splitlines(), 1) if line in text)
    result = runner.invoke(app, ["validate", "-f", str(blueprint)])
    assert result.exit_code == 1
    assert f"site.yaml:{expected_line}:" in result.output and words in result.output
    assert "<block" not in result.output


def test_a_template_error_names_the_variable_as_written(site: Path) -> None:
    template = site.parent / "files" / "journald-retention.conf.j2"
    template.write_text(template.read_text().replace("vars.max_use", "vars.servers"))
    result = runner.invoke(app, ["validate", "-f", str(site)])
    assert result.exit_code == 1
    assert "undefined variable 'vars.servers'" in result.output and "'dict object'" not in result.output


# -- 15. did you mean -------------------------------------------------------------------------------------------------


def test_did_you_mean_lists_every_equally_close_name(site: Path) -> None:
    text = site.read_text().replace("master: master-line1, port: 3,", "master: master-line3, port: 3,", 1)
    site.write_text(text)
    result = runner.invoke(app, ["validate", "-f", str(site)])
    assert "did you mean 'master-line1' or 'master-line2'?" in result.output
