"""Dead letters of rejected items are written in the background: no answer waits for them, a stop drains them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import orjson
from structlog.testing import capture_logs

from streams.ingest.dead_letter_writer import CANCELLED_WAIT_SECONDS, FAILED_LOG, DeadLetterWriter, letter_bytes
from streams.runtime.dead_letters import DeadLetterRecord, ingest_dead_letter_record
from tests.unit.streams.ingest.conftest import AUTH, BASIC, ClientFactory, MemorySink, counter, event, track


def failed() -> float:
    return counter("preempt_ingest_dead_letters_total", outcome="failed")


def written() -> float:
    return counter("preempt_ingest_dead_letters_total", outcome="written")


def letter() -> DeadLetterRecord:
    return ingest_dead_letter_record(
        key=None,
        value=b'{"event":"x"}',
        content_type="application/json",
        reason="missing_field",
        detail="event_id is required",
        field="event_id",
        route="/v1/events",
        api_key_source="web",
        at=0.0,
    )


async def test_a_hanging_dead_letter_topic_does_not_delay_the_answer(client_factory: ClientFactory) -> None:
    """With the dead-letter write hanging, /v1/events and /v1/batch answer at once (not after the Kafka timeout);
    the accepted events are stored; at shutdown the hung writes are given up, counted failed and logged."""
    client, sink = await client_factory(ingest_kafka_timeout_seconds=2.0)
    sink.dead_letter_delay_s = 3600.0
    before = failed()
    started = time.monotonic()
    events = await client.post("/v1/events", data=orjson.dumps([event("a"), {"event": "x"}]), headers=AUTH)
    tracked = await client.post("/v1/batch", data=orjson.dumps({"batch": [track(context={})]}), headers=BASIC)
    elapsed = time.monotonic() - started
    assert (events.status, tracked.status) == (202, 200)
    assert elapsed < 1.0, f"the answers took {elapsed:.2f} s: they waited for the dead-letter topic"
    assert [key for key, _ in sink.records] == [b"acme"]
    with capture_logs() as logs:
        await client.close()  # aiohttp cleanup: the writer drains before the sink stops
    assert failed() == before + 2
    errors = [entry for entry in logs if entry["event"] == FAILED_LOG]
    assert sorted((e["route"], e["dead_letters"]) for e in errors) == [("/v1/batch", 1), ("/v1/events", 1)]
    assert all("did not acknowledge within 2 s" in e["error"] for e in errors)
    assert sink.calls[-1] == "stop"


async def test_a_stop_drains_the_pending_writes_before_the_sink_stops(client_factory: ClientFactory) -> None:
    """A slow dead-letter write still pending when the app stops is finished and counted, then the sink stops."""
    client, sink = await client_factory()
    sink.dead_letter_delay_s = 0.3
    before = written()
    response = await client.post("/v1/events", data=orjson.dumps({"event": "x"}), headers=AUTH)
    assert response.status == 422
    assert sink.dead_letters == []
    await client.close()
    assert len(sink.dead_letters) == 1
    assert written() == before + 1
    assert sink.calls == ["dead_letters", "stop"]


async def test_letters_past_the_pending_bound_are_counted_failed_at_once() -> None:
    """While the pending writes hold max_pending_bytes, new letters are not kept in memory: counted failed, logged."""
    sink = MemorySink()
    sink.dead_letter_delay_s = 3600.0
    one = letter()
    writer = DeadLetterWriter(sink, timeout_s=0.2, max_pending_bytes=letter_bytes(one) + 1)
    before = failed()
    with capture_logs() as logs:
        writer.submit([one], source="web", route="/v1/events")
        writer.submit([letter()], source="web", route="/v1/batch")
    assert writer.pending == 1
    assert failed() == before + 1
    [error] = logs
    assert (error["event"], error["route"], error["log_level"]) == (FAILED_LOG, "/v1/batch", "error")
    assert "bytes of dead letters wait for Kafka" in error["error"]
    await writer.drain()
    assert failed() == before + 2  # the hung write timed out
    assert writer.pending == 0


class StubbornSink(MemorySink):
    """A sink whose dead-letter write ignores the first cancellation (a client that does not honour a timeout)."""

    async def send_dead_letters(self, letters: Sequence[DeadLetterRecord]) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(3600)


async def test_the_drain_gives_up_on_a_write_that_outlives_its_timeout_and_counts_it() -> None:
    """A write still running when the drain's bound is over is cancelled, counted failed and logged."""
    writer = DeadLetterWriter(StubbornSink(), timeout_s=0.2)
    writer.submit([letter()], source="web", route="/v1/events")
    before = failed()
    with capture_logs() as logs:
        await asyncio.wait_for(writer.drain(), timeout=5)
    assert writer.pending == 0
    assert failed() == before + 1
    errors = [e for e in logs if e["event"] == FAILED_LOG]
    assert [(e["route"], e["dead_letters"], e["error"]) for e in errors] == [
        ("/v1/events", 1, "ingest stopped before Kafka acknowledged")
    ]


class DeafSink(MemorySink):
    """A sink whose dead-letter write ignores every cancellation until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def send_dead_letters(self, letters: Sequence[DeadLetterRecord]) -> None:
        while not self.release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await self.release.wait()


async def test_the_drain_does_not_wait_for_ever_on_a_write_that_ignores_its_cancellation() -> None:
    """A write that does not end when cancelled does not hold the shutdown: the drain returns about
    CANCELLED_WAIT_SECONDS after cancelling it, with one ERROR saying its letters may be lost."""
    sink = DeafSink()
    writer = DeadLetterWriter(sink, timeout_s=0.2)
    writer.submit([letter(), letter()], source="web", route="/v1/events")
    before_failed, before_written = failed(), written()
    started = time.monotonic()
    try:
        with capture_logs() as logs:
            await asyncio.wait_for(writer.drain(), timeout=3)
    finally:
        sink.release.set()  # let the write end, so the test leaves no task behind (the loop could not close)
    elapsed = time.monotonic() - started
    assert elapsed < 0.2 + CANCELLED_WAIT_SECONDS + 0.5, f"the drain took {elapsed:.2f} s"
    [error] = [e for e in logs if e["log_level"] == "error"]
    assert "their letters may be lost" in error["event"]
    assert (error["writes"], error["dead_letters"]) == (1, 2)
    # Counted failed when given up (the alert on failed dead letters sees them), and only then: the
    # write that ends after all counts nothing more.
    assert (failed(), written()) == (before_failed + 2, before_written)
    assert writer.pending == 0
    await asyncio.sleep(0.05)
    assert (failed(), written()) == (before_failed + 2, before_written)


async def test_letters_submitted_after_the_drain_are_counted_failed() -> None:
    """Once the writer drained (the app is stopping), a late submit is counted failed and logged, never dropped."""
    writer = DeadLetterWriter(MemorySink(), timeout_s=1.0)
    await writer.drain()
    before = failed()
    with capture_logs() as logs:
        writer.submit([letter(), letter()], source="web", route="/v1/track")
    assert writer.pending == 0
    assert failed() == before + 2
    assert [(e["event"], e["error"]) for e in logs] == [(FAILED_LOG, "ingest is stopping")]
