"""The tracking-API mapping: Segment/RudderStack calls → canonical events and account patches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.loader import parse_rule
from rules.models import InactivityRule
from rules.predicates import compile_match
from schemas.decoder import Rejection, decode_event
from streams.ingest.group_traits import trait_map
from streams.ingest.payload import BodyError, TooManyItems
from streams.ingest.tracking import Skip, TrackingConfig, TrackingParsed, parse_tracking
from tests.unit.streams.ingest.conftest import NOW

CONFIG = TrackingConfig(
    account_id_paths=TrackingConfig.paths(("context.groupId", "traits.company.id")),
    trait_map=trait_map({}),
    max_event_bytes=32768,
    max_future_skew=300,
    max_items=100,
    max_shared_context_bytes=2048,
)


def call(kind: str = "track", **overrides: Any) -> dict[str, Any]:
    """A valid call of ``kind`` as the SDKs send it; overrides replace fields."""
    base: dict[str, Any] = {
        "type": kind,
        "messageId": f"m-{kind}",
        "userId": "u-1",
        "timestamp": "2026-11-23T05:00:00+00:00",
        "context": {"groupId": "acme", "library": {"name": "analytics-python", "version": "2.4.0"}},
    }
    if kind == "track":
        base |= {"event": "Report Exported", "properties": {"format": "csv"}}
    return base | overrides


def batch(*items: Any, config: TrackingConfig = CONFIG, **top: Any) -> TrackingParsed:
    return parse_tracking(orjson.dumps({"batch": list(items), **top}), None, config, NOW)


def events(parsed: TrackingParsed) -> list[dict[str, Any]]:
    return [orjson.loads(value) for _, value in parsed.events]


def test_track_maps_to_the_canonical_event() -> None:
    """messageId → event_id, userId → user_id, context.groupId → account (and key), properties and context kept."""
    parsed = batch(call())
    assert parsed.events[0][0] == b"acme"
    assert events(parsed) == [
        {
            "event_id": "m-track",
            "event": "Report Exported",
            "account_id": "acme",
            "timestamp": "2026-11-23T05:00:00.000Z",
            "user_id": "u-1",
            "properties": {"format": "csv"},
            "context": {"groupId": "acme", "library": {"name": "analytics-python", "version": "2.4.0"}},
        }
    ]
    assert parsed.counts == {("track", "accepted"): 1}


def test_every_accepted_event_passes_the_streams_decoder() -> None:
    """What the tracking API produces is exactly what the rules worker accepts (no dead letters for content)."""
    parsed = batch(call(), call("identify"), call("group", groupId="acme", traits={"plan": "pro"}), call("page"))
    for _, value in parsed.events:
        assert not isinstance(decode_event(value, max_bytes=32768, max_future_skew=300, now=NOW), Rejection)


def test_a_call_without_message_id_is_accepted_with_a_generated_id() -> None:
    """A track call as Segment's HTTP API docs write it (no messageId) is accepted, as Segment accepts it: its
    id is ``gen-`` and a digest of the call; without a time of its own, the time of receipt is in the digest
    too, so the same call sent again later is a second event, not a duplicate."""
    timed = call()
    del timed["messageId"]
    [event] = events(batch(timed))
    assert event["event_id"].startswith("gen-")
    assert events(batch(timed))[0]["event_id"] == event["event_id"]  # a retry of a timed call: same id
    untimed = {k: v for k, v in timed.items() if k != "timestamp"}
    ids = {
        orjson.loads(parse_tracking(orjson.dumps(untimed), "track", CONFIG, at).events[0][1])["event_id"]
        for at in (NOW, NOW + 60)
    }
    assert len(ids) == 2


def test_timestamp_is_corrected_for_the_client_clock_as_segment_does() -> None:
    """timestamp = receivedAt − (sentAt − originalTimestamp): a client clock 1 h behind is corrected."""
    parsed = batch(call(timestamp="2026-11-23T04:59:50Z"), sentAt="2026-11-23T05:00:00Z")
    assert events(parsed)[0]["timestamp"] == "2026-11-23T05:59:50.000Z"  # NOW is 06:00:00
    own = batch(call(originalTimestamp="2026-11-23T04:00:00Z", sentAt="2026-11-23T04:00:30Z", timestamp="x"))
    assert events(own)[0]["timestamp"] == "2026-11-23T05:59:30.000Z"


def test_without_sent_at_the_client_time_is_kept_and_without_any_time_the_receipt_time() -> None:
    """No sentAt: timestamp as sent; no timestamp at all: the time the request arrived."""
    assert events(batch(call()))[0]["timestamp"] == "2026-11-23T05:00:00.000Z"
    no_time = call()
    del no_time["timestamp"]
    assert events(batch(no_time))[0]["timestamp"] == "2026-11-23T06:00:00.000Z"


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("2026-11-23T05:00:00", "2026-11-23T05:00:00.000Z"),  # JS new Date(...) strings, Python utcnow().isoformat()
        ("2026-11-23T05:00:00.1234567", "2026-11-23T05:00:00.123Z"),  # .NET DateTime.ToString("o"), Kind unspecified
        ("2026-11-23T06:00:00.000+0100", "2026-11-23T05:00:00.000Z"),  # Java's SimpleDateFormat "Z"
        ("2026-11-23T01:00:00-04", "2026-11-23T05:00:00.000Z"),  # ISO 8601 hour-only offset
        ("2026-11-23 05:00:00Z", "2026-11-23T05:00:00.000Z"),  # RFC 3339 §5.6's space
        ("2026-11-23t05:00:00.5z", "2026-11-23T05:00:00.500Z"),
    ],
    ids=["no-offset", "no-offset-7-digits", "basic-offset", "hour-offset", "space", "lower-case"],
)
def test_sdk_timestamps_are_read_as_segment_reads_them(written: str, read: str) -> None:
    """Segment reads a timestamp without an offset as UTC and takes ISO 8601's +hhmm/+hh offsets: so does the
    tracking API, for timestamp, originalTimestamp and sentAt alike; the event gets the canonical RFC 3339 form."""
    assert events(batch(call(timestamp=written)))[0]["timestamp"] == read
    assert events(batch(call(originalTimestamp=written)))[0]["timestamp"] == read
    an_hour_earlier = written.replace("T05:", "T04:").replace(" 05:", " 04:").replace("t05:", "t04:")
    an_hour_earlier = an_hour_earlier.replace("T06:", "T05:").replace("T01:", "T00:")
    sent = batch(call(timestamp=an_hour_earlier), sentAt=an_hour_earlier)
    assert events(sent)[0]["timestamp"] == "2026-11-23T06:00:00.000Z"  # sentAt = the call's time: NOW


def test_a_null_optional_field_is_an_absent_one() -> None:
    """JSON null in context (the call's or the batch's), timestamp or originalTimestamp means "not given", as it
    already did in properties, traits and sentAt: the call is mapped as without the field (a serialised struct's
    empty optional field) — it was rejected, and a null batch context made the whole batch a 400."""
    assert events(batch(call(context=None), context={"groupId": "acme"}))[0]["account_id"] == "acme"
    assert events(batch(call(), context=None))[0]["account_id"] == "acme"
    assert events(batch(call(timestamp=None)))[0]["timestamp"] == "2026-11-23T06:00:00.000Z"  # receipt time
    assert events(batch(call(originalTimestamp=None)))[0]["timestamp"] == "2026-11-23T05:00:00.000Z"  # timestamp
    corrected = batch(call(timestamp="2026-11-23T04:59:50Z", sentAt=None), sentAt="2026-11-23T05:00:00Z")
    assert events(corrected)[0]["timestamp"] == "2026-11-23T05:59:50.000Z"  # the batch's sentAt
    (rejected,) = batch(call(context=None, timestamp="bad"), context={"groupId": "acme"}).rejected
    assert (rejected.account_id, rejected.rejection.field) == ("acme", "timestamp")


def test_a_null_key_in_a_calls_context_leaves_the_batchs_value_in_place() -> None:
    """A call's ``context.groupId: null`` (a serialised struct's empty optional field) counts as not sent, so the
    batch's context still gives the account — it overrode it, and the call was rejected for having no account.
    Likewise a null ``context.traits`` under a batch's traits; a null key is not copied into the event's context."""
    parsed = batch(call(context={"groupId": None, "page": None}), context={"groupId": "acme"})
    assert not parsed.rejections
    assert [(e["account_id"], e["context"]) for e in events(parsed)] == [("acme", {"groupId": "acme"})]
    traits = batch(call(context={"groupId": None, "traits": None}), context={"traits": {"company": {"id": "globex"}}})
    assert [e["account_id"] for e in events(traits)] == ["globex"]
    (rejected,) = batch(call(context={"groupId": None}, timestamp="bad"), context={"groupId": "acme"}).rejected
    assert (rejected.account_id, rejected.rejection.field) == ("acme", "timestamp")


@pytest.mark.parametrize(
    "written",
    ["2026-11-23", "1796110000", "Mon Nov 23 2026 05:00:00 GMT+0000", "2026-11-23T05:00", "2026-11-23T05:00:00+1"],
)
def test_what_is_not_an_iso_8601_date_and_time_still_rejects_the_call(written: str) -> None:
    """A date alone, an epoch number as a string, a JS Date string, no seconds, a 1-digit offset: rejected."""
    parsed = batch(call(timestamp=written))
    assert [r.rejection.field for r in parsed.rejections] == ["timestamp"]
    assert "ISO 8601" in parsed.rejections[0].rejection.detail


@pytest.mark.parametrize(
    ("overrides", "top", "field"),
    [
        ({"timestamp": "nan"}, {}, "timestamp"),
        ({"timestamp": 1e308}, {}, "timestamp"),
        ({"timestamp": "99999-01-01T00:00:00Z"}, {}, "timestamp"),
        ({"timestamp": "2026-11-23T05:00:00Z", "sentAt": "Infinity"}, {}, "sentAt"),
        ({"timestamp": "1970-01-01T00:00:00Z"}, {"sentAt": "9999-12-31T00:00:00Z"}, "timestamp"),
        ({"timestamp": "2026-11-23T07:00:00Z"}, {}, "timestamp"),
    ],
    ids=["nan", "huge-number", "year-99999", "sentAt-infinity", "correction-before-1970", "future"],
)
def test_non_finite_or_absurd_timestamps_reject_the_item(
    overrides: dict[str, Any], top: dict[str, Any], field: str
) -> None:
    """A timestamp that is not a sane instant rejects its item (never an exception), naming the field."""
    parsed = batch(call(**overrides), call(messageId="ok"), **top)
    # a batch-level sentAt applies to every item, so then both are rejected
    assert [r.rejection.field for r in parsed.rejections] == [field] * (2 if top else 1)
    assert [e["event_id"] for e in events(parsed)] == ([] if top else ["ok"])


def test_anonymous_id_is_the_user_when_there_is_no_user_id() -> None:
    """userId wins; without it anonymousId becomes user_id; numeric ids become strings."""
    item = call(anonymousId="anon-7")
    del item["userId"]
    assert events(batch(item))[0]["user_id"] == "anon-7"
    assert events(batch(call(userId=42)))[0]["user_id"] == "42"
    assert events(batch(call(userId="", anonymousId="anon-8")))[0]["user_id"] == "anon-8"  # not identified yet


def test_identify_becomes_user_identified_with_traits_as_properties() -> None:
    """identify → "User Identified" with the traits (e.g. role: admin) as properties, for rules to match."""
    parsed = batch(call("identify", traits={"role": "admin", "email": "ada@acme.test"}))
    (event,) = events(parsed)
    assert (event["event"], event["properties"]) == ("User Identified", {"role": "admin", "email": "ada@acme.test"})
    assert parsed.account_updates == []


def test_rudderstack_identify_finds_the_account_in_context_traits_company_id() -> None:
    """A RudderStack identify carries its traits as context.traits: the default account path
    traits.company.id finds the account there, as it does in a Segment identify's traits."""
    item = call("identify", anonymousId="anon-r", context={"traits": {"role": "admin", "company": {"id": "Ærø-1"}}})
    del item["userId"]
    parsed = batch(item)
    assert parsed.rejections == []
    (event,) = events(parsed)
    assert (event["account_id"], event["user_id"], event["properties"]["role"]) == ("Ærø-1", "anon-r", "admin")
    segment = call("identify", traits={"company": {"id": "Ærø-2"}}, context={})
    assert events(batch(segment))[0]["account_id"] == "Ærø-2"


