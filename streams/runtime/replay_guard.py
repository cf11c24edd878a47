"""Refuse a signed request sent twice: the signatures seen while their timestamps can still pass.

Shared by HTTP ingest (``X-Preempt-Signature``, streams/ingest/auth.py) and the notifier's
``POST /slack/actions`` (``X-Slack-Signature``, alerts/feedback.py): a signature is an HMAC of the
timestamp and the body, so the same signature means the same request, captured and replayed inside
the tolerance window. Per process: with several replicas behind a load balancer, a replay that
reaches another replica inside the window is not recognised (docs/operations.md).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


class ReplayGuardFull(Exception):  # noqa: N818 - a condition, not an error of the client
    """The replay guard holds ``capacity`` live signatures: the request cannot be checked now (429)."""


@dataclass(slots=True)
class ReplayGuard:
    """The valid signatures seen while they can still pass the timestamp check, to refuse a second use.

    A signature is the HMAC of timestamp and body, so the same MAC means the same request. Each is
    kept until its timestamp leaves the tolerance window (after that the timestamp check refuses
    it anyway). Memory is bounded by ``capacity``: when that many live signatures are held, a new
    one raises ``ReplayGuardFull`` (the app answers 429 with Retry-After) rather than forgetting
    one, which would let it be replayed. Size it above the signed requests one process receives in
    the window (2 × tolerance); only holders of the secret can fill it.
    """

    capacity: int
    setting: str = "PREEMPT_INGEST_REPLAY_CACHE_SIZE"  # named when full: what bounds ``capacity``
    _expiry: dict[bytes, float] = field(default_factory=dict)
    _heap: list[tuple[float, bytes]] = field(default_factory=list)

    def first_use(self, mac: bytes, expires_at: float, now: float) -> bool:
        """True the first time ``mac`` is seen (and remembers it until ``expires_at``); False afterwards."""
        self._purge(now)
        if mac in self._expiry:
            return False
        if len(self._expiry) >= self.capacity:
            raise ReplayGuardFull(f"{self.capacity} signatures are held ({self.setting})")
        self._expiry[mac] = expires_at
        heapq.heappush(self._heap, (expires_at, mac))
        return True

    def _purge(self, now: float) -> None:
        while self._heap and self._heap[0][0] < now:
            _, mac = heapq.heappop(self._heap)
            self._expiry.pop(mac, None)

    def __len__(self) -> int:
        return len(self._expiry)
