"""Request bodies are parsed in worker threads: the event loop answers other requests meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from streams.ingest import app as ingest_app
from streams.ingest import parse_lanes, tracking_routes
from streams.ingest.gate import CONFIG
from streams.ingest.parse_lanes import (
    LANE_FAILURES_TO_THREADS,
    PARSE_LANES,
    LargeBodySlot,
    ParseLanes,
    ParseUnavailable,
)
from streams.ingest.payload import BodyError
from tests.unit.streams.ingest.conftest import AUTH, BASIC, ClientFactory, event, track
from tests.unit.streams.ingest.test_large_batches import large_batch

HOLD_S = 5.0  # how long a held parse waits to be released (on the event loop, it could not be)


class HeldParse:
    """Wraps a parse function: the first call waits until ``release`` (at most ``HOLD_S``), and says how it ended."""

    def __init__(self, parse: Callable[..., Any], order: list[str]) -> None:
        self.parse = parse
        self.order = order
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.entered.is_set():
            self.entered.set()
            self.order.append("parse released" if self.release.wait(HOLD_S) else "parse not released")
        return self.parse(*args, **kwargs)


@pytest.mark.parametrize(
    ("route", "module", "name", "body", "headers", "ids", "small_after"),
    [
        ("/v1/batch", tracking_routes, "parse_tracking", large_batch(), BASIC, ["m0", "m1", "m2", "m3", "m4"], False),
        ("/v1/events", ingest_app, "parse_body", orjson.dumps([event("e1"), event("e2")]), AUTH, ["e1", "e2"], True),
    ],
)
async def test_other_requests_are_answered_while_a_body_is_parsed(
    client_factory: ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
    route: str,
    module: Any,
    name: str,
    body: bytes,
    headers: dict[str, str],
    ids: list[str],
    small_after: bool,
) -> None:
    """While a body's parse is held, /healthz is answered (on the event loop, the held parse blocked it until it
    gave up), and so is a small batch beside a large body (over the body limit). Ordinary bodies are parsed one at
    a time, in order, as on the loop: a small batch after an ordinary body waits for its parse. Once released, the
    body is answered and stored as before. (Large bodies in threads: a held parse does not pickle.)"""
    client, sink = await client_factory(ingest_max_body_bytes=16 * 1024, ingest_parse_large_bodies_in_processes=False)
    order: list[str] = []
    held = HeldParse(getattr(module, name), order)
    monkeypatch.setattr(module, name, held)
    posted = asyncio.ensure_future(client.post(route, data=body, headers=headers))
    assert await asyncio.to_thread(held.entered.wait, HOLD_S)
    probe = await client.get("/healthz")
    order.append(f"probe {probe.status}")
    small = asyncio.ensure_future(
        client.post("/v1/batch", data=orjson.dumps({"batch": [track("small")]}), headers=BASIC)
    )
    if not small_after:
        order.append(f"small batch {(await small).status}")
    held.release.set()
    response = await posted
    if small_after:
        order.append(f"small batch {(await small).status}")
    if small_after:
        assert order == ["probe 200", "parse released", "small batch 200"]
    else:
        assert order == ["probe 200", "small batch 200", "parse released"]
    assert response.status in (200, 202), await response.text()
    stored = [orjson.loads(value)["event_id"] for _, value in sink.records]
    assert stored == ([*ids, "small"] if small_after else ["small", *ids])


async def test_ordinary_bodies_are_parsed_one_at_a_time_in_order_large_ones_beside_them() -> None:
    """Ordinary bodies queue in one thread (in the order they came, as on the loop); a large body does not wait
    for them, and neither runs on the event loop's thread."""
    threads = ParseLanes(large_slots=1, large_in_processes=False)
    loop_thread = threading.get_ident()
    first_started, first_may_end = threading.Event(), threading.Event()
    ran: list[tuple[str, bool]] = []

    def parse(name: str, wait: threading.Event | None = None) -> str:
        ran.append((name, threading.get_ident() != loop_thread))
        if wait is not None:
            first_started.set()
            assert wait.wait(HOLD_S)
        return name

    try:
        first = asyncio.ensure_future(threads.run(lambda: parse("first", first_may_end), slot=None))
        second = asyncio.ensure_future(threads.run(lambda: parse("second"), slot=None))
        assert await asyncio.to_thread(first_started.wait, HOLD_S)
        given_back: list[str] = []
        slot = LargeBodySlot(lambda: given_back.append("slot"))
        assert await threads.run(lambda: parse("large"), slot=slot) == "large"
        slot.let_go()  # the handler, answered
        await asyncio.sleep(0)  # the parse's own let-go is called on the loop once its thread is done
        assert given_back == ["slot"]
        assert not second.done()
        first_may_end.set()
        assert (await first, await second) == ("first", "second")
    finally:
        await threads.shutdown()
    assert ran == [("first", True), ("large", True), ("second", True)]


