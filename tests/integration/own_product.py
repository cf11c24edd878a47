"""A product that is not the simulator's, for the pipeline's parity tests: Tessera, a design-collaboration
SaaS, with its own event names and properties, its own accounts (time zones on both sides of a DST change,
one account unknown to the accounts topic) and a rule pack using every kind but ``risk``.

The history holds what real producers send: out-of-order events within the allowed lateness, exact
duplicates and a copy re-sent later, an event later than the lateness, a ``sum`` value sent as a string,
deadlines that fall on DST nights in the accounts' zones, and a burst from an account with no record.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

RULES = """\
rules:
  - id: export-failures-burst
    kind: threshold
    title: "{{ account.name }}: {{ evidence.value|number }} exports failed in 30 minutes"
    severity: high
    priority: 3
    window: 30m
    min: 5
    cooldown: 2h
    match: {event: Export Failed, where: {properties.format: {in: [pdf, svg]}}}
    playbook: |
      {{ account.owner|person(fallback="The account's owner") }}: check the export queue for
      **{{ account.name }}**{{ account|facts|aside }}.
    labels: {team: support}
  - id: sync-errors-many-users
    kind: threshold
    title: "{{ account.name }}: {{ evidence.value|number }} people hit sync errors"
    severity: medium
    priority: 6
    window: 1h
    measure: distinct:user_id
    min: 3
    match: {event: Sync Error}
  - id: storage-overage
    kind: threshold
    title: "{{ account.name }}: {{ evidence.value|number }} MB uploaded today"
    severity: low
    priority: 12
    window: 1d
    measure: sum:properties.size_mb
    min: 1000
    match: {event: File Uploaded}
  - id: render-failure-rate
    kind: ratio
    title: "{{ account.name }}: {{ (evidence.value * 100) | round(1) }}% of renders fail"
    severity: high
    priority: 4
    window: 2h
    match: {event: Render Finished, where: {properties.ok: false}}
    denominator: {event: Render Finished}
    min_ratio: 0.3
    min_denominator: 10
  - id: support-ticket-spike
    kind: spike
    title: >-
      {{ account.name }}: {{ evidence.value|number }} tickets today,
      {{ evidence.baseline|number }} the day before
    severity: medium
    priority: 5
    window: 1d
    factor: 3
    min: 4
    match: {event: Support Ticket Opened}
  - id: weekly-editors-drop
    kind: drop
    title: "{{ account.name }}: weekly editors down {{ evidence.drop_pct }}%"
    severity: high
    priority: 2
    window: 7d
    measure: distinct:user_id
    baseline_windows: 2
    drop_pct: 60
    min_baseline: 3
    match: {event: Canvas Edited}
  - id: lead-designer-quiet
    kind: inactivity
    title: "{{ account.name }}: lead designer {{ user.id }} quiet for 5 days"
    severity: high
    priority: 7
    group_by: user
    after: 5d
    match: {event: Canvas Edited, where: {properties.role: lead}}
    playbook: >-
      Reach out to {{ user.id }} at {{ account.name }};
      last seen {{ evidence.last_seen|datetime(account.timezone) }}.
  - id: workspace-dormant
    kind: inactivity
    title: "{{ account.name }}: no activity for 10 days"
    severity: medium
    priority: 9
    after: 10d
    match: {event: [Canvas Edited, Board Published, Comment Added]}
  - id: trial-not-activated
    kind: absence
    title: "{{ account.name }}: trial started but nothing published in 2 days"
    severity: medium
    priority: 8
    start: {event: Trial Started}
    expect: {event: Board Published, where: {properties.visibility: {ne: private}}}
    within: 2d
  - id: declined-then-downgrade
    kind: sequence
    title: "{{ account.name }}: card declined, then downgrade page, then seats removed"
    severity: critical
    priority: 1
    within: 5d
    steps:
      - {event: Card Declined}
      - {event: Plan Page Viewed, where: {properties.section: downgrade}}
      - {event: Seats Removed}
  - id: csat-unhappy
    kind: any
    title: "{{ account.name }}: CSAT {{ evidence.properties.score }} from {{ user.id }}"
    severity: medium
    priority: 10
    group_by: user
    cooldown: 1d
    match: {event: CSAT Rated, where: {properties.score: {lte: 2}}}
  - id: collab-health-low
    kind: score
    title: "{{ account.name }}: collaboration health {{ evidence.value }}"
    severity: low
    priority: 11
    window: 7d
    every: 1d
    below: 30
    components:
      - {name: edits, weight: 0.6, match: {event: Canvas Edited}, measure: count, target: 50}
      - {name: commenters, weight: 0.2, match: {event: Comment Added}, measure: "distinct:user_id", target: 4}
      - {name: csat, weight: 0.2, match: {event: CSAT Rated}, latest: properties.score,
         zero_at: 1, target: 5, default: 4}
  - id: at-risk-collab
    kind: composite
    title: "{{ account.name }} at risk: editors dropping and unhappy CSAT"
    severity: critical
    priority: 1
    all_of: [weekly-editors-drop, csat-unhappy]
    within: 10d