def test_a_null_trait_of_the_call_leaves_the_account_in_context_traits() -> None:
    """An identify whose own ``traits.company`` is null (not sent) still finds the account in ``context.traits``
    (RudderStack, the mobile SDKs): the null hid it, and the call was rejected for having no account."""
    item = call("identify", traits={"company": None, "role": "admin"}, context={"traits": {"company": {"id": "acme"}}})
    parsed = batch(item)
    assert parsed.rejections == []
    assert [e["account_id"] for e in events(parsed)] == ["acme"]


@pytest.mark.parametrize("kind", ["track", "page", "screen"])
def test_a_mobile_sdks_later_calls_find_the_account_in_context_traits_too(kind: str) -> None:
    """The mobile SDKs (RudderStack's Android and iOS, Segment's) repeat the identified user's traits as
    context.traits on every later call: traits.company.id finds the account there for track, page and screen as
    it does for the identify — they were rejected (track, a signed-in page) or skipped (an anonymous page)."""
    context = {"traits": {"anonymousId": "anon-m", "company": {"id": "globex"}}, "os": {"name": "Android"}}
    item = call(kind, context=context)
    parsed = batch(item)
    assert (parsed.rejections, parsed.skips) == ([], {})
    (event,) = events(parsed)
    assert event["account_id"] == "globex"
    assert "company" not in event.get("properties", {})  # only an identify's traits become properties
    anonymous = call(kind, userId=None, anonymousId="anon-m", context=context)
    assert [e["account_id"] for e in events(batch(anonymous))] == ["globex"]
    assert events(batch(call(kind, context=context | {"groupId": "acme"})))[0]["account_id"] == "acme"  # first path


