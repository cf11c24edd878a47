"""The real Segment and RudderStack SDKs against a real `preempt ingest`, the real broker and a live rules worker.

Each SDK (segment-analytics-python, rudder-sdk-python, @segment/analytics-node from npm) sends two
group calls, then identify, track and page. The test asserts that the events arrive on
preempt.events as mapped, that the account on preempt.accounts is the MERGE of both group calls,
and that rules fire on the SDK's events with that account in the alert.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from schemas.rfc3339 import parse_rfc3339
from streams.ingest.auth import key_digest
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.conftest import REPO, ManagedProcess, consume_records
from tests.integration.ingest_support import wait_healthy

WRITE_KEY = "wk_sdk_integration"
ACCOUNT = "acme-sdk"
USER = "u-ada"
NODE_SDK_SRC = Path(__file__).resolve().parent / "node_sdk"
NODE_SDK_DIR = REPO / ".cache" / "node-sdk"

RULES = """
rules:
  - id: report-exported
    kind: any
    title: "{{ account.name }} exported a report"
    severity: info
    priority: 1
    match: {event: Report Exported}
    playbook: "Ask {{ account.owner.email }} what the report is for"
  - id: admin-seen
    kind: any
    title: "{{ account.name }}: an admin was identified"
    severity: info
    priority: 2
    match:
      event: User Identified
      where: {properties.role: admin}
    playbook: "Say hello"
"""

# What every SDK sends, in a neutral form: (method, arguments).
GROUP_CALLS: list[tuple[str, dict[str, Any]]] = [
    (
        "group",
        {
            "user": USER,
            "group": ACCOUNT,
            "traits": {"name": "Acme SDK", "plan": "starter", "csm_email": "cs@vendor.test", "seats": 12},
        },
    ),
    ("group", {"user": USER, "group": ACCOUNT, "traits": {"plan": "enterprise", "arr": 120000}}),
]
ACTIVITY_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("identify", {"user": USER, "traits": {"role": "admin", "email": "ada@acme.test"}}),
    ("track", {"user": USER, "event": "Report Exported", "properties": {"format": "csv"}}),
    ("page", {"user": USER, "name": "Billing", "properties": {"path": "/billing"}}),
]
CONTEXT = {"groupId": ACCOUNT}


def send_python(client_class: Any, port: int, calls: list[tuple[str, dict[str, Any]]]) -> None:
    """Send ``calls`` with a Python SDK client class (Segment's or RudderStack's; same signatures)."""
    errors: list[Any] = []
    client = client_class(
        write_key=WRITE_KEY,
        host=f"http://127.0.0.1:{port}",
        on_error=lambda error, _batch: errors.append(error),
        max_retries=2,
    )
    for method, args in calls:
        if method == "group":
            client.group(user_id=args["user"], group_id=args["group"], traits=args["traits"])
        elif method == "identify":
            client.identify(user_id=args["user"], traits=args["traits"], context=dict(CONTEXT))
        elif method == "track":
            client.track(
                user_id=args["user"], event=args["event"], properties=args["properties"], context=dict(CONTEXT)
            )
        else:
            client.page(user_id=args["user"], name=args["name"], properties=args["properties"], context=dict(CONTEXT))
    client.flush()
    client.join()
    assert errors == [], errors


def send_segment_python(port: int, calls: list[tuple[str, dict[str, Any]]]) -> None:
    """segment-analytics-python (Basic auth, plain JSON)."""
    from segment.analytics import Client

    send_python(Client, port, calls)


def send_rudder_python(port: int, calls: list[tuple[str, dict[str, Any]]]) -> None:
    """rudder-sdk-python (Basic auth, gzip bodies by default)."""
    from rudderstack.analytics import Client

    send_python(Client, port, calls)


def node_sdk_dir() -> Path:
    """A directory with @segment/analytics-node installed from the npm registry (npm ci on the committed lock).

    Installed once under .cache/ and reinstalled when the lock file changes; an install that fails
    fails the test (it never skips).
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed for the @segment/analytics-node test (apt-get install nodejs npm)")
    lock = (NODE_SDK_SRC / "package-lock.json").read_bytes()
    installed = NODE_SDK_DIR / "node_modules" / "@segment" / "analytics-node" / "package.json"
    if not installed.exists() or (NODE_SDK_DIR / "package-lock.json").read_bytes() != lock:
        NODE_SDK_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(NODE_SDK_SRC / name, NODE_SDK_DIR / name)
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_SDK_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0 or not installed.exists():
            pytest.fail(f"npm ci of @segment/analytics-node failed ({result.returncode}):\n{result.stderr[-3000:]}")
    shutil.copyfile(NODE_SDK_SRC / "send.mjs", NODE_SDK_DIR / "send.mjs")
    return NODE_SDK_DIR


