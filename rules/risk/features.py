"""Per-account churn-risk features, kept incrementally: the ONE extractor of training and serving.

Who calls it: the ``risk`` rule kind (``rules.kinds.risk``) on every event and at every daily
tick, and ``preempt train``, which replays history through the very same functions at each
as-of point — so a model never sees features computed differently from the stream's.

Nothing here knows the product's event names. A :class:`FeatureSpec` (stored in the model file)
lists the *terms* the training events contained — event names, and ``name[property=value]``
for properties with few distinct values (``Login[role=admin]``, ``API Request[status=500]``) —
and the *numeric* properties of rare events (``NPS Submitted.score``); a property may be nested, named by its path
(``Payment Failed[payment.status=failed]``, ``NPS Submitted.survey.score``; read as :mod:`rules.risk.properties`
says). From those come:

* generic features: activity, active users and breadth against the account's own baseline
  (the 8 weeks before the last two), active users, days since the last event and the last user
  event, tenure; and (spec version 2) the last 7 days' activity against the baseline, the
  4-week trends of activity and of active users, the share of the baseline's users still
  active, and how long the baseline's most active user (the champion) has been away;
* per term: its weekly rate in the last 14 days against the baseline, its count in the last
  28 days (0 = not adopted, or not happening any more), and (version 2) the days since it last
  happened (``Invoice Paid`` 40 days ago: a monthly payment is missing);
* per numeric property: its lowest value in the last 28 days and its latest value.

Spec version 3 adds what the account record (``schemas.account.Account``, the accounts topic
or the backtest's accounts file) says and events do not: days to the contract's renewal date,
tenure from ``customer_since``, seats and the share of them used in the last 28 days, MRR, and
the tier and plan (one feature per value the training accounts had). The record is read when
the account is scored (:class:`AccountFacts`), never kept in the state, so the stream and a
backtest with the same records compute the same features.

A model file names its spec version; version 1 and 2 models (fewer features) keep scoring unchanged.

State is a plain JSON-ready dict (the engine serializes rule state as is): one bucket per UTC
day for the last ``KEEP_DAYS`` days with the event count, term counts, the day's users and
numeric minimums. Time comes in as arguments; a tick at midnight sees the days before it.

Users are bounded, whatever the account's size. The account's user ids are written once, in a
table (``"ut"``: id → number), and a day lists its users' numbers, exactly, while it has at most
:data:`MAX_USERS_PER_DAY` of them and the table has room (:data:`MAX_KNOWN_USERS` ids,
:data:`MAX_KNOWN_USER_CHARS` characters; ids of days gone by leave it). Past either bound the day
becomes a *sketch day* (:func:`_sketch_day`): a HyperLogLog sketch of all its users
(``rules.sketch``, 1,024 registers, about 3 % standard error) and a coordinated hash sample of them
(at most :data:`MAX_SAMPLE_PER_DAY`; the same users are sampled on every day they are active).
While every day a feature looks at is exact the features are exactly those of before (the ids
read back from the table); when one is a sketch day the distinct-user counts are the sketches'
union estimate and the per-user features (the regulars still active, the champion's days away)
come from the users sampled on every day at the rarest sampling rate of those days but the sparsest
tenth (:func:`_per_user_level`: one burst day does not thin the other days' users; counts scaled back
up). Before, a day listed its first 256 user ids and left out the rest: 593 KB of ids for an account
of 256 daily users, quarantined beside the default pack's state.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

from rules import sketch
from rules.risk.properties import Path, check_path, path_label, property_paths
from schemas.account import Account
from schemas.event import Event

DAY = 86400.0
RECENT_DAYS = 14
"""The "now" of ratio features: the last two weeks (rates are per week)."""
BASELINE_DAYS = 56
"""The account's own baseline: the 8 weeks before the recent two."""
ADOPTION_DAYS = 28
KEEP_DAYS = RECENT_DAYS + BASELINE_DAYS
MAX_USERS_PER_DAY = 256
"""A day lists at most this many users exactly; the next one turns it into a sketch day."""
MAX_KNOWN_USERS = 2_048
"""The account's user table holds at most this many ids (of the kept days' exact lists)…"""
MAX_KNOWN_USER_CHARS = 65_536
"""…and at most this many characters of them (long ids)."""
SKETCH_PRECISION = 10
"""1,024 registers a sketch day (about 3 % standard error; 2 % for a day just past its list): 72 KB at most over the
70 kept days."""
MAX_SAMPLE_PER_DAY = 64
"""A sketch day's sample holds at most this many users' hashes (its sampling rate halves past it)."""
SAMPLE_BITS = 48
PER_USER_SPARSEST = 0.1
"""The share of the days in view (at most 7 of 70; none of fewer than 10) whose sparser samples do not set the
level the per-user features read (:func:`_per_user_level`): a burst day leaves the other days' users counted."""
CAP_DAYS = 90.0
TREND_WEEKS = 4
SEAT_USE_DAYS = 28
RENEWAL_CAP_DAYS = 365.0
SPEC_VERSION = 3
"""The spec version new models get; :data:`SPEC_VERSIONS` lists those this engine scores."""
SPEC_VERSIONS = (1, 2, 3)
MAX_ACCOUNT_VALUES = 12
"""At most this many tiers (and plans) become features."""

