"""The WARNING line of a request ingest refused whole: one per kind of refusal per interval, never a flood.

``app.log_refusal`` hands every refused request here. The first refusal of a kind — its status,
code and the API key's name (None when the key was missing or wrong) — is logged at once; the same
kind again within ``interval_s`` is held back and counted, and the next line of that kind says how
many were (``repeated``). ``preempt_ingest_requests_total{status}`` still counts every one.

Without it, anyone who can reach the port (the browser SDKs need it public) wrote one WARNING per
request with a wrong key or a made-up path, and a misconfigured SDK one per batch it retried: the
lines that matter, and the disk, went under. The kinds are bounded (our codes, aiohttp's reasons,
the configured key names); the route and User-Agent, which the sender chooses, are not part of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from streams.runtime.logs import get_logger

log = get_logger(__name__)

REFUSAL_LOG_INTERVAL_SECONDS = 10.0
MAX_KINDS = 1000  # kinds remembered (forgotten all at once past it: bounded memory)

Kind = tuple[int, str, str | None]  # (status, code, key name)


class RefusalLog:
    """Logs refused requests, at most one line per kind per ``interval_s`` (one per ingest app)."""

    def __init__(
        self, interval_s: float = REFUSAL_LOG_INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[Kind, tuple[float, int]] = {}  # kind -> (when last logged, held back since)

    def refused(self, status: int, code: str, source: str | None, **fields: object) -> bool:
        """Log one refused request (``fields``: route, method, reason, user_agent), unless its kind was
        logged less than ``interval_s`` ago; True when a line was written."""
        kind = (status, code, source)
        now = self._clock()
        seen = self._last.get(kind)
        if seen is not None and now - seen[0] < self.interval_s:
            self._last[kind] = (seen[0], seen[1] + 1)
            return False
        if seen is None and len(self._last) >= MAX_KINDS:
            self._last.clear()
        held = seen[1] if seen is not None else 0
        self._last[kind] = (now, 0)
        extra = {"repeated": held} if held else {}
        log.warning("ingest request refused", status=status, code=code, source=source, **fields, **extra)
        return True
