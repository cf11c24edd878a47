"""A real local HTTP server that speaks Slack's incoming-webhook and Web API protocols, for integration tests.

Point slack_sdk at it (``Settings(slack_api_url=server.api_url)`` or ``webhook_url=server.webhook_url("x")``).
It runs aiohttp in a thread of its own, so it answers while a test blocks (consuming Kafka, waiting for a
child process). Every request is recorded with its monotonic time, path, target (channel or webhook
name), JSON body and headers. Replies are scriptable per target: ``script("C1", Reply.rate_limited(2.0))``
queues one reply per request (``Reply.slow(3)`` answers late, for timeouts; ``Reply.hang()`` takes the
request and never answers; ``Reply.proxy_page()`` answers an HTML page, as a proxy in between does);
``always("C2", Reply.slack_error("channel_not_found"))`` answers every request.
Block Kit payloads over Slack's limits are refused with ``invalid_blocks``, as Slack does.

Use the ``slack_server`` fixture: ``from alerts.testing.slack_server import slack_server  # noqa: F401``.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

# How Slack's webhook endpoint answers each error code (the Web API answers HTTP 200 with ok=false).
HANG_SECONDS = 24 * 3600.0
SHUTDOWN_TIMEOUT_SECONDS = 2.0  # requests still unanswered at stop (Reply.hang) are dropped after this
# What Slack takes as a button's url: http(s), no white space, quotes or angle brackets, ASCII only.
_VALID_URL = re.compile(r"https?://[!#-;=?-~]+")
_WEBHOOK_STATUS = {"channel_not_found": 404, "channel_is_archived": 410, "invalid_token": 403, "no_service": 404}


@dataclass(frozen=True)
class Reply:
    """One scripted answer: HTTP status, Slack error code, Retry-After seconds."""

    status: int = 200
    error: str | None = None
    retry_after: float | None = None
    delay: float = 0.0  # seconds to wait before answering (to provoke client timeouts)
    page: str | None = None  # an HTML page answered instead of Slack's answer (a proxy in between)

    @classmethod
    def ok(cls) -> Reply:
        """Success."""
        return cls()

    @classmethod
    def rate_limited(cls, retry_after: float = 2.0) -> Reply:
        """HTTP 429 with ``Retry-After``."""
        return cls(status=429, error="ratelimited", retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        """A 5xx with a plain-text body."""
        return cls(status=status)

    @classmethod
    def slow(cls, delay: float) -> Reply:
        """Success, but only after ``delay`` seconds."""
        return cls(delay=delay)

    @classmethod
    def hang(cls) -> Reply:
        """Take the request and never answer (a destination that hangs); ``stop`` does not wait for it."""
        return cls(delay=HANG_SECONDS)

    @classmethod
    def proxy_page(cls, status: int = 200) -> Reply:
        """An HTML page with ``status`` in place of Slack's answer, as a proxy or firewall in between sends."""
        return cls(status=status, page="<html><body>Access to this site is blocked by policy.</body></html>")

    @classmethod
    def slack_error(cls, code: str) -> Reply:
        """A Slack error code: ok=false on the Web API, the matching HTTP status on webhooks."""
        return cls(status=200, error=code)


@dataclass
class SlackRequest:
    """One request the fake received and what it answered."""

    time: float
    path: str
    kind: str  # "api", "webhook" or "response_url"
    method: str  # Web API method, "webhook" or "response_url"
    target: str  # channel (Web API) or webhook name
    body: dict[str, Any]
    headers: dict[str, str]
    reply: Reply

    @property
    def delivered(self) -> bool:
        """True when the fake accepted the message."""
        return self.reply.status == 200 and self.reply.error is None and self.reply.page is None


def block_kit_violations(payload: dict[str, Any]) -> list[str]:
    """The Slack limits a message payload breaks (empty when it is fine)."""
    problems = []
    blocks = payload.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    if len(blocks) > 50:
        problems.append(f"{len(blocks)} blocks > 50")
    for block in blocks:
        text = (block.get("text") or {}).get("text", "")
        if block.get("type") == "header" and len(text) > 150:
            problems.append("header > 150")
        if block.get("type") == "header" and any(c in text for c in "\r\n"):
            problems.append("header with a line break")
        for element in block.get("elements") or []:
            url = element.get("url") if isinstance(element, dict) else None
            if url is not None and not _VALID_URL.fullmatch(str(url)):
                problems.append("button url invalid")
        if block.get("type") == "section" and len(text) > 3000:
            problems.append("section text > 3000")
        if any(len(f.get("text", "")) > 2000 for f in block.get("fields") or []):
            problems.append("section field > 2000")
    if not payload.get("text") and not blocks:
        problems.append("no text")
    return problems


