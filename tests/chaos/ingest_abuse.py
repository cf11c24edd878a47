"""Scenario 9: ingest abuse.

A real ``preempt ingest`` (API key and HMAC signing on, ``PREEMPT_INGEST_MAX_ITEMS`` 50) receives
rounds of good requests (Segment batches on /v1/batch, canonical arrays on /v1/events), each round
interleaving one good request before every case of the abuse table the ingest integration test uses
(tests/integration/ingest_support.py: missing, unknown and password-carrying keys, unsigned, forged,
stale and replayed signatures, ``t=nan`` and a 5000-digit ``t``, a gzip bomb, too many items, a huge
shared Segment context, an oversize body, and mixed batches whose bad items are rejected). Last, the
replay guard is filled with distinct signed requests until it answers 429. Pass: every abuse request
got its documented status (401/400/413/429), no 5xx anywhere, no traceback in the process log, the
events topic read back holds every accepted good event exactly once and nothing else.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections import Counter

import orjson

from streams.ingest.auth import key_digest
from streams.runtime.topics import TopicNames, ensure_topics
from tests.chaos.harness import Context, Row, read_topic
from tests.integration.ingest_support import SIGN, abuse_cases, basic_auth, canonical, send, track, wait_healthy
from tests.integration.pipeline_support import scrape

MAX_ITEMS = 50
GOOD_PER_REQUEST = 25
PORTS = range(19900, 20000)  # this task's port block on the shared machine


def _port() -> int:
    """A free TCP port on 127.0.0.1 in :data:`PORTS` (bounded: one try per port)."""
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def _good_request(tag: str, stamp: str, segment: bool, key: str) -> tuple[str, bytes, dict[str, str], list[str]]:
    """A request of only good events: path, body, headers and the event ids in it."""
    ids = [f"{tag}-{i}" for i in range(GOOD_PER_REQUEST)]
    if segment:
        return (
            "/v1/batch",
            orjson.dumps({"batch": [track(i, stamp) for i in ids]}),
            {"Authorization": basic_auth(key)},
            ids,
        )
    return "/v1/events", orjson.dumps([canonical(i, stamp) for i in ids]), {"Authorization": f"Bearer {key}"}, ids


def run_ingest_abuse(ctx: Context) -> Row:
    """Scenario 9 (see the module docstring)."""
    row = Row("9 ingest abuse")
    rounds = 3 if ctx.quick else 12
    port = _port()
    # Fresh values, so that scenario 10 finds them if any log line or dead letter carries one.
    key = ctx.secrets["ingest api key"] = f"pk_chaos_{secrets.token_hex(12)}"
    secret = ctx.secrets["ingest signing secret"] = f"whsec_{secrets.token_hex(16)}"
    probe = abuse_cases(0, "", MAX_ITEMS)
    # Sized so the load fits (every request of it counted as if signed) and the flood at the end is short.
    capacity = rounds * 2 * len(probe) + 20
    settings = ctx.settings(
        "ingest-abuse",
        ingest_api_keys=(f"chaos={key_digest(key)}",),
        ingest_hmac_secret=secret,
        ingest_port=port,
        ingest_max_items=MAX_ITEMS,
        ingest_replay_cache_size=capacity,
    )
    ensure_topics(settings)
    proc = ctx.start(["preempt", "ingest"], settings, name="ingest-abuse")
    wait_healthy(port, proc, timeout_s=120)

    expected: list[str] = []
    good_requests = 0
    good_statuses: Counter[int] = Counter()
    abuse_statuses: Counter[int] = Counter()
    wrong: list[str] = []
    for r in range(rounds):
        now = int(time.time())
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
        for k, case in enumerate(abuse_cases(now, stamp, MAX_ITEMS, tag=f"r{r}-", key=key, secret=secret)):
            path, body, headers, ids = _good_request(f"r{r}-g{k}", stamp, segment=k % 2 == 0, key=key)
            status = send(port, path, body, headers, SIGN, now, secret)
            good_requests += 1
            good_statuses[status] += 1
            if status in (200, 202):
                expected += ids
            got = send(port, case.path, case.body, case.headers, case.signature, now, secret)
            abuse_statuses[got] += 1
            if got != case.status:
                wrong.append(f"{case.name}: {got} (want {case.status})")
            if 200 <= got < 300:
                expected += case.good_ids

    # Fill the replay guard: distinct signed one-event requests until 429 (bounded by its capacity).
    flood_accepted = 0
    refused_ids: list[str] = []
    for n in range(capacity + 1):
        now = int(time.time())
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
        event_id = f"flood-{n}"
        body = orjson.dumps({"batch": [track(event_id, stamp)]})
        status = send(port, "/v1/batch", body, {"Authorization": basic_auth(key)}, SIGN, now, secret)
        if status == 429:
            abuse_statuses[status] += 1
            refused_ids.append(event_id)
            break
        good_statuses[status] += 1
        if status == 200:
            flood_accepted += 1
            expected.append(event_id)

    metrics = scrape(port)
    server_errors = sum(v for k, v in metrics.items() if k.startswith('preempt_ingest_requests_total{status="5'))
    alive = proc.proc.poll() is None
    proc.stop()
    log = proc.log_text()

    names = TopicNames.from_settings(settings)
    found: list[str] = []
    bad = 0
    for record in read_topic(settings, names.events, idle_s=3.0, timeout_s=120):
        try:
            found.append(str(orjson.loads(record.value)["event_id"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            bad += 1
    wanted = set(expected)
    bad += sum(1 for i in found if i not in wanted)
    counts = Counter(found)

    abuse_requests = sum(abuse_statuses.values())
    row.load = (
        f"{len(expected)} good events in {good_requests + flood_accepted} requests, "
        f"interleaved with {abuse_requests} abuse requests ({rounds} rounds)"
    )
    kinds = [c.name for c in probe if not c.good_ids]
    row.faults = (
        f"{len(kinds)} kinds of refused request + 2 mixed batches (bad items among good) per round; "
        "replay guard filled until 429"
    )
    row.expected = len(wanted)
    row.emitted = len(set(found) & wanted)
    row.delivered = "—"
    row.lost = len(wanted - set(found))
    row.duplicated = sum(n - 1 for n in counts.values())
    row.check(not wrong, f"every abuse request got its status ({'; '.join(sorted(set(wrong))[:5])})")
    row.check(set(good_statuses) <= {200, 202}, f"every good request accepted (statuses {dict(good_statuses)})")
    row.check(bool(refused_ids), f"the full replay guard answers 429 (none in {capacity + 1} signed requests)")
    row.check(server_errors == 0 and not any(s >= 500 for s in abuse_statuses), "no 5xx")
    row.check(alive and "Traceback" not in log, "the ingest process alive, no traceback in its log")
    row.check(bad == 0, f"0 bad events on the events topic ({bad} found)")
    row.check(row.lost == 0 and row.duplicated == 0, "every good event on the topic exactly once")
    row.notes.append(
        f"statuses of abuse requests {dict(sorted(abuse_statuses.items()))}, of good ones "
        f"{dict(sorted(good_statuses.items()))}; replay guard full after {flood_accepted} flood requests "
        f"(capacity {capacity}); {bad} bad events on the topic; {server_errors:.0f} 5xx counted by the server"
    )
    return row.finish()
