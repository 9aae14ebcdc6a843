"""Files a hostile blueprint pulls in: confined to its repository (symlinks included), read with bounds, rendered
within a budget. Each case ends in a clean, positioned error, fast, never in a hang, a crash or a leak."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from umhctl.blueprint.loader import LoadedBlueprint, validate_file
from umhctl.blueprint.model import SiteBlueprint
from umhctl.blueprint.repofiles import RepoFiles
from umhctl.blueprint.yamlsource import parse_yaml
from umhctl.errors import UmhctlError
from umhctl.render import render_site
from umhctl.secrets import SecretStore

from .conftest import BLUEPRINTS, git

TEMPLATE = "template: files/journald-retention.conf.j2"
DASHBOARD = "file: dashboards/line-overview.json"
# What a template or dashboard must never reach: a file outside the repository, with a recognisable line.
OUTSIDE_LINE = "outside-the-repository-0451"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The example blueprints in a git repository of their own, and a file outside it."""
    site = tmp_path / "site"
    shutil.copytree(BLUEPRINTS, site)
    git(site, "init", "-q")
    (tmp_path / "outside.txt").write_text(OUTSIDE_LINE + "\n")
    return site


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A hang (a FIFO opened for reading, a runaway template) fails the test instead of blocking the suite."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError("validate hung")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _blueprint(repo: Path, old: str, new: str) -> Path:
    path = repo / "demo-site.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path


def _errors(path: Path) -> list[str]:
    _, _, diagnostics = validate_file(path)
    return [f"{d.line}:{d.column} {d.message}" for d in diagnostics if d.severity == "error"]


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


# -- confinement: one resolver, symlinks resolved before the check ----------------------------------------------


@pytest.mark.parametrize(
    "tag", ['{% include "leak.j2" %}', '{% import "leak.j2" as leak %}', '{% extends "leak.j2" %}']
)
def test_template_cannot_pull_in_a_file_outside_the_repository(repo: Path, tag: str) -> None:
    (repo / "files" / "leak.j2").symlink_to(repo.parent / "outside.txt")
    (repo / "files" / "pull.j2").write_text(f"first line\n{tag}\n")
    path = _blueprint(repo, TEMPLATE, "template: files/pull.j2")
    (error,) = _errors(path)
    assert error.startswith(f"{_line_of(path, 'files/pull.j2')}:15 files/pull.j2: line 2: 'leak.j2' is outside")
    # render (a library caller that skipped validate) refuses it too: nothing of the file gets anywhere
    with pytest.raises(UmhctlError, match="outside the blueprint's repository"):
        render_site(load_blueprint_unchecked(path), None, redact=True)  # type: ignore[arg-type]


def load_blueprint_unchecked(path: Path) -> LoadedBlueprint:
    """The blueprint at `path` as a model, without the cross-checks that would refuse it."""
    doc = parse_yaml(path.read_text(), str(path))
    return LoadedBlueprint(SiteBlueprint.model_validate(doc.data), path.resolve(), doc.source, [])


def test_dashboard_through_a_symlinked_directory_is_outside(repo: Path) -> None:
    outside = repo.parent / "dashboards"
    shutil.copytree(repo / "dashboards", outside)
    shutil.rmtree(repo / "dashboards")
    (repo / "dashboards").symlink_to(outside)
    path = repo / "demo-site.yaml"
    (error,) = _errors(path)
    assert error == (
        f"{_line_of(path, DASHBOARD)}:11 dashboard file 'dashboards/line-overview.json' is outside the blueprint's "
        "repository (through a symlink)"
    )


@pytest.mark.parametrize("reference", ["../outside.txt", "secret-link"])
def test_secret_file_outside_the_repository_is_refused(repo: Path, reference: str) -> None:
    (repo / "secret-link").symlink_to(repo.parent / "outside.txt")
    path = _blueprint(
        repo, "  grafana-admin:\n    generate: {type: password}", f"  grafana-admin:\n    file: {reference}"
    )
    (error,) = _errors(path)
    assert (
        error
        == f"{_line_of(path, 'file: ' + reference)}:11 secret file '{reference}' is outside the blueprint's repository"
    )
    store = SecretStore.for_blueprint(load_blueprint_unchecked(path).blueprint, repo, repo.parent / "store")
    with pytest.raises(UmhctlError, match="outside the blueprint's repository"):
        store.value("grafana-admin")


