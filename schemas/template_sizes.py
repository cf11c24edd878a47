"""The limits of one template rendering and the sizes they are measured in (schemas/template_sandbox.py applies them).

A value's size is what printing it would roughly cost: characters of a string, digits of a number,
items of a list, tuple, set or dict with the sizes of their items (nested, so ``[a, a]`` counts ``a``
twice: its text prints twice). :func:`measure` stops counting past a cap, so measuring costs at most
the cap whatever the value. The ``estimate_*`` functions tell, before a string-building filter or
``str`` method runs, how long its result could be (``'%2000000s' % 'x'``, ``'x'.ljust(10**9)``,
``range(10)|join('y' * 999999)``): a result past :data:`MAX_OUTPUT_CHARS` is refused before Python
builds it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, ItemsView, Iterable, KeysView, Mapping, ValuesView
from string import Formatter
from typing import Any

from jinja2.exceptions import SecurityError

MAX_LOOP_STEPS = 100_000
"""Loop iterations one rendering may make, all loops together (over anything: ranges, strings, lists),
recursive loops and macro calls included (one full ``range(100000)``)."""
MAX_OUTPUT_CHARS = 1_000_000
"""Characters one rendering may produce, and the largest value (see :func:`measure`) it may make:
more than a Kafka record holds, far more than any message."""
MAX_WORK_CHARS = 10_000_000
"""What one rendering's operators, filters, calls, comparisons and printed values may read and make
in all, measured like values (about 10^7 characters of work: well under a second)."""
MAX_NUMBER_BITS = 4096
"""The largest whole number ``*`` or ``**`` may make in a template, in bits (about 1,233 digits)."""

_LONG_NUMBER = 10**12  # what a run of more than nine digits in a format spec stands for


class TemplateLimitError(SecurityError):
    """A rendering went past one of the limits of this module."""


def too_big(size: float, what: str) -> None:
    """Refuse (:class:`TemplateLimitError`) a value of ``size`` past :data:`MAX_OUTPUT_CHARS`."""
    if size > MAX_OUTPUT_CHARS:
        raise TemplateLimitError(f"template stopped: {what} would be more than {MAX_OUTPUT_CHARS:,} long")


def measure(value: Any, cap: int, known: dict[int, tuple[Any, int]] | None = None) -> int:
    """The size of ``value`` (module doc), counted up to a little past ``cap``. ``known`` remembers the
    sizes of containers measured whole (a rendering's values do not change while it runs), so a list
    read in every step of a loop, or nested in itself, is walked once."""
    kind = type(value)  # the usual cases first, by exact type: this runs for every value a template touches
    if kind is str:
        return len(value)
    if kind is int:
        return int(value.bit_length()) // 3 + 1
    if kind in _ONE:
        return 1
    if kind is range:  # what walking it costs (|sum, |max, `x in r` for a non-int x read every item)
        return len(value) + 1
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, int):
        return value.bit_length() // 3 + 1
    if not isinstance(value, _CONTAINERS):  # numbers, None, ranges, iterators, models: their text is their own
        return 1
    total = 0
    pending = [value]
    while pending and total <= cap:
        item = pending.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, range):
            total += len(item) + 1
        elif not isinstance(item, _CONTAINERS):
            total += 1
        elif known is not None and (hit := known.get(id(item))) is not None and hit[0] is item:
            total += hit[1]
        elif isinstance(item, dict):
            total += len(item) + 1
            pending.extend(item.keys())
            pending.extend(item.values())
        else:
            total += len(item) + 1
            pending.extend(item)
    if known is not None and total <= cap:
        known[id(value)] = (value, total)
    return total


_CONTAINERS = (dict, list, tuple, set, frozenset, KeysView, ValuesView, ItemsView)
_ONE = frozenset({float, bool, type(None)})


def _text(value: Any) -> str:
    """``value`` as the text a filter or method works on (bytes one character a byte)."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else str(value)


def _number(digits: str) -> int:
    return int(digits) if len(digits) <= 9 else _LONG_NUMBER


def _whole(value: Any) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")


def estimate_printf(template: str | bytes, values: Any) -> int:
    """``template % values`` (and ``|format``): the template, every width and precision, the values."""
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    args = (
        list(values.values()) if isinstance(values, Mapping) else [*values] if isinstance(values, tuple) else [values]
    )
    size = len(text) + sum(measure(arg, MAX_OUTPUT_CHARS) for arg in args)
    starred = False
    for spec in _PRINTF_SPEC.finditer(text):
        for part in spec.groups():
            if part == "*":
                starred = True
            elif part:
                size += _number(part)
    return size + (sum(_whole(arg) for arg in args) if starred else 0)


def estimate_str_format(template: str, args: Iterable[Any], kwargs: Mapping[str, Any]) -> int:
    """``template.format(*args, **kwargs)``: the template, every number in a field's spec, the values
    (and, when a spec takes its width from an argument, ``{:{}}``, every whole number among them)."""
    values = [*args, *kwargs.values()]
    size = len(template) + sum(measure(value, MAX_OUTPUT_CHARS) for value in values)
    nested = False
    for _literal, _field, spec, _conversion in Formatter().parse(template):
        if spec:
            size += sum(_number(digits) for digits in re.findall(r"\d+", spec))
            nested = nested or "{" in spec
    return size + (sum(_whole(value) for value in values) if nested else 0)


def estimate_join(separator: Any, items: list[Any]) -> int:
    """``separator.join(items)``."""
    return sum(measure(item, MAX_OUTPUT_CHARS) for item in items) + len(_text(separator)) * max(len(items) - 1, 0)


def estimate_replace(text: Any, old: Any, new: Any, count: Any = None) -> int:
    """``text.replace(old, new, count)``: an empty ``old`` matches between every two characters."""
    text, old, new = _text(text), _text(old), _text(new)
    matches = len(text) + 1 if not old else text.count(old)
    if isinstance(count, int) and count >= 0:
        matches = min(matches, count)
    return len(text) + matches * max(len(new) - len(old), 0)


def estimate_indent(text: Any, width: Any = 4) -> int:
    """``|indent(width)``: every line gets the width (a number of spaces or a string)."""
    body = _text(text)
    per_line = len(width) if isinstance(width, str) else _whole(width)
    return len(body) + (body.count("\n") + 1) * per_line


def estimate_wordwrap(text: Any, width: Any = 79, wrapstring: Any = None) -> int:
    """``|wordwrap``: at most one break per ``width`` characters and per space or hyphen, each a wrapstring."""
    body = _text(text)
    chars = len(body)
    breaks = min(chars, chars // max(_whole(width), 1) + body.count(" ") + body.count("-") + 1)
    return chars + breaks * len(_text(wrapstring) if wrapstring is not None else "\n")


def estimate_wordwrap_copying(text: Any, width: Any = 79, break_long_words: Any = True) -> int:
    """What textwrap copies breaking long words: the rest of a word at every break, so about
    ``len(text) * longest word / width`` characters."""
    if not break_long_words:
        return 0
    body = _text(text)
    longest = max(map(len, body.split()), default=0)
    return len(body) * longest // max(_whole(width), 1)


def estimate_translate(text: str | bytes, table: Any) -> int:
    """``text.translate(table)``: every character may become the longest replacement."""
    longest = 1
    if isinstance(table, Mapping):
        longest = max([1, *(len(value) for value in table.values() if isinstance(value, str | bytes))])
    return len(text) * longest


def estimate_lipsum(n: Any = 5, html: Any = True, min: Any = 20, max: Any = 100) -> int:
    """``lipsum(n, html, min, max)``: n paragraphs of at most ``max`` words of at most 15 characters."""
    return _whole(n) * (_whole(max) + 1) * 16


StrCheck = Callable[[str | bytes, tuple[Any, ...], dict[str, Any]], int]

# What each str (and bytes) method that can build more than it reads would make, by name.
STR_METHOD_ESTIMATES: dict[str, StrCheck] = {
    "ljust": lambda text, args, kwargs: max(len(text), _whole(args[0] if args else 0)),
    "rjust": lambda text, args, kwargs: max(len(text), _whole(args[0] if args else 0)),
    "center": lambda text, args, kwargs: max(len(text), _whole(args[0] if args else 0)),
    "zfill": lambda text, args, kwargs: max(len(text), _whole(args[0] if args else 0)),
    "expandtabs": lambda text, args, kwargs: (
        len(text) + _text(text).count("\t") * _whole(args[0] if args else kwargs.get("tabsize", 8))
    ),
    "replace": lambda text, args, kwargs: estimate_replace(text, *args, **kwargs),
    "translate": lambda text, args, kwargs: estimate_translate(text, args[0] if args else None),
}
