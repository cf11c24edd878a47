"""The Jinja2 sandbox every Preempt template renders in, with a bound on the work one rendering does.

Rule templates (rules/templates.py) render in the rules worker for every alert, message templates
(alerts/templates.py) in the notifier for every notification, and ``preempt rules check`` renders
each rule's. Jinja's own sandbox refuses Python internals and a ``range()`` of more than
``MAX_RANGE`` (100,000) items, but nested loops multiply: ``{% for a in range(100000) %}{% for b in
range(100000) %}x{% endfor %}{% endfor %}`` is 10^10 steps, and held ``preempt rules check`` (and would
hold a worker) for hours. Here one rendering may step through at most ``MAX_RANGE_STEPS`` items of
``range()`` in all (every loop over a range counts, however nested or reused) and produce at most
``MAX_OUTPUT_CHARS`` characters; past either it raises :class:`TemplateLimitError`, which each caller
handles as any template that raises (``rules check`` names the rule and field, the worker keeps the
raw title with a ``template_error``, the notifier falls back to its default template).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any, overload

from jinja2 import Template
from jinja2.exceptions import SecurityError
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


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox whose templates are :class:`BoundedTemplate` and whose ``range`` is counted."""

    template_class = BoundedTemplate

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.globals["range"] = bounded_range
