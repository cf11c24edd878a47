"""JSON nested deeper than the readers take: the one over-deep item is rejected (too_deep), the batch is not."""

from __future__ import annotations

import orjson
import pytest

from streams.ingest.payload import BodyError, deep_items, parse_body, read_json_body
from streams.runtime.dead_letters import dead_letter_headers
from tests.unit.streams.ingest.conftest import AUTH, BASIC, NOW, ClientFactory, dead_letters_done, event, track

DEEP = b"[" * 1100 + b"]" * 1100  # orjson reads 1,024 levels at most


def batch_with_a_deep_item(good: list[dict[str, object]], *, key: str = "batch") -> bytes:
    """``{key: [good[0], <an item 1,101 levels deep>, good[1:]...]}``."""
    deep = b'{"type":"track","messageId":"deep","properties":{"p":' + DEEP + b"}}"
    items = [orjson.dumps(good[0]), deep, *(orjson.dumps(g) for g in good[1:])]
    return b'{"' + key.encode() + b'":[' + b",".join(items) + b"]}"


def test_deep_items_cuts_only_the_over_deep_item_and_keeps_its_bytes() -> None:
    """The scan finds the item by its brackets (strings holding brackets do not count) and nothing else."""
    body = b'[{"a":"x]\\"[{"},' + DEEP + b',{"b":1}]'
    cut = deep_items(body)
    assert cut is not None
    assert cut.body == b'[{"a":"x]\\"[{"},null,{"b":1}]'
    assert cut.items == {1: DEEP}


def test_a_batch_with_one_over_deep_item_keeps_the_others() -> None:
    """Before: the whole body was a 400 ('not valid JSON: depth limit exceeded'); now item 1 alone is too_deep."""
    body = batch_with_a_deep_item([event("e1"), event("e2")])
    parsed = parse_body(
        body, max_event_bytes=32 * 1024, max_future_skew=300, now=NOW, max_items=100, max_shared_context_bytes=8192
    )
    assert [r.event_id for r in parsed.results if r.rejection is None] == ["e1", "e2"]
    (rejected,) = parsed.rejected
    assert (str(rejected.rejection.reason), parsed.results[1].index) == ("too_deep", 1)
    assert (rejected.value or b"").startswith(b'{"type":"track","messageId":"deep"')


def test_deep_nesting_outside_the_items_is_a_clear_400() -> None:
    """A batch's shared context nested 1,100 levels is not one item's: the body is refused, saying why."""
    body = b'{"batch":[' + orjson.dumps(event()) + b'],"context":{"x":' + DEEP + b"}}"
    with pytest.raises(BodyError, match="more than 1,024 levels deep outside its items"):
        parse_body(
            body, max_event_bytes=32 * 1024, max_future_skew=300, now=NOW, max_items=100, max_shared_context_bytes=8192
        )


async def test_v1_events_answers_202_and_dead_letters_the_deep_item(client_factory: ClientFactory) -> None:
    """/v1/events: the good events are stored, the deep one is listed rejected and dead-lettered with its reason."""
    client, sink = await client_factory(clock=lambda: NOW)
    response = await client.post("/v1/events", data=batch_with_a_deep_item([event("e1"), event("e2")]), headers=AUTH)
    assert response.status == 202
    answer = await response.json()
    assert (answer["accepted"], answer["rejected"]) == (2, 1)
    assert answer["results"][1]["reason"] == "too_deep"
    assert [orjson.loads(v)["event_id"] for _, v in sink.records] == ["e1", "e2"]
    await dead_letters_done(client)
    (letter,) = sink.dead_letters
    assert dead_letter_headers(letter.headers)["preempt.dlq.reason"] == "too_deep"


async def test_v1_batch_answers_200_with_the_deep_call_rejected(client_factory: ClientFactory) -> None:
    """The tracking API (an SDK drops a batch answered 400): 200, the other calls stored, the deep one rejected."""
    client, sink = await client_factory(clock=lambda: NOW)
    response = await client.post("/v1/batch", data=batch_with_a_deep_item([track("m-1"), track("m-2")]), headers=BASIC)
    assert response.status == 200
    answer = await response.json()
    assert (answer["accepted"], answer["rejected"]) == (2, 1)
    assert answer["rejections"][0]["reason"] == "too_deep"
    assert len(sink.records) == 2


async def test_a_single_over_deep_call_is_rejected_not_refused(client_factory: ClientFactory) -> None:
    """/v1/track with one call nested 1,100 levels: 200 with the call rejected too_deep (not a 400)."""
    client, sink = await client_factory(clock=lambda: NOW)
    body = b'{"type":"track","messageId":"deep","event":"x","properties":{"p":' + DEEP + b"}}"
    response = await client.post("/v1/track", data=body, headers=BASIC)
    assert response.status == 200
    assert (await response.json())["rejections"][0]["reason"] == "too_deep"
    await dead_letters_done(client)
    assert [letter.value for letter in sink.dead_letters] == [body]


def test_a_body_of_nothing_but_brackets_is_not_scanned_to_its_end() -> None:
    """The scan gives up past MAX_DEEP_TOKENS tokens beyond the read depth: the body stays refused (400)."""
    assert deep_items(b"[" * (1 << 20)) is None
    assert deep_items(b"[" + b",".join([DEEP] * 3) + b"]") is not None  # a few deep items are cut


def test_a_body_broken_otherwise_is_refused_without_the_depth_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """A truncated batch is not JSON for another reason than its depth: refused at once, without scanning its
    tokens for deep items (0.7 s of a 5 MB body's 1.0 s on the event loop); a deep one is still scanned."""
    from streams.ingest import payload

    scanned: list[int] = []
    real = payload.deep_items

    def counting(body: bytes) -> object:
        scanned.append(len(body))
        return real(body)

    monkeypatch.setattr(payload, "deep_items", counting)
    truncated = b'{"batch":[' + b",".join(orjson.dumps(track(f"m{i}")) for i in range(50))
    with pytest.raises(BodyError, match="not valid JSON"):
        payload.read_json_body(truncated)
    assert scanned == []
    payload.read_json_body(batch_with_a_deep_item([track("a")]))
    assert len(scanned) == 1


def test_an_unterminated_string_after_a_deep_part_is_scanned_once_not_from_every_quote() -> None:
    """A string that never closes (a quote, then only escaped quotes) made the token pattern scan from each of its
    quotes to the end of the body and fail there: quadratic, 6.6 s for a 33 KB body and 150 s for 129 KB, all on
    the event loop (a write key is public in a web page). Scanned once, the body is refused (400) at once."""
    import time

    body = b"[" * 1100 + b'"' + b'\\"' * 24_000  # 49 KB: 15 s of scanning before
    started = time.perf_counter()
    with pytest.raises(BodyError):
        read_json_body(body)
    assert time.perf_counter() - started < 2.0
    with pytest.raises(BodyError):  # a lone backslash at the very end: refused, as before
        read_json_body(b'[{"a":1},' + DEEP + b',"x\\')