class FakeSlack:
    """The server; start it with the ``slack_server`` fixture."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.requests: list[SlackRequest] = []
        self._scripts: dict[str, deque[Reply]] = {}
        self._always: dict[str, Reply] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ts = 0

    # -- addresses ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL, with a trailing slash."""
        return f"http://{self.host}:{self.port}/"

    @property
    def api_url(self) -> str:
        """What ``PREEMPT_SLACK_API_URL`` should be."""
        return f"{self.url}api/"

    def webhook_url(self, name: str = "default") -> str:
        """An incoming-webhook URL whose requests are recorded with target ``name``."""
        return f"{self.url}services/{name}"

    def response_url(self, name: str = "default") -> str:
        """A button press's ``response_url`` (Slack's ``hooks.slack.com/actions/…``), recorded with target
        ``name`` and method ``response_url``; scripted and answered like a webhook."""
        return f"{self.url}actions/{name}"

    # -- scripting ---------------------------------------------------------------------------------
    def script(self, target: str, *replies: Reply) -> None:
        """Answer the next requests for ``target`` with ``replies`` in order, then succeed again."""
        with self._lock:
            self._scripts.setdefault(target, deque()).extend(replies)

    def always(self, target: str, reply: Reply) -> None:
        """Answer every request for ``target`` with ``reply`` (after any scripted replies)."""
        with self._lock:
            self._always[target] = reply

    def delivered(self, target: str | None = None) -> list[SlackRequest]:
        """Accepted messages (posts and updates), optionally for one target."""
        with self._lock:
            return [r for r in self.requests if r.delivered and (target is None or r.target == target)]

    def for_target(self, target: str) -> list[SlackRequest]:
        """Every request for ``target``, whatever the answer."""
        with self._lock:
            return [r for r in self.requests if r.target == target]

    def wait_for(self, count: int, target: str | None = None, timeout_s: float = 30.0) -> list[SlackRequest]:
        """Poll (bounded) until ``count`` messages were delivered; fail with what arrived otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.delivered(target)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        seen = [(r.target, r.method, r.reply.status, r.reply.error) for r in self.requests]
        raise AssertionError(f"expected {count} delivered Slack messages for {target or 'any target'}; saw {seen}")

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Run the server in a background thread and wait until it listens."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/api/{method}", self._api)
            app.router.add_post("/services/{name:.+}", self._webhook)
            app.router.add_post("/actions/{name:.+}", self._webhook)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, 0)
            await site.start()
            self.port = int(self._runner.addresses[0][1])  # the port the OS chose (aiohttp's public API)
            ready.set()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-slack", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Slack server did not start")

    def stop(self) -> None:
        """Stop the server and its thread."""
        if self._loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        asyncio.run_coroutine_threadsafe(_cancel_pending(), self._loop).result(10)  # requests left hanging
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
        self._loop = None

    # -- handlers ----------------------------------------------------------------------------------
    def _next_reply(self, target: str) -> Reply:
        with self._lock:
            queue = self._scripts.get(target)
            if queue:
                return queue.popleft()
            return self._always.get(target, Reply.ok())

    def _record(self, request: web.Request, kind: str, method: str, target: str, body: Any, reply: Reply) -> None:
        entry = SlackRequest(
            time=time.monotonic(),
            path=request.path,
            kind=kind,
            method=method,
            target=target,
            body=body if isinstance(body, dict) else {},
            headers=dict(request.headers),
            reply=reply,
        )
        with self._lock:
            self.requests.append(entry)

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            data = await request.json()
            return data if isinstance(data, dict) else {}
        return dict(await request.post())

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await self._body(request)
        target = str(body.get("channel", ""))
        reply = self._next_reply(target)
        if reply.status == 200 and reply.error is None:
            if not request.headers.get("Authorization", "").startswith("Bearer "):
                reply = Reply.slack_error("not_authed")
            elif method in ("chat.postMessage", "chat.update") and block_kit_violations(body):
                reply = Reply.slack_error("invalid_blocks")
        self._record(request, "api", method, target, body, reply)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.page is not None:
            return web.Response(status=reply.status, text=reply.page, content_type="text/html")
        headers = {"Retry-After": f"{reply.retry_after:g}"} if reply.retry_after is not None else {}
        if reply.status >= 500:
            return web.Response(status=reply.status, text="internal server error", headers=headers)
        if reply.status != 200 or reply.error is not None:
            payload = {"ok": False, "error": reply.error or "unknown"}
            return web.json_response(payload, status=reply.status, headers=headers)
        with self._lock:
            self._ts += 1
            ts = body.get("ts") if method == "chat.update" else f"{int(time.time())}.{self._ts:06d}"
        return web.json_response({"ok": True, "channel": target, "ts": ts, "message": {"text": body.get("text")}})

    async def _webhook(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await self._body(request)
        reply = self._next_reply(name)
        if reply.status == 200 and reply.error is None and block_kit_violations(body):
            reply = Reply(status=400, error="invalid_blocks")
        kind = "response_url" if request.path.startswith("/actions/") else "webhook"
        self._record(request, kind, kind, name, body, reply)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.page is not None:
            return web.Response(status=reply.status, text=reply.page, content_type="text/html")
        headers = {"Retry-After": f"{reply.retry_after:g}"} if reply.retry_after is not None else {}
        if reply.status >= 500:
            return web.Response(status=reply.status, text="internal server error", headers=headers)
        if reply.status == 429:
            return web.Response(status=429, text="rate_limited", headers=headers)
        if reply.error is not None:
            status = reply.status if reply.status != 200 else _WEBHOOK_STATUS.get(reply.error, 400)
            return web.Response(status=status, text=reply.error, headers=headers)
        return web.Response(status=200, text="ok")


async def _cancel_pending() -> None:
    """Cancel the loop's other tasks (handlers of requests that were never answered) and wait for them."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
def slack_server() -> Iterator[FakeSlack]:
    """A running fake Slack (webhooks + Web API) for this test; stopped at teardown."""
    server = FakeSlack()
    server.start()
    try:
        yield server
    finally:
        server.stop()


__all__ = ["FakeSlack", "Reply", "SlackRequest", "block_kit_violations", "slack_server"]
