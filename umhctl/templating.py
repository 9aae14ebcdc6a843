"""Jinja2 rendering for text files (StrictUndefined everywhere: a missing variable is an error, never "")."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2.loaders import split_template_path

from umhctl.blueprint.repofiles import MAX_TEMPLATE, RepoFileProblem, RepoFiles, read_regular, repository_root
from umhctl.fsutil import xdg_dir
from umhctl.templatebudget import BoundedEnvironment, OverBudget

if TYPE_CHECKING:
    from umhctl.blueprint.model import Device, ExtraFile, SiteBlueprint


def templates_dir() -> Path:
    """umhctl's own templates: inside the installed package, or at the top of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("umhctl's templates directory is missing: the installation is incomplete")


_package_env: jinja2.Environment | None = None


def render_template(name: str, **context: Any) -> str:
    """Render one of umhctl's own templates (systemd-networkd units, update.conf, ...)."""
    global _package_env
    if _package_env is None:
        _package_env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates_dir())),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
            bytecode_cache=_bytecode_cache(),
        )
    return _package_env.get_template(name).render(**context)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """umhctl's own templates compiled once per content, not once per run (about 15 ms of every render, plan and
    apply): jinja2's bytecode cache in $XDG_CACHE_HOME/umhctl/jinja2, each entry checked against its template's
    source checksum (jinja2/bccache.py). Bytecode is code that runs, so the directory and the one above it are
    used only if this user owns them and nobody else may write there, as jinja2 checks its own default
    directory (bccache.py, _get_default_cache_dir); otherwise templates compile as before."""
    directory = xdg_dir("cache") / "umhctl" / "jinja2"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for path in (directory, directory.parent):
            info = path.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
                return None
    except OSError:
        return None
    return _QuietBytecodeCache(str(directory))


class _QuietBytecodeCache(jinja2.FileSystemBytecodeCache):
    """A cache that cannot be read or written (removed while umhctl runs, a full disk) only costs a compile."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # a damaged entry (pickle's and marshal's errors reach here unhandled): compile
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


class TemplateProblem(Exception):
    """A template that cannot render: syntax error, undefined variable, unsafe access."""


def device_context(bp: SiteBlueprint, device: Device) -> dict[str, Any]:
    """What a site template may use: plain data, never the models themselves."""
    return {
        "site": {
            "name": bp.metadata.name,
            "enterprise": bp.location.enterprise,
            "site": bp.location.site,
            "timezone": bp.os.timezone,
        },
        "device": {
            "name": device.name,
            "hostname": device.host_name,
            "role": device.role,
            "address": str(device.address),
            "hub": device.hub,
            "location": device.location,
        },
    }


class _RepoLoader(jinja2.BaseLoader):
    """Templates from one directory; what they include, import or extend is resolved (symlinks included) and must
    stay inside the blueprint's repository, be a regular file and have a bounded size."""

    def __init__(self, directory: str, root: str) -> None:
        self.directory = directory
        self.repo = RepoFiles(Path(directory))
        self.repo.root = Path(root)

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        pieces = split_template_path(template)  # refuses '..' segments
        path = self.repo.confined(Path(self.directory, *pieces))
        if path is None:
            raise jinja2.TemplateError(f"'{template}' is outside the blueprint's repository (a symlink leads out)")
        try:
            raw = read_regular(path, f"'{template}'", MAX_TEMPLATE)
        except FileNotFoundError:
            raise jinja2.TemplateNotFound(template) from None
        except (RepoFileProblem, OSError) as exc:
            raise jinja2.TemplateError(str(exc)) from None
        mtime = path.stat().st_mtime
        return raw.decode("utf-8"), str(path), lambda: _mtime(path) == mtime


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


@functools.cache
def _site_environment(directory: str, root: str) -> BoundedEnvironment:
    # Sandboxed: a blueprint template only fills in values, it has no business reaching into Python; bounded: it
    # cannot run for ever or grow without end (umhctl.templatebudget).
    # One environment per directory, so a template used for 30 devices is compiled once.
    return BoundedEnvironment(
        loader=_RepoLoader(directory, root),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


_MISSING_ATTRIBUTE = re.compile(r"'[^']+' has no attribute '([^']+)'")
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")


def _undefined(exc: jinja2.UndefinedError, template: Path) -> str:
    """The undefined name as the template wrote it (`vars.servers`, not "'dict object' has no attribute"), with
    its line, and what there is instead."""
    message = exc.message or ""
    line = _template_line(exc.__traceback__, template)
    where = f"line {line}: " if line else ""
    attribute = _MISSING_ATTRIBUTE.search(message)
    if attribute:
        name = attribute.group(1)
        try:
            text = template.read_text(encoding="utf-8")
        except OSError:
            text = ""
        written = re.search(rf"\b([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\.{re.escape(name)}\b", text)
        expression = f"{written.group(1)}.{name}" if written else name
        owner = written.group(1).split(".")[0] if written else None
        hint = {"vars": " (set it under 'vars:' of this file in the blueprint)"}.get(owner or "", "")
        return f"{where}undefined variable '{expression}'{hint}"
    undefined = _UNDEFINED_NAME.search(message)
    if undefined:
        return (
            f"{where}undefined variable '{undefined.group(1)}' (a template sees site, device and vars; "
            "values of this file go under 'vars:')"
        )
    return f"{where}undefined variable: {message}"


def _template_line(tb: TracebackType | None, template: Path) -> int | None:
    """The line of `template` the traceback went through last (jinja maps frames back to template lines)."""
    lines = [frame.tb_lineno for frame in _frames(tb) if frame.tb_frame.f_code.co_filename == str(template)]
    return lines[-1] if lines else None


def _frames(tb: TracebackType | None) -> Iterator[TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def render_extra_file(bp: SiteBlueprint, device: Device, extra: ExtraFile, template: Path) -> str:
    """`template`: resolved, inside the repository (RepoFiles.path)."""
    env = _site_environment(str(template.parent), str(repository_root(template.parent)))
    try:
        return env.render(template.name, **device_context(bp, device), vars=dict(extra.vars))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"line {exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise TemplateProblem(_undefined(exc, template)) from None
    except (OverBudget, jinja2.TemplateError) as exc:  # over budget; an include, import or extends refused; ...
        line = _template_line(exc.__traceback__, template)
        raise TemplateProblem(f"{'line ' + str(line) + ': ' if line else ''}{exc}") from None
    except UnicodeDecodeError:
        raise TemplateProblem("the template is not UTF-8 text") from None
    except RecursionError as exc:
        line = _template_line(exc.__traceback__, template)
        where = f"line {line}: " if line else ""
        raise TemplateProblem(f"{where}a macro or include calls itself without end") from None
    except Exception as exc:  # a template is user code: any error it raises is the template's, not ours
        raise TemplateProblem(f"{type(exc).__name__}: {exc}") from None
