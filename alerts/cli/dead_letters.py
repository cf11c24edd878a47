"""``preempt alerts dead-letters``: the notifier's dead letters (``preempt.alerts.dlq``) read back, and replayed.

The PreemptNotificationsFailing runbook (docs/operations.md) sends the on-call to the dead-letter
records for the detail and, once the receiver is fixed, to replay the alerts that still matter.
Replaying produces each dead-lettered alert again on ``preempt.alerts`` with the header
``preempt-replay`` naming the targets it was dead-lettered for (``alerts/replay.py``): the notifier
sends it to those targets only (not to the receivers that had it, or were silenced or inhibited when
it came), and its delivery log (by ``alert_id`` and target) keeps a target that has had it since
from getting it twice. The log forgets after ``PREEMPT_DELIVERY_LOG_RETENTION_SECONDS`` (7 days), so
a letter older than that is refused unless ``--force``. A broker failure while producing is one
``Error:`` line and exit 1.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable

import click
import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import ValidationError

from alerts.replay import replay_header
from schemas.alert import Alert
from schemas.bounds import visible_controls
from schemas.errors import PublishError
from schemas.formatting import plural
from streams.runtime.dead_letter_reader import MAX_VALUE_CHARS, StoredDeadLetter
from streams.runtime.dead_letters import (
    ALERT_ERROR,
    ALERT_REASON,
    ALERT_RECEIVER_TYPE,
    ALERT_TARGET,
    ALERT_TRUNCATED,
    INVALID_ALERT,
)
from streams.runtime.option_types import WholeNumberRange
from streams.runtime.settings import Settings


def describe(letter: StoredDeadLetter) -> str:
    """Two lines for a terminal: reason, target and error, then the alert (clipped)."""
    v = letter.verdict
    target = v.get(ALERT_TARGET, "-")
    receiver_type = v.get(ALERT_RECEIVER_TYPE) or "none"
    alert_id = _alert_id(letter.value)
    text = "<none>" if letter.value is None else letter.value.decode("utf-8", "replace")
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "…"
    head = f"key={letter.key} alert_id={alert_id or '?'} target={target} ({receiver_type}): {v.get(ALERT_REASON, '?')}"
    # a Slack or SMTP error text, a key or a value read off the topic: shown, never obeyed by the terminal
    return f"{visible_controls(head)}: {visible_controls(v.get(ALERT_ERROR, ''))}\n    {visible_controls(text)}"


def _alert_id(value: bytes | None) -> str | None:
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    found = doc.get("alert_id") if isinstance(doc, dict) else None
    return found if isinstance(found, str) else None


def replayable(letter: StoredDeadLetter) -> Alert | None:
    """The alert a letter holds, when it is a whole valid alert (not a record cut to fit, not an invalid one).

    A letter the notifier refused as ``invalid_alert`` is never replayed, even when its value reads as an
    alert here: its fault was elsewhere (a garbled ``preempt-replay`` header), the targets it was meant
    for are not kept, and replayed without them it would be routed as new, to every receiver."""
    if letter.value is None or ALERT_TRUNCATED in letter.verdict or letter.verdict.get(ALERT_REASON) == INVALID_ALERT:
        return None
    try:
        return Alert.model_validate_json(letter.value)
    except ValidationError:
        return None


def _target(letter: StoredDeadLetter) -> str | None:
    """The delivery target a letter was dead-lettered for; None when it names none (it failed before routing)."""
    target = letter.verdict.get(ALERT_TARGET)
    return target if target and target != "-" else None


def too_old(letters: list[StoredDeadLetter], retention_seconds: float, now: float) -> int:
    """How many replayable ``letters`` were dead-lettered longer ago than the delivery log remembers."""
    horizon_ms = (now - retention_seconds) * 1000
    return sum(
        1
        for letter in letters
        if letter.timestamp_ms is not None and letter.timestamp_ms < horizon_ms and replayable(letter) is not None
    )


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


ProducerFactory = Callable[..., KafkaProducer]


def replay(
    settings: Settings, letters: list[StoredDeadLetter], producer_factory: ProducerFactory | None = None
) -> tuple[int, int]:
    """Produce each replayable letter's alert on ``preempt.alerts`` (keyed by account); (replayed, skipped).

    An alert dead-lettered for several targets is sent once, its ``preempt-replay`` header naming them
    all (none when one of its letters names no target: the notifier routes it as new). Raises
    ``PublishError`` (one line) when Kafka does not take them all."""
    from streams.runtime.kafka_clients import kafka_python_bootstrap, kafka_python_config, metadata_max_age_ms
    from streams.runtime.topics import TopicNames

    alerts: dict[str, Alert] = {}
    targets: dict[str, set[str] | None] = {}  # None: route it as new
    skipped = 0
    for letter in letters:
        alert = replayable(letter)
        if alert is None:
            skipped += 1
            continue
        alerts.setdefault(alert.alert_id, alert)
        named, target = targets.setdefault(alert.alert_id, set()), _target(letter)
        if target is None or named is None:
            targets[alert.alert_id] = None
        else:
            named.add(target)
    if not alerts:
        return 0, skipped
    topic = TopicNames.from_settings(settings).alerts
    where = ", ".join(settings.bootstrap_servers)
    try:
        producer = (producer_factory or KafkaProducer)(
            bootstrap_servers=kafka_python_bootstrap(settings),
            acks="all",
            client_id="preempt-alerts-replay",
            metadata_max_age_ms=metadata_max_age_ms(settings),
            **kafka_python_config(settings),
        )
    except KafkaError as exc:
        raise PublishError(
            f"cannot replay: Kafka at {where} did not answer ({type(exc).__name__}); nothing was replayed. "
            "Run the command again once the broker is back",
            len(alerts),
        ) from None
    try:
        futures = [
            producer.send(
                topic,
                key=alert.account_id.encode(),
                value=alert.model_dump_json().encode(),
                headers=[("content-type", b"application/json"), replay_header(targets[alert.alert_id] or ())],
            )
            for alert in alerts.values()
        ]
        producer.flush(timeout=30)
        failed = [f.exception for f in futures if not f.is_done or f.failed()]
    except KafkaError as exc:
        failed = [exc] * len(alerts)
    finally:
        # A close that fails after the flush loses nothing; after a failed flush, that failure is the one to tell.
        with contextlib.suppress(KafkaError):
            producer.close(timeout=5)
    if failed:
        first = failed[0]
        raise PublishError(
            f"replay failed: {len(failed)} of {plural(len(alerts), 'alert')} not confirmed by Kafka at {where} "
            f"({type(first).__name__ if first else 'no answer'}); run the command again once the broker is back "
            "(the notifier's delivery log keeps targets that already had them from a second copy)",
            len(failed),
        )
    return len(alerts), skipped


@click.command("dead-letters")
@click.option(
    "--limit",
    type=WholeNumberRange(min=0),
    default=50,
    show_default=True,
    help="Show at most this many dead letters, the newest.",
)
@click.option("--account", "account_id", default=None, help="Only dead letters of this account.")
@click.option("--reason", default=None, help="Only this reason: permanent, gave_up, invalid_alert, …")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of text.")
@click.option(
    "--replay",
    "replay_",
    is_flag=True,
    help="Produce the alerts shown again on preempt.alerts (after fixing the receiver); the notifier "
    "sends each only to the targets it was dead-lettered for, and not twice to the same target.",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --replay: replay letters older than the delivery log's retention too "
    "(the notifier no longer knows whether their targets had them since).",
)
def dead_letters(
    limit: int, account_id: str | None, reason: str | None, as_json: bool, replay_: bool, force: bool
) -> None:
    """Show alerts the notifier dead-lettered (preempt.alerts.dlq): target, reason, error and the alert.

    Reads the whole topic from the beginning and prints the newest --limit matches, oldest first. Examples:

    \b
      preempt alerts dead-letters --account acme --reason permanent
      preempt alerts dead-letters --replay
    """
    if force and not replay_:
        raise click.UsageError("--force only goes with --replay")
    from streams.runtime.broker_probe import probe_broker
    from streams.runtime.dead_letter_reader import missing_topic_note, read_dead_letters
    from streams.runtime.dead_letters import alert_dead_letter_verdict
    from streams.runtime.topics import TopicNames

    settings = Settings()
    probe_broker(settings)
    seen: Counter[str] = Counter()
    missing: set[str] = set()
    letters = read_dead_letters(
        settings,
        account_id=account_id,
        reason=reason,
        limit=limit,
        reasons_seen=seen,
        topic=TopicNames.from_settings(settings).alerts_dlq,
        verdict_of=alert_dead_letter_verdict,
        reason_header=ALERT_REASON,
        missing=missing,
    )
    for letter in letters:
        click.echo(letter.to_json() if as_json else describe(letter))
    click.echo(f"{plural(len(letters), 'dead letter')} shown", err=True)
    for topic in sorted(missing):
        click.echo(missing_topic_note(settings, topic), err=True)
    if not letters and limit and (reason or account_id) and seen:
        held = ", ".join(f"{name} ({count})" for name, count in sorted(seen.items()))
        click.echo(f"note: none matches the filter; the topic holds {sum(seen.values())}: {held}", err=True)
    if replay_:
        retention = settings.delivery_log_retention_seconds
        old = too_old(letters, retention, time.time())
        if old and not force:
            raise click.ClickException(
                f"not replayed: {old} of the dead letters shown are older than the delivery log's retention "
                f"({_duration(retention)}, PREEMPT_DELIVERY_LOG_RETENTION_SECONDS), so the notifier cannot tell "
                "whether their targets had them since; narrow the selection (--account, --reason, --limit) "
                "or add --force to replay them anyway"
            )
        sent, skipped = replay(settings, letters)
        names = TopicNames.from_settings(settings)
        note = f" ({skipped} skipped: not a whole alert)" if skipped else ""
        click.echo(f"replayed {plural(sent, 'alert')} to {names.alerts}{note}", err=True)
