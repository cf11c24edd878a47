"""Counting a kafka-python producer's records from send to acknowledgement.

The commands that publish many records (``preempt simulate``, ``preempt publish --file``) count
with one :class:`DeliveryTally` and close their producer with :func:`close_producer`, so that a
broker that goes away mid-run ends them with one line saying how many records got through, not
with the traceback of the final flush.
"""

from __future__ import annotations

import contextlib
from typing import Any

from kafka.errors import KafkaError


class DeliveryTally:
    """Records handed to the producer, and how each ended: acknowledged, refused, or not yet.

    Each count has one writer (``sent`` the sending thread, the others kafka-python's sender
    thread, which runs the callbacks), so no lock is needed.
    """

    def __init__(self) -> None:
        self.sent = 0  # records handed to the producer
        self.acknowledged = 0  # … that Kafka acknowledged
        self.failed = 0  # … that Kafka refused (or the producer gave up on)

    def watch(self, future: Any) -> None:
        """Count one record the producer took; ``future`` is what ``KafkaProducer.send`` returned."""
        self.sent += 1
        future.add_callback(self._on_ack)
        future.add_errback(self._on_error)

    def _on_ack(self, _metadata: Any) -> None:
        self.acknowledged += 1

    def _on_error(self, _exc: BaseException) -> None:
        self.failed += 1

    @property
    def unacknowledged(self) -> int:
        """Records sent that Kafka has not acknowledged (refused, or still waiting after the close)."""
        return self.sent - self.acknowledged

    def shortfall(self, stopped: BaseException | None = None) -> str | None:
        """The command's one line when not everything got through (``None`` when it did): what
        stopped the sending (``stopped``, a send the producer refused), and how many of the records
        sent Kafka did not acknowledge."""
        if stopped is None and not self.unacknowledged:
            return None
        problems = [f"Kafka stopped taking records ({stopped})"] if stopped is not None else []
        if self.unacknowledged:
            problems.append(
                f"Kafka did not acknowledge {self.unacknowledged} of the {self.sent} records sent "
                f"({self.failed} refused, the rest not in time)"
            )
        else:
            problems.append(f"the {self.sent} records sent before were acknowledged")
        return f"{'; '.join(problems)}; check that the broker is up, then run the command again"


def close_producer(producer: Any, timeout_s: float | None) -> bool:
    """Flush what is buffered and close; ``False`` when Kafka did not acknowledge every record within
    ``timeout_s`` (a broker gone for good). Never raises: the records left are the tally's to say."""
    try:
        producer.flush(timeout=timeout_s)
    except KafkaError:  # KafkaTimeoutError: records still unacknowledged
        # close() drops kafka-python's exit hook (which would flush again, with a traceback),
        # then fails on the same records
        with contextlib.suppress(KafkaError):
            producer.close(timeout=0)
        return False
    producer.close(timeout=timeout_s)
    return True