def test_one_resolver_for_every_file_a_blueprint_pulls_in(tmp_path: Path) -> None:
    """Without git, the blueprint's directory is the repository; a symlink inside it to inside it is fine."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "real.json").write_text("{}")
    (tmp_path / "a" / "link.json").symlink_to(tmp_path / "a" / "real.json")
    (tmp_path / "a" / "out.json").symlink_to(tmp_path / "x.json")
    files = RepoFiles(tmp_path / "a")
    assert files.resolve("link.json") == (tmp_path / "a" / "real.json").resolve()
    assert files.resolve("out.json") is None and files.resolve("../x.json") is None and files.resolve("/etc") is None


# -- special files: refused, never opened for a blocking read ---------------------------------------------------


def _fifo(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("what", "setup", "fragment"),
    [
        ("dashboard", lambda repo: _fifo(repo / "dashboards" / "line-overview.json"), "is a FIFO (named pipe)"),
        ("template", lambda repo: _fifo(repo / "files" / "journald-retention.conf.j2"), "is a FIFO (named pipe)"),
        ("known_hosts", lambda repo: _fifo(repo / "known_hosts"), "is a FIFO (named pipe)"),
        ("dashboard dir", lambda repo: (repo / "dashboards" / "line-overview.json").unlink()
         or (repo / "dashboards" / "line-overview.json").mkdir(), "is a directory"),
    ],
)  # fmt: skip
def test_special_files_are_refused_without_blocking(repo: Path, what: str, setup: object, fragment: str) -> None:
    setup(repo)  # type: ignore[operator]
    started = time.monotonic()
    errors = _errors(repo / "demo-site.yaml")
    assert time.monotonic() - started < 20
    assert any(fragment in e and "not a regular file" in e for e in errors), errors


def test_include_of_a_fifo_is_refused(repo: Path) -> None:
    _fifo(repo / "files" / "pipe.j2")
    (repo / "files" / "pull.j2").write_text('{% include "pipe.j2" %}\n')
    (error,) = _errors(_blueprint(repo, TEMPLATE, "template: files/pull.j2"))
    assert "line 1: 'pipe.j2' is a FIFO (named pipe), not a regular file" in error


def test_device_file_is_refused(repo: Path) -> None:
    target = repo / "dashboards" / "line-overview.json"
    target.unlink()
    try:
        os.mknod(target, stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero's numbers: it never ends
    except PermissionError:
        pytest.skip("creating a device node needs root")
    (error,) = _errors(repo / "demo-site.yaml")
    assert "is a character device, not a regular file" in error


def test_blueprint_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UmhctlError, match="is a FIFO"):
        validate_file(_fifo(tmp_path / "site.yaml"))


# -- runaway templates: a counted budget, the same on every machine ---------------------------------------------

RUNAWAY = {
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "recursive macro": "{% macro f(n) %}{{ f(n - 1) }}{{ f(n - 1) }}{% endmacro %}{{ f(60) }}",
    "doubling string": "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s }}",
    "huge output": "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",
    "repeat": "{{ 'x' * 10**10 }}",
    "power": "{{ 7 ** (10 ** 10) }}",  # jinja reads a ** b ** c as (a ** b) ** c
    "wide filter": "{{ 'x'|center(10**10) }}",
    "wide method": "{{ 'x'.ljust(10**10) }}",
    "printf width": "{{ '%0999999999d'|format(1) }}",
    "percent width": "{{ '%0999999999d' % 1 }}",
    "format width": "{{ '{:>999999999}'.format(1) }}",
    "self include": '{% include "self.j2" %}{% include "self.j2" %}',
}


@pytest.mark.parametrize("body", RUNAWAY.values(), ids=RUNAWAY.keys())
def test_runaway_template_ends_in_a_clean_error(repo: Path, body: str) -> None:
    (repo / "files" / "self.j2").write_text(body + "\n")
    path = _blueprint(repo, TEMPLATE, "template: files/self.j2")
    started = time.monotonic()
    (error,) = _errors(path)
    assert time.monotonic() - started < 15, "the budget ends a runaway template in seconds"
    assert error.startswith(f"{_line_of(path, 'files/self.j2')}:15 files/self.j2: ")
    assert any(
        w in error
        for w in ("loop iterations and calls", "characters", "bits", "limit is", "itself without end", "wide")
    ), error


def test_templates_within_the_budget_render(repo: Path) -> None:
    body = (
        "{% for i in range(10000) %}{{ '%05d'|format(i) }} {{ 'x' * 20 }} {{ '{:>8}|{:.2f}'.format(i, 1.5) }} "
        "{{ '%-6s 12345678901' % i }}\n{% endfor %}"
    )
    (repo / "files" / "big.j2").write_text(body)
    assert _errors(_blueprint(repo, TEMPLATE, "template: files/big.j2")) == []


# -- size, depth and what Grafana's parser refuses --------------------------------------------------------------


def test_huge_blueprint_is_refused_fast_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text((BLUEPRINTS / "demo-site.yaml").read_text() + "# " + "x" * (28 * 1024 * 1024) + "\n")
    started = time.monotonic()
    (error,) = _errors(path)
    assert time.monotonic() - started < 5
    assert error == "1:1 document too large: 28.0 MB, the limit is 1.0 MB"


def test_huge_dashboard_and_template_are_refused(repo: Path) -> None:
    dashboard = repo / "dashboards" / "line-overview.json"
    dashboard.write_text(dashboard.read_text()[:-2] + ', "pad": "' + "x" * (2 * 1024 * 1024) + '"}\n')
    (repo / "files" / "journald-retention.conf.j2").write_text("#" * (2 * 1024 * 1024))
    errors = _errors(repo / "demo-site.yaml")
    assert any(
        "dashboard file 'dashboards/line-overview.json' is too large: 2.0 MB, the limit is 1.0 MB" in e for e in errors
    )
    assert any("template 'files/journald-retention.conf.j2' is too large: 2.0 MB" in e for e in errors)


@pytest.mark.parametrize(
    ("tail", "fragment", "column"),
    [
        (', "deep": ' + "[" * 100_000 + "]" * 100_000, "nested deeper than 100 levels", 110),
        (', "v": NaN', "NaN is not a JSON number", 8),
        (', "v": Infinity', "Infinity is not a JSON number", 8),
        (', "v": -Infinity', "-Infinity is not a JSON number", 8),
        (', "v": "a\x00b"', "Invalid control character", 10),
    ],
)
def test_dashboard_problems_are_reported_at_their_position(repo: Path, tail: str, fragment: str, column: int) -> None:
    dashboard = repo / "dashboards" / "line-overview.json"
    data = json.loads(dashboard.read_text())
    text = json.dumps(data, indent=1)[:-2] + "\n" + tail + "}\n"
    dashboard.write_text(text)
    line = text.count("\n", 0, text.index(tail)) + 1
    (error,) = _errors(repo / "demo-site.yaml")
    assert fragment in error and f"(line {line}, column {column})" in error, error