def send_segment_node(port: int, calls: list[tuple[str, dict[str, Any]]]) -> None:
    """@segment/analytics-node from npm, run by node."""
    directory = node_sdk_dir()
    node_calls = []
    for method, args in calls:
        node_args: dict[str, Any] = {"userId": args["user"]}
        if method == "group":
            node_args |= {"groupId": args["group"], "traits": args["traits"]}
        elif method == "identify":
            node_args |= {"traits": args["traits"], "context": CONTEXT}
        elif method == "track":
            node_args |= {"event": args["event"], "properties": args["properties"], "context": CONTEXT}
        else:
            node_args |= {"name": args["name"], "properties": args["properties"], "context": CONTEXT}
        node_calls.append({"method": method, "args": node_args})
    result = subprocess.run(
        ["node", "send.mjs", json.dumps(node_calls)],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "PREEMPT_TEST_HOST": f"http://127.0.0.1:{port}",
            "PREEMPT_TEST_WRITE_KEY": WRITE_KEY,
        },
    )
    assert result.returncode == 0, f"analytics-node failed:\n{result.stdout}\n{result.stderr}"
    assert "http_response 200" in result.stdout, result.stdout


SENDERS: dict[str, Callable[[int, list[tuple[str, dict[str, Any]]]], None]] = {
    "segment-analytics-python": send_segment_python,
    "rudder-sdk-python": send_rudder_python,
    "analytics-node": send_segment_node,
}


def latest_by_key(records: list[Any]) -> dict[bytes, dict[str, Any]]:
    """The last value per key of records read from a compacted topic."""
    return {r.key: json.loads(r.value) for r in records}


