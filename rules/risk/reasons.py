"""The risk rule's reasons: each top contributing feature as a sentence a CSM reads.

Who calls it: the ``risk`` rule kind (``rules.kinds.risk``) when it fires, for the features that
pushed the risk up most. The model's feature names (``count28:NPS Submitted[score=7]``) stay in
the alert's ``contributions``; the reasons never show them.

The per-event features are worded from the event's own name and property, whatever product they
come from (:func:`event_phrase`): ``Payment Failed`` reads "payment failed", ``invoice.paid`` and
``invoice_paid`` "invoice paid", ``subscriptionCancelled`` "subscription cancelled", acronyms and
names in other scripts stay as they are; a property narrows it in brackets ("NPS submitted (score:
7)", "login (role: admin)", "export finished (ok: no)"), without repeating a word the name says
("feature used (workflows)" for ``Feature Used[feature=workflows]``). A nested property reads as its path in
words, less the leading keys the name says: "payment failed (status: failed)" for
``Payment Failed[payment.status=failed]``, "NPS submitted with survey score as low as 3" for
``NPS Submitted.survey.score``. So a reason reads "NPS submitted (score: 7) once in the last 28 days" or
"last payment failed 2 days ago".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from rules.risk.features import BASELINE_DAYS, KEEP_DAYS, Explained, NumericProp, Term
from schemas import formatting

MAX_NAME_CHARS = 60
"""An event name, property or value longer than this is cut (with "…"): a reason is one line."""
_SEPARATORS = frozenset("._-:/")
_IDENTIFIER = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)+")
"""A snake_case value (``insufficient_funds``) reads with spaces; other values stay as they are."""
_PREFIXES = ("", "i", "e")
"""A capital after these starts no new word: iPhone, eBay (and a capital at a word's start)."""
_NO_BASELINE = {
    "activity_vs_baseline": "{now} events a week in the last 14 days",
    "active_users_vs_baseline": "{users} in the last 7 days",
    "activity_7d_vs_baseline": "{now} events in the last 7 days",
    "breadth_vs_previous": "{now} kinds of activity in the last 14 days",
}


def sentence(name: str, item: Explained, subject: Term | NumericProp | None = None) -> str:
    """A sentence a CSM reads: ``active users down 62% against the last 8 weeks (3 vs 8 a week)``.

    ``subject`` is what a per-event feature is about (``FeatureSpec.subjects``); without it the
    term is read back from the feature's name (``count28:Login[role=admin]``), which a name that
    itself holds ``[`` or ``.`` can make ambiguous — the rule kind always passes it.

    A count of users from sketch days (an account with more users a day than the features list one by one)
    ends with "(estimated)": it can be some percent off, and the CSM should not quote it as exact.
    """
    text = _sentence(name, item, subject)
    return f"{text} (estimated)" if item.estimated else text


def _sentence(name: str, item: Explained, subject: Term | NumericProp | None) -> str:
    now, before = item.now, item.before
    # the baseline is named by what it holds: "the last 3 weeks" for an account (or a worker) 5 weeks old
    weeks = _span(BASELINE_DAYS if item.weeks is None else round(item.weeks * 7))
    if before is None and name in _NO_BASELINE:  # an account younger than a week of baseline: nothing to compare
        return _NO_BASELINE[name].format(now=_num(now), users=_counted(now, "active user")) + " (too new to compare)"
    fixed = _FIXED.get(name)
    if fixed is not None:
        return fixed(item, weeks, name)
    kind, _, label = name.partition(":")
    if kind in ("tier", "plan"):  # as above: an account on another tier is a reason when this tier's weight is negative
        return f"on the {label} {kind}" if item.value else f"not on the {label} {kind}"
    if kind in ("rate", "count28", "since"):
        term = subject if isinstance(subject, Term) else _term_of(label)
        return _term_sentence(kind, term_phrase(term), item, weeks)
    if kind in ("min28", "last"):
        numeric = subject if isinstance(subject, NumericProp) else _numeric_of(label)
        return _numeric_sentence(kind, numeric, now)
    return f"{_words(name)}: {_num(item.value)}"  # a feature this Preempt does not know (a newer model file)


def _renewal_within(item: Explained, weeks: str, name: str) -> str:
    # a negative weight makes "not within" a reason too: the sentence says which side the account is on
    within = "renews within" if item.value else "does not renew within"
    return f"the contract {within} {name[len('renewal_within_') : -1]} days ({_counted(item.now, 'day')} from now)"


_Sentence = Callable[[Explained, str, str], str]
"""A fixed feature's sentence from its explained value, the baseline's span ("8 weeks") and its name."""
_FIXED: dict[str, _Sentence] = {
    "activity_vs_baseline": lambda i, weeks, _: (
        f"activity {_change(i.now, i.before)} against the last {weeks} "
        f"({_num(i.now)} vs {_num(i.before)} events a week)"
    ),
    "active_users_vs_baseline": lambda i, weeks, _: (
        f"active users {_change(i.now, i.before)} against the last {weeks} "
        f"({_num(i.now)} this week vs {_num(i.before)} a week before)"
    ),
    "active_users_7d": lambda i, _w, _n: f"{_counted(i.now, 'active user')} in the last 7 days",
    "breadth_vs_previous": lambda i, _w, _n: (
        f"breadth of use {_change(i.now, i.before)}: {_num(i.now)} kinds of activity in the last 14 days, "
        f"{_num(i.before)} in the 14 days before"
    ),
    "days_since_last_event": lambda i, _w, _n: f"no events for {_counted(i.now, 'day')}",
    "days_since_last_user_event": lambda i, _w, _n: f"no user activity for {_counted(i.now, 'day')}",
    # the first event seen, not the contract: customer_days says "customer for"
    "tenure_days": lambda i, _w, _n: f"first event {_counted(i.now, 'day')} ago",
    "activity_7d_vs_baseline": lambda i, weeks, _: (
        f"activity {_change(i.now, i.before)} against the last {weeks} "
        f"({_num(i.now)} events in the last 7 days vs {_num(i.before)} a week)"
    ),
    "activity_trend_4w": lambda i, _w, _n: (
        f"weekly activity {_change(i.now, i.before)} over 4 weeks ({_num(i.before)} then {_num(i.now)} events a week)"
    ),
    "active_users_trend_4w": lambda i, _w, _n: (
        f"weekly active users {_change(i.now, i.before)} over 4 weeks ({_num(i.before)} then {_num(i.now)})"
    ),
    "baseline_users_retained": lambda i, weeks, _: (
        f"{_num(i.now)} of the {_num(i.before)} regular users of the {weeks} before were active in the last 14 days"
    ),
    "top_user_days_away": lambda i, weeks, _: (
        f"the most active user of the {weeks} before has not been seen for {_counted(i.now, 'day')}"
    ),
    "days_to_renewal": lambda i, _w, _n: f"the contract renews in {_counted(i.now, 'day')}",
    "renewal_within_30d": _renewal_within,
    "renewal_within_60d": _renewal_within,
    "customer_days": lambda i, _w, _n: f"customer for {_counted(i.now, 'day')}",
    "seats": lambda i, _w, _n: f"{_counted(i.now, 'seat')} bought",
    "seat_use_28d": lambda i, _w, _n: f"{_num(i.now)} of {_num(i.before)} seats used in the last 28 days",
    # "$12,500 MRR", as every channel shows the account's MRR (was "MRR 12500")
    "mrr": lambda i, _w, _n: formatting.mrr(i.now),
}
"""The model's fixed features (not per event) and their sentences; a table, so a new feature is one line."""


def _term_sentence(kind: str, what: str, item: Explained, weeks: str) -> str:
    now, before = item.now, item.before
    if kind == "rate":
        if not now and (before is None or before <= 0):
            return f"{what} not once in the last 14 days, nor in the {weeks} before"
        if before is None or before <= 0:
            return f"{what} {_times(now)} a week in the last 14 days, not once in the {weeks} before"
        change = _change(now, before)
        return f"{what} {change} against the last {weeks} ({_num(now)} a week vs {_num(before)} a week before)"
    if kind == "count28":
        return f"{what} {_times(now) if now else 'not once'} in the last 28 days"
    if item.before is not None:  # since: never seen in the kept history (``before``: how many days were looked at)
        return f"{what} not once in the last {_counted(item.before, 'day')}"
    return f"last {what} {_counted(now, 'day')} ago"


def _numeric_sentence(kind: str, numeric: NumericProp, now: float | None) -> str:
    what = event_phrase(numeric.event)
    prop = _prop_words(what, numeric.prop)
    if kind == "min28":
        if now is None:
            return f"{what}: no {prop} in the last 28 days"
        return f"{what} with {prop} as low as {_num(now)} in the last 28 days"
    if now is None:
        return f"{what}: no {prop} in the last {KEEP_DAYS} days"
    return f"the latest {what} had {prop} {_num(now)}"


def term_phrase(term: Term) -> str:
    """``Login[role=admin]`` as "login (role: admin)"; ``Feature Used[feature=workflows]`` as "feature used
    (workflows)": the property's name is left out when the event's name already says it."""
    what = event_phrase(term.event)
    if term.prop is None:
        return what
    prop = _prop_words(what, term.prop)
    value = _value(term.value)
    if term.value is None:
        return f"{what} (no {prop})"
    if prop.casefold() in what.casefold().split():
        return f"{what} ({value})"
    return f"{what} ({prop}: {value})"


def _prop_words(what: str, prop: str | tuple[str, ...]) -> str:
    """A property as words; of a nested one's path, the leading keys the event's name says are left out:
    "payment failed (status: failed)" for ``Payment Failed[payment.status=failed]``, "subscription changed
    (plan tier: pro)" for ``Subscription Changed[plan.tier=pro]`` (the last key always stays)."""
    if isinstance(prop, str):
        return _words(prop)
    said = what.casefold().split()
    keys = [words for words in map(_words, prop) if words] or [f"“{_cut('.'.join(prop))}”"]  # keys of "_" only
    while len(keys) > 1 and all(word in said for word in keys[0].casefold().split()):
        del keys[0]
    return _cut(" ".join(keys))


def event_phrase(name: str) -> str:
    """An event's name as words in a sentence: "payment failed" for ``Payment Failed``, ``payment.failed``,
    ``payment_failed`` or ``paymentFailed``; "NPS submitted" (acronyms kept); other scripts as they are."""
    words = _words(name)
    return words if words else f"“{_cut(name)}”"  # a name of separators only ("..."): as it is, quoted


def _words(text: str) -> str:
    """Separators (``. _ - : /``) become spaces, camelCase is split (in a name without spaces), capitalised
    words are lower-cased."""
    spaced: list[str] = []
    camel = not any(char.isspace() for char in text)  # "GitHub Connected" is spelled in words already
    for index, char in enumerate(text):
        if char in _SEPARATORS or char.isspace():
            char = " "
        elif (
            camel and char.isupper() and text[index + 1 : index + 2].islower() and _word_before(spaced) not in _PREFIXES
        ):
            spaced.append(" ")  # invoicePaid → invoice Paid; APIRequest → API Request; not iPhone, eBay or iOS
        spaced.append(char)
    words = "".join(spaced).split()
    # "Login" → "login"; "NPS", "iOS", "GitHub" and words without case stay as they are
    return _cut(" ".join(w.lower() if w.istitle() and not w.isupper() else w for w in words))


def _word_before(spaced: list[str]) -> str:
    """The word being spelled so far (lower-cased), ``""`` at a word's start."""
    word = "".join(spaced).rpartition(" ")[2]
    return word.lower() if word.isalpha() or not word else word


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if not text.strip():
        return "empty"
    if isinstance(value, str) and _IDENTIFIER.fullmatch(text):  # insufficient_funds → insufficient funds
        text = text.replace("_", " ")
    return _cut(text)  # anything else (a path, an email, "Pro (annual)") as the product wrote it


def _cut(text: str) -> str:
    return text if len(text) <= MAX_NAME_CHARS else text[: MAX_NAME_CHARS - 1].rstrip() + "…"


def _term_of(label: str) -> Term:
    """``Login[role=admin]`` back into its term (a label without ``[…=…]`` is an event name)."""
    if label.endswith("]") and "[" in label:
        event, _, inner = label[:-1].rpartition("[")
        prop, equals, value = inner.partition("=")
        if equals and event:
            return Term(event, prop, value)
    return Term(label)


def _numeric_of(label: str) -> NumericProp:
    """``NPS Submitted.score`` back into its event and property (the property after the last dot)."""
    event, dot, prop = label.rpartition(".")
    return NumericProp(event, prop) if dot and event and prop else NumericProp(label, "value")


def _change(now: float | None, before: float | None) -> str:
    if not now and (before is None or before <= 0):  # nothing then, nothing now: "new" would say it appeared
        return "still at zero"
    if now is None or before is None or before <= 0:
        return "new"
    pct = 100.0 * (now - before) / before
    return f"down {-pct:.0f}%" if pct < 0 else f"up {pct:.0f}%"


def _span(days: int) -> str:
    """``8 weeks``, ``3 weeks``, ``46 days``: whole weeks in weeks, otherwise in days."""
    return _counted(days / 7, "week") if days % 7 == 0 else _counted(days, "day")


def _counted(value: float | None, noun: str) -> str:
    """``1 day``, ``3 days``: a CSM reads words, not ``day(s)``."""
    text = _num(value)
    return f"{text} {noun}" if text == "1" else f"{text} {noun}s"


def _times(value: float | None) -> str:
    """How often: "once", "twice", "3 times", "1.5 times"."""
    text = _num(value)
    return {"1": "once", "2": "twice"}.get(text, f"{text} times")


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "none"
    # one decimal below 10, and never a trailing ".0": 5.96 days is "6 days", not "6.0 days"
    text = f"{value:,.0f}" if abs(value) >= 10 else f"{value:.1f}".removesuffix(".0")  # 12,500 as on every channel
    return "0" if text == "-0" else text  # -0.04 rounds to "-0", which reads as a sign error
