"""The publisher SDK: local validation, keys, headers, failure reporting and thread safety."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from schemas.errors import EventRejectedError, PublishError
from schemas.rfc3339 import parse_rfc3339
from streams.sdk.publisher import Publisher
from tests.unit.streams.fake_producer import FakeFuture, FakeProducer

NOW = parse_rfc3339("2026-11-23T06:00:00Z")


@pytest.fixture
def publisher_factory() -> Callable[..., tuple[Publisher, FakeProducer]]:
    """Factory: a Publisher on a FakeProducer with a fixed clock; keyword overrides go to Publisher."""

    def factory(**kwargs: Any) -> tuple[Publisher, FakeProducer]:
        producer = FakeProducer(kwargs.pop("fail_with", None))
        return Publisher(topic="t.events", producer=producer, clock=lambda: NOW, **kwargs), producer

    return factory


def test_track_sends_a_valid_event_keyed_by_account(publisher_factory: Callable[..., Any]) -> None:
    """track() sends the canonical JSON keyed by account_id with a content-type header."""
    publisher, producer = publisher_factory()
    event_id = publisher.track("acme", "Report Exported", user_id="u-42", properties={"format": "csv"})
    [record] = producer.sent
    assert record["topic"] == "t.events"
    assert record["key"] == b"acme"
    assert record["headers"] == [("content-type", b"application/json")]
    assert orjson.loads(record["value"]) == {
        "event_id": event_id,
        "event": "Report Exported",
        "account_id": "acme",
        "user_id": "u-42",
        "timestamp": "2026-11-23T06:00:00.000000Z",
        "properties": {"format": "csv"},
    }


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (datetime(2026, 11, 23, 7, 0, tzinfo=timezone(timedelta(hours=1))), "2026-11-23T07:00:00.000000+01:00"),
        ("2026-11-23T05:00:00Z", "2026-11-23T05:00:00Z"),
        (NOW - 0.5, "2026-11-23T05:59:59.500000Z"),
    ],
)
def test_timestamps_may_be_datetimes_strings_or_epoch_seconds(
    publisher_factory: Callable[..., Any], timestamp: Any, expected: str
) -> None:
    """An aware datetime, an RFC 3339 string or epoch seconds all become an RFC 3339 timestamp."""
    publisher, producer = publisher_factory()
    publisher.track("acme", "Login", timestamp=timestamp)
    assert orjson.loads(producer.sent[0]["value"])["timestamp"] == expected


@pytest.mark.parametrize(
    ("kwargs", "reason", "field"),
    [
        ({"account_id": ""}, "invalid_field", "account_id"),
        ({"event": "x" * 129}, "invalid_field", "event"),
        ({"properties": ["not", "an", "object"]}, "invalid_field", "properties"),
        ({"properties": {"when": {1, 2}}}, "invalid_field", "properties"),
        ({"timestamp": datetime(2026, 11, 23, 6, 0)}, "invalid_field", "timestamp"),
        ({"timestamp": "yesterday"}, "invalid_field", "timestamp"),
        ({"timestamp": NOW + 3600}, "future_timestamp", "timestamp"),
        ({"properties": {"blob": ["x" * 8000] * 5}}, "too_large", None),
        ({"properties": {"blob": "x" * 40_000}}, "string_too_long", "properties"),
    ],
)
def test_bad_events_raise_at_once_and_send_nothing(
    publisher_factory: Callable[..., Any], kwargs: dict[str, Any], reason: str, field: str | None
) -> None:
    """A bad event raises EventRejectedError naming the reason and field, and nothing is sent."""
    publisher, producer = publisher_factory()
    args: dict[str, Any] = {"account_id": "acme", "event": "Login"} | kwargs
    with pytest.raises(EventRejectedError) as caught:
        publisher.track(**args)
    assert (caught.value.reason, caught.value.field) == (reason, field)
    assert producer.sent == []


@pytest.mark.parametrize("field", ["event_id", "account_id", "user_id", "event"])
def test_a_lone_surrogate_in_an_id_names_that_field(publisher_factory: Callable[..., Any], field: str) -> None:
    """Half an emoji ("\ud83d") cannot be encoded as UTF-8: the rejection names the field that holds it (it
    named none, and said "event is not JSON-serialisable" whichever id it was)."""
    publisher, producer = publisher_factory()
    args: dict[str, Any] = {"account_id": "acme", "event": "Login", "user_id": "u-1", "event_id": "e-1"}
    with pytest.raises(EventRejectedError) as caught:
        publisher.track(**(args | {field: "x\ud83d"}))
    assert (caught.value.reason, caught.value.field) == ("invalid_field", field)
    assert f"{field} is not JSON-serialisable" in str(caught.value)
    assert producer.sent == []


def test_publish_takes_what_track_takes_mappings_and_str_subclasses(publisher_factory: Callable[..., Any]) -> None:
    """publish(dict) with an OrderedDict as properties was refused "properties must be a JSON object, got an
    object", and a StrEnum event name "event must be a string, got a string"; track() took both."""
    from collections import OrderedDict
    from enum import StrEnum

    class Events(StrEnum):
        LOGIN = "Login"

    publisher, producer = publisher_factory()
    publisher.publish(
        OrderedDict(
            event_id="e-1",
            event=Events.LOGIN,
            account_id="acme",
            timestamp="2026-11-23T06:00:00Z",
            properties=OrderedDict(plan="pro"),
            context=OrderedDict(app="web"),
        )
    )
    assert orjson.loads(producer.sent[0]["value"]) == {
        "event_id": "e-1",
        "event": "Login",
        "account_id": "acme",
        "timestamp": "2026-11-23T06:00:00Z",
        "properties": {"plan": "pro"},
        "context": {"app": "web"},
    }


