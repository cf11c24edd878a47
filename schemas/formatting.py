"""How numbers, money, durations, times and people read in an alert — one module for every channel.

Pure functions (no Faust, no Kafka): the rule engine uses them for the evidence sentence and the
rule templates, the notifier's channels (Slack, email, console) and ``preempt alerts preview`` use
them through ``alerts/formatting.py``. Every function accepts missing or odd input (``None``, a
string where a number was expected) and returns readable text, never ``None`` and never a
traceback: an alert is still sent when a field is missing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from schemas.durations import duration_seconds
from schemas.observed import Anomaly, report

# structlog is configured once per process by streams.runtime.logs; schemas may not import it.
log = structlog.get_logger(module=__name__)

OWNER_FALLBACK = "the account's owner"
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "AUD": "A$", "CAD": "C$"}
_WORD_UNITS = (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
_ACRONYMS = {"api": "API", "nps": "NPS", "sso": "SSO", "mrr": "MRR", "csm": "CSM", "id": "ID"}


MAX_PRINTED_INTEGER = 2.0**53
"""Up to this magnitude a whole float prints as an integer; beyond it as Python prints the float
(``1e+300``): a float that large holds no more digits, and ``int(1e300)`` printed 301 of them
(a property of ``1e300`` made a 300-character title)."""


def whole_number(value: float) -> int | None:
    """The integer a whole float prints as (``37.0`` → ``37``: counts are kept as floats); None when it
    is not whole or beyond :data:`MAX_PRINTED_INTEGER`, where it prints as a float."""
    if value.is_integer() and -MAX_PRINTED_INTEGER <= value <= MAX_PRINTED_INTEGER:
        return int(value)
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(float(value)) else None
    try:
        parsed = float(str(value).strip())
    except ValueError:
        return None
    return parsed if math.isfinite(parsed) else None


def text(value: Any) -> str:
    """Any JSON value as words, never a Python repr: lists joined, objects as ``key value``, None as ``""``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return "" if math.isnan(value) else ("infinite" if value > 0 else "minus infinite")
        return number(value)
    if isinstance(value, Mapping):
        # A key whose value is null or empty says nothing: its bare name ("NPS") would read as a gap.
        said = ((k, text(v)) for k, v in value.items())
        return ", ".join(f"{label(k)} {shown}" for k, shown in said if shown)
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(t for t in (text(v) for v in value) if t)
    return str(value)


MAX_DIGITS = 20
"""The most decimals ``number`` (and ``percent``) keep: a float has about 17 significant digits."""


def number(value: Any, digits: int = 1) -> str:
    """``6.0`` → ``6``, ``1170.0`` → ``1,170``, ``33.67`` → ``33.7``, ``0.00001`` → ``0.00001`` (a value that
    would round to 0 keeps two significant digits); text passes through; ``None`` → ``""``."""
    if value is None:
        return ""
    parsed = _as_float(value)
    if parsed is None:
        return text(value)
    digits = max(-MAX_DIGITS, min(MAX_DIGITS, digits))  # |number(999999999) formatted a 1-GB string
    rounded = round(parsed, digits)
    if rounded == 0 and parsed != 0 and digits > 0:
        # A small value is not nothing: a min_ratio of 0.00001 read "the 0% limit". Two significant
        # digits instead (0.00001 → "0.00001", 0.000012345 → "0.000012"), up to MAX_DIGITS decimals.
        digits = min(MAX_DIGITS, 1 - math.floor(math.log10(abs(parsed))))
        rounded = round(parsed, digits)
    whole = whole_number(rounded)
    if whole is not None:
        return f"{whole:,}"
    if rounded.is_integer():  # beyond 2**53: as the float prints (1e+308), not its 309 digits
        return f"{rounded:,}"
    return f"{rounded:,.{digits}f}".rstrip("0").rstrip(".")


def plural(value: Any, singular: str, plural_form: str | None = None) -> str:
    """``1|plural("user")`` → ``1 user``, ``13`` → ``13 users``, ``(2, "person", "people")`` → ``2 people``:
    the number as ``number`` prints it (``1,200 alerts``), the noun agreeing with it. For every count a person
    reads, in templates and in the CLI's lines: never "alert(s)"."""
    count = number(value)
    noun = singular if count == "1" else (plural_form or f"{singular}s")
    return f"{count} {noun}" if count else noun


