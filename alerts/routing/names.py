"""Which names a routing file may use — in templates, matchers, ``group_by`` and ``equal`` —
checked when the file loads (``RoutingConfig.load``, ``preempt routes check``).

Matchers: an alert field (``severity``), ``alertname`` (Alertmanager's name for the rule id),
``labels.<any>``, ``evidence.<any>``, ``account.<a field of the account contract>``, or a bare
label name as in Alertmanager. A bare name one typo away from an alert field (``severty``) and a
dotted name outside those roots (``acount.tier``) are errors: they would silently never match.

Templates render with an undefined-tolerant sandbox (a missing value renders empty, never
crashes a notification), so a typo such as ``{{ account.ownr.slack }}`` would silently send to
nobody. ``unknown_names`` walks the template once at load and names every variable that is not
in the template context and every attribute that the alert or account contract does not have.

Closed structures come from the contract models (``schemas.alert.Alert``, ``schemas.account.Account``);
open ones (labels, evidence, tags, free-form values) accept any attribute.
"""

from __future__ import annotations

import difflib
from typing import Any, get_args, get_origin

from jinja2 import Environment, nodes
from pydantic import BaseModel

from alerts.routing.matchers import ALERT_FIELDS, ALIASES
from alerts.templates import template_context
from schemas.account import Account
from schemas.alert import Alert, AlertAccount

# A structure is either None (open: anything goes below it) or a mapping of known names to structures.
_DICT_METHODS = frozenset({"items", "keys", "values", "get"})
_PARSER = Environment(autoescape=False)  # noqa: S701 - parsing only; nothing is rendered here


def _structure(annotation: object) -> dict[str, Any] | None:
    """Known attribute names of a model annotation, ``None`` for open ones (dicts, extra="allow")."""
    for arg in (annotation, *get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            if arg.model_config.get("extra") == "allow":
                return None
            return {name: _structure(field.annotation) for name, field in arg.model_fields.items()}
        if get_origin(arg) is dict:
            return None
    return None


def _account_structure() -> dict[str, Any]:
    known = _structure(Account) or {}
    for name in AlertAccount.model_fields:  # emit may copy account fields the Account record spells the same
        known.setdefault(name, None)
    return known


ACCOUNT = _account_structure()
ALERT: dict[str, Any] = {**(_structure(Alert) or {}), "account": ACCOUNT}


def _roots() -> dict[str, dict[str, Any] | None]:
    names = set(template_context(()))
    known: dict[str, dict[str, Any] | None] = {"alert": ALERT, "account": ACCOUNT}
    return {name: known.get(name) for name in names}


def _chain(node: nodes.Node) -> tuple[str, list[str]] | None:
    """``account.owner.slack`` → ("account", ["owner", "slack"]); None when not rooted at a name."""
    attrs: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            attrs.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            attrs.append(node.arg.value)
            node = node.node
        elif isinstance(node, nodes.Getitem):
            attrs.append("[]")
            node = node.node
        elif isinstance(node, nodes.Name):
            return node.name, list(reversed(attrs))
        else:
            return None


def _check_path(root: str, structure: dict[str, Any] | None, attrs: list[str]) -> str | None:
    path = root
    for attr in attrs:
        if structure is None:
            return None
        if attr == "[]":
            return None
        if attr not in structure:
            if attr in _DICT_METHODS:
                return None
            known = ", ".join(sorted(structure))
            return f"{path}.{attr} is not a field of {path} (it has: {known})"
        structure = structure[attr]
        path = f"{path}.{attr}"
    return None


def unknown_names(source: str) -> list[str]:
    """Problems with the names ``source`` uses; empty when every name is known.

    Raises ``jinja2.TemplateSyntaxError`` when ``source`` is not a template (checked elsewhere first).
    """
    tree = _PARSER.parse(source)
    roots = _roots()
    scope: dict[str, dict[str, Any] | None] = dict(roots)
    # Loop variables over `alerts` are alerts; other locals (set, for over anything else) are open.
    for loop in tree.find_all(nodes.For):
        is_alerts = isinstance(loop.iter, nodes.Name) and loop.iter.name == "alerts"
        for target in loop.target.find_all(nodes.Name) if not isinstance(loop.target, nodes.Name) else [loop.target]:
            scope.setdefault(target.name, ALERT if is_alerts else None)
    for assign in tree.find_all(nodes.Assign):
        for target in (
            assign.target.find_all(nodes.Name) if not isinstance(assign.target, nodes.Name) else [assign.target]
        ):
            scope.setdefault(target.name, None)
    allowed = set(scope) | set(_PARSER.globals) | {"loop", "caller", "varargs", "kwargs"}
    unknown = sorted({n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"} - allowed)
    problems = [f"unknown variable {name!r} (templates see: {', '.join(sorted(roots))})" for name in unknown]
    seen: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        chain = _chain(node)
        if chain is None or chain[0] not in scope:
            continue
        problem = _check_path(chain[0], scope[chain[0]], chain[1])
        if problem is not None and problem not in seen:
            seen.add(problem)
            problems.append(problem)
    return problems


_OPEN_ROOTS = ("labels.", "evidence.")


def matcher_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a matcher (or group_by / equal) name, or ``None`` when it can."""
    if name in ALERT_FIELDS or name in ALIASES:
        return None
    if name.startswith(_OPEN_ROOTS):
        return None if name.split(".", 1)[1] else f"{name!r} names no label or evidence field"
    if name.startswith("account."):
        return _check_path("account", ACCOUNT, name.split(".")[1:])
    fields = sorted(ALERT_FIELDS | set(ALIASES))
    if "." in name:
        return (
            f"unknown name {name!r}: a dotted name starts with account., labels. or evidence. "
            f"(alert fields: {', '.join(fields)})"
        )
    # A bare name is a label (Alertmanager's `owner="team-A"` stays valid); one typo away from an
    # alert field, it is far likelier a typo than a label.
    close = difflib.get_close_matches(name, fields, n=1, cutoff=0.8)
    if close:
        return f"unknown name {name!r}: did you mean {close[0]!r}? (a label of that name is written labels.{name})"
    return None


def shadowed_field_note(name: str) -> str | None:
    """A note for a bare matcher name that reads a label but is spelled like an account or evidence field
    (``tier="enterprise"`` never matches an alert whose *account* is enterprise), or ``None``.

    Not an error: Alertmanager configs use bare label names (``owner="team-A"``) and must load as they are.
    """
    if "." in name or name in ALERT_FIELDS or name in ALIASES:
        return None
    for root, fields in (("account", ACCOUNT), ("evidence", _EVIDENCE_FIELDS)):
        if name in fields and name not in _STRUCTURED:
            return f"{name!r} reads the label {name} (labels.{name}); the {root}'s {name} is {root}.{name}"
    return None


_EVIDENCE_FIELDS = frozenset({"measure", "value", "threshold", "baseline"})
# Not one value a matcher could mean (``owner="team-A"`` is Alertmanager's own example of a label).
_STRUCTURED = frozenset({"owner", "links", "tags"})
