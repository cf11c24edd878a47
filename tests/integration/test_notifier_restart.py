"""No duplicates across a crash: a notifier killed with SIGKILL and restarted re-sends nothing delivered."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaProducer

from alerts.app import app_id
from alerts.testing.slack_server import FakeSlack, Reply, slack_server  # noqa: F401
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicNames
from tests.integration.conftest import ManagedProcess
from tests.integration.notifier_harness import (
    log_records,
    make_alert,
    notifier_settings,
    produce_alerts,
    rewind_group,
    start_notifier,
    wait_for_records,
    write_routes,
)
from tests.integration.restart_stress import committed_and_ends

ROUTES = """
receivers:
  - name: owner
    slack_configs:
      - channel: "{{ account.owner.slack }}"
route:
  receiver: owner
  group_by: ["..."]
  group_wait: 0s
"""


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_sigkill_and_restart_resends_nothing_delivered(
    store: str,
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Alerts delivered before a SIGKILL (nothing committed, or rewound) are re-consumed after the
    restart but refused by the recovered delivery log; only the new alert is sent — on the in-memory
    store and on RocksDB, the production default (whose delivery records were never written)."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        slack_api_url=slack_server.api_url,
        notifier_commit_interval_seconds=600,  # no timed commit; a rebalance may still commit (rewound below)
        notifier_session_timeout_seconds=6,
        store=store,
    )
    first = start_notifier(process_factory, settings, name="notifier-1")
    before = [make_alert(f"acct-{i}", account={"name": f"A{i}", "owner": {"slack": f"C-{i}"}}) for i in range(5)]
    produce_alerts(producer, topics.alerts, *before)
    wait_for_records(first, "alert delivered", 5)
    first.kill()
    assert len(slack_server.delivered()) == 5
    # A rebalance under load commits offsets whatever the interval: rewind, so all five are re-read.
    rewind_group(settings.bootstrap_servers[0], app_id(settings), topics.alerts, settings.topic_partitions)

    second = start_notifier(process_factory, settings, name="notifier-2")
    after = make_alert("acct-new", account={"name": "New", "owner": {"slack": "C-NEW"}})
    produce_alerts(producer, topics.alerts, after)
    delivered = wait_for_records(second, "alert delivered", 1)
    refused = wait_for_records(second, "alert already delivered", 5)

    assert [r["alert_id"] for r in delivered] == [after.alert_id]
    assert not log_records(first, "delivery bookkeeping failed") + log_records(second, "delivery bookkeeping failed")
    # Every alert delivered before the kill is re-read and refused; the new one may be re-read too
    # (a seek back after the flow stopped), and is refused then: never sent twice.
    refused_ids = {r["alert_id"] for r in refused}
    assert {a.alert_id for a in before} <= refused_ids <= {a.alert_id for a in before} | {after.alert_id}
    per_channel = Counter(r.target for r in slack_server.delivered())
    assert per_channel == Counter({f"C-{i}": 1 for i in range(5)} | {"C-NEW": 1})


def test_an_alert_still_being_retried_is_not_committed_past_and_is_sent_after_a_restart(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """An alert whose Slack channel keeps failing stays uncommitted while a later alert of its partition is
    delivered and committed around it; after a SIGKILL the restarted notifier sends it (once) and not the
    later one again. Faust committed past such an alert, and a restart never read it again."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        slack_api_url=slack_server.api_url,
        notifier_commit_interval_seconds=0.5,
        notifier_session_timeout_seconds=6,
    )
    slack_server.always("C-WAIT", Reply.server_error(503))  # retried, never given up within the test
    first = start_notifier(process_factory, settings, name="notifier-1")
    waiting = make_alert("acme", account={"name": "Acme", "owner": {"slack": "C-WAIT"}})
    later = make_alert("acme", account={"name": "Acme", "owner": {"slack": "C-LATER"}})  # same key: same partition
    produce_alerts(producer, topics.alerts, waiting, later)
    wait_for_records(first, "alert delivered", 1)
    slack_server.wait_for(1, target="C-LATER")
    # Several commit intervals pass with the later alert acked: the partition's commit stays at the waiting one.
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        offsets = committed_and_ends(
            settings.bootstrap_servers[0], app_id(settings), topics.alerts, settings.topic_partitions
        )
        assert all(committed <= 0 for committed, _end in offsets.values()), offsets  # the waiting alert is at 0
        time.sleep(0.25)
    assert not slack_server.delivered("C-WAIT")
    first.kill()

    slack_server.always("C-WAIT", Reply.ok())
    second = start_notifier(process_factory, settings, name="notifier-2")
    sent = wait_for_records(second, "alert delivered", 1)
    assert [r["alert_id"] for r in sent] == [waiting.alert_id]
    # The later alert is read again and refused (the waiting one too, if a seek back re-reads it once sent).
    refused = {r["alert_id"] for r in wait_for_records(second, "alert already delivered", 1)}
    assert later.alert_id in refused
    assert refused <= {later.alert_id, waiting.alert_id}
    assert len(slack_server.delivered("C-WAIT")) == 1
    assert len(slack_server.delivered("C-LATER")) == 1


def test_a_sigterm_lets_the_message_in_flight_finish_and_the_restart_does_not_post_it_again(
    settings_factory: Callable[..., Settings],
    topics: TopicNames,
    producer: KafkaProducer,
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A SIGTERM (a rolling restart) while Slack takes 3 s to answer a post: the notifier waits for the
    answer and records the delivery before it stops, so its successor posts nothing again. It used to close
    the connection under the request — after Slack had taken the message — and the restart posted it twice."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        slack_api_url=slack_server.api_url,
        notifier_session_timeout_seconds=6,
    )
    slack_server.script("C-SLOW", Reply.slow(3.0))
    first = start_notifier(process_factory, settings, name="notifier-1")
    alert = make_alert("acme", account={"name": "Acme", "owner": {"slack": "C-SLOW"}})
    produce_alerts(producer, topics.alerts, alert)
    deadline = time.monotonic() + 30
    while not slack_server.for_target("C-SLOW") and time.monotonic() < deadline:
        time.sleep(0.05)
    first.stop()
    assert [r["alert_id"] for r in log_records(first, "alert delivered")] == [alert.alert_id]

    rewind_group(settings.bootstrap_servers[0], app_id(settings), topics.alerts, settings.topic_partitions)
    second = start_notifier(process_factory, settings, name="notifier-2")
    wait_for_records(second, "alert already delivered", 1)
    assert len(slack_server.for_target("C-SLOW")) == 1
