"""Title, playbook and summary placeholders, rendered in a Jinja2 sandbox (schemas/template_sandbox.py:
its loop steps, value sizes, work and output bounded per rendering).

A template sees exactly five names: ``account``, ``evidence``, ``rule``, ``window`` and ``user``
(the user a per-user rule fired for, else empty). Load time rejects syntax errors, unknown
filters, any other name, and unknown attributes of ``account``, ``rule``, ``window`` and
``user`` (``evidence`` differs per kind, so its keys are free). Rendering never raises: a value
that is missing at run time renders through a lenient fallback (``None`` prints as nothing), and
the stream goes on. The sandbox is immutable: a template can read the alert's values but never
change them (``{{ evidence.properties.clear() }}`` would empty the properties of every rule's alert
about that event). ``check_rendering`` (run by ``preempt rules check``) renders every template
of a rule against a sparse account with a strict undefined and refuses templates that would
print ``None`` or fail. The formatting filters (``number``, ``money``, ``mrr``, ``percent``,
``duration``, ``datetime``, ``date``, ``person``, ``points``, ``aside``, ``facts``) are those of
schemas/formatting.py, the same the notifier's channels use.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta, nodes

from schemas import formatting
from schemas.template_sandbox import BoundedSandbox, TemplateLimitError

TEMPLATE_NAMES = frozenset({"account", "evidence", "rule", "window", "user"})
KNOWN_ATTRIBUTES: dict[str, frozenset[str]] = {
    "account": frozenset(
        {
            "account_id",
            "name",
            "tier",
            "plan",
            "mrr",
            "seats",
            "customer_since",
            "renewal_date",
            "owner",
            "timezone",
            "tags",
            "links",
        }
    ),
    "rule": frozenset({"id", "title", "kind", "severity", "priority", "description", "labels"}),
    "window": frozenset({"start", "end"}),
    "user": frozenset({"id"}),
}
TEMPLATE_FIELDS = ("title", "playbook", "summary")
MUTATING_METHODS = frozenset(
    {"append", "clear", "extend", "insert", "pop", "popitem", "remove", "reverse", "setdefault", "sort", "update"}
    | {"add", "discard", "difference_update", "intersection_update", "symmetric_difference_update"}
)
"""Methods of lists, dicts and sets that change them: refused at load (the sandbox refuses them at run
time too). A template that called one would change the evidence of its alert — and of every other
alert sharing the event's properties."""

FILTERS: dict[str, Any] = dict(formatting.TEMPLATE_FILTERS)

TEXT_FILTERS = (
    "capitalize",
    "center",
    "escape",
    "e",
    "forceescape",
    "indent",
    "lower",
    "replace",
    "string",
    "striptags",
    "title",
    "trim",
    "truncate",
    "upper",
    "urlencode",
    "wordwrap",
)
"""Jinja's filters that make text of their value: Jinja's own turn a ``None`` into the text ``None``
(``{{ account.tier|upper }}`` printed ``NONE`` for an account without a tier, and ``rules check``, which
looks for a printed ``None``, passed it). Here a ``None`` goes through them unchanged, so it prints as
nothing at run time and the check refuses it, as it does ``{{ account.tier }}``."""


def _passes_none(func: Any) -> Any:
    # A filter marked jinja_pass_arg (|replace, |truncate, |wordwrap) is given the context or environment first.
    position = 0 if getattr(func, "jinja_pass_arg", None) is None else 1

    @functools.wraps(func)  # keeps jinja_pass_arg
    def text_filter(*args: Any, **kwargs: Any) -> Any:
        return None if args[position] is None else func(*args, **kwargs)

    return text_filter