def test_group_becomes_an_event_and_an_account_patch() -> None:
    """group → "Group Identified" keyed by groupId, plus a patch of the mapped traits (arr → mrr ÷ 12)."""
    traits = {"name": "Acme", "plan": "pro", "arr": 120000, "csm_email": "cs@vendor.test", "seats": 40}
    parsed = batch(call("group", groupId="acme-2", traits=traits, context={}))
    (event,) = events(parsed)
    assert (event["event"], event["account_id"], event["properties"]) == ("Group Identified", "acme-2", traits)
    assert parsed.account_updates == [
        (
            b"acme-2",
            orjson.dumps(
                {
                    "account_id": "acme-2",
                    "name": "Acme",
                    "plan": "pro",
                    "mrr": 10000.0,
                    "owner": {"email": "cs@vendor.test"},
                    "seats": 40,
                }
            ),
        )
    ]


@pytest.mark.parametrize(
    ("traits", "field"),
    [({"mrr": -5}, "traits.mrr"), ({"timezone": "Mars/Olympus"}, "traits.timezone"), ({"owner": 7}, "traits.owner")],
)
def test_group_traits_that_do_not_fit_the_account_reject_the_call(traits: dict[str, Any], field: str) -> None:
    """A mapped trait with an impossible value rejects the group call with the trait named; nothing is sent."""
    parsed = batch(call("group", groupId="acme", traits=traits))
    assert [r.rejection.field for r in parsed.rejections] == [field]
    assert parsed.events == parsed.account_updates == []


