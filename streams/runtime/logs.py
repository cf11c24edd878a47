"""structlog setup, done once per process: JSON in production, a readable console in development.

``configure_logging(settings.log_format, settings.log_level)`` at start; ``get_logger(__name__)``
in each module. Bind ``rule_id``, ``account_id`` and ``alert_id`` where they are known
(``structlog.contextvars.bound_contextvars(...)`` or ``log.bind(...)``).

What never reaches a log line (the processors below enforce it, callers should not rely on it):

* Secrets, at every level: values of keys that name a secret (``password``, ``token``, ``secret``,
  ``api_key``, ``authorization``, ``webhook_url``, ``*_password``, ``*_token``, ``*_secret``…), any
  pydantic ``SecretStr``, and Slack webhook URLs, Slack tokens and bearer credentials found inside
  any string (messages and tracebacks included).
* Personal data, at info and above: the values of ``email``, ``owner``, ``to``, ``recipients``,
  ``properties``, ``context``… (owner e-mails, Slack ids, event properties) and e-mail addresses
  inside strings. They are kept at debug level, which production does not enable.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import click
import structlog
from pydantic import SecretStr

Processor = Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]

MASK = "**********"
REDACTED = "[redacted]"

_SECRET_KEYS = frozenset(
    {"password", "passwd", "token", "secret", "api_key", "apikey", "authorization", "cookie", "webhook_url"}
)
_SECRET_SUFFIXES = ("_password", "_token", "_secret", "_api_key", "_webhook_url", "_apikey")
_SECRET_PATTERNS = (
    re.compile(r"https://hooks\.slack(?:-gov)?\.com/\S+"),
    re.compile(r"\bxox[abposre]-[A-Za-z0-9-]+"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"),
)
_PERSONAL_KEYS = frozenset(
    {
        "email",
        "emails",
        "owner",
        "owner_email",
        "user_email",
        "to",
        "cc",
        "recipient",
        "recipients",
        "slack_user",
        "properties",
        "context",
    }
)
# An address ends in a top-level domain of letters: "preempt-rules@127.0.0.1_9092" (a RocksDB folder
# in a Faust error) or "worker@10.0.0.5" are not addresses, and were shown as [redacted].
# A match starts only where a run of local-part characters starts (the look-behind): tried at every position
# of a long run without an address (an id or a property value of 100 KB: one log line), the scan was
# quadratic: 100,000 characters took about 100 s, and the process's event loop stood still meanwhile.
# The leftmost match of a run starts at its first character anyway, so the same addresses are found.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@(?:[\w-]+\.)+[^\W\d_]{2,}")
_LEVELS_WITH_PERSONAL_DATA = frozenset({"debug"})


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in _SECRET_KEYS or lowered.endswith(_SECRET_SUFFIXES)


def _scrub(value: Any, patterns: tuple[re.Pattern[str], ...], replacement: str) -> Any:
    """Replace every match of ``patterns`` in strings, recursively through dicts, lists and tuples."""
    if isinstance(value, str):
        for pattern in patterns:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, Mapping):
        return {k: MASK if _is_secret_key(str(k)) else _scrub(v, patterns, replacement) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, patterns, replacement) for v in value]
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask secrets at every level: secret-named keys, ``SecretStr`` values, credentials in strings."""
    for key in list(event_dict):
        if _is_secret_key(key):
            event_dict[key] = MASK
        else:
            event_dict[key] = _scrub(event_dict[key], _SECRET_PATTERNS, MASK)
    return event_dict


def redact_personal_data(_logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """At info and above, drop owner e-mails, Slack ids and event properties; debug keeps them."""
    if method in _LEVELS_WITH_PERSONAL_DATA:
        return event_dict
    for key in list(event_dict):
        if key.lower() in _PERSONAL_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key], (_EMAIL,), REDACTED)
    return event_dict


def privacy_processors() -> list[Processor]:
    """The redaction steps, in order; they run after exceptions are formatted so tracebacks pass too."""
    return [redact_secrets, redact_personal_data]


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        *privacy_processors(),
    ]


def _renderer(fmt: str) -> Any:
    if fmt == "json":
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())


def _level_number(level: str) -> int:
    lvl = logging.getLevelName(level.upper())
    return lvl if isinstance(lvl, int) else logging.INFO


