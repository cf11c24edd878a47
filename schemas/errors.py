"""The one exception root of Preempt.

PreemptError
├── ConfigError            a settings, rule or routing file is wrong (names the file and the field)
│   └── RuleConfigError
├── EventRejectedError        an event failed validation (carries the reason code and the field)
├── PublishError           events could not be delivered to Kafka (SDK flush/close)
├── BrokerUnavailableError no Kafka broker answered within the probe's timeout (CLI commands, at start)
├── BacktestRangeError     a backtest's --until is before its data (nothing would be replayed)
└── DeliveryError          a notification could not be delivered
    ├── RetryableDeliveryError(retry_after=…)   the worker loop backs off and retries
    │   └── DestinationFailingError(fix=…)      the destination refuses everything (bad credentials): retried
    └── PermanentDeliveryError                  dead-lettered at once
"""

from __future__ import annotations


class PreemptError(Exception):
    """Root of every error Preempt raises on purpose."""


class ConfigError(PreemptError):
    """A configuration file or setting is invalid; the message names the file and the field."""


class RuleConfigError(ConfigError):
    """A rule file is invalid.

    ``loaded``: what the loader could still validate (a ``rules.loader.RuleSet`` of the rules without
    errors of their own), so that ``preempt rules check`` also reports their template problems in the
    same run; None when the error is not about single rules (a missing path).
    """

    def __init__(self, message: str, loaded: object | None = None) -> None:
        super().__init__(message)
        self.loaded = loaded


class EventRejectedError(PreemptError):
    """An event failed validation.

    ``reason`` is a stable code (``missing_field``, ``invalid_field``, …, see
    ``schemas.decoder.Reason``); ``field`` names the offending field when there is one.
    """

    def __init__(self, reason: str, detail: str, field: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.field = field


class DeliveryError(PreemptError):
    """A notification could not be delivered."""


class RetryableDeliveryError(DeliveryError):
    """Delivery failed but may succeed later; ``retry_after`` (seconds) is the server's hint, if any.

    ``throttled``: the channel only said "not now" (Slack's 429, the notifier's own pacing), not that it
    fails: such a refusal does not count against the channel's health (``alerts/delivery_health.py``).
    ``held``: the notifier kept the message back itself (a channel's one-message-a-second pacing, or a channel
    a 429 holds) and sent nothing: no delivery attempt, so not counted as a retry.
    """

    def __init__(
        self, message: str, retry_after: float | None = None, *, throttled: bool = False, held: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.throttled = throttled
        self.held = held


class DestinationFailingError(RetryableDeliveryError):
    """The destination refuses every message, whichever alert it holds: a wrong or rotated SMTP password
    (535), a server that wants a login or TLS the settings do not give (530, 534, 538), a revoked or expired
    Slack token (``invalid_auth``, ``token_revoked``, ``account_inactive``…). Not the alert's fault, so not
    dead-lettered at once: retried as any retryable failure until the give-up window, the target counted as
    failing, and the alerts delivered once the destination takes them again.

    ``destination`` names what fails for people (``SMTP server smtp.example.com:587``) and is the key of the
    one ERROR the delivery loop logs per episode (None: the loop's own destination key); ``fix`` says what
    to change. Neither holds a secret.
    """

    def __init__(self, message: str, *, fix: str, destination: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix
        self.destination = destination


class PermanentDeliveryError(DeliveryError):
    """Delivery can never succeed as configured (bad channel, rejected address…); dead-letter it."""


class NoRecipientError(PermanentDeliveryError):
    """A templated recipient rendered empty, or to no valid address, for this alert (``{{ account.owner.slack }}``
    on an account without an owner): the alert's data, not the channel's fault. Dead-lettered ``no_recipient``
    without an attempt, and the target's health is not touched (its other alerts are delivered)."""


class PublishError(PreemptError):
    """Events were accepted locally but Kafka did not take them (``Publisher.flush``/``close`` raise it).

    ``failed`` is how many events failed since the previous flush; the message gives the first error.
    """

    def __init__(self, message: str, failed: int) -> None:
        super().__init__(message)
        self.failed = failed


class BrokerUnavailableError(PreemptError):
    """No Kafka broker answered a metadata request within a short timeout.

    Raised by ``streams.runtime.broker_probe.probe_broker`` before a command starts work that needs
    the broker, so the user learns within seconds, not after a client's 30-60 s retries.
    """


class BacktestRangeError(PreemptError):
    """A backtest was asked to stop (``--until``) before the first event of its input."""