def test_group_without_group_id_is_rejected() -> None:
    """A group call must name its account in groupId."""
    parsed = batch(call("group", traits={"name": "Acme"}))
    assert [(r.rejection.reason, r.rejection.field) for r in parsed.rejections] == [("missing_field", "groupId")]


def test_page_and_screen_become_viewed_events_with_name_and_category() -> None:
    """page → "Page Viewed", screen → "Screen Viewed"; name and category join the properties."""
    parsed = batch(
        call("page", name="Billing", category="Settings", properties={"path": "/billing"}), call("screen", name="Home")
    )
    assert [(e["event"], e["properties"]) for e in events(parsed)] == [
        ("Page Viewed", {"path": "/billing", "name": "Billing", "category": "Settings"}),
        ("Screen Viewed", {"name": "Home"}),
    ]


def test_alias_is_accepted_counted_and_ignored() -> None:
    """alias produces nothing and is counted as ignored."""
    parsed = batch(call("alias", previousId="anon-1"))
    assert (parsed.events, parsed.ignored, parsed.counts) == ([], 1, {("alias", "ignored"): 1})


def test_an_item_without_account_is_rejected_and_the_rest_goes_on() -> None:
    """No context.groupId (nor another configured path): that item is rejected with a clear reason; others pass."""
    parsed = batch(call(context={}, messageId="lost"), call(messageId="kept"))
    (rejection,) = parsed.rejections
    assert (rejection.index, rejection.message_id, rejection.rejection.field) == (0, "lost", "context.groupId")
    assert "no account id" in rejection.rejection.detail
    assert [e["event_id"] for e in events(parsed)] == ["kept"]
    assert parsed.counts == {("track", "rejected"): 1, ("track", "accepted"): 1}