async def test_a_parse_error_reaches_the_handler() -> None:
    """What a parse raises (a body that is not JSON…) is raised to the caller, as it was on the loop."""
    threads = ParseLanes(large_slots=1)

    def refuse() -> None:
        raise BodyError("the body is not valid JSON")

    try:
        with pytest.raises(BodyError, match="not valid JSON"):
            await threads.run(refuse, slot=None)
    finally:
        await threads.shutdown()


async def test_a_cancelled_handler_keeps_its_large_body_slot_until_its_parse_thread_ends(
    client_factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler cancelled while its large batch is parsed (its client went away under aiohttp's
    handler_cancellation; every handler at a stop) cannot stop the parse thread: the large-body slot stays taken
    until that thread ends, so another large batch meanwhile is 429 busy. Before, the cancelled handler gave the
    slot back at once and the next large body was read and parsed beside the first, past the limit (a flood of
    aborted uploads: memory and CPU unbounded). Once the parse ends, the slot is free again."""
    client, sink = await client_factory(
        ingest_max_body_bytes=16 * 1024,
        ingest_large_bodies_in_flight=1,
        ingest_parse_large_bodies_in_processes=False,  # a held parse does not pickle; the slot logic is the same
        handler_cancellation=True,
    )
    order: list[str] = []
    held = HeldParse(tracking_routes.parse_tracking, order)
    monkeypatch.setattr(tracking_routes, "parse_tracking", held)
    slots = client.server.app[CONFIG].large_bodies
    with capture_logs() as logs:
        first = asyncio.ensure_future(client.post("/v1/batch", data=large_batch(prefix="a"), headers=BASIC))
        assert await asyncio.to_thread(held.entered.wait, HOLD_S)
        first.cancel()  # the client goes away: aiohttp closes the connection and cancels the handler
        with contextlib.suppress(asyncio.CancelledError):
            await first
        for _ in range(200):  # bounded: until the handler's cancellation reached the app
            if any("cut off" in entry["event"] for entry in logs):
                break
            await asyncio.sleep(0.01)
    assert any("cut off" in entry["event"] for entry in logs), "the handler was not cancelled"
    assert slots.taken == 1, "the cancelled handler gave its slot back while its body was still being parsed"
    second = await client.post("/v1/batch", data=large_batch(prefix="b"), headers=BASIC)
    assert second.status == 429, await second.text()
    assert (await second.json())["code"] == "busy"
    held.release.set()
    for _ in range(500):  # bounded: until the parse thread ended
        if not slots.taken:
            break
        await asyncio.sleep(0.01)
    assert slots.taken == 0, "the slot did not come back once the parse ended"
    third = await client.post("/v1/batch", data=large_batch(prefix="c"), headers=BASIC)
    assert third.status == 200, await third.text()
    assert order == ["parse released"]
    assert [orjson.loads(value)["event_id"] for _, value in sink.records] == [f"c{i}" for i in range(5)]


async def test_a_large_body_is_parsed_in_a_process_of_its_own_and_its_slot_comes_back() -> None:
    """A large body's parse runs in another process (a thread still held the interpreter lock, and the event
    loop with it, for the seconds one orjson/json call took on millions of tiny values); its slot is given back
    once that process is done and the handler let go."""
    threads = ParseLanes(large_slots=1)
    given_back: list[str] = []
    slot = LargeBodySlot(lambda: given_back.append("slot"))
    try:
        assert await threads.run(os.getpid, slot=slot) != os.getpid()
        assert await threads.run(os.getpid, slot=None) == os.getpid()  # ordinary bodies: a thread of this process
    finally:
        await threads.shutdown()
    slot.let_go()
    await asyncio.sleep(0)
    assert given_back == ["slot"]


async def test_a_parse_process_that_dies_is_parse_unavailable_and_the_next_body_is_parsed() -> None:
    """A parse process that dies (killed for memory) fails only its own request, ParseUnavailable (answered 503,
    which the SDKs retry); the lane starts afresh for the next body, and both slots are given back."""
    threads = ParseLanes(large_slots=1)
    given_back: list[str] = []
    try:
        dying = LargeBodySlot(lambda: given_back.append("dying"))
        with pytest.raises(ParseUnavailable):
            await threads.run(functools.partial(os._exit, 1), slot=dying)
        dying.let_go()
        fine = LargeBodySlot(lambda: given_back.append("fine"))
        assert await threads.run(os.getpid, slot=fine) != os.getpid()
        fine.let_go()
    finally:
        await threads.shutdown()
    await asyncio.sleep(0)
    assert given_back == ["dying", "fine"]


async def test_a_parse_that_could_not_run_is_answered_503_with_retry_after(
    client_factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ParseUnavailable becomes 503 parse_failed with Retry-After on both routes: the sender retries the body."""
    client, sink = await client_factory()

    async def unavailable(*_args: Any, **_kwargs: Any) -> Any:
        raise ParseUnavailable("the body could not be parsed (its parse process died); retry later")

    monkeypatch.setattr(client.server.app[PARSE_LANES], "run", unavailable)
    for route, body, headers in (
        ("/v1/batch", orjson.dumps({"batch": [track("a")]}), BASIC),
        ("/v1/events", orjson.dumps([event("e1")]), AUTH),
    ):
        response = await client.post(route, data=body, headers=headers)
        assert (response.status, response.headers.get("Retry-After")) == (503, "5"), await response.text()
    assert sink.records == []


