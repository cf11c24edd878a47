"""The shared bookkeeping of the kinds that keep a bucketed measure per key over sliding windows
(``threshold`` over one window, ``spike`` over the current and the previous one)."""

from __future__ import annotations

from typing import Any

from rules import windows
from rules.kinds.base import EvaluatorBase, RuleState, remember_sample, sweep_stale
from rules.measures import compile_measure
from rules.predicates import compile_where
from schemas.event import Event


class SlidingMeasureEvaluator(EvaluatorBase):
    """Matches an event, adds its measure contribution to the key's buckets and prunes them."""

    def __init__(self, rule: Any) -> None:
        self.rule = rule
        self._per_user = rule.group_by == "user"  # key_of, inlined in on_event
        self.event_names = rule.match.event_names
        # the engine routes only events named by the match (``event_names``): the ``where`` is what is left
        self._where = compile_where(rule.match)
        self._measure = compile_measure(rule.measure)
        self._spec = windows.BucketSpec.sliding(rule.window)

    def _record(self, state: RuleState, event: Event, windows_kept: int) -> tuple[str, dict[str, Any], int] | None:
        """Add ``event`` to its key's buckets, keeping the last ``windows_kept`` windows.

        Returns the key, its state and the event's bucket index, or None when the event does not count.
        """
        if self._where is not None and not self._where(event):
            return None
        key = event.user_id if self._per_user else ""
        contribution = self._measure.contribution(event)
        if key is None or contribution is None:
            return None
        spec = self._spec
        index = spec.index(event.ts)
        oldest_kept = index - windows_kept * spec.per_window + 1
        keyed: dict[str, Any] | None = state["k"].get(key)
        if keyed is None:
            sweep_stale(state["k"], lambda k: not k["b"] or k["b"][-1][0] < oldest_kept)
            keyed = state["k"][key] = {"b": [], "s": []}
        windows.add(keyed["b"], index, contribution, self._measure.kind)
        windows.prune(keyed["b"], oldest_kept)
        remember_sample(keyed["s"], event)
        return key, keyed, index