@pytest.mark.parametrize("kind", ["page", "screen", "identify"])
def test_an_anonymous_visitors_call_without_account_is_skipped_not_rejected(kind: str) -> None:
    """page, screen and identify without an account (the SDKs send them for anonymous visitors all the time) are
    skipped with the reason no_account: no event, no rejection, nothing for the dead-letter topic."""
    item = call(kind, userId=None, anonymousId="anon-1", context={"locale": "en"})
    parsed = batch(item, call(messageId="kept"))
    assert (parsed.rejections, parsed.rejected, parsed.ignored) == ([], [], 0)
    assert [e["event_id"] for e in events(parsed)] == ["kept"]
    assert parsed.skips == {(kind, Skip.NO_ACCOUNT): 1}
    assert parsed.skipped == 1
    assert parsed.counts == {(kind, "skipped"): 1, ("track", "accepted"): 1}


def test_track_and_group_calls_without_account_stay_rejections() -> None:
    """A track call without any account, and a group call without groupId, are the sender's errors: rejected."""
    parsed = batch(call(context={}, anonymousId="anon-1"), call("group", context={"groupId": "acme"}))
    assert [(r.call, r.rejection.field) for r in parsed.rejections] == [
        ("track", "context.groupId"),
        ("group", "groupId"),
    ]
    assert len(parsed.rejected) == 2
    assert parsed.skips == {}


@pytest.mark.parametrize("kind", ["page", "screen", "identify"])
def test_a_signed_in_users_call_without_account_is_rejected_not_skipped(kind: str) -> None:
    """With a userId the sender knows who it is: a page, screen or identify without an account is its error
    (a forgotten groupId or company trait), rejected and dead-lettered like a track call."""
    parsed = batch(call(kind, userId="u-42", context={"locale": "en"}))
    assert [(r.call, r.rejection.reason.value, r.rejection.field) for r in parsed.rejections] == [
        (kind, "missing_field", "context.groupId")
    ]
    assert (parsed.skips, len(parsed.rejected)) == ({}, 1)


@pytest.mark.parametrize("value", [12.5, True, {"id": "acme"}, ["acme"]])
@pytest.mark.parametrize("kind", ["track", "page", "identify"])
def test_an_account_path_holding_no_usable_id_is_an_invalid_field(kind: str, value: object) -> None:
    """Something at the account path that is not an id is a malformed call, rejected with the path, never
    skipped as if no account had been given (even from an anonymous visitor)."""
    parsed = batch(call(kind, userId=None, anonymousId="anon-1", context={"groupId": value}))
    assert [(r.rejection.reason.value, r.rejection.field) for r in parsed.rejections] == [
        ("invalid_field", "context.groupId")
    ]
    assert parsed.skips == {}


def test_a_rejected_rudderstack_identify_is_keyed_by_the_account_in_its_context_traits() -> None:
    """An identify whose account is only in context.traits (RudderStack) and is rejected for another reason
    keeps that account for its dead letter, as the mapping would have read it; also from a batch's context."""
    item = call("identify", timestamp="yesterday", context={"traits": {"company": {"id": "initech"}}})
    (rejected,) = batch(item).rejected
    assert (rejected.account_id, rejected.rejection.field) == ("initech", "timestamp")
    shared = call("identify", timestamp="yesterday", context={})
    (rejected,) = batch(shared, context={"traits": {"company": {"id": 42}}}).rejected
    assert rejected.account_id == "42"
    own_wins = call("identify", timestamp="yesterday", traits={"company": {"id": "own"}}, context={})
    (rejected,) = batch(own_wins, context={"traits": {"company": {"id": "shared"}}}).rejected
    assert rejected.account_id == "own"


def test_account_id_paths_are_configurable() -> None:
    """A deployment can take the account from a property (or a trait) instead of context.groupId."""
    config = TrackingConfig(
        account_id_paths=TrackingConfig.paths(("properties.account_id",)),
        trait_map=trait_map({}),
        max_event_bytes=32768,
        max_future_skew=300,
        max_items=100,
        max_shared_context_bytes=2048,
    )
    parsed = batch(call(context={}, properties={"account_id": "globex"}), config=config)
    assert events(parsed)[0]["account_id"] == "globex"
    identify = batch(call("identify", context={}, traits={"company": {"id": "initech"}}))
    assert events(identify)[0]["account_id"] == "initech"


