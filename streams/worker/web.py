"""The rules worker's operational web surface: ``/metrics``, ``/healthz``, ``/readyz``, consumer lag.

``create_app`` calls :func:`register_web` once. The implementation is shared with the notifier in
``streams/runtime/ops_web.py``; this module fixes the Faust-sensor prefix (``preempt_rules_*``).
"""

from __future__ import annotations

import faust

from streams.runtime import ops_web
from streams.runtime.settings import Settings

FAUST_METRICS_PREFIX = "preempt_rules"


def register_web(app: faust.App, *, lag_interval_s: float = 15.0, settings: Settings | None = None) -> None:
    """Add ``/metrics`` (Faust's sensor as ``preempt_rules_*`` + every ``preempt_*``), ``/healthz``,
    ``/readyz``, the consumer-lag timer and (given ``settings``) the broker watch to ``app``."""
    ops_web.register_web(
        app, faust_metrics_prefix=FAUST_METRICS_PREFIX, lag_interval_s=lag_interval_s, settings=settings
    )
