"""``spike``: the measure in the current ``window`` is ≥ ``factor`` × the window before it, and ≥ ``min``.

Both windows slide together (bucketed, see ``rules.windows``); an empty previous window counts
as 0, so a burst from nothing fires as soon as it reaches ``min``.
"""

from __future__ import annotations

from collections.abc import Mapping

from rules import windows
from rules.comparisons import lowered
from rules.findings import Finding
from rules.kinds.base import samples_since
from rules.kinds.sliding import SlidingMeasureEvaluator, SlidingState
from rules.models import SpikeRule
from schemas.event import Event


class SpikeEvaluator(SlidingMeasureEvaluator):
    """Bucketed values over two windows per key; compared on every contributing event."""

    takes_cooldowns = True

    rule: SpikeRule

    def _matched(self, state: SlidingState, event: Event, cooldowns: Mapping[str, float] | None) -> list[Finding]:
        recorded = self._record(state, event, windows_kept=2)
        if recorded is None:
            return []
        key, keyed, index = recorded
        spec = self._spec
        kind = self._measure.kind
        current_oldest = index - spec.per_window + 1
        # _record kept exactly the two windows: previous = the buckets before current_oldest
        previous, current = windows.split_totals(keyed.buckets, current_oldest, kind)
        rule = self.rule
        if (
            current < self._min_reached
            or current < lowered(rule.factor * previous)
            or self.cooled(cooldowns, key, event.ts)
        ):
            return []
        start = spec.start(current_oldest)
        return [
            self.event_finding(
                event,
                key,
                start,
                {
                    "measure": rule.measure,
                    "value": current,
                    # The bar the window had to reach: factor × previous, but never below min (a small
                    # or negative previous window — a sum of refunds — made it read "alert at -10").
                    "threshold": max(rule.min, round(rule.factor * previous, 6)),
                    "baseline": previous,
                    "factor": round(current / previous, 3) if previous > 0 else None,
                    **self._counted,
                    "sample_event_ids": samples_since(keyed.samples, start),
                },
            )
        ]