def test_str_subclasses_such_as_enums_are_accepted(publisher_factory: Callable[..., Any]) -> None:
    """An event name given as a StrEnum member is sent as its plain string value."""
    from enum import StrEnum

    class Events(StrEnum):
        LOGIN = "Login"

    publisher, producer = publisher_factory()
    publisher.track("acme", Events.LOGIN)
    assert orjson.loads(producer.sent[0]["value"])["event"] == "Login"


def test_delivery_failures_surface_on_flush(publisher_factory: Callable[..., Any]) -> None:
    """Events Kafka refused make flush() raise PublishError with the count, then the count resets."""
    publisher, _ = publisher_factory(fail_with=RuntimeError("broker down"))
    publisher.track("acme", "Login")
    publisher.track("acme", "Login")
    with pytest.raises(PublishError, match="broker down") as caught:
        publisher.flush()
    assert caught.value.failed == 2
    publisher.flush()


def test_context_manager_closes_and_rejects_later_sends(publisher_factory: Callable[..., Any]) -> None:
    """Leaving the with-block flushes and closes; track() afterwards raises PublishError."""
    publisher, producer = publisher_factory()
    with publisher as events:
        events.track("acme", "Login")
    assert producer.closed
    assert producer.flushed == 1
    with pytest.raises(PublishError, match="closed"):
        publisher.track("acme", "Login")


def test_many_threads_can_share_one_publisher(publisher_factory: Callable[..., Any]) -> None:
    """Eight threads tracking 250 events each send all 2,000 with distinct ids and an exact count."""
    publisher, producer = publisher_factory()
    ids: list[str] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(250):
            event_id = publisher.track(f"acct-{n}", "Login", properties={"i": i})
            with lock:
                ids.append(event_id)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert publisher.sent == len(producer.sent) == 2000
    assert len(set(ids)) == 2000


def test_flush_timeout_is_a_publish_error(publisher_factory: Callable[..., Any]) -> None:
    """A flush that Kafka does not complete in time raises PublishError, not a kafka-python error."""
    from kafka.errors import KafkaTimeoutError

    publisher, producer = publisher_factory()

    def slow_flush(timeout: float | None = None) -> None:
        raise KafkaTimeoutError("Timeout after waiting for 1 secs.")

    producer.flush = slow_flush
    publisher.track("acme", "Login")
    with pytest.raises(PublishError, match="did not complete"):
        publisher.flush(timeout=1)


def test_a_close_that_kafka_does_not_complete_in_time_is_a_publish_error_after_one_wait(
    publisher_factory: Callable[..., Any],
) -> None:
    """A close whose flush times out (a broker gone) raised kafka-python's KafkaTimeoutError from the producer's
    own close, after waiting the timeout a second time; it raises PublishError saying how many of the events
    sent Kafka did not acknowledge, after one wait."""
    from kafka.errors import KafkaTimeoutError

    publisher, producer = publisher_factory()
    waits: list[float | None] = []

    def gone(timeout: float | None = None) -> None:
        waits.append(timeout)
        if timeout:
            raise KafkaTimeoutError("Timeout waiting for future")

    producer.flush = gone
    producer.send = lambda *args, **kwargs: FakeFuture(None, pending=True)
    publisher.track("acme", "Login")
    with pytest.raises(PublishError, match=r"Kafka did not acknowledge 1 of the 1 event sent to t.events") as caught:
        publisher.close(timeout=2)
    assert caught.value.failed == 1
    assert waits == [2]


def test_a_broker_nobody_answers_at_is_the_sdks_own_error_naming_the_address() -> None:
    """The constructor raised kafka-python's KafkaTimeoutError ("Unable to bootstrap"): a caller catching the
    SDK's errors (PreemptError) missed it. It is a BrokerUnavailableError naming where it looked."""
    from schemas.errors import BrokerUnavailableError, PreemptError
    from streams.runtime.testing import free_port

    where = f"127.0.0.1:{free_port()}"
    with pytest.raises(BrokerUnavailableError) as caught:
        Publisher(bootstrap_servers=where, bootstrap_timeout_ms=300)
    assert isinstance(caught.value, PreemptError)
    assert f"cannot reach Kafka at {where}" in str(caught.value)


def test_from_settings_says_within_the_probe_time_that_no_broker_answers() -> None:
    """from_settings waited 30 s, then raised kafka-python's KafkaTimeoutError; it probes first (as the CLI
    does) and raises BrokerUnavailableError naming the broker."""
    from schemas.errors import BrokerUnavailableError
    from streams.runtime.settings import Settings
    from streams.runtime.testing import free_port

    port = free_port()
    settings = Settings(broker=f"kafka://127.0.0.1:{port}", broker_probe_seconds=1)
    with pytest.raises(BrokerUnavailableError) as caught:
        Publisher.from_settings(settings)
    assert f"cannot reach Kafka at 127.0.0.1:{port} within 1 s" in str(caught.value)
