"""Topic names: every topic of a deployment, the notifier's share of them, and the apps' changelog topics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from schemas.errors import ConfigError
from streams.runtime.settings import Settings
from streams.runtime.topics import (
    ChangelogTopic,
    PartitionCountError,
    TopicNames,
    _check_kept,
    _check_not_compacted,
    _check_partitions,
    changelog_topics,
)


def test_every_topic_is_listed_once_with_the_prefix() -> None:
    """``every()`` names the seven topics of a deployment, each with the configured prefix."""
    names = TopicNames.from_settings(Settings(topic_prefix="acme"))
    assert names.every() == (
        "acme.events",
        "acme.events.dlq",
        "acme.accounts",
        "acme.accounts.updates",
        "acme.alerts",
        "acme.alerts.dlq",
        "acme.feedback",
    )


def test_the_notifier_topics_are_alerts_its_dead_letters_and_feedback() -> None:
    """``notifier()`` is the subset the notifier creates: none of the rules worker's own topics."""
    names = TopicNames.from_settings(Settings(topic_prefix="acme"))
    assert names.notifier() == ("acme.alerts", "acme.alerts.dlq", "acme.feedback")
    assert set(names.notifier()) <= set(names.every())


def test_the_rules_apps_changelog_topics_are_compacted_with_the_partition_count(tmp_path: Path) -> None:
    """The rules app's state, clock and progress changelogs are listed, compacted; the accounts topic is not
    one to make."""
    from streams.worker.app import app_id, create_app

    settings = Settings(topic_prefix="acme", topic_partitions=6, data_dir=tmp_path)
    topics = {t.name: t for t in changelog_topics(create_app(settings), settings.topic_partitions)}
    compacted = {"cleanup.policy": "compact"}
    assert topics == {
        f"{app_id(settings)}-account-state-changelog": ChangelogTopic(
            f"{app_id(settings)}-account-state-changelog", 6, compacted
        ),
        f"{app_id(settings)}-partition-clock-changelog": ChangelogTopic(
            f"{app_id(settings)}-partition-clock-changelog", 6, compacted
        ),
        f"{app_id(settings)}-partition-progress-changelog": ChangelogTopic(
            f"{app_id(settings)}-partition-progress-changelog", 6, compacted
        ),
    }


class _PartitionsAdmin:
    """An admin client that describes topics with the given partition counts."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"name": n, "partitions": [{}] * self.counts[n]} for n in names if n in self.counts]


def test_the_events_partition_check_reads_the_rules_apps_changelog_topics(tmp_path: Path) -> None:
    """An events topic with more partitions than the rules worker's state (partitions added later) is refused:
    the check finds the changelog topics the worker app names (one owner of ``<prefix>-rules``), not others."""
    from streams.worker.app import create_app

    settings = Settings(topic_prefix="acme", topic_partitions=8, data_dir=tmp_path)
    [state, *_] = [t.name for t in changelog_topics(create_app(settings), 6)]
    other_app = "acme-notify-deliveries-changelog"
    admin: Any = _PartitionsAdmin({"acme.events": 8, state: 6, other_app: 6})
    with pytest.raises(PartitionCountError, match=state):
        _check_partitions(admin, "acme.events", settings, {"acme.events", state, other_app})
    _check_partitions(admin, "acme.events", settings, {"acme.events", other_app})  # no rules state: fine


def test_the_notifiers_changelog_topics_are_its_two_tables(tmp_path: Path) -> None:
    """The notifier's ``deliveries`` and ``snoozes`` changelogs are named after its app id, compacted."""
    from alerts.app import app_id, create_app

    settings = Settings(topic_prefix="acme", data_dir=tmp_path)
    topics = changelog_topics(create_app(settings), settings.topic_partitions)
    assert sorted((t.name, t.partitions, t.config["cleanup.policy"]) for t in topics) == [
        (f"{app_id(settings)}-deliveries-changelog", settings.topic_partitions, "compact"),
        (f"{app_id(settings)}-snoozes-changelog", settings.topic_partitions, "compact"),
    ]