def money(value: Any, currency: str | None = "USD", missing: str = "unknown") -> str:
    """``1170.0`` → ``$1,170``, ``99.5`` → ``$99.50``, ``(1200, "CHF")`` → ``1,200 CHF``; ``None`` → ``missing``."""
    parsed = _as_float(value)
    if parsed is None:
        return missing if value is None or text(value).strip() == "" else text(value)
    code = (currency or "USD").upper()
    whole = whole_number(parsed)
    if whole is not None:
        amount = f"{whole:,}"
    elif parsed.is_integer():  # beyond 2**53: as the float prints (1e+308), not its 309 digits
        amount = f"{parsed:,}"
    else:
        amount = f"{parsed:,.2f}"
    symbol = CURRENCY_SYMBOLS.get(code)
    return f"{symbol}{amount}" if symbol else f"{amount} {code}"


def mrr(value: Any, currency: str | None = "USD") -> str:
    """``1040.0`` → ``$1,040 MRR``; unknown → ``MRR unknown``."""
    parsed = _as_float(value)
    return "MRR unknown" if parsed is None else f"{money(parsed, currency)} MRR"


def percent(value: Any, digits: int = 1, *, ratio: bool = True) -> str:
    """``0.3`` → ``30%``, ``0.3347`` → ``33.5%``; with ``ratio=False`` the value is already in percent."""
    parsed = _as_float(value)
    if parsed is None:
        return text(value)
    return f"{number(parsed * 100 if ratio else parsed, digits)}%"


def seconds_of(value: Any) -> float | None:
    """Seconds from a number or a duration string in the config files' grammar (``"1w"``, ``"36h"``, ``"1h30m"``,
    ``"PT10M"``: ``schemas/durations.py``); ``None`` when it is neither."""
    parsed = _as_float(value)
    if parsed is not None:
        return parsed
    if not isinstance(value, str):
        return None
    try:
        return duration_seconds(value)
    except ValueError:
        return None


def duration(value: Any, parts: int = 2) -> str:
    """``604800.0`` → ``7 days``, ``187200`` → ``2 days 4 hours``, ``"1w"`` → ``7 days``, ``45`` → ``45 seconds``.

    Weeks are shown as days up to 4 weeks (a CSM thinks "14 days", not "2 weeks"); at most ``parts`` units.
    """
    seconds = seconds_of(value)
    if seconds is None:
        return text(value)
    if seconds < 1:
        return "less than a second" if seconds > 0 else "0 seconds"
    remaining = round(seconds)
    out: list[str] = []
    for unit, size in _WORD_UNITS:
        if unit == "week" and remaining < 5 * 604800:
            continue
        if remaining >= size:
            count, remaining = divmod(remaining, size)
            out.append(plural(count, unit))
            if len(out) == parts:
                break
        elif out:  # 2 days 0 hours 5 minutes reads as "2 days": stop at the first gap
            break
    return " ".join(out)


@lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        # Counted and logged once per distinct name (the cache), not once per rendered line.
        report(Anomaly.INVALID_TIMEZONE)
        log.warning("invalid_timezone", timezone=name[:64], shown_in="UTC")
        return UTC


def zone(name: Any) -> tzinfo:
    """The IANA zone ``name``; UTC when it is missing, or when it is invalid (then counted and logged)."""
    if name is None or str(name).strip() in ("", "UTC", "Z"):
        return UTC
    return _zone(str(name).strip()[:128])


