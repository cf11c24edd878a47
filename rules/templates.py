"""Title and playbook placeholders, rendered in a Jinja2 sandbox.

A template sees exactly four names: ``account``, ``evidence``, ``rule`` and ``window``. Load
time rejects syntax errors, any other name, and unknown attributes of ``account``, ``rule`` and
``window`` (``evidence`` differs per kind, so its keys are free). Rendering never raises: a
value that is missing at run time renders through a lenient fallback, and the stream goes on.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment

TEMPLATE_NAMES = frozenset({"account", "evidence", "rule", "window"})
KNOWN_ATTRIBUTES: dict[str, frozenset[str]] = {
    "account": frozenset({"account_id", "name", "tier", "plan", "mrr", "owner", "timezone", "tags", "links"}),
    "rule": frozenset({"id", "title", "kind", "severity", "priority", "description", "labels"}),
    "window": frozenset({"start", "end"}),
}

_STRICT = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
_LENIENT = SandboxedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False)


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
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from None
    unknown = meta.find_undeclared_variables(tree) - TEMPLATE_NAMES
    if unknown:
        raise ValueError(
            f"unknown placeholder {', '.join(sorted(unknown))}: templates may use only "
            f"{', '.join(sorted(TEMPLATE_NAMES))}"
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
def _compiled(source: str, strict: bool) -> jinja2.Template:
    return (_STRICT if strict else _LENIENT).from_string(source)


def render_template(source: str, context: dict[str, Any]) -> tuple[str, str | None]:
    """Render a checked template; never raises.

    Returns the text and, when strict rendering failed, why (the caller records it in the alert's
    evidence so the failure is visible); the text then comes from lenient rendering, or is the
    raw source as a last resort.
    """
    if "{" not in source:
        return source, None
    visible = {name: context.get(name, {}) for name in TEMPLATE_NAMES}
    try:
        return _compiled(source, True).render(visible), None
    except Exception as exc:  # noqa: BLE001 — a template must never stop the stream; reported below
        error = f"{type(exc).__name__}: {exc}"
    try:
        return _compiled(source, False).render(visible), error
    except Exception:  # noqa: BLE001 — the raw source is still a useful title; error already reported
        return source, error
