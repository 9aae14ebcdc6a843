"""A Jinja sandbox with a budget: a blueprint template cannot run for ever or grow without end.

validate renders every site template for every device, so a runaway template (nested loops, recursive macros, a
string doubled in a loop) must end in a clean error, the same on every machine. The budget is counted, not timed:
- steps: every loop iteration, call (functions, methods, macros) and template load (include, import, extends);
- size: every value a `+`, `*`, `~`, filter or call builds, and the rendered output, at most MAX_OUTPUT;
  `*`, `**` and format widths (`'%09d'`, `'{:>9}'`) are checked before they compute, and integer arguments beyond
  MAX_OUTPUT are refused (no `center(10**9)`), so no single operation allocates far beyond the budget either;
- a wall-clock deadline as a last resort for what counting cannot see (measured: a template that uses its whole
  step budget renders in about a second here, far below it).
"""

from __future__ import annotations

import contextvars
import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import SandboxedEnvironment

MAX_STEPS = 250_000
MAX_OUTPUT = 1024 * 1024  # characters of one rendered file, and of any value built on the way
MAX_SECONDS = 10.0


class OverBudget(Exception):
    """The template exceeded its budget (the message says which)."""


class _Budget:
    def __init__(self) -> None:
        self.steps = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise OverBudget(
                f"the template takes more than {MAX_STEPS:,} loop iterations and calls (a runaway loop or recursion?)"
            )
        if self.steps % 1024 == 0 and time.monotonic() > self.deadline:
            raise OverBudget(f"the template takes longer than {MAX_SECONDS:.0f} seconds to render")


_BUDGET: contextvars.ContextVar[_Budget] = contextvars.ContextVar("umhctl_template_budget")


def _step() -> None:
    budget = _BUDGET.get(None)
    if budget is not None:
        budget.step()


def _too_large(size: int) -> OverBudget:
    return OverBudget(f"the template builds a value of {size:,} characters; the limit is {MAX_OUTPUT:,}")


def _sized(value: Any) -> Any:
    if isinstance(value, (str, bytes, list, tuple, dict, set)) and len(value) > MAX_OUTPUT:
        raise _too_large(len(value))
    if isinstance(value, int) and value.bit_length() > 8 * MAX_OUTPUT:
        raise OverBudget(f"the template builds a number of {value.bit_length():,} bits")
    return value


def _check_arguments(args: Iterable[Any]) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_OUTPUT:
            raise OverBudget(f"the template passes {arg:,} to a filter or function; the limit is {MAX_OUTPUT:,}")


# Widths and precisions of printf-style ("%09d") and str.format ("{:>9}") fields: checked before formatting, so
# that "%0999999999d" is refused before it allocates a gigabyte.
_WIDTHS = re.compile(r"%[#0\- +]*(\d*)(?:\.(\d+))?|\{[^{}]*?:[^{}\d]*(\d*)(?:\.(\d+))?")


def _check_format(text: Any) -> None:
    if isinstance(text, str):
        for match in _WIDTHS.finditer(text):
            widths = [int(g) for g in match.groups() if g]
            if widths and max(widths) > MAX_OUTPUT:
                raise OverBudget(f"the template formats a field {max(widths):,} characters wide")


def _counted(iterable: Any) -> Iterator[Any]:
    for item in iterable:
        _step()
        yield item


def _bounded_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    # functools.wraps keeps jinja's pass_context/pass_environment marks (they are attributes of the function).
    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _step()
        _check_arguments([*args[1:], *kwargs.values()])
        if function.__name__ == "do_format" and args:
            _check_format(args[0])
        return _sized(function(*args, **kwargs))

    return bounded


class _Generator(CodeGenerator):
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # `a ~ b` builds a string: checked like every other value
        self.write("environment.sized(")
        super().visit_Concat(node, frame)
        self.write(")")


class BoundedEnvironment(SandboxedEnvironment):
    code_generator_class = _Generator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded_filter(f) for name, f in self.filters.items()}
        self.filters["umhctl_counted"] = _counted
        # lipsum(n) writes n paragraphs in one call: nothing a config file needs
        self.globals.pop("lipsum", None)

    def sized(self, value: Any) -> Any:
        return _sized(value)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            # every iteration of every loop counts a step, whatever it iterates over
            loop.iter = nodes.Filter(loop.iter, "umhctl_counted", [], [], None, None, lineno=loop.lineno)
        tree.set_environment(self)
        return tree

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        _step()
        if operator_ == "*":
            for sequence, count in ((left, right), (right, left)):
                repeated = isinstance(sequence, (str, list, tuple)) and isinstance(count, int)
                if repeated and len(sequence) * max(count, 0) > MAX_OUTPUT:
                    raise _too_large(len(sequence) * count)
            if isinstance(left, int) and isinstance(right, int):
                _sized_bits(left.bit_length() + right.bit_length())
        if operator_ == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
            _sized_bits(right * left.bit_length())
        if operator_ == "%":
            _check_format(left)
        joined = operator_ == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple))
        if joined and len(left) + len(right) > MAX_OUTPUT:
            raise _too_large(len(left) + len(right))
        return _sized(super().call_binop(context, operator_, left, right))

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        _check_arguments([*args, *kwargs.values()])
        return _sized(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:  # "...".format / format_map: the sandbox wraps them when they are looked up
            _check_format(value.__self__)
        return wrapped

    def get_template(self, *args: Any, **kwargs: Any) -> Any:
        _step()  # include, import and extends load a template at render time
        return super().get_template(*args, **kwargs)

    def render(self, name: str, **context: Any) -> str:
        """Render template `name` within a fresh budget."""
        token = _BUDGET.set(_Budget())
        try:
            chunks, size = [], 0
            for chunk in self.get_template(name).generate(**context):
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise OverBudget(f"the rendered file is larger than {MAX_OUTPUT:,} characters")
                chunks.append(chunk)
            return "".join(chunks)
        finally:
            _BUDGET.reset(token)


def _sized_bits(bits: int) -> None:
    if bits > 8 * MAX_OUTPUT:
        raise OverBudget(f"the template builds a number of about {bits:,} bits")
