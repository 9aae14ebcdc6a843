"""The broken-blueprint corpus: every file under tests/blueprint/broken/ has exactly one problem.

Each case states what `umhctl validate` must report on its first line,

    # expect: LINE:COL <message fragment>
    # expect: FILE:LINE:COL <message fragment>

or, when the file cannot carry that line (an empty file, a tab on line 1), in `<name>.yaml.expect` next to it.
LINE:COL is 1-based and counts the expect line itself. FILE, relative to the case, names another file the problem
is reported in (a dashboard whose query the blueprint's sensors do not answer). The check: exit code 1, a diagnostic
`<path>:<LINE>:<COL>: error: ...` whose message or hint contains the fragment, and no traceback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umhctl.cli import app

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "blueprint" / "broken"
CASES = sorted(CORPUS.glob("*.yaml"))  # top level only: dashboards/ and files/ hold what the cases point at

_EXPECT = re.compile(r"#\s*expect:\s*(?:(\S+?):)?(\d+):(\d+)\s+(\S.*?)\s*$")

# In this typer/click version CliRunner keeps stdout and stderr apart (result.stdout, result.stderr) and
# result.output is both interleaved, as a terminal would show them. Diagnostics go to stdout, other errors
# (no such file, internal error) to stderr: the checks below read result.output so that nothing is missed.
runner = CliRunner()


@dataclass(frozen=True)
class Expectation:
    line: int
    column: int
    fragment: str
    file: str | None = None  # relative to the case; None: the case itself

    def path(self, case: str) -> str:
        return case if self.file is None else os.path.normpath(os.path.join(os.path.dirname(case), self.file))


def expectation(case: Path) -> Expectation:
    side = case.with_name(case.name + ".expect")
    raw = side.read_bytes() if side.exists() else case.read_bytes()
    # Only the first line is decoded: a case may hold bytes that are not UTF-8 further down, on purpose.
    first = raw.split(b"\n", 1)[0].decode("utf-8")
    match = _EXPECT.fullmatch(first)
    assert match, f"{case.name}: first line must be '# expect: LINE:COL fragment', got {first!r}"
    return Expectation(int(match[2]), int(match[3]), match[4], match[1])


def diagnostics_at(output: str, path: str, line: int, column: int) -> list[str]:
    """The diagnostics (message line plus its hint lines) that the text report places at LINE:COL."""
    blocks = re.split(r"\n(?=\S)", output)
    return [b for b in blocks if b.startswith(f"{path}:{line}:{column}: error:")]


def assert_reported(output: str, exit_code: int, path: str, expected: Expectation) -> None:
    assert "Traceback" not in output, output
    assert exit_code == 1, f"exit code {exit_code}, expected 1:\n{output}"
    where = f"{path}:{expected.line}:{expected.column}: error:"
    here = diagnostics_at(output, path, expected.line, expected.column)
    assert here, f"no error at {expected.line}:{expected.column}; the validator said:\n{output}"
    assert where in output
    assert any(expected.fragment in b for b in here), (
        f"no error at {expected.line}:{expected.column} mentions {expected.fragment!r}; the validator said:\n{output}"
    )


def test_corpus_is_complete() -> None:
    assert len(CASES) >= 45
    for case in CASES:
        expectation(case)  # every case has a readable expectation
        assert re.fullmatch(r"\d{2,3}-[a-z0-9-]+\.yaml", case.name), case.name
    orphans = [p.name for p in CORPUS.glob("*.expect") if not p.with_suffix("").exists()]
    assert not orphans, f".expect files without a case: {orphans}"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_broken_blueprint_is_reported(case: Path) -> None:
    expected = expectation(case)
    path = str(case)
    result = runner.invoke(app, ["validate", "-f", path])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert_reported(result.output, result.exit_code, expected.path(path), expected)


def case_named(short_name: str) -> Path:
    """The case file `NN-<short_name>.yaml`, whatever its number."""
    (case,) = [p for p in CASES if p.name.split("-", 1)[1] == f"{short_name}.yaml"]
    return case


# A YAML-level problem, a shape (pydantic) problem and a cross-reference problem, through a real process.
SUBPROCESS_CASES = ["yaml-tab-indentation", "k3s-latest", "unknown-secret-reference"]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_broken_blueprint_in_a_real_process(name: str) -> None:
    case = case_named(name)
    expected = expectation(case)
    path = str(case)
    proc = subprocess.run(
        [sys.executable, "-m", "umhctl", "validate", "-f", path],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"},
        timeout=60,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "\x1b[" not in proc.stdout
    assert_reported(proc.stdout + proc.stderr, proc.returncode, path, expected)


def test_json_report_of_a_broken_blueprint() -> None:
    case = case_named("unknown-secret-reference")
    expected = expectation(case)
    path = str(case)
    result = runner.invoke(app, ["validate", "-f", path, "-o", "json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert report["file"] == path
    for d in report["diagnostics"]:
        assert {"file", "line", "column", "message"} <= d.keys()
    matching = [
        d
        for d in report["diagnostics"]
        if d["file"] == path
        and d["line"] == expected.line
        and d["column"] == expected.column
        and d["severity"] == "error"
        and expected.fragment in f"{d['message']}\n{d.get('hint') or ''}"
    ]
    assert matching, report["diagnostics"]


# Cases git cannot hold (a FIFO, a device file) or should not (28 MB): built in a scratch copy of the corpus, each
# from a valid blueprint with one change. Before these checks, the FIFOs made validate block for ever.
def _valid_base() -> str:
    text = case_named("file-path-dotdot").read_text().split("\n", 2)[2]  # without its expect and comment lines
    return text.replace("  - path: /etc/../root/x\n", "  - path: /etc/chrony.conf\n")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _device(path: Path) -> None:
    try:
        os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero's numbers: a read never ends
    except PermissionError:
        pytest.skip("creating a device node needs root")


def _include_fifo(corpus: Path) -> None:
    _fifo(corpus / "files" / "fifo.j2")
    (corpus / "files" / "pull.j2").write_text('{% include "fifo.j2" %}\n')


GENERATED = {
    # name: (what to create, old, new, the line holding the problem, column, fragment)
    "dashboard-fifo": (
        lambda d: _fifo(d / "dashboards" / "fifo.json"),
        "file: dashboards/line-overview.json", "file: dashboards/fifo.json", "dashboards/fifo.json", 11,
        "dashboard file 'dashboards/fifo.json' is a FIFO (named pipe), not a regular file",
    ),
    "dashboard-device-file": (
        lambda d: _device(d / "dashboards" / "zero.json"),
        "file: dashboards/line-overview.json", "file: dashboards/zero.json", "dashboards/zero.json", 11,
        "is a character device, not a regular file",
    ),
    "template-fifo": (
        lambda d: _fifo(d / "files" / "fifo.j2"),
        "template: files/chrony.conf.j2", "template: files/fifo.j2", "files/fifo.j2", 15,
        "template 'files/fifo.j2' is a FIFO (named pipe), not a regular file",
    ),
    "include-fifo": (
        _include_fifo,
        "template: files/chrony.conf.j2", "template: files/pull.j2", "files/pull.j2", 15,
        "line 1: 'fifo.j2' is a FIFO (named pipe), not a regular file",
    ),
    "blueprint-28-mb": (
        lambda d: None, "description: Demo plant", "description: Demo plant\n# " + "x" * (28 * 1024 * 1024), "", 1,
        "document too large: 28.0 MB, the limit is 1.0 MB",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", GENERATED)
def test_generated_hostile_case_is_reported(name: str, tmp_path: Path) -> None:
    create, old, new, needle, column, fragment = GENERATED[name]
    corpus = tmp_path / "broken"
    shutil.copytree(CORPUS, corpus, symlinks=True, ignore=shutil.ignore_patterns("*.yaml", "*.expect"))
    create(corpus)
    text = _valid_base().replace(old, new)
    case = corpus / f"900-{name}.yaml"
    case.write_text(text)
    line = next((i for i, row in enumerate(text.split("\n"), 1) if needle and needle in row), 1)

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError(f"validate of {name} hung")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    try:
        started = time.monotonic()
        result = runner.invoke(app, ["validate", "-f", str(case)])
        assert time.monotonic() - started < 20
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert_reported(result.output, result.exit_code, str(case), Expectation(line, column, fragment))
