"""A made-up invoicing product ("Ledgerly") for black-box checks of every rule kind but ``risk``.

Other accounts (unicode ids, one missing from the accounts file), other event names, dotted and
unicode property keys, numbers sent as strings, a duplicate and a late event: the pipeline must give
exactly the alerts ``preempt backtest`` gives, and both the alerts listed in ``EXPECTED``, worked out
by hand from docs/rules.md (not from the engine).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

RULES = """
rules:
  - id: export-failures
    kind: threshold
    title: "{{ account.name }}: {{ evidence.value }} failed exports in 10 minutes"
    severity: high
    priority: 3
    window: 10m
    min: 3
    match: {event: Report Exported, where: {properties.http.code: {gte: 500}}}
    playbook: "Check the export queue for **{{ account.name }}**."
  - id: big-invoice-volume
    kind: threshold
    title: "{{ account.name }}: invoiced {{ evidence.value|money }} today"
    severity: info
    priority: 20
    window: 1d
    measure: sum:properties.amount.total
    min: 1000
    match: {event: Invoice Sent}
  - id: distinct-seat-adders
    kind: threshold
    title: "{{ account.name }}: {{ evidence.value }} people added seats"
    severity: low
    priority: 15
    window: 1h
    measure: distinct:user_id
    min: 3
    match: {event: Seat Added}
  - id: invoice-bounce-rate
    kind: ratio
    title: "{{ account.name }}: {{ evidence.value|percent }} of invoices bounce"
    severity: medium
    priority: 6
    window: 1h
    match: {event: Invoice Bounced}
    denominator: {event: [Invoice Sent, Invoice Bounced]}
    min_ratio: 0.3
    min_denominator: 4
  - id: export-spike
    kind: spike
    title: "{{ account.name }}: {{ evidence.value }} report exports in an hour, {{ evidence.baseline }} the hour before"
    severity: medium
    priority: 7
    window: 1h
    factor: 3
    min: 6
    match: {event: Report Exported}
  - id: daily-invoicers-drop
    kind: drop
    title: "{{ account.name }}: daily invoicing users down {{ evidence.drop_pct }}%"
    severity: high
    priority: 4
    window: 1d
    measure: distinct:user_id
    baseline_windows: 2
    drop_pct: 50
    min_baseline: 2
    match: {event: Invoice Sent}
  - id: comptable-quiet
    kind: inactivity
    title: "{{ account.name }}: the bookkeeper {{ user.id }} has been away"
    severity: high
    priority: 5
    group_by: user
    after: 2d
    match: {event: Workspace Opened, where: {properties.rôle: "comptable"}}
  - id: overdue-not-paid
    kind: absence
    title: "{{ account.name }}: overdue invoice not paid in a day"
    severity: critical
    priority: 1
    start: {event: Invoice Overdue}
    expect: {event: [Invoice Paid, Payment Plan Agreed]}
    within: 1d
  - id: seats-then-downgrade
    kind: sequence
    title: "{{ account.name }} removed seats, then downgraded"
    severity: critical
    priority: 2
    within: 2d
    steps:
      - {event: Seat Removed}
      - {event: Plan Downgraded}
  - id: survey-detractor
    kind: any
    title: "{{ account.name }}: survey score {{ evidence.properties.score }}"
    severity: medium
    priority: 8
    cooldown: 0s
    match: {event: Survey Answered, where: {properties.score: {lte: 6}}}
  - id: ledger-health
    kind: score
    title: "{{ account.name }}: ledger health {{ evidence.value }}"
    severity: low
    priority: 9
    window: 3d
    every: 1d
    below: 50
    components:
      - {name: invoicing, weight: 0.6, match: {event: Invoice Sent}, measure: count, target: 30}
      - {name: reporting, weight: 0.3, match: {event: Report Exported},
         measure: "distinct:properties.format", target: 3}
      - {name: sentiment, weight: 0.1, match: {event: Survey Answered},
         latest: properties.score, target: 10, default: 7}
  - id: ledger-at-risk
    kind: composite
    title: "{{ account.name }} is at risk: fewer invoicers and a detractor"
    severity: critical
    priority: 1
    all_of: [daily-invoicers-drop, survey-detractor]
    within: 7d
