"""The Jinja2 sandbox every Preempt template renders in, with a bound on the work one rendering does.

Rule templates (rules/templates.py) render in the rules worker for every alert, message templates
(alerts/templates.py) in the notifier for every notification, and ``preempt rules check`` renders
each rule's. Jinja's own sandbox refuses Python internals and a ``range()`` of more than
``MAX_RANGE`` (100,000) items, but nested loops multiply (``{% for a in 'x' * 3000 %}{% for b in
'x' * 3000 %}…`` is 9×10^6 steps, two nested ``range(100000)`` 10^10) and one small expression can
build gigabytes (``'%2000000000s' % 'x'``, ``range(10)|join('y' * 999999)``, a namespace doubling
a string in a loop). Here one rendering (schemas/template_sizes.py has the numbers):

* makes at most ``MAX_LOOP_STEPS`` loop steps in all, whatever the loops go over (the code generator
  wraps every ``for``'s iterable in a counter; recursive loops count too, and a macro call counts
  ``MACRO_CALL_STEPS``). ``range()`` is Jinja's own (at most ``MAX_RANGE`` items), so ``x in range(n)``,
  ``.index`` and ``.count`` cost nothing;
* makes no value past ``MAX_OUTPUT_CHARS`` (strings, and lists, tuples and dicts with everything in
  them) nor a whole number past ``MAX_NUMBER_BITS``: ``*``, ``**``, ``%``, ``+``, ``|format``,
  ``|join``, ``|replace``, ``|indent``, ``|wordwrap``, ``|center``, ``|batch``, ``|slice``, ``|sum`` of
  lists (quadratic), ``lipsum()``
  and the ``str`` methods ``ljust``, ``rjust``, ``center``, ``zfill``, ``expandtabs``, ``join``,
  ``replace``, ``translate``, ``format`` and ``format_map`` are refused *before* Python builds a
  result past it; every other filter, test and call, and every ``~``, slice, literal and captured
  block (``{% set %}…{% endset %}``, a macro's output) is checked on its result;
* reads and makes at most ``MAX_WORK_CHARS`` in all (every value those, a comparison or a ``{{ }}``
  reads or makes is measured and counted), so a loop cannot redo a big operation 10^5 times;
* prints at most ``MAX_OUTPUT_CHARS`` characters.

Past any of these it raises :class:`TemplateLimitError`, which each caller handles as any template
that raises (``rules check`` names the rule and field, the worker keeps the raw title with a
``template_error``, the notifier falls back to its default template). Only ``render`` is bounded.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from jinja2 import Template, nodes
from jinja2.compiler import CodeGenerator, Frame, operators, optimizeconst
from jinja2.environment import Environment
from jinja2.filters import FILTERS as DEFAULT_FILTERS
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum

from schemas import template_sizes as sizes
from schemas.template_sizes import (
    MAX_LOOP_STEPS,
    MAX_NUMBER_BITS,
    MAX_OUTPUT_CHARS,
    MAX_WORK_CHARS,
    TemplateLimitError,
    measure,
    too_big,
)

__all__ = [
    "MACRO_CALL_STEPS",
    "MAX_LOOP_STEPS",
    "MAX_NUMBER_BITS",
    "MAX_OUTPUT_CHARS",
    "MAX_WORK_CHARS",
    "BoundedSandbox",
    "BoundedTemplate",
    "TemplateLimitError",
]


MACRO_CALL_STEPS = 10
"""Loop steps one macro call (or ``caller()``) counts: a call does about ten times a step's work, and a
macro calling itself twice is a loop: ``f(30)`` would make 2^30 calls."""


class _Budget:
    """What is left of one rendering's loop steps and work."""

    __slots__ = ("known", "steps", "work")

    def __init__(self) -> None:
        self.steps = MAX_LOOP_STEPS
        self.work = MAX_WORK_CHARS
        self.known: dict[int, tuple[Any, int]] = {}  # sizes of containers measured (see measure)

    def step(self, count: int = 1) -> None:
        self.steps -= count
        if self.steps < 0:
            raise TemplateLimitError(f"template stopped after {MAX_LOOP_STEPS:,} loop steps (nested loops multiply)")

    def spend(self, size: int) -> None:
        self.work -= size
        if self.work < 0:
            raise TemplateLimitError(
                f"template stopped after {MAX_WORK_CHARS:,} characters of work (a big value used in a loop?)"
            )