def datetime_instant(value: Any) -> datetime | None:
    """An aware datetime from RFC 3339 text, epoch seconds or milliseconds; ``None`` when it is none of them."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    parsed = _as_float(value)
    if parsed is not None:
        # Epoch seconds, or milliseconds when it is too large to be seconds (year > 5138).
        seconds = parsed / 1000 if abs(parsed) > 1e11 else parsed
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_CALENDAR_DAY = re.compile(r"\d{4}-\d\d-\d\d")


def _calendar_day(value: Any) -> date | None:
    """The day of a calendar date (a ``date``, or ``YYYY-MM-DD`` text, as an account's ``renewal_date``): a day
    everywhere, not an instant to move to a timezone (UTC midnight is the day before west of UTC)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _CALENDAR_DAY.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def datetime_text(value: Any, timezone: Any = None) -> str:
    """``2026-01-02T13:20:33.818Z`` in ``America/New_York`` → ``Fri 2 Jan 2026, 08:20 EST``; a calendar date
    (``2026-12-01``) → ``Tue 1 Dec 2026``, the same day in every timezone."""
    day = _calendar_day(value)
    if day is not None:
        return f"{day:%a} {day.day} {day:%b %Y}"
    moment = datetime_instant(value)
    if moment is None:
        return text(value)
    local = _local(moment, timezone)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} {_zone_name(local)}"


def _local(moment: datetime, timezone: Any) -> datetime:
    """``moment`` in ``timezone``; in UTC when the local time falls outside the calendar (9999-12-31T23:59Z, the
    "never" sentinel of CRMs and billing systems, is already year 10000 in Tokyo: an ``OverflowError``)."""
    try:
        return moment.astimezone(zone(timezone))
    except (OverflowError, ValueError):
        return moment.astimezone(UTC)


def _zone_name(local: datetime) -> str:
    # Zones without an abbreviation (Asia/Kathmandu, Australia/Lord_Howe, America/Sao_Paulo) name
    # themselves by offset, "+0545" or "-03": said as "UTC+05:45", "UTC-03", which a reader recognises.
    name = local.tzname() or "UTC"
    if name[:1] not in "+-" or not name[1:].isdigit():
        return name
    sign, digits = name[0], name[1:]
    return f"UTC{sign}{digits[:2]}:{digits[2:4]}" if len(digits) >= 4 else f"UTC{sign}{digits}"


def date_text(value: Any, timezone: Any = None) -> str:
    """``2026-01-10T00:00:00Z`` in ``America/Los_Angeles`` → ``Fri 9 Jan 2026`` (the owner's calendar day); a
    calendar date (``2026-12-01``) is that day in every timezone."""
    day = _calendar_day(value)
    if day is not None:
        return f"{day:%a} {day.day} {day:%b %Y}"
    moment = datetime_instant(value)
    if moment is None:
        return text(value)
    local = _local(moment, timezone)
    return f"{local:%a} {local.day} {local:%b %Y}"


def person(who: Any, role: str | None = None, fallback: str = OWNER_FALLBACK) -> str:
    """A person by name (else email, else Slack id) with their role: ``Dana Whitfield (CSM)``; else ``fallback``."""
    if isinstance(who, Mapping):
        name = who.get("name") or who.get("email") or who.get("slack") or who.get("id")
        role = role or who.get("role")
    else:
        name = who
    shown = text(name).strip()
    if not shown:
        return fallback
    return f"{shown} ({text(role)})" if role else shown


def label(name: Any) -> str:
    """``feature_breadth`` → ``feature breadth``, ``api_errors`` → ``API errors``."""
    words = str(name).replace("-", "_").split("_")
    return " ".join(_ACRONYMS.get(w.lower(), w) for w in words if w)


def points(components: Any) -> str:
    """Score components, weakest first: ``feature breadth 0/100, depth 0/100, active users 33/100``."""
    if not isinstance(components, Mapping) or not components:
        return text(components)
    ranked = sorted(components.items(), key=lambda item: (_as_float(item[1]) or 0.0, str(item[0])))
    return ", ".join(f"{label(name)} {number(value, 0)}/100" for name, value in ranked)


def aside(value: Any) -> str:
    """``" (value)"`` when there is a value, else ``""`` — for optional details such as a CRM link."""
    shown = text(value).strip()
    return f" ({shown})" if shown else ""


def account_facts(account: Any) -> str:
    """``growth, Growth (monthly), $1,040 MRR`` from what is known; ``""`` when nothing is."""
    if not isinstance(account, Mapping):
        return ""
    facts = [text(account[k]) for k in ("tier", "plan") if account.get(k)]
    if _as_float(account.get("mrr")) is not None:
        facts.append(mrr(account.get("mrr"), account.get("currency")))
    return ", ".join(facts)