def _printable(value: Any) -> Any:
    """A value as a template prints it: in words, never a Python repr.

    A whole float prints as the integer it is: counts are kept as floats (``37.0``), and a title written
    ``{{ evidence.value }} errors`` should say "37 errors" (beyond 2**53 as the float: ``1e+300``). Any
    other float prints as a decimal without binary noise or an exponent (a sum of 0.1 and 0.2 is
    ``0.3``, not ``0.30000000000000004``; a min_ratio of 0.00001 is ``0.00001``, not ``1e-05``); true and
    false print as ``yes`` and ``no``; a list or an object (``evidence.sample_event_ids``,
    ``evidence.properties``) as words (``e1, e2``; ``score 6, comment slow``), not ``['e1', 'e2']``.
    """
    kind = type(value)
    if kind is float:
        whole = formatting.whole_number(value)
        if whole is not None:
            return whole
        return _decimal_text(value)
    if kind is bool:
        return "yes" if value else "no"
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return formatting.text(value)
    return value


def _decimal_text(value: float) -> str:
    if not math.isfinite(value) or value.is_integer() or abs(value) < _SMALLEST_DECIMAL:
        return repr(value)  # beyond 2**53, non-finite, or too small for a decimal a person reads
    return format(Decimal(f"{value:.15g}"), "f")


_SMALLEST_DECIMAL = 1e-9


def _none_as_empty(value: Any) -> Any:
    # A missing value prints as nothing at run time, never as "None" (rules check refuses it).
    return "" if value is None else _printable(value)


class _PrintsNoneError(ValueError):
    """A template printed ``None`` in ``check_rendering``."""


def _refuse_none(value: Any) -> Any:
    if value is None:
        raise _PrintsNoneError(
            "prints nothing (a gap in the text) for an account known only by its id; give a default "
            "({{ account.tier or 'unknown tier' }}) or use a filter (|person, |mrr, |facts, |aside)"
        )
    return _printable(value)


# CommonMark syntax a printed value could bring into a playbook: links and images ([…](…)), autolinks and
# HTML (<…>), emphasis (* _), code (`), entities (&amp;) and the backslash itself. Escaped, an NPS comment
# or an account name reads as the text it is; the template's own Markdown is untouched.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<&])")


_LINE_BREAKS = re.compile(r"\s*[\r\n\u2028\u2029]+\s*")


# Block syntax a value opens when the template prints it at the start of a line ("They wrote:\n{{ c }}"):
# a heading (#), a quote (>), a list item (- + 1. 1)), a setext underline (=), a thematic break or a
# fence (- ~), a code block (four spaces). Its first character is escaped (``\#``); leading spaces become one
# space (which opens no block, and keeps the space of `` (…)`` that ``aside`` prints after a name).
_BLOCK_START = re.compile(r"^(?:([#>+\-=~|])|(\d{1,9})([.)]))")


def _markdown_text(value: Any) -> Any:
    """A value printed into a playbook: on one line (a line break in it could start a heading, a quote or a
    numbered step of its own: fake instructions), its Markdown syntax escaped, also what would open a block
    at the start of a line."""
    printed = _none_as_empty(value)
    if not isinstance(printed, str) or type(value) is float:  # a number's "0.3" is not a list item "0."
        return printed
    one_line = _MARKDOWN_SPECIAL.sub(r"\\\1", _LINE_BREAKS.sub(" ", printed))
    text = one_line.lstrip()
    space = " " if len(text) < len(one_line) else ""
    return space + _BLOCK_START.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", text, count=1)


def _empty_in_concat(value: Any) -> Any:
    return "" if value is None else value


def _refused_in_concat(value: Any) -> Any:
    if value is None:
        _refuse_none(value)
    return value


def _environment(undefined: type[jinja2.Undefined], finalize: Any) -> BoundedSandbox:
    env = BoundedSandbox(undefined=undefined, autoescape=False, finalize=finalize)
    env.filters.update(FILTERS)
    env.filters.update({name: _passes_none(env.filters[name]) for name in TEXT_FILTERS})
    # ``"Tier: " ~ account.tier`` joined a None as the text "None": it prints nothing, and the check refuses it
    env.concat_part = _refused_in_concat if finalize is _refuse_none else _empty_in_concat  # type: ignore[method-assign]
    return env


_STRICT = _environment(jinja2.StrictUndefined, _none_as_empty)
_LENIENT = _environment(jinja2.ChainableUndefined, _none_as_empty)
_STRICT_MARKDOWN = _environment(jinja2.StrictUndefined, _markdown_text)
_LENIENT_MARKDOWN = _environment(jinja2.ChainableUndefined, _markdown_text)
_CHECK = _environment(jinja2.StrictUndefined, _refuse_none)