Scalar = str | int | float | bool | None
Prop = str | Path
"""A property: a top-level key, read exactly as the event spells it (``"role"``; in a model file trained before
nested properties, also a key with dots in it), or the path of two keys or more (``("payment", "status")``), read
by :func:`rules.risk.properties.property_paths`. A model file writes a path as a list."""


@dataclass(frozen=True, slots=True)
class Term:
    """An event name, optionally narrowed to one value of one property (a top-level key or a nested path)."""

    event: str
    prop: Prop | None = None
    value: Scalar = None

    @property
    def label(self) -> str:
        """How people read it: ``Login``, ``Login[role=admin]``, ``Payment Failed[payment.status=failed]``; a boolean
        in JSON spelling, as events carry it (``Export[ok=true]``; models trained before 2026-12 wrote ``ok=True``,
        see :attr:`legacy_label`)."""
        if self.prop is None:
            return self.event
        return f"{self.event}[{path_label(self.prop)}={_spelled(self.value)}]"

    @property
    def legacy_label(self) -> str:
        """The label as model files trained before 2026-12 name it: Python's ``True``/``False``/``None``."""
        if self.prop is None:
            return self.event
        return f"{self.event}[{path_label(self.prop)}={self.value}]"


def _spelled(value: Scalar) -> str:
    """A property value as a label shows it: JSON's ``true``, ``false``, ``null``; strings and numbers as they are."""
    if value is None or isinstance(value, bool):
        return orjson.dumps(value).decode()
    return str(value)


@dataclass(frozen=True, slots=True)
class NumericProp:
    """A numeric property of an event name (``NPS Submitted.score``, nested: ``NPS Submitted.survey.score``)."""

    event: str
    prop: Prop

    @property
    def label(self) -> str:
        """``NPS Submitted.score``, ``NPS Submitted.survey.score``."""
        return f"{self.event}.{path_label(self.prop)}"


GENERIC_V1 = (
    "activity_vs_baseline",
    "active_users_vs_baseline",
    "active_users_7d",
    "breadth_vs_previous",
    "days_since_last_event",
    "days_since_last_user_event",
    "tenure_days",
)
GENERIC_V2 = (
    *GENERIC_V1,
    "activity_7d_vs_baseline",
    "activity_trend_4w",
    "active_users_trend_4w",
    "baseline_users_retained",
    "top_user_days_away",
)
GENERIC = GENERIC_V2
ACCOUNT_V3 = (
    "days_to_renewal",
    "renewal_within_30d",
    "renewal_within_60d",
    "customer_days",
    "seats",
    "seat_use_28d",
    "mrr",
)
"""Features of the account record (spec version 3), before the one-hot tier and plan features."""


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """What the risk features read from an account record, as numbers (None: not in the record)."""

    renewal_at: float | None = None
    """00:00 UTC of ``renewal_date``."""
    customer_since: float | None = None
    seats: int | None = None
    mrr: float | None = None
    tier: str | None = None
    plan: str | None = None
    known: bool = False
    """Whether there was a record at all (an unknown account has every account feature unknown)."""

    @classmethod
    def of(cls, account: Account | None) -> AccountFacts:
        """The facts of a record; an unknown account (None) knows nothing."""
        if account is None:
            return UNKNOWN_ACCOUNT
        return cls(
            _midnight(account.renewal_date),
            _midnight(account.customer_since),
            account.seats,
            account.mrr,
            account.tier,
            account.plan,
            True,
        )


UNKNOWN_ACCOUNT = AccountFacts()


