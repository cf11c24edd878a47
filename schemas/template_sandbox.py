"""The Jinja2 sandbox every Preempt template renders in, with a bound on the work one rendering does.

Rule templates (rules/templates.py) render in the rules worker for every alert, message templates
(alerts/templates.py) in the notifier for every notification, and ``preempt rules check`` renders
each rule's. Jinja's own sandbox refuses Python internals and a ``range()`` of more than
``MAX_RANGE`` (100,000) items, but nested loops multiply: ``{% for a in range(100000) %}{% for b in
range(100000) %}x{% endfor %}{% endfor %}`` is 10^10 steps, and held ``preempt rules check`` (and would
hold a worker) for hours. Here one rendering may step through at most ``MAX_RANGE_STEPS`` items of
``range()`` in all (every loop over a range counts, however nested or reused) and produce at most
``MAX_OUTPUT_CHARS`` characters, and no single value it makes may outgrow them either (``'x' * 10**9``,
``10 ** 10**9``, ``|center(10**9)``); past any of these it raises :class:`TemplateLimitError`, which each caller
handles as any template that raises (``rules check`` names the rule and field, the worker keeps the
raw title with a ``template_error``, the notifier falls back to its default template).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any, overload

from jinja2 import Template
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

MAX_RANGE_STEPS = 100_000
"""Items of ``range()`` one rendering may iterate over, all loops together (one full ``range(100000)``)."""
MAX_OUTPUT_CHARS = 1_000_000
"""Characters one rendering may produce: more than a Kafka record holds, far more than any message."""


class TemplateLimitError(SecurityError):
    """A rendering went past :data:`MAX_RANGE_STEPS` or :data:`MAX_OUTPUT_CHARS`."""


class _Steps:
    """What is left of one rendering's ``range()`` steps."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left

    def take(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise TemplateLimitError(
                f"template stopped after {MAX_RANGE_STEPS:,} steps of range() (nested loops multiply)"
            )


# The steps of the rendering under way (set by BoundedTemplate.render; a rendering is synchronous).
_STEPS: ContextVar[_Steps | None] = ContextVar("template_range_steps", default=None)


class _CountedRange(Sequence[int]):
    """``range()`` as templates see it: a range whose every item iterated counts against the rendering."""

    __slots__ = ("_range",)

    def __init__(self, rng: range) -> None:
        self._range = rng

    def __len__(self) -> int:
        return len(self._range)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[int]: ...
    def __getitem__(self, index: int | slice) -> int | Sequence[int]:
        item = self._range[index]
        return _CountedRange(item) if isinstance(item, range) else item

    def __iter__(self) -> Iterator[int]:
        return _counted(iter(self._range))

    def __reversed__(self) -> Iterator[int]:
        return _counted(reversed(self._range))

    def __repr__(self) -> str:
        return repr(self._range)


def _counted(items: Iterator[int]) -> Iterator[int]:
    steps = _STEPS.get()
    for item in items:
        if steps is not None:
            steps.take()
        yield item


def bounded_range(*args: int) -> Sequence[int]:
    """The template global ``range``: Jinja's ``safe_range`` (at most ``MAX_RANGE`` items), counted."""
    return _CountedRange(safe_range(*args))


class BoundedTemplate(Template):
    """A template whose ``render`` stops with :class:`TemplateLimitError` past the limits of the module doc."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        """Render like Jinja's ``Template.render``, within :data:`MAX_RANGE_STEPS` and :data:`MAX_OUTPUT_CHARS`."""
        token = _STEPS.set(_Steps(MAX_RANGE_STEPS))
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
            _STEPS.reset(token)


MAX_POWER_BITS = 4096
"""The largest whole number ``**`` may make in a template, in bits (about 1,233 digits)."""


def _too_big(size: float, what: str) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise TemplateLimitError(f"template stopped: {what} would be more than {MAX_OUTPUT_CHARS:,} long")


def _check_repeat(left: Any, right: Any) -> None:
    """``'x' * n`` / ``[..] * n``: refused when the result would outgrow the output limit."""
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(times, int) and not isinstance(times, bool):
            _too_big(len(seq) * max(times, 0), "a repeated value")


def _check_power(base: Any, exponent: Any) -> None:
    """``a ** b`` on whole numbers: refused when the result would need more than MAX_POWER_BITS bits."""
    whole = isinstance(base, int) and isinstance(exponent, int)
    if whole and exponent > 0 and abs(base) > 1 and exponent * math.log2(abs(base)) > MAX_POWER_BITS:
        raise TemplateLimitError(f"template stopped: a power of more than {MAX_POWER_BITS:,} bits")


def _bounded_center(value: Any, width: int = 80) -> str:
    """Jinja's ``center`` filter, with the width bounded by the output limit."""
    _too_big(width, "a centred value")
    return str(value).center(width)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox whose templates are :class:`BoundedTemplate`, whose ``range`` is counted,
    and whose ``*``, ``**`` and ``center`` cannot build a value past the limits."""

    template_class = BoundedTemplate
    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.globals["range"] = bounded_range
        self.filters["center"] = _bounded_center

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """``*`` and ``**`` as Python has them, refused (:class:`TemplateLimitError`) past the limits."""
        if operator == "*":
            _check_repeat(left, right)
        else:
            _check_power(left, right)
        return super().call_binop(context, operator, left, right)