def configure_logging(fmt: str = "json", level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger for this process.

    ``fmt="json"`` (production): one JSON object per line on stderr. ``fmt="console"``
    (development): aligned, coloured when stderr is a terminal. Faust and other libraries log
    through the stdlib; their records get the same processors and renderer, at WARNING and above.
    """
    lvl = _level_number(level)
    structlog.configure(
        processors=[*_shared_processors(), _renderer(fmt)],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(stdlib_logging_config(fmt, logging.getLevelName(max(lvl, logging.WARNING)), level))
    install_exception_hooks()


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread is not None else "?"
    exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
    logging.getLogger("threading").error("uncaught exception in thread %s", thread, exc_info=exc_info)


def _log_unraisable(unraisable: Any) -> None:
    exc = unraisable.exc_value
    where = unraisable.err_msg or "Exception ignored in"
    logging.getLogger("unraisable").error(
        "%s: %r", where, unraisable.object, exc_info=(unraisable.exc_type, exc, unraisable.exc_traceback)
    )


def install_exception_hooks() -> None:
    """Uncaught exceptions of threads, and exceptions Python can only ignore, become one log record each.

    Python prints them to stderr, many lines of text: a traceback of aiokafka's consumer thread
    (Faust runs the consumer in a thread of its own; stopping it while the broker is away raises
    there) came out as a plain-text traceback, and in the rules worker, whose stdout/stderr mode
    redirects to the ``mode.redirect`` logger line by line, as ~40 JSON records of one traceback
    line each. Through the logger it is one record with the traceback in ``exception``.
    """
    threading.excepthook = _log_thread_exception
    sys.unraisablehook = _log_unraisable


def configure_command_logging() -> None:
    """Log lines of a ``preempt`` command go to stderr, at INFO and above.

    Unconfigured structlog prints every level on stdout, into what a command prints for people and
    scripts (a broker-down ``publish`` showed the access check's debug line before its ``Error:``).
    Long-running commands (worker, notifier, ingest) then configure logging fully (``configure_logging``).
    """
    # sys.stderr is looked up per logger, not bound now: a test runner swaps (and closes) it.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=lambda *_args: structlog.PrintLogger(file=sys.stderr),
    )


REPEAT_INTERVAL_SECONDS = 10.0


class RepeatedRecordFilter(logging.Filter):
    """Lets a library's record through at most once per ``interval_s`` per logger, level and message
    template (for ERROR and above: per message, so a different error is never held back behind
    another); the next one let through carries ``repeated``: how many were held back meanwhile.

    While the broker is away aiokafka logs the same few errors hundreds of times a second (measured:
    18,000 lines, 2.2 MB, in two minutes), which buries everything else and fills disks.
    """

    MAX_KEYS = 1000  # distinct templates remembered (forgotten all at once past it: bounded memory)

    def __init__(self, interval_s: float = REPEAT_INTERVAL_SECONDS) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple[str, int, str], tuple[float, int]] = {}  # key -> (time let through, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a repeat within the interval (counted); True otherwise, with ``repeated`` set."""
        # An error is held back only when it says the same thing again: two different errors (another
        # partition, another crash reason) with one template are both let through.
        text = record.getMessage() if record.levelno >= logging.ERROR else str(record.msg)
        key = (record.name, record.levelno, text[:300])
        now = time.monotonic()
        seen = self._last.get(key)
        if seen is not None and now - seen[0] < self.interval_s:
            self._last[key] = (seen[0], seen[1] + 1)
            return False
        if seen is not None and seen[1]:
            record.repeated = seen[1]
        elif seen is None and len(self._last) >= self.MAX_KEYS:
            self._last.clear()
        self._last[key] = (now, 0)
        return True


_TABLE_BARS = "|\u2502"  # AsciiTable's column bar, and SingleTable's (Faust on a terminal)
_TABLE_BORDER = "+-\u2500\u250c\u2510\u2514\u2518\u251c\u2524\u252c\u2534\u253c"  # border and corner characters
# On a terminal Faust draws the table with the VT100 line-drawing set: ESC ( 0 … ESC ( B around the
# lines, ``x`` a column bar, ``q`` a horizontal line, the other letters corners and joints.
_DEC_GRAPHICS = re.compile("\x1b\\(0(.*?)\x1b\\(B")
_DEC_TO_ASCII = str.maketrans({"x": "|", "q": "-", **dict.fromkeys("lkmjtuvwn", "+")})
_DITTO = "\u3003"  # Faust's "same as the row above" for a repeated topic name


def _table_rows(text: str) -> tuple[str, list[dict[str, Any]]] | None:
    """Faust's log table (``faust.utils.terminal.logtable``: a title in the top border, a header row, then
    rows) as its title and one dict per row, numbers as ints; None when ``text`` is not such a table."""
    text = _DEC_GRAPHICS.sub(lambda m: m.group(1).translate(_DEC_TO_ASCII), text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0][0] not in _TABLE_BORDER:
        return None
    title = lines[0].strip(_TABLE_BORDER + " ")
    cells = []
    for line in lines:
        if line[0] in _TABLE_BARS:
            cells.append([c.strip() for c in re.split(f"[{_TABLE_BARS}]", line.strip(_TABLE_BARS))])
        elif line.strip(_TABLE_BORDER + " ") and line is not lines[0]:
            return None  # a line that is neither a row nor a border
    if not cells:
        return None
    header, *body = cells
    rows: list[dict[str, Any]] = []
    for values in body:
        if len(values) != len(header):
            return None
        row: dict[str, Any] = {}
        for name, value in zip(header, values, strict=True):
            if value == _DITTO and rows:
                row[name] = rows[-1][name]
            else:
                row[name] = int(value) if re.fullmatch(r"-?\d+", value) else value
        rows.append(row)
    return title, rows


class MultiLineRecordFilter(logging.Filter):
    """A library record whose message spans lines becomes one line: its first line as the message, and
    the rest as data. Faust's table recovery logs tables (highwaters, start offsets, what remains) under
    a one-line head; in a JSON log they were an ``event`` of 10-40 lines of ASCII art. The table goes
    into ``table`` (one object per row, ``{"topic": ..., "partition": 0, "highwater": 41}``, with
    ``table_title``), any other lines into ``lines``."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the logging module's to report
            return True
        if "\n" not in message:
            return True
        head, _, rest = message.partition("\n")
        table = _table_rows(rest)
        record.msg, record.args = head.rstrip().removesuffix(":"), None
        if table is not None:
            record.table_title, record.table = table
        else:
            record.lines = [line for line in rest.splitlines() if line.strip()]
        return True


class ClientErrorFilter(logging.Filter):
    """One WARNING line, no traceback, for a request the client got wrong or abandoned.

    aiohttp's web server (Faust's web pages, ingest) logs a request it could not parse (a header line
    over 8 KiB, too many headers, a bad method) or a client that went away in the middle of its body
    as ``ERROR`` with a full traceback: anyone who can reach a port could fill the log with them and
    page whoever watches for errors. They say nothing about the server, so they are warnings.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        http_errors = sys.modules.get("aiohttp.http_exceptions")
        # The client went away (reset, or the connection closed mid-body): not any ConnectionError, which a
        # handler's own outbound call (a refused connection to Kafka or Slack) raises too.
        client_error: tuple[type[BaseException], ...] = (ConnectionResetError,)
        if http_errors is not None:
            client_error += (http_errors.HttpProcessingError,)
        if isinstance(exc, client_error):
            detail = " ".join(str(exc).split())[:200]
            message = record.getMessage()
            record.msg, record.args = "%s: %s (%s)", (message, type(exc).__name__, detail)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


class MovingLeaderFilter(logging.Filter):
    """One WARNING for aiokafka's "… NotLeaderForPartitionError / LeaderNotAvailableError" ERRORs.

    A partition whose leader is being elected — a topic created a moment ago (every fresh deployment:
    the broker answers NotLeader for a moment even after its metadata names the leader), or a broker
    that went away — makes aiokafka log an ERROR and retry until the leader answers. The condition
    is transient and handled; a broker that stays away shows in ``preempt_broker_reachable`` and
    ``/readyz``, so these are warnings, not pages.
    """

    MOVING = ("NotLeaderForPartitionError", "LeaderNotAvailableError")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and any(name in record.getMessage() for name in self.MOVING):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class RebalanceCommitFilter(logging.Filter):
    """One WARNING for aiokafka's "OffsetCommit failed … RebalanceInProgressError …, will rejoin" ERROR.

    A commit that meets a rebalance in progress (another worker or notifier joining or leaving: every
    scale-out, restart and rolling deploy) is refused; aiokafka rejoins the group and the records
    since the last commit are read again by their owner (the delivery log and the rule engine's
    event ids refuse the repeats). Normal operation, so a warning. Being thrown out of the group
    (UnknownMemberId, IllegalGeneration: a missed session) stays an ERROR.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR:
            message = record.getMessage()
            if message.startswith("OffsetCommit failed") and "RebalanceInProgressError" in message:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


RECOVERY_LOGGER = "faust.tables.recovery"
"""Faust's table recovery: its progress lines ("Still fetching changelog topics for recovery, estimated
time remaining … (total remaining=…)", "Recovery complete") are INFO records."""


def stdlib_logging_config(fmt: str = "json", level: str = "WARNING", app_level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` that renders stdlib records (Faust, aiokafka) like structlog.

    Pass it to Faust's worker, which otherwise replaces the root handlers with its own coloured
    text: ``Worker(app, loglevel=..., logging_config=stdlib_logging_config(settings.log_format))``.
    A record repeated within :data:`REPEAT_INTERVAL_SECONDS` is held back and counted
    (:class:`RepeatedRecordFilter`).

    Library records pass at ``level`` (WARNING) and above, except Faust's table recovery, which
    passes at ``app_level`` (``PREEMPT_LOG_LEVEL``) when that is INFO or below: its progress lines
    are what the runbook for ``table recovery in progress`` (docs/operations.md, PreemptNotReady)
    tells the on-call to watch, and at WARNING none of them was logged.
    """
    recovery_level = logging.getLevelName(max(_level_number(app_level), logging.INFO))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structlog": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *privacy_processors(),
                    _renderer(fmt),
                ],
                "foreign_pre_chain": [
                    structlog.stdlib.add_logger_name,
                    structlog.stdlib.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.stdlib.ExtraAdder(),
                    structlog.processors.format_exc_info,
                ],
            }
        },
        "filters": {
            "repeats": {"()": RepeatedRecordFilter},
            "multi_line": {"()": MultiLineRecordFilter},
            "client_errors": {"()": ClientErrorFilter},
            "moving_leaders": {"()": MovingLeaderFilter},
            "rebalance_commits": {"()": RebalanceCommitFilter},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "structlog",
                "filters": ["repeats", "multi_line"],
            }
        },
        "loggers": {
            "aiohttp.server": {"filters": ["client_errors"]},
            "aiokafka.consumer.fetcher": {"filters": ["moving_leaders"]},
            "aiokafka.consumer.group_coordinator": {"filters": ["moving_leaders", "rebalance_commits"]},
            RECOVERY_LOGGER: {"level": recovery_level},
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }


def get_logger(name: str) -> Any:
    """A structlog logger whose lines carry ``module=name``; configuration is applied lazily.

    (Library records routed through the stdlib carry ``logger`` with the stdlib logger's name.)
    """
    return structlog.get_logger(module=name)


FAUST_LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "critical")
"""The values ``--loglevel`` accepts (Faust's own log level); any other would crash Faust's start-up."""

faust_loglevel_option = click.option(
    "--loglevel",
    type=click.Choice(FAUST_LOG_LEVELS, case_sensitive=False),
    default="warn",
    show_default=True,
    help="Level of Faust's and aiokafka's own log records (PREEMPT_LOG_LEVEL sets Preempt's).",
)
"""The ``--loglevel`` option of both Faust apps' commands (``preempt worker``, ``preempt notifier``)."""


def run_faust_worker(
    app: Any, loglevel: str, log_format: str = "json", log_level: str = "INFO", **options: Any
) -> None:
    """Run ``app`` under Faust's ``Worker`` (quiet, no terminal spinner) until it stops.

    Faust's and the libraries' stdlib records are rendered like structlog's
    (:func:`stdlib_logging_config` in ``log_format``): without a ``logging_config`` mode's worker
    installs its own plain-text handler, and every aiokafka line (hundreds a second while the
    broker is away) broke the one-JSON-object-per-line contract.

    Faust's spinner sets the root logger to DEBUG and handles every record to spin: each debug
    line of aiokafka (per fetch, per send, per produce request) and Faust was built and handled
    (measured: a visible share of the rules worker's CPU), and its escape codes went into the log.
    Without it the root logger stays where :func:`configure_logging` put it. ``log_level``
    (``PREEMPT_LOG_LEVEL``) decides whether Faust's table-recovery progress is logged; ``loglevel``
    (``--loglevel``) is the level library records pass at: with a ``logging_config`` Faust's worker does not
    apply it itself, and ``--loglevel debug`` changed nothing.
    """
    from faust import Worker

    options.setdefault("logging_config", stdlib_logging_config(log_format, level=loglevel, app_level=log_level))
    worker = Worker(app, loglevel=loglevel, quiet=True, **options)
    worker.spinner = None
    worker.execute_from_commandline()
