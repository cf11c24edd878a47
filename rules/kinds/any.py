"""``any``: every matching event fires (subject to the rule's cooldown, none by default)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from rules.findings import Finding
from rules.kinds.base import EvaluatorBase, RuleState
from rules.models import AnyRule
from rules.predicates import Matcher, compile_where
from schemas.event import Event, format_ts


@dataclass
class AnyState(RuleState):
    """Nothing: the engine's cooldown is the only memory."""

    @classmethod
    def decode(cls, doc: Any, version: int) -> Self:
        return cls()  # version 1 and 2 alike: {}

    def to_version_1(self) -> dict[str, Any]:
        return {}


class AnyEvaluator(EvaluatorBase[AnyState]):
    """Stateless: the engine's cooldown is the only memory."""

    takes_cooldowns = True
    state_type = AnyState

    rule: AnyRule

    def __init__(self, rule: AnyRule) -> None:
        self.rule = rule
        self.event_names = rule.match.event_names
        # the engine routes only events named by the match (``event_names``): the ``where`` is what is left
        self._where = compile_where(rule.match)

    def routed(self, name: str) -> tuple[Matcher | None, Callable[..., list[Finding]]]:
        return self._where, self._matched

    def on_event(self, state: AnyState, event: Event, cooldowns: Mapping[str, float] | None = None) -> list[Finding]:
        if self._where is not None and not self._where(event):
            return []
        return self._matched(state, event, cooldowns)

    def _matched(self, state: AnyState, event: Event, cooldowns: Mapping[str, float] | None) -> list[Finding]:
        """``on_event`` for an event that passed the ``where``."""
        key = self.key_of(event)
        if key is None or self.cooled(cooldowns, key, event.ts):
            return []
        return [
            self.event_finding(
                event,
                key,
                event.ts,
                # one episode per event: two events in the same millisecond are two alerts
                episode=f"{format_ts(event.ts)}/{event.event_id}",
                evidence={
                    "measure": "event",
                    "value": event.event,
                    "threshold": None,
                    "baseline": None,
                    "properties": event.properties,
                    "sample_event_ids": [event.event_id],
                },
            )
        ]