"""

ACCOUNTS = [
    {
        "account_id": "acme-design",
        "name": "Acme Design",
        "tier": "enterprise",
        "plan": "Business",
        "mrr": 4200.0,
        "seats": 40,
        "owner": {"name": "Ana Ruiz", "email": "ana@tessera.example", "slack": "U0ANA"},
        "timezone": "America/New_York",
        "links": {"crm": "https://crm.tessera.example/acme"},
    },
    {
        "account_id": "berlin-studio",
        "name": "Berlin Studio",
        "tier": "growth",
        "owner": {"name": "Jonas Weber", "email": "jonas@tessera.example"},
        "timezone": "Europe/Berlin",
    },
    {
        "account_id": "kiwi-labs",
        "name": "Kiwi Labs",
        "owner": {"name": "Ana Ruiz", "email": "ana@tessera.example"},
        "timezone": "Pacific/Auckland",
    },
    {"account_id": "quietco", "name": "Quiet Co", "timezone": "Asia/Tokyo"},
    {"account_id": "trialco", "name": "Trial Co", "timezone": "UTC"},
]

SKEWED = {
    "event_id": "skew-1",
    "event": "Canvas Edited",
    "account_id": "acme-design",
    "user_id": "a1",
    "timestamp": "2099-01-01T00:00:00.000Z",
}
"""From a client whose clock says 2099: dead-lettered (``future_timestamp``), never a clock mover."""


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def history() -> list[dict[str, Any]]:
    """Five weeks of Tessera events (2026-10-05 to 2026-11-05), in the order a producer sends them."""
    rows: list[dict[str, Any]] = []

    def add(account: str, name: str, at: datetime, user: str | None = None, **props: Any) -> dict[str, Any]:
        row: dict[str, Any] = {"event_id": f"t-{len(rows):05d}", "event": name, "account_id": account}
        row["timestamp"] = _stamp(at)
        if user:
            row["user_id"] = user
        row["properties"] = props
        rows.append(row)
        return row

    day = _at("2026-10-05T08:00:00")
    while day < _at("2026-11-06T00:00:00"):
        week = (day - _at("2026-10-05T00:00:00")).days // 7
        for u in range(5 if week < 3 else 1):  # kiwi's editors fall from 5 to 1 in the fourth week
            add("kiwi-labs", "Canvas Edited", day + timedelta(minutes=u), f"k{u}", role="member")
        for u in range(4):
            if u == 0 and day > _at("2026-10-27T05:30:00"):
                continue  # acme's lead goes quiet
            add(
                "acme-design",
                "Canvas Edited",
                day + timedelta(minutes=10 + u),
                f"a{u}",
                role="lead" if u == 0 else "member",
            )
        for u in range(3):
            add("berlin-studio", "Canvas Edited", day + timedelta(minutes=20 + u), f"b{u}", role="member")
        if day < _at("2026-10-20T00:00:00"):
            add("quietco", "Comment Added", day + timedelta(minutes=30), "q1")
        day += timedelta(days=1)
    # deadlines on DST nights: 2026-11-01T05:30Z is 01:30 EDT (New York falls back at 06:00Z); 2026-10-25T00:30Z
    # is 02:30 CEST (Berlin falls back at 01:00Z)
    add("acme-design", "Canvas Edited", _at("2026-10-27T05:30:00"), "a0", role="lead")
    add("berlin-studio", "Canvas Edited", _at("2026-10-20T00:30:00"), "bl", role="lead")

    for i in range(6):
        add(
            "acme-design",
            "Export Failed",
            _at("2026-10-20T14:00:00") + timedelta(minutes=3 * i),
            "a1",
            format="pdf" if i % 2 else "svg",
        )
    add("acme-design", "Export Failed", _at("2026-10-20T14:01:00"), "a1", format="png")
    first = None
    for i in range(4):  # 4 failures and two copies of one: not 5
        row = add(
            "acme-design", "Export Failed", _at("2026-10-21T14:00:00") + timedelta(minutes=2 * i), "a2", format="pdf"
        )
        first = first or row
    assert first is not None
    rows.append(dict(first))
    rows.append({**first, "timestamp": _stamp(_at("2026-10-21T14:09:00"))})
    for i, user in enumerate(["a1", "a2", "a3"]):
        add("acme-design", "Sync Error", _at("2026-10-22T09:00:00") + timedelta(minutes=15 * i), user, code=409)
    for i, size in enumerate([400, 400, "300", 250]):  # "300": not a number, skipped and counted
        add("acme-design", "File Uploaded", _at("2026-10-23T10:00:00") + timedelta(hours=i), "a1", size_mb=size)
    for i in range(12):
        add(
            "berlin-studio",
            "Render Finished",
            _at("2026-10-22T10:00:00") + timedelta(minutes=5 * i),
            "b1",
            ok=i not in (1, 3, 5, 7, 9),
        )
    add("berlin-studio", "Support Ticket Opened", _at("2026-10-23T09:00:00"), "b2")
    for i in range(4):
        add("berlin-studio", "Support Ticket Opened", _at("2026-10-24T09:00:00") + timedelta(hours=i), "b2")
    add("berlin-studio", "Card Declined", _at("2026-10-27T08:00:00"), "b0", attempt=1)
    add("berlin-studio", "Plan Page Viewed", _at("2026-10-28T08:00:00"), "b0", section="pricing")
    add("berlin-studio", "Plan Page Viewed", _at("2026-10-29T08:00:00"), "b0", section="downgrade")
    add("berlin-studio", "Seats Removed", _at("2026-11-01T08:00:00"), "b0", count=3)  # exactly 5 d after the first
    add("trialco", "Trial Started", _at("2026-10-22T09:00:00"), "t1")
    add("trialco", "Board Published", _at("2026-10-23T09:00:00"), "t1", visibility="private")
    add("trial-two", "Trial Started", _at("2026-10-22T00:00:00"), "u1")
    add("trial-two", "Board Published", _at("2026-10-22T00:00:00"), "u1", visibility="team")
    add("kiwi-labs", "CSAT Rated", _at("2026-10-30T03:00:00"), "k0", score=1, comment="slow *export* [link](http://x)")
    add("kiwi-labs", "CSAT Rated", _at("2026-10-30T05:00:00"), "k0", score=2)
    add("kiwi-labs", "CSAT Rated", _at("2026-10-30T06:00:00"), "k1", score=2.0)
    for i in range(5):
        add("ghost-co", "Export Failed", _at("2026-10-26T12:00:00") + timedelta(minutes=i), None, format="svg")

    rows.sort(key=lambda r: str(r["timestamp"]))
    # an acme event a day behind its partition's clock: late, ignored and counted
    late = {"event_id": "late-1", "event": "Export Failed", "account_id": "acme-design", "user_id": "a1"}
    late |= {"timestamp": "2026-10-20T14:05:00.000Z", "properties": {"format": "pdf"}}
    at = next(i for i, r in enumerate(rows) if str(r["timestamp"]) >= "2026-10-21T15:00")
    rows.insert(at, late)
    # two tickets 2 s out of order (within the allowed lateness)
    at = next(
        i
        for i, r in enumerate(rows)
        if r["event"] == "Support Ticket Opened" and str(r["timestamp"]).startswith("2026-10-24T12")
    )
    rows[at]["timestamp"] = "2026-10-24T12:00:03.000Z"
    ooo = {"event_id": "ooo-1", "event": "Support Ticket Opened", "account_id": "berlin-studio", "user_id": "b3"}
    rows.insert(at + 1, ooo | {"timestamp": "2026-10-24T12:00:01.000Z", "properties": {}})
    return rows


def write_files(folder: Path) -> tuple[Path, Path, Path]:
    """The rule pack, the accounts and the history (JSONL) in ``folder``; returns their paths."""
    rules, accounts, events = folder / "rules", folder / "accounts.jsonl", folder / "events.jsonl"
    rules.mkdir()
    (rules / "tessera.yaml").write_text(RULES)
    accounts.write_text("".join(json.dumps(a) + "\n" for a in ACCOUNTS))
    events.write_text("".join(json.dumps(r) + "\n" for r in history()))
    return rules, accounts, events