def _attribute_of(node: nodes.Node) -> tuple[str, str] | None:
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
        return node.node.name, node.attr
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.node, nodes.Name)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        return node.node.name, node.arg.value
    return None


def check_template(source: str) -> str:
    """Raise ``ValueError`` naming the problem if ``source`` is not a valid rule template."""
    try:
        tree = _STRICT.parse(source)
        _STRICT.from_string(source)  # compiling finds unknown filters and tests
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise ValueError(f"template error: {exc}") from None
    unknown = meta.find_undeclared_variables(tree) - TEMPLATE_NAMES
    if unknown:
        raise ValueError(
            f"unknown placeholder {', '.join(sorted(unknown))}: templates may use only "
            f"{', '.join(sorted(TEMPLATE_NAMES))}"
        )
    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Getattr) and call.node.attr in MUTATING_METHODS:
            raise ValueError(
                f"calls {call.node.attr}(), which would change what the alert says; templates may only read"
            )
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        pair = _attribute_of(node)
        if pair is None:
            continue
        name, attr = pair
        known = KNOWN_ATTRIBUTES.get(name)
        if known is not None and attr not in known:
            raise ValueError(f"{name} has no field {attr!r}; it has {', '.join(sorted(known))}")
    return source


@lru_cache(maxsize=1024)
def _compiled(source: str, strict: bool, markdown: bool = False) -> jinja2.Template:
    if markdown:
        return (_STRICT_MARKDOWN if strict else _LENIENT_MARKDOWN).from_string(source)
    return (_STRICT if strict else _LENIENT).from_string(source)


def render_template(source: str, context: dict[str, Any], *, markdown: bool = False) -> tuple[str, Exception | None]:
    """Render a checked template; never raises.

    ``markdown=True`` (the playbook, which channels render as Markdown) escapes the Markdown syntax of
    every printed value, so account and event text cannot add links or emphasis.

    Returns the text and, when strict rendering failed, the error (the caller records it in the alert's
    evidence in words, :func:`template_problem`, so the failure is visible, and logs the error); the
    text then comes from lenient rendering, or is the raw source as a last resort.
    """
    if "{" not in source:
        return source, None
    visible = {name: context.get(name, {}) for name in TEMPLATE_NAMES}
    try:
        return _compiled(source, True, markdown).render(visible), None
    except TemplateLimitError as exc:  # lenient rendering would do all that work again: the raw source
        return source, exc
    except Exception as exc:  # noqa: BLE001 — a template must never stop the stream; reported below
        error = exc
    try:
        return _compiled(source, False, markdown).render(visible), error
    except Exception:  # noqa: BLE001 — the raw source is still a useful title; error already reported
        return source, error


_NO_ATTRIBUTE = re.compile(r"^'[^']*' has no attribute '([^']*)'$")
_UNDEFINED = re.compile(r"^'([^']*)' is undefined$")


def template_problem(exc: Exception) -> str:
    """What went wrong rendering a template, in a rule author's words (no Jinja or Python exception names).

    ``rules check`` says it for every template it renders against a sample account."""
    text = " ".join(str(exc).split())
    if isinstance(exc, jinja2.UndefinedError):
        found = _NO_ATTRIBUTE.match(text)
        if found:
            return (
                f"names {found[1]!r}, which is not there (check the spelling, and the kind's evidence and the "
                "account fields in docs/rules.md)"
            )
        found = _UNDEFINED.match(text)
        if found:
            return f"names {found[1]!r}, which is not there: templates may use {', '.join(sorted(TEMPLATE_NAMES))}"
        return f"names something that is not there ({text})"
    if isinstance(exc, TemplateLimitError):
        return f"does too much work ({text}); keep templates to printing and formatting values"
    if isinstance(exc, ZeroDivisionError):
        return "divides by zero for this sample; guard the division (e.g. {% if x %}…{% endif %})"
    if isinstance(exc, TypeError | ValueError):
        return f"cannot be rendered: a value of the wrong kind for what the template does with it ({text})"
    return f"cannot be rendered ({text})" if text else "cannot be rendered"