def _midnight(day: date | None) -> float | None:
    return None if day is None else datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """Which terms and numeric properties to track; the feature names follow from it."""

    terms: tuple[Term, ...]
    numerics: tuple[NumericProp, ...] = ()
    version: int = SPEC_VERSION
    tiers: tuple[str, ...] = ()
    """Version 3: the account tiers that each get a feature (``tier:enterprise``)."""
    plans: tuple[str, ...] = ()
    legacy_labels: bool = field(default=False, compare=False)
    """Name boolean terms ``=True``/``=False``, as model files trained before 2026-12 do (read with
    :meth:`matching_names`): the same features, so such a model scores as before."""
    terms_by_event: dict[str, tuple[tuple[str, Prop | None, Scalar], ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    numerics_by_event: dict[str, tuple[tuple[str, Prop], ...]] = field(default_factory=dict, compare=False, repr=False)
    """Per event name, the state keys (``str(index)``, made once and shared by every bucket of every account:
    a string of its own per bucket took about 50 bytes each) and what the term or property matches."""
    nested_events: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    """The event names with a nested term or numeric property: only their events' paths are read."""

    def __post_init__(self) -> None:
        if self.version not in SPEC_VERSIONS:
            raise ValueError(f"feature spec version {self.version!r}; this engine reads {SPEC_VERSIONS}")
        if self.version < 3 and (self.tiers or self.plans):
            raise ValueError("tiers and plans are features of spec version 3")
        nested: set[str] = set()
        items: tuple[Term | NumericProp, ...] = (*self.terms, *self.numerics)
        for item in items:
            if isinstance(item.prop, tuple):
                if len(check_path(item.prop)) < 2:
                    raise ValueError(f"{item.event!r}: a property path has two keys or more (one is a plain key)")
                nested.add(item.event)
        object.__setattr__(self, "nested_events", frozenset(nested))
        by_event: dict[str, list[tuple[str, Prop | None, Scalar]]] = {}
        for index, term in enumerate(self.terms):
            by_event.setdefault(term.event, []).append((str(index), term.prop, term.value))
        self.terms_by_event.update({name: tuple(items) for name, items in by_event.items()})
        numeric: dict[str, list[tuple[str, Prop]]] = {}
        for index, item in enumerate(self.numerics):
            numeric.setdefault(item.event, []).append((str(index), item.prop))
        self.numerics_by_event.update({name: tuple(items) for name, items in numeric.items()})

    @property
    def names(self) -> list[str]:
        """Feature names, in vector order."""
        names = list(GENERIC_V1 if self.version == 1 else GENERIC_V2)
        labels = [t.legacy_label if self.legacy_labels else t.label for t in self.terms]
        names += [f"rate:{label}" for label in labels]
        names += [f"count28:{label}" for label in labels]
        if self.version >= 2:
            names += [f"since:{label}" for label in labels]
        names += [f"min28:{n.label}" for n in self.numerics]
        names += [f"last:{n.label}" for n in self.numerics]
        if self.version >= 3:
            names += list(ACCOUNT_V3)
            names += [f"tier:{t}" for t in self.tiers]
            names += [f"plan:{p}" for p in self.plans]
        return names

    @property
    def subjects(self) -> list[Term | NumericProp | None]:
        """What each feature of :attr:`names` is about, in the same order: the term (``rate:``, ``count28:``,
        ``since:``), the numeric property (``min28:``, ``last:``), or None (generic and account features) —
        so a reason is worded from the event's name and property, never parsed back out of a label."""
        subjects: list[Term | NumericProp | None] = [None] * len(GENERIC_V1 if self.version == 1 else GENERIC_V2)
        subjects += [*self.terms, *self.terms, *(self.terms if self.version >= 2 else ())]
        subjects += [*self.numerics, *self.numerics]
        if self.version >= 3:
            subjects += [None] * (len(ACCOUNT_V3) + len(self.tiers) + len(self.plans))
        return subjects

    def matching_names(self, names: Sequence[str]) -> FeatureSpec | None:
        """This spec if it yields ``names``, or the same spec naming booleans as older model files did
        (``ok=False``) if that yields them; None when neither does."""
        if self.names == list(names):
            return self
        legacy = dataclasses.replace(self, legacy_labels=True)
        return legacy if legacy.names == list(names) else None

    @property
    def event_names(self) -> frozenset[str]:
        """The event names the model learned its per-term and numeric features from."""
        return frozenset(self.terms_by_event) | frozenset(self.numerics_by_event)

    @property
    def uses_accounts(self) -> bool:
        """Whether the features read the account record (spec version 3)."""
        return self.version >= 3

    def to_json(self) -> dict[str, Any]:
        """The spec as stored in a model file."""
        doc: dict[str, Any] = {
            "version": self.version,
            "terms": [{"event": t.event, "property": _prop_json(t.prop), "value": t.value} for t in self.terms],
            "numerics": [{"event": n.event, "property": _prop_json(n.prop)} for n in self.numerics],
        }
        if self.version >= 3:
            doc["account"] = {"tiers": list(self.tiers), "plans": list(self.plans)}
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FeatureSpec:
        """Read :meth:`to_json`; ``ValueError`` on another version or shape."""
        version = doc.get("version")
        if version not in SPEC_VERSIONS:
            raise ValueError(
                f"feature spec version {version!r}; this engine reads {', '.join(map(str, SPEC_VERSIONS))}"
            )
        terms = tuple(
            Term(str(t["event"]), _prop_of(t.get("property"), t["event"]), t.get("value"))
            for t in _listed(doc, "terms")
        )
        for term in terms:
            if isinstance(term.value, list | dict):
                raise ValueError(f"term {term.event!r}: a property's value is a string, number or bool")
        numerics = tuple(
            NumericProp(str(n["event"]), _numeric_prop_of(n["property"], n["event"])) for n in _listed(doc, "numerics")
        )
        account = doc.get("account") or {}
        if not isinstance(account, dict):
            raise ValueError("'account' must be an object (tiers, plans)")
        tiers = tuple(str(t) for t in account.get("tiers", ()))
        plans = tuple(str(p) for p in account.get("plans", ()))
        return cls(terms, numerics, int(version), tiers, plans)

    @property
    def digest(self) -> str:
        """Identifies the state layout: a state kept under another spec is started afresh."""
        return hashlib.sha256(orjson.dumps(self.to_json(), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _prop_json(prop: Prop | None) -> str | list[str] | None:
    """A property as a model file holds it: a key as a string, a path as a list of keys (a Preempt from before
    nested properties refuses such a file, "a property is a name", rather than read the path as a key)."""
    return list(prop) if isinstance(prop, tuple) else prop


def _prop_of(raw: Any, event: Any) -> Prop | None:
    """A term's ``property`` of a model file: absent, a key, or a path (a list of two keys or more)."""
    if raw is None or isinstance(raw, str):
        return raw
    return _path_of(raw, event)


def _numeric_prop_of(raw: Any, event: Any) -> Prop:
    """A numeric property of a model file: a key (anything else read as its text, as before) or a path."""
    return _path_of(raw, event) if isinstance(raw, list) else str(raw)


def _path_of(raw: Any, event: Any) -> Path:
    if isinstance(raw, list) and len(raw) >= 2:
        return check_path(tuple(raw))
    raise ValueError(f"{event!r}: a property is a name, or a path of two names or more (a list)")


def _listed(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """``doc[key]``, a list of objects (``terms`` is required, ``numerics`` may be absent)."""
    items = doc[key] if key == "terms" else doc.get(key, [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValueError(f"'{key}' must be a list of objects")
    return items


TABLED = "+t"
"""Marks the digest (``"d"``) of a state with a user table: a worker from before it sees another layout and starts
the state afresh (counted, logged) rather than reading user numbers as ids and sketch days as lists."""


def state_digest(spec: FeatureSpec) -> str:
    """The ``"d"`` of a state of ``spec`` in this layout."""
    return spec.digest + TABLED


def new_state(spec: FeatureSpec) -> dict[str, Any]:
    """A fresh feature state for one account."""
    return {"d": state_digest(spec), "f": None, "l": None, "u": None, "days": [], "ut": {}, "uc": 0}


def _day(ts: float) -> int:
    return math.floor(ts / DAY)


def upgrade(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` as this code keeps it: one kept before the user table (days listing user ids) gets one."""
    if "days" in state and "ut" not in state:
        _tabled(state)
    return state


def downgrade(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` as code before the user table kept it (for state encoding version 1, read by older workers):
    days list their users' ids again, and without the table; a sketch day lists none (that code had no sketches)."""
    if "ut" not in state:
        return state
    names = _names(state["ut"])
    days = [[d[0], d[1], d[2], [names[i] for i in d[3]] if type(d[3]) is list else [], d[4]] for d in state["days"]]
    digest = state["d"].removesuffix(TABLED) if isinstance(state["d"], str) else state["d"]
    return {key: value for key, value in state.items() if key not in ("ut", "uc")} | {"d": digest, "days": days}


def _tabled(state: dict[str, Any]) -> dict[str, int]:
    """The state's user table; a state kept before there was one (days listing user ids) is converted."""
    table: dict[str, int] | None = state.get("ut")
    if table is not None:
        return table
    table = state["ut"] = {}
    state["uc"] = 0
    if isinstance(state.get("d"), str) and not state["d"].endswith(TABLED):
        state["d"] += TABLED
    for bucket in state["days"]:
        listed, bucket[3] = bucket[3], []
        for user in listed:
            _add_user(state, table, bucket, user)
    return table


def _add_user(state: dict[str, Any], table: dict[str, int], bucket: list[Any], user: str) -> bool:
    """Count ``user`` among the day's users; True when that turned the day into a sketch day."""
    users = bucket[3]
    if type(users) is not list:
        _sketch_add(users, user)
        return False
    index = table.get(user)
    if index is not None and index in users:
        return False
    if len(users) < MAX_USERS_PER_DAY:
        if index is None and len(table) < MAX_KNOWN_USERS and state["uc"] + len(user) <= MAX_KNOWN_USER_CHARS:
            index = table[sys.intern(user)] = len(table)  # numbers stay 0…n−1 (``_forget_users``)
            state["uc"] += len(user)
        if index is not None:
            users.append(index)
            return False
    names = _names(table)
    bucket[3] = day = _sketch_day()
    for listed in users:
        _sketch_add(day, names[listed])
    _sketch_add(day, user)
    return True


def _names(table: dict[str, int]) -> list[str]:
    """The table's ids by number."""
    names = [""] * len(table)
    for user, index in table.items():
        names[index] = user
    return names


def _forget_users(state: dict[str, Any], table: dict[str, int]) -> None:
    """Renumber the table to the users the kept days list (in the order they list them), dropping the others."""
    names = _names(table)
    kept: dict[str, int] = {}
    for bucket in state["days"]:
        users = bucket[3]
        if type(users) is list:
            bucket[3] = [kept.setdefault(names[i], len(kept)) for i in users]
    state["ut"] = kept
    state["uc"] = sum(map(len, kept))


def _sketch_day() -> dict[str, Any]:
    """A sketch day's users: ``s`` the sketch, ``v`` the sample's level (it keeps the hashes below
    ``2 ** (SAMPLE_BITS − v)``), ``h`` the sampled users' hashes."""
    return {"s": sketch.empty(SKETCH_PRECISION), "v": 0, "h": []}


def _sample_hash(user: str) -> int:
    """The hash a user is sampled by (the same on every day and account: the samples are coordinated)."""
    digest = hashlib.blake2b(user.encode("utf-8", "surrogatepass"), digest_size=6, person=b"preempt-risk")
    return int.from_bytes(digest.digest(), "big")


def _sketch_add(day: dict[str, Any], user: str) -> None:
    day["s"] = sketch.add(day["s"], user)
    hashed = _sample_hash(user)
    sample: list[int] = day["h"]
    if hashed >> (SAMPLE_BITS - day["v"]) or hashed in sample:
        return
    sample.append(hashed)
    while len(sample) > MAX_SAMPLE_PER_DAY:
        day["v"] = level = day["v"] + 1
        sample[:] = [h for h in sample if not h >> (SAMPLE_BITS - level)]


def observe(spec: FeatureSpec, state: dict[str, Any], event: Event) -> bool:
    """Fold one event (in event-time order) into the state. True when its user turned the day into a sketch
    day (more than :data:`MAX_USERS_PER_DAY` users, or the user table full: the caller counts it)."""
    sketched = False
    ts = event.ts
    day = _day(ts)
    days: list[list[Any]] = state["days"]
    table = _tabled(state)
    if not days or days[-1][0] != day:
        bucket: list[Any] = [day, 0, {}, [], {}]
        days.append(bucket)
        cutoff = day - KEEP_DAYS
        if days[0][0] <= cutoff:
            while days and days[0][0] <= cutoff:
                del days[0]
            _forget_users(state, table)
            table = state["ut"]
    else:
        bucket = days[-1]
    if state["f"] is None:
        state["f"] = ts
    state["l"] = ts
    bucket[1] += 1
    user = event.user_id
    if user is not None:
        state["u"] = ts
        sketched = _add_user(state, table, bucket, user)
    props: dict[Any, Any] = event.properties
    if event.event in spec.nested_events:  # a model with nested terms: a path and a plain key are both looked up
        props = props | property_paths(props)
    terms = spec.terms_by_event.get(event.event)
    if terms:
        counts = bucket[2]
        for key, prop, value in terms:
            if prop is None or (prop in props and props[prop] == value and type(props[prop]) is type(value)):
                counts[key] = counts.get(key, 0) + 1
    numerics = spec.numerics_by_event.get(event.event)
    if numerics:
        mins = bucket[4]
        for key, prop in numerics:
            raw = props.get(prop)
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                continue
            current = mins.get(key)
            mins[key] = [raw, raw] if current is None else [min(current[0], raw), raw]
    return sketched


@dataclass(frozen=True, slots=True)
class Explained:
    """One feature's value and the plain numbers behind it (for sentences)."""

    value: float | None
    now: float | None = None
    before: float | None = None
    weeks: float | None = None
    """How many weeks the baseline behind ``before`` holds (8 once the account has the history; fewer before)."""
    estimated: bool = False
    """Whether ``now``/``before`` count users from sketch days (an account with more users a day than it lists)."""


def _ratio(now: float, before: float | None) -> float:
    return 0.0 if before is None else math.log((now + 1.0) / (before + 1.0))


def compute(
    spec: FeatureSpec, state: dict[str, Any], now: float, account: AccountFacts = UNKNOWN_ACCOUNT
) -> list[Explained]:
    """Every feature at ``now`` (a tick): only days strictly before ``now``'s day count; the account
    features (spec version 3) from ``account``, the record as it is at ``now``."""
    today = _day(now)
    table = _tabled(state)
    days: list[list[Any]] = [d for d in state["days"] if today - KEEP_DAYS <= d[0] < today]
    exact = all(type(d[3]) is list for d in days)
    # a sketch day in view: users are told apart by hash, those of the rarest sample of these days but the
    # sparsest tenth (:func:`_per_user_level`)
    level = 0 if exact else _per_user_level(days)
    names = _names(table)
    hashed: dict[int, int] = {}
    first, last, last_user = state["f"], state["l"], state["u"]
    recent_from = today - RECENT_DAYS
    adoption_from = today - ADOPTION_DAYS
    week_from = today - 7
    first_day = _day(first) if first is not None else today
    baseline_days = max(0, min(BASELINE_DAYS, recent_from - first_day))
    baseline_weeks = baseline_days / 7.0 if baseline_days >= 7 else None
    n_terms, n_numerics = len(spec.terms), len(spec.numerics)
    v2 = spec.version >= 2
    v3 = spec.version >= 3

    recent_events = base_events = week_events = 0
    recent_counts = [0] * n_terms
    base_counts = [0] * n_terms
    adoption_counts = [0] * n_terms
    last_day: list[int | None] = [None] * n_terms
    mins: list[float | None] = [None] * n_numerics
    latest: list[float | None] = [None] * n_numerics
    users_7d: list[Any] = []  # each day's users: its ids (exact) or its sketch
    users_recent: set[str | int] = set()
    users_28d: list[Any] = []
    seat_use_from = today - SEAT_USE_DAYS
    week_users: dict[int, list[Any]] = {}
    trend_events = [0] * TREND_WEEKS
    trend_users: list[list[Any]] = [[] for _ in range(TREND_WEEKS)]
    base_user_days: dict[str | int, int] = {}
    user_last_day: dict[str | int, int] = {}
    breadth_recent: set[str] = set()
    breadth_before: set[str] = set()
    for day, count, counts, listed, numeric in days:
        users: Any
        sampled: list[str] | list[int]
        if type(listed) is list:
            users = [names[i] for i in listed]
            sampled = users if exact else _sampled([_hash_of(i, names, hashed) for i in listed], level)
        else:
            users, sampled = listed["s"], _sampled(listed["h"], level)
        recent = day >= recent_from
        if recent:
            recent_events += count
            users_recent.update(sampled)
        else:
            base_events += count
        if day >= week_from:
            users_7d.append(users)
            week_events += count
        elif not recent:
            week_users.setdefault((recent_from - 1 - day) // 7, []).append(users)
        if v3 and day >= seat_use_from:
            users_28d.append(users)
        if v2:
            weeks_ago = (today - 1 - day) // 7  # 0 = the last 7 days
            if weeks_ago < TREND_WEEKS:
                trend_events[weeks_ago] += count
                trend_users[weeks_ago].append(users)
            for user in sampled:
                user_last_day[user] = day  # days come in order: the last one wins
                if not recent:
                    base_user_days[user] = base_user_days.get(user, 0) + 1
        for key, value in counts.items():
            index = int(key)
            last_day[index] = day
            if recent:
                recent_counts[index] += value
                breadth_recent.add(key)
            else:
                base_counts[index] += value
                if day >= recent_from - RECENT_DAYS:
                    breadth_before.add(key)
            if day >= adoption_from:
                adoption_counts[index] += value
        for key, (low, newest) in numeric.items():
            index = int(key)
            latest[index] = newest
            if day >= adoption_from:
                mins[index] = low if mins[index] is None else min(low, mins[index])

    generic: list[Explained] = []
    weekly_recent = recent_events / 2.0
    weekly_base = base_events / baseline_weeks if baseline_weeks else None
    generic.append(Explained(_ratio(weekly_recent, weekly_base), weekly_recent, weekly_base, baseline_weeks))
    base_users = sum(_distinct(u, exact) for u in week_users.values()) / baseline_weeks if baseline_weeks else None
    active_7d = _distinct(users_7d, exact)
    # user counts of sketch days are estimates, and their sentences say so; a count of exact days only is exact
    # (a burst day leaves the weeks without it exact), but the per-user features read every day's sample
    estimated = not exact
    week_estimated = _sketched(users_7d)
    base_estimated = week_estimated or (baseline_weeks is not None and any(map(_sketched, week_users.values())))
    generic.append(Explained(_ratio(active_7d, base_users), active_7d, base_users, baseline_weeks, base_estimated))
    generic.append(Explained(math.log1p(active_7d), active_7d, estimated=week_estimated))
    has_before = first_day <= recent_from - RECENT_DAYS
    before = float(len(breadth_before)) if has_before else None
    generic.append(Explained(_ratio(len(breadth_recent), before), len(breadth_recent), before))
    since = min(CAP_DAYS, (now - last) / DAY) if last is not None else CAP_DAYS
    generic.append(Explained(since, since))
    since_user = min(CAP_DAYS, (now - last_user) / DAY) if last_user is not None else CAP_DAYS
    generic.append(Explained(since_user, since_user))
    tenure = max(0.0, (now - first) / DAY) if first is not None else 0.0
    generic.append(Explained(math.log1p(tenure), tenure))
    if v2:
        generic.append(Explained(_ratio(week_events, weekly_base), week_events, weekly_base, baseline_weeks))
        full_weeks = first_day <= today - 7 * TREND_WEEKS  # younger accounts have no 4-week trend yet
        generic.append(_trend(trend_events, full_weeks))
        trend_estimated = any(map(_sketched, trend_users))
        generic.append(_trend([_distinct(u, exact) for u in trend_users], full_weeks, trend_estimated))
        regulars = [u for u, n in base_user_days.items() if n >= 2] if baseline_weeks else []
        retained = sum(1 for u in regulars if u in users_recent)
        if regulars:
            scale = 1 << level  # a sample of one user in 2 ** level: its counts scaled back up
            generic.append(
                Explained(retained / len(regulars), retained * scale, len(regulars) * scale, baseline_weeks, estimated)
            )
        else:
            generic.append(Explained(None))
        if base_user_days and baseline_weeks:
            champion = min(base_user_days, key=lambda u: (-base_user_days[u], u))
            away = float(today - user_last_day[champion])
            generic.append(Explained(away, away, base_user_days[champion], baseline_weeks, estimated))
        else:
            generic.append(Explained(None))

    out = generic
    for index in range(n_terms):
        rate_now = recent_counts[index] / 2.0
        rate_before = base_counts[index] / baseline_weeks if baseline_weeks else None
        out.append(Explained(_ratio(rate_now, rate_before), rate_now, rate_before, baseline_weeks))
    out.extend(Explained(math.log1p(adoption_counts[i]), adoption_counts[i]) for i in range(n_terms))
    if v2:
        for index in range(n_terms):
            seen = last_day[index]
            if seen is not None:
                out.append(Explained(float(today - seen), float(today - seen)))
            else:  # never in the kept days: as long ago as can be; ``before`` says how many days were looked at
                out.append(Explained(float(KEEP_DAYS), float(KEEP_DAYS), float(min(KEEP_DAYS, today - first_day))))
    out.extend(Explained(mins[i], mins[i]) for i in range(n_numerics))
    out.extend(Explained(latest[i], latest[i]) for i in range(n_numerics))
    if v3:
        out.extend(_account_features(spec, account, now, _distinct(users_28d, exact), _sketched(users_28d)))
    return out


def _per_user_level(days: list[list[Any]]) -> int:
    """The sampling level the per-user features read the days at: the highest level of the days once the
    :data:`PER_USER_SPARSEST` share of them sampled most sparsely is left out (an exact day is level 0).

    A user's days are all known only where its hash is in every day's sample, so the features read the
    users sampled at this level, counts scaled back up by ``2 ** level``; on a day sampled more sparsely
    (one of those left out) only the users of its own sample are seen, the others read as absent that day.
    Before, the level was the highest of all 70 days: one burst day (a bulk import of 700 users among
    days of 25: level 4) left one user in 16 for every per-user feature until it was 70 days old: no
    regular sampled (retained unknown) and a burst-only user as the champion, "away" for 51 days."""
    levels = sorted(0 if type(d[3]) is list else d[3]["v"] for d in days)
    return levels[len(levels) - 1 - int(len(levels) * PER_USER_SPARSEST)]


def _distinct(days: list[Any], exact: bool) -> int | float:
    """The distinct users of days: their ids' union (exact), or the estimate of their sketches' union."""
    return len(set().union(*days)) if exact else sketch.union_count(days)


def _sketched(days: list[Any]) -> bool:
    """Whether some of these days' users are a sketch (their distinct count is an estimate)."""
    return any(type(users) is str for users in days)


def _hash_of(index: int, names: list[str], hashed: dict[int, int]) -> int:
    found = hashed.get(index)
    if found is None:
        found = hashed[index] = _sample_hash(names[index])
    return found


def _sampled(hashes: Iterable[int], level: int) -> list[int]:
    """The hashes a sample at ``level`` keeps (one user in ``2 ** level``)."""
    return [h for h in hashes if not h >> (SAMPLE_BITS - level)]


def _account_features(
    spec: FeatureSpec, facts: AccountFacts, now: float, users_28d: int | float, estimated: bool = False
) -> list[Explained]:
    """The version 3 features of the account record (see :data:`ACCOUNT_V3`), then tier and plan."""
    out: list[Explained] = []
    renewal = facts.renewal_at
    if renewal is not None and renewal >= now:  # a date gone by is stale: unknown, not "overdue"
        days = min(RENEWAL_CAP_DAYS, (renewal - now) / DAY)
        out.append(Explained(math.log1p(days), days))
        out.append(Explained(1.0 if days <= 30 else 0.0, days))
        out.append(Explained(1.0 if days <= 60 else 0.0, days))
    else:
        out += [Explained(None), Explained(None), Explained(None)]
    since = facts.customer_since
    if since is not None:
        tenure = max(0.0, (now - since) / DAY)
        out.append(Explained(math.log1p(tenure), tenure))
    else:
        out.append(Explained(None))
    seats = facts.seats
    out.append(Explained(math.log1p(seats), seats) if seats is not None else Explained(None))
    if seats:
        out.append(Explained(min(2.0, users_28d / seats), users_28d, seats, estimated=estimated))
    else:
        out.append(Explained(None))
    mrr = facts.mrr
    out.append(Explained(math.log1p(mrr), mrr) if mrr is not None else Explained(None))
    for values, value in ((spec.tiers, facts.tier), (spec.plans, facts.plan)):
        for candidate in values:
            out.append(Explained(1.0 if value == candidate else 0.0 if facts.known else None))
    return out


def _trend(weekly: Sequence[float], known: bool, estimated: bool = False) -> Explained:
    """Least-squares slope of ``log(1 + x)`` over the weeks (``weekly[0]`` = the last 7 days), per week."""
    if not known:
        return Explained(None)
    n = len(weekly)
    centre = (n - 1) / 2.0
    xs = [centre - i for i in range(n)]  # the newest week is the rightmost point
    slope = sum(x * math.log1p(y) for x, y in zip(xs, weekly, strict=True)) / sum(x * x for x in xs)
    return Explained(slope, float(weekly[0]), float(weekly[-1]), estimated=estimated)


def values(explained: Sequence[Explained]) -> list[float | None]:
    """Just the feature values (None = unknown, the model imputes it)."""
    return [e.value for e in explained]


def replay(
    spec: FeatureSpec, events: Iterable[Event], as_of: Sequence[float], account: AccountFacts = UNKNOWN_ACCOUNT
) -> list[tuple[float, list[Explained]]]:
    """Features of one account at each ``as_of`` time (sorted), from its events (and its record).

    Events are applied in ``(ts, event_id)`` order with duplicates dropped, and a tick at ``t``
    sees the events before ``t`` — exactly the engine's order (deadlines fire before events
    stamped at the same instant).
    """
    state = new_state(spec)
    unique: dict[str, Event] = {}
    for event in events:
        unique.setdefault(event.event_id, event)  # the engine keeps the first copy of an id
    ordered = sorted(unique.values(), key=lambda e: (e.ts, e.event_id))
    out: list[tuple[float, list[Explained]]] = []
    position = 0
    for tick in as_of:
        while position < len(ordered) and ordered[position].ts < tick:
            observe(spec, state, ordered[position])
            position += 1
        if state["f"] is not None:
            out.append((tick, compute(spec, state, tick, account)))
    return out