def test_a_windowed_tables_changelog_also_deletes_after_its_expiry() -> None:
    """A windowed table's changelog gets ``compact,delete`` and its expiry as ``retention.ms``, as Faust's."""
    import faust

    app = faust.App("acme-windows", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    app.Table("hits", default=int, partitions=3).tumbling(60, expires=3600)
    (topic,) = changelog_topics(app, 8)
    assert topic == ChangelogTopic(
        "acme-windows-hits-changelog", 3, {"cleanup.policy": "compact,delete", "retention.ms": "3600000"}
    )


def test_the_leader_wait_returns_at_the_first_describe_that_shows_leaders() -> None:
    """kafka-python 3 names a partition's leader ``leader_id``: a describe where every partition has one ends the
    wait at once (it read ``leader``, saw none, and every topic creation slept the whole timeout)."""
    from streams.runtime import topics

    class Admin:
        calls = 0

        def describe_topics(self, names: list[str]) -> list[dict[str, object]]:
            Admin.calls += 1
            partition = {"error_code": 0, "partition_index": 0, "leader_id": 1 if Admin.calls > 1 else -1}
            return [{"topic": name, "error_code": 0, "partitions": [partition]} for name in names]

    started = time.monotonic()
    topics._await_leaders(Admin(), ["t1", "t2"], timeout_s=30.0)  # type: ignore[arg-type]
    assert Admin.calls == 2
    assert time.monotonic() - started < 10.0  # not the timeout: the second describe showed leaders


class _ConfigsAdmin:
    """``KafkaAdminClient.describe_configs`` as kafka-python answers it: a topic whose configs this user may
    not describe comes back with no configs (kafka-python drops the per-topic error code)."""

    def __init__(self, shown: dict[str, dict[str, dict[str, str]]]) -> None:
        self.shown = shown

    def describe_configs(self, resources: list[Any], config_filter: str = "modified") -> dict[str, Any]:
        assert config_filter == "all"  # a default cleanup.policy is listed too, so a missing one means unreadable
        return {"topic": {r.name: self.shown.get(r.name, {}) for r in resources}}


def _config(value: str, source: str = "TOPIC_CONFIG") -> dict[str, str]:
    return {"value": value, "config_source": source}


def test_changelog_topics_whose_configs_cannot_be_read_are_warned_about_not_refused_as_deleting() -> None:
    """A user without DESCRIBE_CONFIGS (a managed Kafka's usual DESCRIBE/READ/WRITE/CREATE grants) got no
    configs back, and the worker refused to start saying the changelog had cleanup.policy=delete, which it
    did not have. Unreadable configs are now a WARNING; a readable deleting policy is still refused."""
    topics = [ChangelogTopic("a-rules-state-changelog", 4), ChangelogTopic("a-rules-clock-changelog", 4)]
    settings = Settings(topic_prefix="a")
    with capture_logs() as logs:
        readable = _ConfigsAdmin({"a-rules-clock-changelog": {"cleanup.policy": _config("compact")}})
        _check_kept(readable, topics, settings)
    warned = [e for e in logs if e["event"] == "changelog topics' cleanup policy not checked"]
    assert [(e["log_level"], e["topics"]) for e in warned] == [("warning", ["a-rules-state-changelog"])]

    deleting = {"cleanup.policy": _config("delete", "DEFAULT_CONFIG"), "retention.ms": _config("604800000")}
    refused = r"a-rules-state-changelog has cleanup\.policy=delete \(the broker's default\)"
    with pytest.raises(ConfigError, match=refused):
        _check_kept(_ConfigsAdmin({"a-rules-state-changelog": deleting}), topics[:1], settings)


def test_a_compacted_events_or_alerts_topic_is_refused_and_unreadable_ones_are_warned_about() -> None:
    """Events, alerts, dead letters and feedback are keyed by account: compacted (made beforehand with a managed
    Kafka's default, or changed later) Kafka keeps only each account's latest record and deletes the rest, which
    nothing counted. Such a topic is refused with the command that fixes it; a deleting one passes; one whose
    configs this user cannot read is a WARNING."""
    settings = Settings(topic_prefix="a", broker="kafka://b1:9092")
    names = ["a.events", "a.alerts"]
    _check_not_compacted(_ConfigsAdmin({n: {"cleanup.policy": _config("delete")} for n in names}), names, settings)

    compacted = {"a.events": {"cleanup.policy": _config("delete")}, "a.alerts": {"cleanup.policy": _config("compact")}}
    fix = r"kafka-configs\.sh --bootstrap-server b1:9092 --alter --entity-type topics --entity-name a\.alerts"
    with pytest.raises(ConfigError, match=rf"topic a\.alerts has cleanup\.policy=compact: .* {fix}"):
        _check_not_compacted(_ConfigsAdmin(compacted), names, settings)
    broker_default = {"a.events": {"cleanup.policy": _config("compact", "DEFAULT_CONFIG")}}
    with pytest.raises(ConfigError, match=r"a\.events has cleanup\.policy=compact \(the broker's default\)"):
        _check_not_compacted(_ConfigsAdmin(broker_default), ["a.events"], settings)

    with capture_logs() as logs:
        _check_not_compacted(_ConfigsAdmin({"a.events": {"cleanup.policy": _config("delete")}}), names, settings)
    assert [(e["log_level"], e["topics"]) for e in logs] == [("warning", ["a.alerts"])]


class _ExistingAdmin(_ConfigsAdmin):
    """An admin client of a cluster where every topic already exists (nothing to create)."""

    def list_topics(self) -> list[str]:
        return list(self.shown)

    def close(self) -> None:
        pass


def test_an_accounts_topic_that_exists_deleting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The accounts topic keeps each account's latest record: made beforehand with a managed Kafka's default of
    delete, Kafka deleted the accounts after the retention and a restarted worker or ingest no longer knew them,
    while every start passed (only the topics that must not be compacted were checked). Refused with the fix."""
    from streams.runtime import topics

    settings = Settings(topic_prefix="a", broker="kafka://b1:9092")
    monkeypatch.setattr(topics, "check_access", lambda _settings: None)
    deleting = {"cleanup.policy": _config("delete", "DEFAULT_CONFIG"), "retention.ms": _config("604800000")}
    admin = _ExistingAdmin({"a.accounts": deleting, "a.alerts": {"cleanup.policy": _config("delete")}})
    monkeypatch.setattr(topics, "admin_client", lambda *_args: admin)
    fix = r"--entity-name a\.accounts --add-config cleanup\.policy=compact"
    with pytest.raises(ConfigError, match=rf"topic a\.accounts has cleanup\.policy=delete \(the broker's .* {fix}"):
        topics.ensure_topics(settings, topics=["a.accounts", "a.alerts"])

    admin.shown["a.accounts"] = {"cleanup.policy": _config("compact")}
    topics.ensure_topics(settings, topics=["a.accounts", "a.alerts"])  # compacted: passes