class RefusingContext:
    """The fork server's ``multiprocessing`` context, whose processes cannot be started the first ``times`` times
    (``None``: never), as when ``fork`` is refused for memory or the pod's pids limit, or the fork server is gone."""

    def __init__(self, error: BaseException, times: int | None = None) -> None:
        self.real = parse_lanes._process_context()
        self.error = error
        self.left = times

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def Process(self, *args: Any, **kwargs: Any) -> Any:
        if self.left is None or self.left > 0:
            if self.left is not None:
                self.left -= 1
            raise self.error
        return self.real.Process(*args, **kwargs)


def refuse_processes(monkeypatch: pytest.MonkeyPatch, error: BaseException, times: int | None = None) -> None:
    """Lanes built from now on get a ``RefusingContext``."""
    context = RefusingContext(error, times)
    monkeypatch.setattr(parse_lanes, "_process_context", lambda: context)


async def test_a_lane_whose_processes_cannot_start_falls_back_to_threads_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The app's start runs one parse process (so the first large body does not start the fork server on the event
    loop); when processes cannot be started (no /dev/shm, fork refused) the start says so in a WARNING and large
    bodies are parsed in threads: taken, not all refused 503 until the pod is redeployed."""
    refuse_processes(monkeypatch, OSError("no space left for the fork server's socket"))
    lanes = ParseLanes(large_slots=1)
    try:
        with capture_logs() as logs:
            await lanes.start()
        slot = LargeBodySlot(lambda: None)
        assert await lanes.run(os.getpid, slot=slot) == os.getpid()  # parsed, in a thread of this process
        slot.let_go()
    finally:
        await lanes.shutdown()
    assert [(e["log_level"], "cannot start" in e["event"], "no space" in e["error"]) for e in logs] == [
        ("warning", True, True)
    ]


def _slow_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


async def test_a_parse_process_that_dies_fails_only_its_own_body() -> None:
    """Two large bodies parsed at once, each in its process: the one whose process dies is ParseUnavailable (503),
    the other is parsed. Before, both shared one pool, and a process dying broke the pool under every body in it."""
    lanes = ParseLanes(large_slots=2)
    given_back: list[str] = []
    try:
        slow = LargeBodySlot(lambda: given_back.append("slow"))
        dying = LargeBodySlot(lambda: given_back.append("dying"))
        parsed = asyncio.ensure_future(lanes.run(functools.partial(_slow_pid, 1.0), slot=slow))
        await asyncio.sleep(0.3)  # the slow body's process has started
        with pytest.raises(ParseUnavailable):
            await asyncio.wait_for(lanes.run(functools.partial(os._exit, 1), slot=dying), timeout=HOLD_S)
        assert await asyncio.wait_for(parsed, timeout=HOLD_S) != os.getpid()
        slow.let_go()
        dying.let_go()
    finally:
        await asyncio.wait_for(lanes.shutdown(), timeout=HOLD_S)
    await asyncio.sleep(0)
    assert sorted(given_back) == ["dying", "slow"]


def _fork_servers() -> list[int]:
    """Pids of this process's children that are ``multiprocessing`` fork servers (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/stat", "rb") as stat:
                parent = int(stat.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if parent == os.getpid() and b"multiprocessing.forkserver" in cmdline.read():
                    found.append(int(entry))
    return found


def _state(pid: int) -> bytes:
    """The process's state letter in /proc (``Z``: ended, not yet reaped)."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        return stat.read().rsplit(b")", 1)[1].split()[0]


async def test_a_fork_server_that_died_is_started_again_for_the_next_body_off_the_event_loop() -> None:
    """Killing the fork server (OOM killer, an operator) does not stop large bodies: the next one's process starts
    a new fork server, in the lane's thread, and is parsed. The event loop keeps running meanwhile."""
    lanes = ParseLanes(large_slots=1)
    try:
        await lanes.start()
        servers = _fork_servers()
        assert len(servers) == 1, servers
        os.kill(servers[0], signal.SIGKILL)
        for _ in range(50):  # bounded: the kernel ends it within milliseconds (a zombie until multiprocessing reaps it)
            if _state(servers[0]) == b"Z":
                break
            await asyncio.sleep(0.02)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.ensure_future(tick())
        slot = LargeBodySlot(lambda: None)
        try:
            assert await asyncio.wait_for(lanes.run(os.getpid, slot=slot), timeout=HOLD_S * 2) != os.getpid()
        finally:
            ticking.cancel()
        slot.let_go()
        assert ticks > 0
        assert _fork_servers() not in ([], servers)
    finally:
        await asyncio.wait_for(lanes.shutdown(), timeout=HOLD_S)


async def test_a_parse_process_that_cannot_start_is_parse_unavailable_and_the_next_body_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process that cannot be started for a body (fork refused, the fork server gone: OSError, EOFError) is
    ParseUnavailable (503, retried by the SDKs), not an unhandled error (500); the next body gets a process."""
    refuse_processes(monkeypatch, BlockingIOError(11, "Resource temporarily unavailable"), times=1)
    lanes = ParseLanes(large_slots=1)
    given_back: list[str] = []
    try:
        refused = LargeBodySlot(lambda: given_back.append("refused"))
        with capture_logs() as logs, pytest.raises(ParseUnavailable):
            await lanes.run(os.getpid, slot=refused)
        refused.let_go()
        fine = LargeBodySlot(lambda: given_back.append("fine"))
        assert await asyncio.wait_for(lanes.run(os.getpid, slot=fine), timeout=HOLD_S) != os.getpid()
        fine.let_go()
    finally:
        await asyncio.wait_for(lanes.shutdown(), timeout=HOLD_S)
    await asyncio.sleep(0)
    assert given_back == ["refused", "fine"]
    assert [(e["log_level"], "Resource temporarily unavailable" in e["error"]) for e in logs] == [("error", True)]


async def test_a_process_lane_that_breaks_again_and_again_parses_in_threads_from_then_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process lane that cannot start a process for body after body (a fork server that cannot start, a pids
    limit reached for good) is given up after LANE_FAILURES_TO_THREADS failures in a row, with a WARNING: the next
    large bodies are parsed in threads of this process, not all answered 503 until a redeploy."""
    refuse_processes(monkeypatch, BlockingIOError(11, "Resource temporarily unavailable"))
    lanes = ParseLanes(large_slots=1)
    try:
        with capture_logs() as logs:
            for _ in range(LANE_FAILURES_TO_THREADS):
                slot = LargeBodySlot(lambda: None)
                with pytest.raises(ParseUnavailable):
                    await lanes.run(os.getpid, slot=slot)
                slot.let_go()
            slot = LargeBodySlot(lambda: None)
            assert await asyncio.wait_for(lanes.run(os.getpid, slot=slot), timeout=HOLD_S) == os.getpid()
            slot.let_go()
    finally:
        await asyncio.wait_for(lanes.shutdown(), timeout=HOLD_S)
    assert [e["log_level"] for e in logs] == ["error"] * LANE_FAILURES_TO_THREADS + ["warning"]
    assert "threads" in logs[-1]["event"]