# The budget of the rendering under way (set by BoundedTemplate.render; a rendering is synchronous).
# Outside a rendering (constant folding while compiling) values are still capped, nothing is counted.
_BUDGET: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


def _counted(items: Iterator[Any], budget: _Budget) -> Iterator[Any]:
    for item in items:
        budget.step()
        yield item


def _loop(iterable: Any) -> Iterator[Any]:
    """What a ``for`` loop iterates: ``iterable``, every item counted as a step of the rendering."""
    items = iter(iterable)
    budget = _BUDGET.get()
    return items if budget is None else _counted(items, budget)


def _read(value: Any) -> Any:
    """Count ``value`` (measured) against the rendering's work; return it."""
    budget = _BUDGET.get()
    if budget is not None:
        budget.work -= measure(value, max(budget.work, 0), budget.known)  # measuring stops with the budget
        if budget.work < 0:
            budget.spend(0)  # raises
    return value


def _made(value: Any, what: str = "a value") -> Any:
    """Refuse ``value`` past MAX_OUTPUT_CHARS (measured), else count it against the work; return it."""
    size = _size(value)
    too_big(size, what)
    budget = _BUDGET.get()
    if budget is not None:
        budget.spend(size)
    return value


def _size(value: Any) -> int:
    """``value`` measured up to MAX_OUTPUT_CHARS, with the sizes the rendering knows."""
    budget = _BUDGET.get()
    return measure(value, MAX_OUTPUT_CHARS, None if budget is None else budget.known)


def _concat(parts: Iterable[str]) -> str:
    """Join a captured block (``{% set %}…{% endset %}``, a macro's or ``{% filter %}``'s output)."""
    collected = list(parts)  # the generated code's buffer: already a list of bounded parts
    too_big(sum(map(len, collected)), "a captured block")
    joined = "".join(collected)
    _made(joined)
    return joined