def _count_of(value: Any, measure: Any, evidence: Mapping[str, Any] | None = None) -> str:
    # A producer may leave the value out: the measure is then named without a number, never with a gap.
    # The events counted are named when the evidence says which (``rules.kinds.base.counted_events``):
    # "12 'API Error' events", "12 matching 'API Error' events" when a where narrows them.
    count = number(value, 2)  # as the limit it is compared with (a sum of 2.75 at a min of 2.75)
    names = event_names((evidence or {}).get("events"))
    if names and (evidence or {}).get("events_filtered") is True:
        names = f"matching {names}"
    if measure in (None, "count"):
        plural = "s" if count != "1" else ""
        what = f"{names} event{plural}" if names else f"matching event{plural}"
        return f"{count} {what}" if count else f"{names or 'matching'} events"
    return _measured(count, measure) + (f" from {names} events" if names else "")


def _measured(count: str, measure: Any) -> str:
    measure = text(measure)
    if measure.startswith("distinct:"):
        what = _path_words(measure.removeprefix("distinct:"))
        one = count == "1"
        if what in ("user ID", "user id"):
            what = "user" if one else "users"
        else:
            what = f"distinct value{'' if one else 's'} of {what}"
        return f"{count} {what}" if count else what
    if measure.startswith("sum:"):
        what = f"total {_path_words(measure.removeprefix('sum:'))}"
        return f"{what} {count}" if count else what
    return f"{measure.replace(':', ' of ')} {count}" if count else measure.replace(":", " of ")


def _path_words(path: str) -> str:
    # An event field path in words for people: "properties.invoice.amount" → "invoice amount".
    for prefix in ("properties.", "context."):
        path = path.removeprefix(prefix)
    return label(path.replace(".", "_"))


def _properties(props: Any, limit: int = 4) -> str:
    if not isinstance(props, Mapping):
        return ""
    # A property sent as null or "" has nothing to say: its bare name ("plan") would read as a gap.
    # On one line: an end user's comment with line breaks broke the "why:" line of the console and the
    # email's text part, and in Slack started lines of its own.
    said = [(k, " ".join(text(v).split())) for k, v in props.items()]
    shown = [f"{label(k)} {v}" for k, v in said if v][:limit]
    return ", ".join(shown)


# How many event names a sentence lists before it counts the rest ("'A', 'B' or 3 other events").
_NAMES_SHOWN = 3


def event_names(names: Any, joiner: str = "or") -> str:
    """Event names as a CSM reads them: ``'Invoice Paid'``, ``'Invoice Paid' or 'Payment Method Updated'``,
    ``'A', 'B' or 3 other events`` past three; ``""`` when there are none."""
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list | tuple):
        return ""
    quoted = [f"'{text(name)}'" for name in names if text(name)]
    if len(quoted) > _NAMES_SHOWN:
        rest = len(quoted) - (_NAMES_SHOWN - 1)
        quoted = [*quoted[: _NAMES_SHOWN - 1], f"{rest} other events"]
    if len(quoted) < 2:
        return "".join(quoted)
    return f"{', '.join(quoted[:-1])} {joiner} {quoted[-1]}"


def _absence_sentence(evidence: Mapping[str, Any], wait: Any, timezone: Any) -> str:
    """``no 'Invoice Paid' within 3 days of 'Invoice Payment Failed' (Fri 2 Jan 2026, 09:00 EST)``.

    The names come from the rule (``expected``, ``start``: the absence kind's evidence); an alert written
    before the evidence carried them keeps the sentence it had."""
    started = evidence.get("started_at")
    when = datetime_text(started, timezone) if started else ""
    within = f"within {duration(wait)}" if duration(wait) else "in time"
    if "expected" not in evidence:
        since = f"started {when}; " if when else ""
        return f"{since}the expected follow-up did not happen {within}"
    expected = event_names(evidence.get("expected"))
    filtered = evidence.get("expected_filtered") is True  # the expect's `where` narrows those names
    if expected:
        missing = f"no matching {expected}" if filtered else f"no {expected}"
    else:  # the rule expects any event (with its `where`, if any)
        missing = "no matching event" if filtered else "no follow-up event"
    start = event_names(evidence.get("start")) or "the start"
    return f"{missing} {within} of {start}" + (f" ({when})" if when else "")