@pytest.mark.parametrize("sdk", list(SENDERS))
def test_sdk_calls_reach_events_accounts_and_fire_rules(
    sdk: str,
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    """Group, identify, track and page from the real SDK become events, a merged account record and alerts."""
    rules = tmp_path / "sdk-rules.yaml"
    rules.write_text(RULES)
    port = free_port()
    settings = settings_factory(
        ingest_api_keys=(f"sdk={key_digest(WRITE_KEY)}",),
        ingest_port=port,
        rules_path=rules,
        event_time_only=False,
        worker_web_port=free_port(),
    )
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    ingest = process_factory(["preempt", "ingest"], settings, name="ingest")
    wait_healthy(port, ingest)
    send = SENDERS[sdk]

    # 1. Two group calls: the second changes the plan only; the record keeps the name and the CSM.
    send(port, GROUP_CALLS)
    wanted = {"account_id": ACCOUNT, "name": "Acme SDK", "plan": "enterprise", "mrr": 10000.0}
    deadline = time.monotonic() + 60
    account: dict[str, Any] = {}
    while time.monotonic() < deadline:
        records = consume_records(kafka_bootstrap, names.accounts, 1, timeout_s=5)
        account = latest_by_key(records).get(ACCOUNT.encode(), {})
        if account.get("plan") == "enterprise":
            break
    assert {k: account.get(k) for k in wanted} == wanted, f"{account}\n{ingest.log_text()[-3000:]}"
    assert account["owner"] == {"email": "cs@vendor.test"}

    # 2. A rules worker that has the account, then the activity.
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    worker.wait_for_log("rules worker ready", timeout_s=120)
    send(port, ACTIVITY_CALLS)

    events = [json.loads(r.value) for r in consume_records(kafka_bootstrap, names.events, 5, timeout_s=60, idle_s=1)]
    by_name = {e["event"]: e for e in events}
    assert sorted(by_name) == ["Group Identified", "Page Viewed", "Report Exported", "User Identified"]
    assert len(events) == 5  # two group calls
    assert all(e["account_id"] == ACCOUNT and e["user_id"] == USER for e in events)
    assert by_name["User Identified"]["properties"] == {"role": "admin", "email": "ada@acme.test"}
    assert by_name["Report Exported"]["properties"] == {"format": "csv"}
    assert by_name["Page Viewed"]["properties"] == {"path": "/billing", "name": "Billing"}
    assert by_name["Report Exported"]["context"]["groupId"] == ACCOUNT
    assert len({e["event_id"] for e in events}) == 5
    # the clock-skew correction keeps the SDK's own times (same clock here) within a few seconds
    assert all(abs(parse_rfc3339(e["timestamp"]) - time.time()) < 300 for e in events)
    assert consume_records(kafka_bootstrap, names.events_dlq, 0, timeout_s=10, idle_s=2) == []

    alerts = [json.loads(r.value) for r in consume_records(kafka_bootstrap, names.alerts, 2, timeout_s=60, idle_s=1)]
    assert sorted(a["rule_id"] for a in alerts) == ["admin-seen", "report-exported"], worker.log_text()[-3000:]
    for alert in alerts:
        assert alert["account_id"] == ACCOUNT
        assert alert["account"]["name"] == "Acme SDK"
        assert alert["account"]["plan"] == "enterprise"
    exported = next(a for a in alerts if a["rule_id"] == "report-exported")
    assert exported["title"] == "Acme SDK exported a report"
    assert exported["playbook"] == "Ask cs@vendor.test what the report is for"


def doc_snippet(title: str, language: str) -> str:
    """The first ``language`` code block after the bold ``title`` in docs/events.md."""
    text = (REPO / "docs" / "events.md").read_text()
    after = text[text.index(f"**{title}**") :]
    start = after.index(f"```{language}\n") + len(f"```{language}\n")
    return after[start : after.index("```", start)]


def test_the_documented_three_line_configurations_work(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
) -> None:
    """The Python (Segment, RudderStack) and Node snippets of docs/events.md, run as written, deliver their event."""
    port = free_port()
    settings = settings_factory(ingest_api_keys=(f"docs={key_digest(WRITE_KEY)}",), ingest_port=port)
    ensure_topics(settings)
    ingest = process_factory(["preempt", "ingest"], settings, name="ingest")
    wait_healthy(port, ingest)

    def concrete(snippet: str) -> str:
        return snippet.replace("pk_…", WRITE_KEY).replace("https://ingest.example.com", f"http://127.0.0.1:{port}")

    for title in ("Python, Segment", "Python, RudderStack"):
        code = concrete(doc_snippet(title, "python")) + "analytics.flush()\n"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, f"{title}:\n{code}\n{result.stderr}"
    script = node_sdk_dir() / "docs-snippet.mjs"
    script.write_text(concrete(doc_snippet("Node", "js")) + "await analytics.closeAndFlush({ timeout: 30000 })\n")
    result = subprocess.run(
        ["node", script.name], cwd=script.parent, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr

    records = consume_records(kafka_bootstrap, TopicNames.from_settings(settings).events, 3, timeout_s=60, idle_s=1)
    events = [json.loads(r.value) for r in records]
    assert [(e["event"], e["account_id"], e["user_id"], e["properties"]) for e in events] == [
        ("Report Exported", "acme", "u-42", {"format": "csv"})
    ] * 3


def test_group_calls_spread_over_two_ingest_replicas_merge_without_losing_an_update(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
) -> None:
    """Group calls for one account sent to two ingest replicas, each setting another field: every field survives."""
    settings = settings_factory(ingest_api_keys=(f"sdk={key_digest(WRITE_KEY)}",))
    ensure_topics(settings)
    ports = [free_port(), free_port()]
    for n, port in enumerate(ports):
        replica = process_factory(["preempt", "ingest", "--port", str(port)], settings, name=f"ingest-{n}")
        wait_healthy(port, replica)
    traits = [
        {"name": "Two Replicas Inc"},
        {"plan": "pro"},
        {"tier": "enterprise"},
        {"mrr": 500},
        {"csm_email": "cs@vendor.test"},
        {"csm_name": "Dana"},
        {"csm_slack": "U0DANA"},
        {"timezone": "Europe/Paris"},
        {"crm_url": "https://crm.test/two"},
        {"admin_url": "https://admin.test/two"},
    ]
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()

    def post_group(n: int) -> int:
        body = {"messageId": f"g-{n}", "userId": USER, "groupId": "two-replicas", "traits": traits[n]}
        request = urllib.request.Request(
            f"http://127.0.0.1:{ports[n % 2]}/v1/group",
            data=json.dumps(body).encode(),
            headers={"Authorization": auth, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - 127.0.0.1 only
            return int(response.status)

    # Half at once (one merger batch), half one after the other (a batch each: the merger must read
    # its previous write back before merging the next).
    with ThreadPoolExecutor(max_workers=5) as pool:
        assert list(pool.map(post_group, range(5))) == [200] * 5
    assert [post_group(n) for n in range(5, len(traits))] == [200] * 5

    wanted = {
        "account_id": "two-replicas",
        "name": "Two Replicas Inc",
        "plan": "pro",
        "tier": "enterprise",
        "mrr": 500,
        "owner": {"email": "cs@vendor.test", "name": "Dana", "slack": "U0DANA"},
        "timezone": "Europe/Paris",
        "links": {"crm": "https://crm.test/two", "admin": "https://admin.test/two"},
    }
    names = TopicNames.from_settings(settings)
    deadline = time.monotonic() + 90
    account: dict[str, Any] = {}
    while time.monotonic() < deadline and account != wanted:
        account = latest_by_key(consume_records(kafka_bootstrap, names.accounts, 1, timeout_s=3)).get(
            b"two-replicas", {}
        )
    assert account == wanted


@pytest.mark.parametrize("client_module", ["segment.analytics", "rudderstack.analytics"])
def test_a_write_key_with_a_colon_works_from_the_real_sdks(
    client_module: str,
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
) -> None:
    """The SDKs send Basic base64("<key>:"); a key holding a colon was split at its first colon and every
    batch refused 401 (the SDK logs it and drops the batch). Tracked through a real ingest into Kafka."""
    import importlib

    key = "wk:with:colons"
    port = free_port()
    settings = settings_factory(ingest_api_keys=(f"sdk={key_digest(key)}",), ingest_port=port)
    ensure_topics(settings)
    ingest = process_factory(["preempt", "ingest"], settings, name="ingest")
    wait_healthy(port, ingest)

    errors: list[Any] = []
    client = importlib.import_module(client_module).Client(
        write_key=key,
        host=f"http://127.0.0.1:{port}",
        on_error=lambda error, _batch: errors.append(error),
        max_retries=0,
        sync_mode=True,
    )
    client.track(user_id=USER, event="Report Exported", properties={"n": 1}, context=dict(CONTEXT))
    client.flush()
    assert errors == [], errors

    [record] = consume_records(kafka_bootstrap, TopicNames.from_settings(settings).events, 1, timeout_s=60, idle_s=1)
    event = json.loads(record.value)
    assert (record.key, event["event"], event["user_id"]) == (ACCOUNT.encode(), "Report Exported", USER)


def test_an_event_only_browser_key_cannot_change_an_account_owner(
    kafka_bootstrap: str,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
) -> None:
    """The browser's key is public: its group call naming another owner (sent with the real Segment SDK) gives
    its ``Group Identified`` event but no account patch; the server key's group call still sets the record."""
    from segment.analytics import Client

    browser_key, port = "pk_browser_public", free_port()
    settings = settings_factory(
        ingest_api_keys=(f"server={key_digest(WRITE_KEY)}", f"browser={key_digest(browser_key)}"),
        ingest_event_only_sources=("browser",),
        ingest_port=port,
    )
    ensure_topics(settings)
    ingest = process_factory(["preempt", "ingest"], settings, name="ingest")
    wait_healthy(port, ingest)

    def group(key: str, message_id: str, traits: dict[str, Any]) -> None:
        errors: list[Any] = []
        client = Client(
            write_key=key,
            host=f"http://127.0.0.1:{port}",
            on_error=lambda error, _batch: errors.append(error),
            max_retries=0,
            sync_mode=True,
        )
        client.group(user_id=USER, group_id="owned-co", traits=traits, message_id=message_id)
        client.flush()
        assert errors == [], errors

    group(browser_key, "from-browser", {"csm_email": "someone@else.test", "name": "Hijacked"})
    group(WRITE_KEY, "from-server", {"csm_email": "cs@vendor.test", "name": "Owned Co"})

    names = TopicNames.from_settings(settings)
    events = consume_records(kafka_bootstrap, names.events, 2, timeout_s=60, idle_s=1)
    assert sorted(json.loads(r.value)["event_id"] for r in events) == ["from-browser", "from-server"]
    accounts = consume_records(kafka_bootstrap, names.accounts, 1, timeout_s=60, idle_s=3)
    assert [json.loads(r.value) for r in accounts] == [
        {"account_id": "owned-co", "name": "Owned Co", "owner": {"email": "cs@vendor.test"}}
    ]
    assert "account updates refused" in ingest.log_text()
