"""`preempt events dead-letters` reads verdicts and original values back from the real DLQ topic."""

from __future__ import annotations

import json
from collections.abc import Callable

from click.testing import CliRunner
from kafka import KafkaProducer

from schemas.decoder import Rejection, decode_event
from schemas.rfc3339 import parse_rfc3339
from streams.cli.events import events
from streams.runtime.dead_letters import dead_letter_record
from streams.runtime.settings import Settings
from streams.runtime.testing import settings_env
from streams.runtime.topics import TopicNames, ensure_topics

NOW = parse_rfc3339("2026-11-23T06:00:00Z")


def test_dead_letters_are_listed_with_reason_source_and_value(
    settings_factory: Callable[..., Settings], producer: KafkaProducer
) -> None:
    """Three dead letters on the DLQ are read back; --reason and --account filter them."""
    settings = settings_factory()
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    bad = [(b"acme", b'{"event": "x"}'), (b"acme", b"{oops"), (b"globex", b'{"event_id": "1"}')]
    for offset, (key, value) in enumerate(bad):
        rejection = decode_event(value, max_bytes=32768, max_future_skew=300, now=NOW)
        assert isinstance(rejection, Rejection)
        letter = dead_letter_record(
            key=key,
            value=value,
            headers=[("content-type", b"application/json")],
            reason=str(rejection.reason),
            detail=rejection.detail,
            field=rejection.field,
            source_topic=names.events,
            partition=0,
            offset=offset,
            at=NOW,
        )
        producer.send(names.events_dlq, key=letter.key, value=letter.value, headers=letter.headers)
    producer.flush()

    env = settings_env(settings)
    runner = CliRunner()
    everything = runner.invoke(events, ["dead-letters", "--json"], env=env)
    assert everything.exit_code == 0, everything.output
    rows = [json.loads(line) for line in everything.stdout.splitlines()]
    assert sorted(r["preempt.dlq.reason"] for r in rows) == ["invalid_json", "missing_field", "missing_field"]

    filtered = runner.invoke(events, ["dead-letters", "--reason", "missing_field", "--account", "acme"], env=env)
    assert filtered.exit_code == 0, filtered.output
    assert f"{names.events}[0]@0 key=acme: missing_field (event_id): event_id is required" in filtered.stdout
    assert '{"event": "x"}' in filtered.stdout
    assert "globex" not in filtered.stdout


def test_limit_shows_the_newest_letters_across_partitions_oldest_first(
    settings_factory: Callable[..., Settings], producer: KafkaProducer
) -> None:
    """--limit N lists the N letters dead-lettered last, whatever partition they are on, oldest first;
    --account also finds a letter keyed otherwise by the account_id in its value."""
    settings = settings_factory()
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    # Old letters on partition 1, then the newest ones on partitions 0 and 2 (record timestamps say when).
    plan = [(1, 1_000 + i, f"old-{i}", None) for i in range(5)]
    plan += [(2, 5_000, "new-0", None), (0, 6_000, "new-1", None), (2, 7_000, "new-2", b"someone-else")]
    for partition, ts_ms, event_id, key in plan:
        value = json.dumps({"event_id": event_id, "event": "x", "account_id": "Ünïcode Co"}).encode()
        letter = dead_letter_record(
            key=key if key is not None else "Ünïcode Co".encode(),
            value=value,
            headers=[],
            reason="invalid_field" if key is not None else "missing_field",
            detail="d",
            field=None,
            source_topic=names.events,
            partition=partition,
            offset=0,
            at=ts_ms / 1000,
        )
        producer.send(
            names.events_dlq,
            key=letter.key,
            value=letter.value,
            headers=letter.headers,
            partition=partition,
            timestamp_ms=ts_ms,
        )
    producer.flush()

    env = settings_env(settings)
    newest = CliRunner().invoke(events, ["dead-letters", "--limit", "3", "--json"], env=env)
    assert newest.exit_code == 0, newest.output
    assert [json.loads(json.loads(line)["value"])["event_id"] for line in newest.stdout.splitlines()] == [
        "new-0",
        "new-1",
        "new-2",
    ]
    mine = CliRunner().invoke(events, ["dead-letters", "--account", "Ünïcode Co", "--json"], env=env)
    assert mine.exit_code == 0, mine.output
    assert len(mine.stdout.splitlines()) == len(plan)


def test_a_filter_matching_nothing_says_what_the_topic_holds(
    settings_factory: Callable[..., Settings], producer: KafkaProducer
) -> None:
    """--reason with a typo ('unknwon_field') shows none and a note naming the reasons on the topic, so a typo
    does not read as 'no such dead letters'."""
    settings = settings_factory()
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    for offset, reason in enumerate(["unknown_field", "unknown_field", "invalid_json"]):
        letter = dead_letter_record(
            key=b"acme",
            value=b"{}",
            headers=[],
            reason=reason,
            detail="d",
            field=None,
            source_topic=names.events,
            partition=0,
            offset=offset,
            at=NOW,
        )
        producer.send(names.events_dlq, key=letter.key, value=letter.value, headers=letter.headers)
    producer.flush()
    result = CliRunner().invoke(events, ["dead-letters", "--reason", "unknwon_field"], env=settings_env(settings))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "0 dead letters shown",
        "note: none matches the filter; the topic holds 3: invalid_json (1), unknown_field (2)",
    ]