"""

ALESUND, WIDGETS, UNKNOWN, PAID = "org-ålesund", "org-42", "acct-ünknown", "org-paid"

ACCOUNTS = [
    {
        "account_id": ALESUND,
        "name": "Ålesund Fiskeri AS",
        "tier": "growth",
        "plan": "Växt (år)",
        "mrr": 1234.5,
        "seats": 12,
        "owner": {"name": "Zoë Ngata", "email": "zoe@ledgerly.example", "slack": "U0ZOE"},
        "timezone": "Europe/Oslo",
        "links": {"crm": "https://crm.ledgerly.example/a/1"},
    },
    {
        "account_id": WIDGETS,
        "name": "42 Widgets",
        "tier": "starter",
        "mrr": 0.1,
        "seats": 3,
        "owner": {"name": "Ravi Iyer", "email": "ravi@ledgerly.example"},
        "timezone": "Asia/Kolkata",
    },
    {"account_id": PAID, "name": "Paid On Time GmbH"},
]  # UNKNOWN is in no accounts file: its alerts carry only its id

UNTIL = "2026-11-06T12:00:00Z"
"""The end of the replay: the clock moves there, so the deadlines up to it fire."""

# (fired_at, rule_id, account_id, user_id), worked out from docs/rules.md
EXPECTED = [
    ("2026-11-02T09:06:00.000Z", "export-failures", ALESUND, None),  # 3rd 5xx export (a dotted key, a nested one)
    ("2026-11-02T10:01:00.000Z", "big-invoice-volume", ALESUND, None),  # 600 + 400 reaches min 1000 exactly
    ("2026-11-02T11:30:00.000Z", "distinct-seat-adders", UNKNOWN, None),  # 3rd distinct user
    ("2026-11-02T14:03:00.000Z", "invoice-bounce-rate", WIDGETS, None),  # 2 of 4
    ("2026-11-02T16:25:00.000Z", "export-spike", WIDGETS, None),  # 6 (15:30 + 5) against 1 before
    ("2026-11-04T12:00:00.000Z", "overdue-not-paid", UNKNOWN, None),  # paid exactly at the deadline: too late
    ("2026-11-05T00:00:00.000Z", "daily-invoicers-drop", ALESUND, None),  # 1 user against 4
    ("2026-11-05T00:00:00.000Z", "ledger-health", ALESUND, None),  # first tick after the 3-day warm-up
    ("2026-11-05T00:00:00.000Z", "ledger-health", WIDGETS, None),
    ("2026-11-05T08:00:00.000Z", "comptable-quiet", UNKNOWN, "bø-1"),  # last open + 2 days
    ("2026-11-05T12:30:00.000Z", "ledger-at-risk", ALESUND, None),
    ("2026-11-05T12:30:00.000Z", "survey-detractor", ALESUND, None),  # score 6 (score "3" is a string)
    ("2026-11-06T00:00:00.000Z", "daily-invoicers-drop", ALESUND, None),  # 0 against 2.5
    ("2026-11-06T09:00:00.000Z", "seats-then-downgrade", UNKNOWN, None),  # exactly 2 days apart: inclusive
]

# evidence.value of some of them (the score counts the duplicate invoice once: 10 invoices, not 11)
EXPECTED_VALUES = {
    ("export-failures", ALESUND, "2026-11-02T09:06:00.000Z"): 3,
    ("big-invoice-volume", ALESUND, "2026-11-02T10:01:00.000Z"): 1000,
    ("invoice-bounce-rate", WIDGETS, "2026-11-02T14:03:00.000Z"): 0.5,
    ("export-spike", WIDGETS, "2026-11-02T16:25:00.000Z"): 6,
    ("daily-invoicers-drop", ALESUND, "2026-11-05T00:00:00.000Z"): 1,
    ("ledger-health", ALESUND, "2026-11-05T00:00:00.000Z"): 47,  # 100 × (0.6 × 10/30 + 0.3 × 2/3 + 0.1 × 0.7)
    ("ledger-health", WIDGETS, "2026-11-05T00:00:00.000Z"): 21,  # 100 × (0.6 × 2/30 + 0.3 × 1/3 + 0.1 × 0.7)
}

_T0 = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday


def events() -> list[dict[str, Any]]:
    """The scenario's events in file order (sorted, then a duplicate's copy and a late event at the end)."""
    out: list[dict[str, Any]] = []

    def ev(account: str, name: str, at: timedelta, user: str | None = None, props: Any = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event_id": f"ldg-{len(out) + 1:04d}",
            "event": name,
            "account_id": account,
            "timestamp": (_T0 + at).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        }
        if user:
            body["user_id"] = user
        if props is not None:
            body["properties"] = props
        out.append(body)
        return body

    def h(hours: int, minutes: int = 0) -> timedelta:
        return timedelta(hours=hours, minutes=minutes)

    def d(days: int, hours: int = 0, minutes: int = 0) -> timedelta:
        return timedelta(days=days, hours=hours, minutes=minutes)

    ev(ALESUND, "Report Exported", h(9, 0), "a-1", {"format": "pdf", "http.code": 503})
    ev(ALESUND, "Report Exported", h(9, 3), "a-1", {"format": "pdf", "http": {"code": 502}})
    ev(ALESUND, "Report Exported", h(9, 4), "a-1", {"format": "pdf", "http": {"code": "503"}})
    ev(ALESUND, "Report Exported", h(9, 6), "a-2", {"format": "csv", "http.code": 500})
    ev(ALESUND, "Report Exported", h(9, 7), "a-2", {"format": "csv", "http.code": 500})  # in cooldown
    ev(ALESUND, "Invoice Sent", h(10, 0), "a-1", {"amount": {"total": 600}})
    ev(ALESUND, "Invoice Sent", h(10, 1), "a-2", {"amount.total": 400})
    ev(ALESUND, "Invoice Sent", h(10, 2), "a-3", {"amount": {"total": "49.99"}})
    ev(ALESUND, "Invoice Sent", h(10, 3), "a-4", {"amount": {"total": None}})
    duplicate = ev(ALESUND, "Invoice Sent", h(10, 4), "a-4", {"amount": {"total": 1}})
    out.append(dict(duplicate))
    for i in range(1, 5):
        ev(ALESUND, "Invoice Sent", d(1, 10, i), f"a-{i}", {"amount": {"total": 1}})
    ev(ALESUND, "Invoice Sent", d(2, 10), "a-1", {"amount": {"total": 1}})
    ev(ALESUND, "Survey Answered", d(3, 12), "a-1", {"score": "3", "comment": "Trop cher 💸"})
    ev(ALESUND, "Survey Answered", d(3, 12, 30), "a-2", {"score": 6, "comment": "meh *bold* {{ account.name }}"})

    ev(WIDGETS, "Invoice Bounced", h(14, 0), "b-1", {"to": "x@y"})
    ev(WIDGETS, "Invoice Bounced", h(14, 1), "b-1", {"to": "x@y"})
    ev(WIDGETS, "Invoice Sent", h(14, 2), "b-1", {"amount": {"total": 10}})
    ev(WIDGETS, "Invoice Sent", h(14, 3), "b-1", {"amount": {"total": 10}})
    ev(WIDGETS, "Report Exported", h(15, 0), "b-1", {"format": "xlsx"})
    ev(WIDGETS, "Report Exported", h(15, 30), "b-1", {"format": "xlsx"})
    for i in range(6):
        ev(WIDGETS, "Report Exported", h(16, 5 + 5 * i), "b-1", {"format": "xlsx"})

    ev(UNKNOWN, "Workspace Opened", d(0, 8), "bø-1", {"rôle": "comptable"})
    ev(UNKNOWN, "Workspace Opened", d(0, 9), "bø-2", {"rôle": "directeur"})
    ev(UNKNOWN, "Workspace Opened", d(1, 8), "bø-1", {"rôle": "comptable"})
    for i, user in enumerate(["s-1", "s-2", "s-2", "s-3"]):
        ev(UNKNOWN, "Seat Added", d(0, 11, 10 * i), user, {"seats": "2"})
    ev(UNKNOWN, "Invoice Overdue", d(1, 12), None, {"invoice": "INV-7"})
    ev(UNKNOWN, "Invoice Paid", d(2, 12), None, {"invoice": "INV-7"})
    ev(UNKNOWN, "Seat Removed", d(2, 9), "bø-2", {})
    ev(UNKNOWN, "Plan Downgraded", d(4, 9), "bø-2", {"from": "Pro", "to": "Basic"})

    ev(PAID, "Invoice Overdue", d(1, 12), None, {"invoice": "INV-8"})
    ev(PAID, "Invoice Paid", d(1, 23, 59), None, {"invoice": "INV-8"})
    ev(PAID, "Seat Removed", d(1, 9), "d-1", {})
    ev(PAID, "Plan Downgraded", d(3, 9, 1), "d-1", {})  # 2 days and a minute: too slow

    out.sort(key=lambda e: str(e["timestamp"]))
    ev(UNKNOWN, "Seat Added", d(4, 10), "s-9", {})
    ev(UNKNOWN, "Survey Answered", d(4, 8), "s-8", {"score": 2})  # 2 hours behind the newest: late, no alert
    return out


def write(directory: Path) -> tuple[Path, Path, Path]:
    """The rules, events and accounts files of the scenario in ``directory``."""
    rules, events_path, accounts = directory / "ledger.yaml", directory / "events.jsonl", directory / "accounts.jsonl"
    rules.write_text(RULES, encoding="utf-8")
    events_path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events()), encoding="utf-8")
    accounts.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in ACCOUNTS), encoding="utf-8")
    return rules, events_path, accounts