class _Anything(str):
    """A sample for evidence keys a kind does not fix (``evidence.properties.x``): ``"1"``, with any key."""

    __slots__ = ()

    def __getattr__(self, name: str) -> _Anything:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Anything("1")

    def __getitem__(self, key: object) -> _Anything:  # type: ignore[override]
        return _Anything("1")


_SAMPLE_EVIDENCE: dict[str, dict[str, Any]] = {
    "threshold": {
        "measure": "count",
        "value": 6,
        "threshold": 6,
        "properties": _Anything("1"),
        "events": ["API Error"],
        "events_filtered": False,
        "window_seconds": 604800.0,
    },
    "ratio": {
        "measure": "ratio",
        "value": 0.3,
        "threshold": 0.25,
        "numerator": 12,
        "denominator": 40,
        "events": ["API Request"],
        "events_filtered": True,
        "window_seconds": 3600.0,
        "denominator_events": ["API Request"],
    },
    "spike": {
        "measure": "count",
        "value": 60,
        "threshold": 30,
        "baseline": 10,
        "factor": 6.0,
        "events": ["API Error"],
        "events_filtered": False,
        "window_seconds": 604800.0,
    },
    "drop": {
        "measure": "count",
        "value": 2,
        "threshold": 3,
        "baseline": 6,
        "drop_pct": 66.7,
        "events": ["API Error"],
        "events_filtered": False,
        "window_seconds": 604800.0,
    },
    "inactivity": {
        "measure": "silence",
        "value": "1w",
        "threshold": 604800.0,
        "last_seen": "2026-01-02T13:20:33.818Z",
        "events": ["Login"],
        "events_filtered": False,
    },
    "absence": {
        "measure": "missing follow-up",
        "value": "3d",
        "threshold": 259200.0,
        "started_at": "2026-01-02T09:00:00Z",
        "expected": ["Invoice Paid"],
        "expected_filtered": False,
        "start": ["Invoice Payment Failed"],
    },
    "sequence": {
        "measure": "sequence",
        "value": 2,
        "threshold": 604800.0,
        "elapsed_seconds": 187200.0,
        "steps": [["Invoice Payment Failed"], ["Cancel Page Viewed"]],
    },
    "any": {"measure": "event", "value": "Some Event", "properties": _Anything("1")},
    "score": {
        "measure": "score",
        "value": 33.7,
        "threshold": 40.0,
        "baseline": 33.7,
        "reason": "below",
        "components": {"active_users": 33.3, "feature_breadth": 0.0},
    },
    "composite": {
        "measure": "all_of",
        "value": 2,
        "threshold": 2,
        "rules": {"a": "2026-01-02T09:00:00.000Z", "b": "2026-01-09T17:30:00.000Z"},
    },
    "risk": {
        "measure": "risk",
        "value": 0.41,
        "threshold": 0.35,
        "reasons": ["active users down 62% against the last 8 weeks (3 this week vs 8 a week before)"],
        "contributions": {"active_users_vs_baseline": 0.81},
        "model_trained_at": "2026-01-01T00:00:00.000Z",
    },
}


def unknown_account_view(account_id: str) -> dict[str, Any]:
    """What templates see as ``account`` for an account the directory does not know: the id is its name."""
    return {
        "account_id": account_id,
        "name": account_id,
        "tier": None,
        "plan": None,
        "mrr": None,
        "seats": None,
        "customer_since": None,
        "renewal_date": None,
        "owner": {"name": None, "email": None, "slack": None},
        "timezone": "UTC",
        "tags": [],
        "links": {"crm": None, "admin": None},
    }


SPARSE_ACCOUNT: dict[str, Any] = unknown_account_view("acc-new")


def rule_context(rule: Any) -> dict[str, Any]:
    """What templates see as ``rule``: the same for an alert (``rules.engine``) and the load-time check."""
    return {
        "id": rule.id,
        "title": rule.title,
        "kind": rule.kind,
        "severity": rule.severity,
        "priority": rule.priority,
        "description": rule.description,
        "labels": dict(rule.labels),
    }