def evidence_sentence(
    kind: str, evidence: Mapping[str, Any], *, timezone: Any = None, window_seconds: float | None = None
) -> str:
    """Why the rule fired, as a sentence a CSM understands; built from the alert's evidence alone.

    ``evidence["summary"]`` (written by the rule pack's ``summary`` template) wins when present.
    """
    summary = evidence.get("summary")
    if isinstance(summary, str) and summary.strip():
        return summary.strip()
    value, threshold, baseline = evidence.get("value"), evidence.get("threshold"), evidence.get("baseline")
    measure = evidence.get("measure")
    # An alert's window is bucket-aligned ("6 days 22 hours" for a 7-day rule): the rule's own window is
    # named when the evidence carries it (``window_seconds``, the measured kinds) or when asked.
    window_seconds = window_seconds or _as_float(evidence.get("window_seconds"))
    within = f" in {duration(window_seconds)}" if window_seconds and duration(window_seconds) else ""
    # Each part of the sentence that needs a number is left out (or said in words) when the producer
    # sent none: "matching events, at or above the rule's threshold", never "of , at or above the of ".
    # A limit keeps two decimals: a drop's 2.5 × 50% read "alert at 1.2 or fewer" (1.25 fires too), a
    # min of 2.75 "the threshold of 2.8" (2.75 is at it).
    limit = number(threshold, 2)
    if kind == "threshold":
        at = f"the threshold of {limit}" if limit else "the rule's threshold"
        return f"{_count_of(value, measure, evidence)}{within}, at or above {at}"
    if kind == "ratio":
        num, den = evidence.get("numerator"), evidence.get("denominator")
        share = percent(value)
        limit = f"at or above the {percent(threshold)} limit" if percent(threshold) else "at or above the rule's limit"
        # The names counted, when the evidence carries them: the numerator's (``events``), the denominator's.
        named = "events" in evidence
        of_names = event_names(evidence.get("denominator_events"))
        same = named and evidence.get("events") == evidence.get("denominator_events")
        if num is not None and den is not None and number(num) and number(den):
            over = (_as_float(num) or 0.0) > (_as_float(den) or 0.0)
            if over or (named and not same):  # counted independently: "3 of 1 events matched (300%)" said nothing
                plural = "" if number(den) == "1" else "s"
                what = "counted " if not named else f"{of_names} " if of_names else ""  # "" for every event
                counted = f"{number(den)} {what}event{plural}"
                return f"{_count_of(num, 'count', evidence)} against {counted} ({share}){within}, {limit}".replace(
                    " ()", ""
                )
            what = f"{of_names} events" if of_names else "events"
            return f"{number(num)} of {number(den)} {what} matched ({share}){within}, {limit}".replace(" ()", "")
        return f"{share or 'a share'} of events matched{within}, {limit}"
    if kind == "spike":
        before = "none" if not baseline else (number(baseline) or "none")
        factor = evidence.get("factor")
        # A factor from a negative previous window (alerts written before spike.py refused one) says nothing.
        times = f", {number(factor)}× as many" if (_as_float(factor) or 0.0) > 0 else ""
        at = f" (alert at {limit})" if limit and (_as_float(threshold) or 0.0) > 0 else ""  # min is > 0
        return f"{_count_of(value, measure, evidence)}{within} against {before} in the window before{times}{at}"
    if kind == "drop":
        fall = evidence.get("drop_pct")
        fell = f", {number(fall)}% lower" if fall is not None and number(fall) else ""
        usual = f"a usual {number(baseline)}" if number(baseline) else "the usual level"
        at = f" (alert at {limit} or fewer)" if limit else ""
        return f"{_count_of(value, measure, evidence)}{within} against {usual}{fell}{at}"
    if kind == "inactivity":
        last = evidence.get("last_seen")
        seen = f"; last seen {datetime_text(last, timezone)}" if last and datetime_text(last, timezone) else ""
        quiet = duration(threshold if threshold is not None else value)
        # What went quiet, when the evidence names it (a custom "Sensor Ping" is not "activity" to a CSM);
        # an alert written before the evidence carried the names keeps the sentence it had.
        names = event_names(evidence.get("events"), "or")
        filtered = evidence.get("events_filtered") is True  # the match's `where` narrows those names
        if names:
            what = f"no matching {names} event" if filtered else f"no {names} event"
        else:
            what = "no matching event" if filtered else "no activity"
        if not quiet:
            return ("no recent activity" if what == "no activity" else f"{what} recently") + seen
        return f"{what} for {quiet}" + seen
    if kind == "absence":
        return _absence_sentence(evidence, threshold if threshold is not None else value, timezone)
    if kind == "sequence":
        elapsed = evidence.get("elapsed_seconds")
        took = f" within {duration(elapsed)}" if elapsed is not None and duration(elapsed) else ""
        if seconds_of(elapsed) == 0:  # a day-granular import stamps both steps alike: not "within 0 seconds"
            took = " at the same time"
        limit = f" (limit {duration(threshold)})" if threshold is not None and duration(threshold) else ""
        step_names = evidence.get("steps")  # each step's event names (None: any event); older alerts: none
        if isinstance(step_names, list | tuple) and len(step_names) >= 2:
            said = [event_names(step) if step is not None else "any event" for step in step_names]
            if all(said):
                return ", then ".join(said) + f"{took}{limit}"
        steps = "both steps" if number(value) == "2" else f"all {number(value)} steps" if number(value) else "all steps"
        return f"{steps} happened in order{took}{limit}"
    if kind == "any":
        props = _properties(evidence.get("properties"))
        what = " ".join(text(value).split()) or "a matching event"
        return what + (f": {props}" if props else "")
    if kind == "score":
        score = number(value)
        sentence = f"engagement score {score}/100" if score else "engagement score"
        if evidence.get("reason") == "drop" and baseline is not None and score and number(baseline):
            fall = (_as_float(baseline) or 0.0) - (_as_float(value) or 0.0)
            sentence += f", down {number(fall)} point{'' if number(fall) == '1' else 's'} from {number(baseline)}"
        elif limit:
            sentence += f", below the floor of {limit}"
        elif not score:
            sentence += " too low"
        weakest = points(evidence.get("components"))
        return sentence + (f" (weakest first: {weakest})" if weakest else "")
    if kind == "composite":
        fired = evidence.get("rules")
        if isinstance(fired, Mapping):  # the composite kind's evidence: rule id -> when it fired
            fired = [rule_id for rule_id, _ in sorted(fired.items(), key=lambda item: str(item[1]))]
        names = text(fired) if isinstance(fired, list | tuple) else ""
        count = f"{number(value)} of {limit} related rules" if number(value) and limit else "related rules"
        return f"{count} fired together" + (f": {names}" if names else "")
    if kind == "risk":
        # a calibrated probability, said as a percentage (0.2501 read "0.3"), with the model's reasons
        risk = f"churn risk {percent(value)}" if number(value) else "churn risk"
        at = f", at or above the {percent(threshold)} threshold" if number(threshold) else ""
        reasons = evidence.get("reasons")
        why = "; ".join(text(r) for r in reasons if text(r)) if isinstance(reasons, list | tuple) else ""
        return risk + at + (f": {why}" if why else "")
    if value is None:
        return "see the alert"
    extras = [
        f"threshold {number(threshold)}" if threshold is not None else "",
        f"baseline {number(baseline)}" if baseline is not None else "",
    ]
    extra = ", ".join(e for e in extras if e)
    return f"{label(text(measure) or 'value')} {number(value)}" + (f" ({extra})" if extra else "")


# The filters every template can use, rule templates (rules/templates.py) and message templates
# (alerts/formatting.py, which adds the channel-specific ones) alike.
TEMPLATE_FILTERS: dict[str, Any] = {
    "number": number,
    "plural": plural,
    "money": money,
    "mrr": mrr,
    "percent": percent,
    "duration": duration,
    "datetime": datetime_text,
    "date": date_text,
    "person": person,
    "points": points,
    "aside": aside,
    "facts": account_facts,
}