class BoundedTemplate(Template):
    """A template whose ``render`` stops with :class:`TemplateLimitError` past the limits of the module doc."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        """Render like Jinja's ``Template.render``, within the limits of the module doc."""
        token = _BUDGET.set(_Budget())
        try:
            parts: list[str] = []
            size = 0
            for part in self.generate(*args, **kwargs):
                size += len(part)
                if size > MAX_OUTPUT_CHARS:
                    raise TemplateLimitError(f"template stopped at {MAX_OUTPUT_CHARS:,} characters of output")
                parts.append(part)
            return "".join(parts)
        finally:
            _BUDGET.reset(token)


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, routing what the sandbox's own hooks do not see through the environment:
    loop iterables (counted), comparisons and printed values (read), ``~``, slices, literals (made).

    ``Environment.code_generator_class`` is Jinja's documented way in, but the methods overridden here are
    its generator's own (``visit_*``, and the private ``_output_child_pre``/``_post`` around each printed
    value): a Jinja that renamed one would leave its bound off without a word. The version is pinned in
    constraints.txt, and ``test_every_code_generator_override_still_overrides_jinja`` fails on such a rename.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop_iterables: set[int] = set()
        self._concat_parts: set[int] = set()

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        if id(node) in self._concat_parts:  # an operand of ``~``: through environment.concat_part
            self._concat_parts.discard(id(node))
            self.write("environment.concat_part(")
            super().visit(node, *args, **kwargs)
            self.write(")")
            return None
        if id(node) not in self._loop_iterables:
            return super().visit(node, *args, **kwargs)
        self._loop_iterables.discard(id(node))
        self.write("environment.loop(")
        super().visit(node, *args, **kwargs)
        self.write(")")
        return None

    def visit_For(self, node: nodes.For, frame: Frame) -> None:  # noqa: N802 - Jinja's visitor names
        # Jinja visits a loop's iterable once (a recursive loop's at its first call, see BoundedSandbox.call)
        self._loop_iterables.add(id(node.iter))
        super().visit_For(node, frame)

    @optimizeconst
    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:  # noqa: N802 - Jinja's visitor names
        self.write("(environment.read(")
        self.visit(node.expr, frame)
        self.write(")")
        for op in node.ops:
            self.visit(op, frame)
        self.write(")")

    def visit_Operand(self, node: nodes.Operand, frame: Frame) -> None:  # noqa: N802 - Jinja's visitor names
        self.write(f" {operators[node.op]} environment.read(")
        self.visit(node.expr, frame)
        self.write(")")

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        super()._output_child_pre(node, frame, finalize)
        self.write("environment.read(")

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        self.write(")")
        super()._output_child_post(node, frame, finalize)

    def _made(self, visit: Callable[[Any, Frame], None], node: nodes.Node, frame: Frame) -> None:
        self.write("environment.made(")
        visit(node, frame)
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802 - Jinja's visitor names
        self._concat_parts.update(id(part) for part in node.nodes)
        self._made(super().visit_Concat, node, frame)

    def visit_List(self, node: nodes.List, frame: Frame) -> None:  # noqa: N802 - Jinja's visitor names
        self._made(super().visit_List, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:  # noqa: N802 - Jinja's visitor names
        self._made(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:  # noqa: N802 - Jinja's visitor names
        if node.ctx == "load":
            self._made(super().visit_Tuple, node, frame)
        else:  # an assignment target: ``{% for a, b in … %}``, ``{% set a, b = … %}``
            super().visit_Tuple(node, frame)

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:  # noqa: N802 - Jinja's visitor names
        if isinstance(node.arg, nodes.Slice):  # Jinja slices without the environment's getitem
            self._made(super().visit_Getitem, node, frame)
        else:
            super().visit_Getitem(node, frame)


_PASSED = (Context, EvalContext, Environment)


def _values(args: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """A filter's arguments split into what Jinja passes first (context, environment) and the template's."""
    skip = 0
    while skip < len(args) and isinstance(args[skip], _PASSED):
        skip += 1
    return args[:skip], args[skip:]


def _joined(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    items = list(args[0])
    separator = args[1] if len(args) > 1 else kwargs.get("d", "")
    too_big(sizes.estimate_join(separator, items), "a joined value")
    return (items, *args[1:])


def _summed(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """``|sum(start=[])``: adding lists copies the sum so far at every item, so n items of total size t
    cost about n × t / 2 (``([[0] * 30] * 10000)|sum(start=[])`` took 4 s): refused past MAX_WORK_CHARS."""
    items = list(args[0])
    start = args[2] if len(args) > 2 else kwargs.get("start", 0)
    if isinstance(start, str | bytes | list | tuple):
        total = sum(_size(item) for item in items)
        if len(items) * total // 2 > MAX_WORK_CHARS:
            raise TemplateLimitError(
                f"template stopped: adding {len(items):,} sequences would copy more than {MAX_WORK_CHARS:,} items"
            )
    return (items, *args[1:])


def _limited(name: str, largest: int, position: int, keyword: str) -> Callable[..., tuple[Any, ...]]:
    def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        count = args[position] if len(args) > position else kwargs.get(keyword, 0)
        if isinstance(count, int) and count > largest:
            raise TemplateLimitError(f"template stopped: {name} of more than {largest:,}")
        return args

    return check


MAX_PRECISION = 100
"""The most digits ``|round`` (and the ``number`` family of filters) may be asked to keep, either way."""
MAX_JSON_INDENT = 16
"""The widest indent ``|tojson`` may be asked for."""


def _magnitude(name: str, largest: int, position: int, keyword: str) -> Callable[..., tuple[Any, ...]]:
    def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        value = args[position] if len(args) > position else kwargs.get(keyword, 0)
        if isinstance(value, int) and abs(value) > largest:
            raise TemplateLimitError(f"template stopped: {name} of more than {largest:,}")
        return args

    return check


def _estimated(what: str, estimate: Callable[..., float]) -> Callable[..., tuple[Any, ...]]:
    def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        too_big(estimate(*args, **kwargs), what)
        return args

    return check


def _format_size(value: Any, *args: Any, **kwargs: Any) -> int:
    return sizes.estimate_printf(value, kwargs or args)


def _indent_size(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> int:
    return sizes.estimate_indent(s, width)


def _wordwrap_size(s: Any, width: Any = 79, break_long_words: bool = True, wrapstring: Any = None, **_: Any) -> int:
    return sizes.estimate_wordwrap(s, width, wrapstring)


def _wrapped(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """``|wordwrap``: its result, and the copying Python's textwrap does breaking a long word (it copies
    the rest of the word at every break: ``('x' * 500000)|wordwrap(1)`` took 7 s)."""
    too_big(_wordwrap_size(*args, **kwargs), "a wrapped value")
    copying = sizes.estimate_wordwrap_copying(*args[:3], **{k: v for k, v in kwargs.items() if k in _WRAP_ARGS})
    if copying > 100 * MAX_WORK_CHARS:
        raise TemplateLimitError("template stopped: wrapping a word that long that narrowly would take too long")
    return args


_WRAP_ARGS = frozenset({"width", "break_long_words"})


def _center_size(value: Any, width: Any = 80) -> Any:
    return width


# Checks run before Jinja's own filters that can build far more than they read, by filter name.
_FILTER_CHECKS: dict[str, Callable[[tuple[Any, ...], dict[str, Any]], tuple[Any, ...]]] = {
    "join": _joined,
    "sum": _summed,
    "format": _estimated("a formatted value", _format_size),
    "replace": _estimated("a replaced value", sizes.estimate_replace),
    "indent": _estimated("an indented value", _indent_size),
    "wordwrap": _wrapped,
    "center": _estimated("a centred value", _center_size),
    "batch": _limited("a batch", MAX_OUTPUT_CHARS, 1, "linecount"),
    "slice": _limited("a slice into parts", MAX_LOOP_STEPS, 1, "slices"),
    # round(n, 'floor') builds 10**precision: |round(-10**8) ran for minutes.
    "round": _magnitude("a rounding precision", MAX_PRECISION, 1, "precision"),
    # urlize scans its text with regular expressions, about a second a million characters.
    "urlize": _estimated("a text to find links in", lambda value, *args, **kwargs: 10 * len(str(value))),
    # json.dumps builds the whole indented text before its size is known: ([0]*10000)|tojson(99999) took 2 GB.
    "tojson": _limited("a JSON indent", MAX_JSON_INDENT, 1, "indent"),
}


def _bounded(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter or test that reads its arguments, makes a bounded result, and (for Jinja's own
    string-building filters) is refused before it would build past the limits."""
    check = _FILTER_CHECKS.get(name) if func is DEFAULT_FILTERS.get(name) else None

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        passed, values = _values(args)
        for value in (*values, *kwargs.values()):
            _read(value)
        if check is not None:
            values = check(values, kwargs)
        return _made(func(*passed, *values, **kwargs))

    return bounded


class _BoundedFunctions(dict[str, Callable[..., Any]]):
    """The filters or tests of a :class:`BoundedSandbox`: each added one is wrapped by :func:`_bounded`."""

    def __setitem__(self, name: str, func: Callable[..., Any]) -> None:
        super().__setitem__(name, _bounded(name, func))

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        for name, func in dict(*args, **kwargs).items():
            self[name] = func


def _check_repeat(left: Any, right: Any) -> None:
    """``'x' * n`` / ``[..] * n``: refused when the result would outgrow the output limit."""
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int) and not isinstance(times, bool):
            too_big(_size(seq) * max(times, 0), "a repeated value")


def _check_bits(bits: float, what: str) -> None:
    if bits > MAX_NUMBER_BITS:
        raise TemplateLimitError(f"template stopped: {what} of more than {MAX_NUMBER_BITS:,} bits")


def _whole(*values: Any) -> bool:
    return all(isinstance(value, int) and not isinstance(value, bool) for value in values)


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        _check_repeat(left, right)
        if _whole(left, right):
            _check_bits(abs(left).bit_length() + abs(right).bit_length(), "a product")
    elif operator == "**":
        if _whole(left, right) and right > 0 and abs(left) > 1:
            _check_bits(right * math.log2(abs(left)), "a power")
    elif operator == "%":
        if isinstance(left, str | bytes):
            too_big(sizes.estimate_printf(left, right), "a formatted value")
    elif isinstance(left, str | bytes | list | tuple) and isinstance(right, str | bytes | list | tuple):  # +
        too_big(_size(left) + _size(right), "a sum")  # before it is built


def _check_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """A ``str`` or ``bytes`` method that can build far more than it reads, refused past the limits."""
    text = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    if not isinstance(text, str | bytes):
        return args
    if name == "join" and args:
        items = list(args[0])
        too_big(sizes.estimate_join(text, items), "a joined value")
        return (items, *args[1:])
    estimate = sizes.STR_METHOD_ESTIMATES.get(name)
    if estimate is not None:
        too_big(estimate(text, args, kwargs), f"the result of .{name}()")
    return args


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox whose templates are :class:`BoundedTemplate` and render within the
    limits of the module doc."""

    template_class = BoundedTemplate
    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})
    concat = staticmethod(_concat)  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No constant folding at compile time: Jinja's optimizer evaluates constant expressions while
        # it compiles, outside any rendering's budget ('x'|center(499990)|replace(' ', 'x ')|urlize
        # three times held `rules check` for 9 s); at render time they are counted like the rest.
        kwargs.setdefault("optimized", False)
        super().__init__(*args, **kwargs)
        filters, tests = _BoundedFunctions(), _BoundedFunctions()
        filters.update(self.filters)
        tests.update(self.tests)
        self.filters, self.tests = filters, tests  # type: ignore[assignment]

    # The names generated code calls (see _BoundedCodeGenerator).
    loop = staticmethod(_loop)
    concat_part: Callable[[Any], Any] = staticmethod(lambda value: value)
    """Each operand of ``~`` before Jinja joins them as text (here unchanged; the rules' environments print a
    ``None`` there as they print it alone: nothing at run time, refused by ``rules check``)."""
    read = staticmethod(_read)
    made = staticmethod(_made)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """``*``, ``**``, ``%`` and ``+`` as Python has them, refused (:class:`TemplateLimitError`) past the limits."""
        _read(left)
        _read(right)
        _check_binop(operator, left, right)
        return _made(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - as Jinja's
        """A call from a template: macros and recursive loops count a step, ``str`` methods and ``lipsum``
        that would build past the limits are refused, the arguments are read and the result made."""
        budget = _BUDGET.get()
        if isinstance(__obj, Macro | LoopContext):
            if budget is not None:
                budget.step(MACRO_CALL_STEPS if isinstance(__obj, Macro) else 1)
            if isinstance(__obj, LoopContext) and args:  # ``loop(children)`` in a recursive loop
                args = (_loop(args[0]), *args[1:])
        else:
            _read(getattr(__obj, "__self__", None))
            args = _check_method(__obj, args, kwargs)
            if __obj is generate_lorem_ipsum:
                too_big(sizes.estimate_lipsum(*args, **kwargs), "lipsum()")
        for value in (*args, *kwargs.values()):
            _read(value)
        return _made(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja's sandboxed ``str.format`` / ``format_map``, refused past the limits before formatting."""
        formatter = super().wrap_str_format(value)
        if formatter is None:
            return None
        template: str = value.__self__
        is_map = value.__name__ == "format_map"

        def bounded(*args: Any, **kwargs: Any) -> str:
            mapping = args[0] if is_map and args else kwargs
            mapping = mapping if isinstance(mapping, Mapping) else {}
            too_big(sizes.estimate_str_format(template, () if is_map else args, mapping), "a formatted value")
            result: str = formatter(*args, **kwargs)
            return result

        return functools.update_wrapper(bounded, value)
