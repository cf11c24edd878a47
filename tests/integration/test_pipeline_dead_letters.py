"""Dead letters and duplicates in the rules worker: bad records go to the DLQ with their reason, nothing is lost."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable

from kafka import KafkaProducer

from schemas.decoder import Reason
from schemas.event import format_ts
from streams.runtime.dead_letters import REASON, SOURCE_TOPIC
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import ManagedProcess, consume_records
from tests.integration.pipeline_support import metric_sum, wait_for_metric

GOOD, BAD, DUPLICATES = 1000, 100, 50


def _good(i: int, now: float) -> bytes:
    body = {
        "event_id": f"good-{i}",
        "event": "Report Exported",
        "account_id": f"acct-{i % 20}",
        "timestamp": format_ts(now - 3600 + i),
    }
    return json.dumps(body).encode()


def _bad(reason: Reason, i: int, now: float) -> bytes:
    """A record that the decoder rejects for ``reason``."""
    base = {"event_id": f"bad-{i}", "event": "Login", "account_id": "acct-bad", "timestamp": format_ts(now)}
    if reason is Reason.EMPTY:
        return b""
    if reason is Reason.TOO_LARGE:
        return json.dumps({**base, "properties": {"blob": "x" * 40_000}}).encode()
    if reason is Reason.INVALID_UTF8:
        return b'{"event": "\xff\xfe"}'
    if reason is Reason.INVALID_JSON:
        return b'{"event_id": '
    if reason is Reason.NOT_AN_OBJECT:
        return b"[1, 2, 3]"
    if reason is Reason.UNKNOWN_FIELD:
        return json.dumps({**base, "colour": "blue"}).encode()
    if reason is Reason.MISSING_FIELD:
        return json.dumps({k: v for k, v in base.items() if k != "account_id"}).encode()
    if reason is Reason.INVALID_FIELD:
        return json.dumps({**base, "timestamp": "yesterday"}).encode()
    if reason is Reason.FUTURE_TIMESTAMP:
        return json.dumps({**base, "timestamp": format_ts(now + 86400)}).encode()
    if reason is Reason.TOO_DEEP:
        return json.dumps({**base, "properties": {"x": json.loads("[" * 40 + "]" * 40)}}).encode()
    if reason is Reason.TOO_MANY_PROPERTIES:
        return json.dumps({**base, "properties": {"ids": list(range(1001))}}).encode()
    if reason is Reason.STRING_TOO_LONG:
        return json.dumps({**base, "properties": {"note": "x" * 9000}}).encode()
    if reason is Reason.CONTROL_CHARACTER:
        return json.dumps({**base, "event_id": "bad\nid"}).encode()
    if reason is Reason.NUMBER_OUT_OF_RANGE:
        return json.dumps({**base, "properties": {"n": 2**60}}).encode()
    raise AssertionError(f"no bad record for {reason}")


def test_good_bad_and_duplicate_records_are_each_accounted_for(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    producer: KafkaProducer,
) -> None:
    """1,000 good, 100 bad (every reason), 50 duplicates: 1,000 accepted, 100 dead-lettered by reason, 50 dropped."""
    settings = settings_factory(event_time_only=True, worker_web_port=free_port())
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    now = time.time()
    reasons = list(Reason)
    bad = [(reasons[i % len(reasons)], _bad(reasons[i % len(reasons)], i, now)) for i in range(BAD)]
    for i in range(GOOD):
        producer.send(names.events, key=f"acct-{i % 20}".encode(), value=_good(i, now))
        if i % (GOOD // BAD) == 0:
            _, value = bad[i // (GOOD // BAD)]
            producer.send(names.events, key=b"acct-bad", value=value, headers=[("source", b"test")])
        if i % (GOOD // DUPLICATES) == 1:
            producer.send(names.events, key=f"acct-{(i - 1) % 20}".encode(), value=_good(i - 1, now))
    producer.flush()

    worker = process_factory(["preempt", "worker"], settings, name="worker")
    worker.wait_for_log("rules worker ready", timeout_s=90)
    samples = wait_for_metric(settings.worker_web_port, "preempt_events_total", GOOD + BAD + DUPLICATES, 90)

    assert samples['preempt_events_total{outcome="accepted"}'] == GOOD
    assert samples['preempt_events_total{outcome="dead_lettered"}'] == BAD
    assert samples['preempt_events_total{outcome="duplicate"}'] == DUPLICATES
    assert samples['preempt_duplicate_events_total{source="producer"}'] == DUPLICATES  # copies sent twice
    assert samples['preempt_duplicate_events_total{source="read_again"}'] == 0
    assert metric_sum(samples, "preempt_events_dead_lettered_total") == BAD
    sent_by_reason = Counter(str(reason) for reason, _ in bad)
    for reason, n in sent_by_reason.items():
        assert samples[f'preempt_events_dead_lettered_total{{reason="{reason}"}}'] == n

    letters = consume_records(kafka_bootstrap, names.events_dlq, BAD, timeout_s=30, idle_s=1.0)
    assert len(letters) == BAD
    headers = [dict(letter.headers) for letter in letters]
    assert Counter(h[REASON].decode() for h in headers) == sent_by_reason
    assert all(h[SOURCE_TOPIC].decode() == names.events and h["source"] == b"test" for h in headers)
    assert Counter(letter.value or b"" for letter in letters) == Counter(value for _, value in bad)
