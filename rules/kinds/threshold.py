"""``threshold``: the measure over the last ``window`` reaches ``min``."""

from __future__ import annotations

from collections.abc import Mapping

from rules import windows
from rules.findings import Finding
from rules.kinds.base import samples_since
from rules.kinds.sliding import SlidingMeasureEvaluator, SlidingState
from rules.models import ThresholdRule
from schemas.event import Event


class ThresholdEvaluator(SlidingMeasureEvaluator):
    """Keeps bucketed measure values per key; checks the window on every contributing event."""

    takes_cooldowns = True

    rule: ThresholdRule

    def _matched(self, state: SlidingState, event: Event, cooldowns: Mapping[str, float] | None) -> list[Finding]:
        recorded = self._record(state, event, windows_kept=1)
        if recorded is None:
            return []
        key, keyed, index = recorded
        spec = self._spec
        oldest = index - spec.per_window + 1
        value = windows.total(keyed.buckets, oldest, index, self._measure.kind)
        rule = self.rule
        if value < self._min_reached or self.cooled(cooldowns, key, event.ts):
            return []
        start = spec.start(oldest)
        return [
            self.event_finding(
                event,
                key,
                start,
                {
                    "measure": rule.measure,
                    "value": value,
                    "threshold": rule.min,
                    "baseline": None,
                    "properties": event.properties,
                    **self._counted,  # the latest event's, for the rule's summary sentence
                    "sample_event_ids": samples_since(keyed.samples, start),
                },
            )
        ]
