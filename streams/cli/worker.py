"""``preempt worker`` — run the Faust rules app."""

from __future__ import annotations

import click

from streams.runtime.logs import configure_logging, faust_loglevel_option, get_logger, run_faust_worker
from streams.runtime.settings import Settings


@click.command()
@faust_loglevel_option
def worker(loglevel: str) -> None:
    """Run a rules worker: consume preempt.events, evaluate the rules, emit alerts.

    Configured from PREEMPT_* environment variables (docs/settings.md lists them all). Start more
    workers with the same settings to scale out (on one machine each with its own
    PREEMPT_WORKER_WEB_PORT); they share the partitions.

    Replaying history: PREEMPT_EVENT_TIME_ONLY=true moves the clocks by event
    time alone (no wall clock), for the same alerts as `preempt backtest` with
    --partitions PREEMPT_TOPIC_PARTITIONS and --until the newest event time minus
    PREEMPT_ALLOWED_LATENESS_SECONDS, once every partition has an event at that
    newest time (docs/pipeline.md, "Guarantees").
    """
    from streams.runtime.broker_probe import probe_broker
    from streams.runtime.faust_compat import (
        UntestedFaustError,
        leader_topic_name,
        require_tested_versions,
        watch_store_writes,
    )
    from streams.runtime.kafka_permissions import check_permissions
    from streams.runtime.missing_topics import discard_stale_stores
    from streams.runtime.ops_web import check_web_port
    from streams.runtime.store_full import StopOnFullDisk, expose_data_dir_space
    from streams.runtime.topics import changelog_topics, ensure_changelog_topics, ensure_topics
    from streams.worker.app import create_app, load_engine
    from streams.worker.progress import PROGRESS_TABLE

    settings = Settings()
    try:
        require_tested_versions(settings.allow_untested_faust)
    except UntestedFaustError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(settings.log_format, settings.log_level)
    for warning in settings.guarantee_warnings():
        get_logger("streams.worker").warning("processing guarantee", problem=warning)
    engine, rule_ids = load_engine(settings)  # invalid rules are reported before any connection
    check_web_port(settings.web_host, settings.worker_web_port, "PREEMPT_WORKER_WEB_PORT")
    probe_broker(settings)
    ensure_topics(settings)
    app = create_app(settings, engine, rule_ids)
    # The tables' changelogs exist before the group forms (a changelog Faust creates while the
    # worker starts can be missing from the first assignment, and the first table write then fails).
    changelogs = changelog_topics(app, settings.topic_partitions)
    # The group first (its committed offsets decide whether a missing changelog may be made): one line if refused.
    check_permissions(settings, group_id=app.conf.id)
    # partition-progress (added 2026-12-01) only tells skipped offsets apart: an upgrade from a version
    # without it makes it, empty, where the state tables' absence stops the start.
    progress = app.tables[PROGRESS_TABLE].changelog_topic.get_topic_name()
    created = ensure_changelog_topics(
        settings, changelogs, source=settings.topic("events"), group=app.conf.id, rebuildable=[progress]
    )
    discard_stale_stores(app, created)  # a changelog made anew: the local files of its deleted one go
    # A missing consumer-group or CREATE ACL: one line now, not a silent wait or Faust's traceback.
    declared = [t.name for t in changelogs] + [name for name in (leader_topic_name(app),) if name]
    check_permissions(settings, group_id=app.conf.id, declared_topics=declared)
    app.stop_deadline_seconds = settings.stop_timeout_seconds  # a stop that hangs ends with an ERROR line
    # A full disk under the table store: one CRITICAL line and exit 1, never a dead letter (store_full.py).
    watch_store_writes(StopOnFullDisk("rules worker", settings.data_dir))
    expose_data_dir_space(app.conf.name, settings.data_dir)
    run_faust_worker(app, loglevel, settings.log_format, settings.log_level)
