"""RangeReader: a side consumer that failed to start is not kept; a closed reader reads nothing."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaError

from streams.runtime.range_reader import RangeReader
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port


def _reader() -> RangeReader:
    settings = Settings(broker=f"kafka://127.0.0.1:{free_port()}")  # nothing listens there
    return RangeReader(settings, "preempt.alerts", timeout_s=3.0)


@pytest.mark.timeout(30)
async def test_a_side_consumer_that_failed_to_start_is_started_afresh_at_the_next_read() -> None:
    """The first read's start fails (no broker): that error is raised, and so is the next read's own —
    never the AttributeError of a consumer kept unstarted, which crashed the notifier's watchdog timer."""
    reader = _reader()
    for _ in range(2):
        with pytest.raises((KafkaError, TimeoutError)):
            await reader.holds_no_record(0, 0, 5)
    assert not reader.consumer_started
    await reader.close()


async def test_a_closed_reader_reads_nothing_and_starts_no_consumer() -> None:
    """After close (the app stopping), a probe still running gets an incomplete empty read, not a new consumer."""
    reader = _reader()
    await reader.close()
    assert await reader.read_range(0, 0, 5) == ([], False)
    assert await reader.holds_no_record(0, 0, 5) is False
    assert not reader.consumer_started