def sample_context(rule: Any) -> dict[str, Any]:
    """A context for ``rule`` with a sparse account (only its id known) and sample evidence of its kind."""
    evidence = {"baseline": None, "sample_event_ids": ["e1"], **_SAMPLE_EVIDENCE.get(rule.kind, {"value": 1})}
    return {
        "account": SPARSE_ACCOUNT,
        "evidence": evidence,
        "rule": rule_context(rule),
        "window": {"start": "2026-01-03T00:00:00.000Z", "end": "2026-01-10T00:00:00.000Z"},
        # a per-account rule's alert has no user: ``{{ user.id }}`` renders empty there (docs/rules.md), as at run time
        "user": {"id": "user-1"} if rule.group_by == "user" else {"id": ""},
    }


def check_rendering(rule: Any) -> list[str]:
    """Every template of ``rule`` rendered against a sparse account, strictly; one problem per line.

    A template fails when it names something missing (strict undefined), raises, or would print
    ``None`` — what an account that is not (yet) in preempt.accounts would otherwise show a CSM.
    """
    problems = []
    context = sample_context(rule)
    for field in TEMPLATE_FIELDS:
        source = getattr(rule, field, "") or ""
        if "{" not in source:
            continue
        try:
            _CHECK.from_string(source).render(context)
        except _PrintsNoneError as exc:
            why = str(exc)
            if _prints_none_for_a_known_account(source, context):
                # not the account: a value this kind leaves empty (a threshold's evidence.baseline)
                why = (
                    f"prints nothing even for an account with every field known: a value the {rule.kind} kind "
                    "leaves empty (see the kind's evidence in docs/rules.md); give a default or leave it out"
                )
            problems.append(f"rule {rule.id!r}: field {field!r}: {why}")
        except Exception as exc:  # noqa: BLE001 — every template failure is reported, none raised
            problems.append(f"rule {rule.id!r}: field {field!r}: {template_problem(exc)}")
        else:
            problems += _prints_none_when_sometimes_empty(rule, field, source, context)
    return problems


_SOMETIMES_EMPTY: dict[str, tuple[str, str]] = {
    "spike": ("factor", "the window before had none (a burst from nothing)"),
    "score": ("baseline", "no earlier tick of the window was scored"),
}
"""Evidence a kind leaves empty in some alerts only: a title printing ``{{ evidence.factor }}`` passed the
check with the sample's 6.0 and read "API errors × in the last hour" for the burst from nothing."""


def _prints_none_when_sometimes_empty(rule: Any, field: str, source: str, context: dict[str, Any]) -> list[str]:
    if rule.kind not in _SOMETIMES_EMPTY:
        return []
    key, when = _SOMETIMES_EMPTY[rule.kind]
    try:
        _CHECK.from_string(source).render({**context, "evidence": {**context["evidence"], key: None}})
    except _PrintsNoneError:
        return [
            f"rule {rule.id!r}: field {field!r}: prints nothing when {when}, as the {rule.kind} kind's "
            f"evidence.{key} is then empty; give a default ({{{{ evidence.{key} or 'none' }}}}) or leave it out"
        ]
    except Exception:  # noqa: BLE001 — any other failure was already reported by the sample's rendering
        return []
    return []


_KNOWN_ACCOUNT: dict[str, Any] = {
    **SPARSE_ACCOUNT,
    "name": "Acme",
    "tier": "enterprise",
    "plan": "annual",
    "mrr": 1000.0,
    "seats": 20,
    "customer_since": "2024-01-01",
    "renewal_date": "2027-01-01",
    "owner": {"name": "Dana", "email": "dana@example.com", "slack": "U0123"},
    "tags": ["vip"],
    "links": {"crm": "https://crm.example.com/acme", "admin": "https://admin.example.com/acme"},
}


def _prints_none_for_a_known_account(source: str, context: dict[str, Any]) -> bool:
    try:
        _CHECK.from_string(source).render({**context, "account": _KNOWN_ACCOUNT})
    except _PrintsNoneError:
        return True
    except Exception:  # noqa: BLE001 — only whether None is printed matters here
        return False
    return False