def test_only_useful_context_keys_are_kept_and_the_shared_context_is_a_default() -> None:
    """Context keys outside the kept set are dropped; a batch's context is under each item's own."""
    item = call(context={"page": {"path": "/x"}, "huge_sdk_dump": "x" * 1000})
    parsed = batch(item, context={"groupId": "acme", "app": {"name": "web"}, "noise": [1, 2, 3]})
    assert events(parsed)[0]["context"] == {"groupId": "acme", "app": {"name": "web"}, "page": {"path": "/x"}}


def test_large_shared_context_and_too_many_items_refuse_the_body() -> None:
    """A shared context over the limit is a BodyError (400); more items than the limit is TooManyItems (413)."""
    with pytest.raises(BodyError, match="shared context"):
        batch(call(), context={"groupId": "acme", "traits": {"blob": "x" * 3000}})
    with pytest.raises(TooManyItems, match="limit is 100"):
        batch(*[call(messageId=str(i)) for i in range(101)])


def test_single_call_routes_take_the_type_from_the_route() -> None:
    """On /v1/track etc. the body is one call; its type comes from the route."""
    body = call()
    del body["type"]
    parsed = parse_tracking(orjson.dumps(body), "track", CONFIG, NOW)
    assert [e["event_id"] for e in events(parsed)] == ["m-track"]


@pytest.mark.parametrize(
    "item",
    [5, {"messageId": "x"}, call(type="launch"), call(messageId=""), call(properties=[1]), call(context="web")],
    ids=["not-object", "no-type", "unknown-type", "empty-message-id", "properties-array", "context-string"],
)
def test_malformed_items_are_rejected_one_by_one(item: Any) -> None:
    """Each malformed item gets a rejection with a reason; nothing is produced for it."""
    parsed = batch(item)
    assert len(parsed.rejections) == 1
    assert parsed.events == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "type": st.sampled_from(["track", "identify", "group", "page", "screen", "alias", "x"]),
                "messageId": json_values,
                "timestamp": json_values | st.just("2026-11-23T05:00:00Z"),
                "context": json_values | st.just({"groupId": "acme"}),
                "traits": json_values,
                "groupId": json_values,
                "properties": json_values,
            },
        ),
        max_size=5,
    ),
    json_values,
)
def test_any_json_gives_one_verdict_per_item_never_a_crash(items: list[dict[str, Any]], sent_at: Any) -> None:
    """Whatever the SDK-shaped JSON, parse_tracking gives every item exactly one verdict, and every event decodes."""
    parsed = batch(*items, sentAt=sent_at)
    assert len(parsed.events) + len(parsed.rejections) + parsed.ignored + parsed.skipped == len(items)
    for _, value in parsed.events:
        assert not isinstance(decode_event(value, max_bytes=32768, max_future_skew=300, now=NOW), Rejection)


def test_rudderstack_identify_traits_in_context_become_the_properties() -> None:
    """RudderStack sends identify traits as context.traits: they become the properties (top-level traits win)."""
    item = call("identify", context={"groupId": "acme", "traits": {"role": "admin", "plan": "a"}}, traits={"plan": "b"})
    (event,) = events(batch(item))
    assert event["properties"] == {"role": "admin", "plan": "b"}
    assert event["context"] == {"groupId": "acme"}


def test_the_documented_champion_rule_loads_and_matches_user_identified() -> None:
    """docs/events.md's rule for admins seen through identify loads, and matches an admin's identify call only."""
    text = (Path(__file__).resolve().parents[4] / "docs" / "events.md").read_text()
    after = text[text.index("### User roles from `identify`") :]
    start = after.index("```yaml\n") + len("```yaml\n")
    rule = parse_rule(yaml.safe_load(after[start : after.index("```", start)]))
    assert isinstance(rule, InactivityRule)
    matches = compile_match(rule.match)

    def decoded(role: str) -> Any:
        (_, value), *_ = batch(call("identify", traits={"role": role})).events
        return decode_event(value, max_bytes=32768, max_future_skew=300, now=NOW)

    assert matches(decoded("admin"))
    assert not matches(decoded("viewer"))
