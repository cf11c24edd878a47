"""A stand-in for kafka-python's KafkaProducer in unit tests: records sends, fails on demand."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class FakeFuture:
    """Stands in for kafka-python's FutureRecordMetadata: acknowledged or failed at once as told, or
    ``pending`` for ever (a broker that went away)."""

    def __init__(self, error: BaseException | None, pending: bool = False) -> None:
        self.error = error
        self.pending = pending

    def add_callback(self, callback: Callable[[Any], Any]) -> FakeFuture:
        if self.error is None and not self.pending:
            callback(None)  # kafka-python passes the RecordMetadata
        return self

    def add_errback(self, callback: Callable[[BaseException], Any]) -> FakeFuture:
        if self.error is not None and not self.pending:
            callback(self.error)
        return self


class FakeProducer:
    """Records what would have been sent; ``fail_with`` makes every send fail asynchronously."""

    def __init__(self, fail_with: BaseException | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail_with = fail_with
        self.flushed = 0
        self.closed = False
        self._lock = threading.Lock()

    def send(self, topic: str, *, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> FakeFuture:
        with self._lock:
            self.sent.append({"topic": topic, "key": key, "value": value, "headers": headers})
        return FakeFuture(self.fail_with)

    def flush(self, timeout: float | None = None) -> None:
        self.flushed += 1

    def close(self, timeout: float | None = None) -> None:
        self.closed = True
