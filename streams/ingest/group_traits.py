"""Group traits → the fields of an account record (``schemas.account.Account``), and merging them.

A ``group`` call names an account (``groupId``) and describes it with traits. The traits that
mean something to Preempt become a *partial* account record (a patch): only the fields the call
carried, never a null. Merging a patch into the current record updates those fields and keeps
every other one — a later group call with fewer traits does not wipe what an earlier one (or a
CRM sync) set. The default mapping (docs/events.md) is extended or overridden by
``PREEMPT_INGEST_GROUP_TRAITS`` (``{"trait": "field"}``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from schemas.account import Account

# Account fields a trait may fill; ``arr`` is annual revenue, stored as mrr = arr / 12; ``owner`` reads a
# string (an email when it has "@", else a name) or an object {name, email, slack}, as the ``owner`` trait does.
TARGETS = frozenset(
    {"name", "plan", "tier", "mrr", "arr", "owner", "owner.name", "owner.email", "owner.slack", "timezone", "tags"}
    | {"links.crm", "links.admin", "seats", "customer_since", "renewal_date"}
)
DEFAULT_TRAITS: dict[str, str] = {
    "name": "name",
    "plan": "plan",
    "tier": "tier",
    "mrr": "mrr",
    "arr": "arr",
    "owner": "owner",  # a string (an email when it has "@", else a name) or {name, email, slack}
    "owner_name": "owner.name",
    "owner_email": "owner.email",
    "owner_slack": "owner.slack",
    "csm": "owner.name",
    "csm_name": "owner.name",
    "csm_email": "owner.email",
    "csm_slack": "owner.slack",
    "timezone": "timezone",
    "tags": "tags",
    "crm_url": "links.crm",
    "admin_url": "links.admin",
    "seats": "seats",
    "customer_since": "customer_since",  # YYYY-MM-DD
    "renewal_date": "renewal_date",  # YYYY-MM-DD
}


def trait_map(extra: Mapping[str, str]) -> dict[str, str]:
    """The default mapping with ``extra`` applied; ``ValueError`` names an unknown target field."""
    for trait, target in extra.items():
        if target not in TARGETS:
            raise ValueError(
                f"PREEMPT_INGEST_GROUP_TRAITS maps {trait!r} to {target!r}, which is not one of: "
                + ", ".join(sorted(TARGETS))
            )
    return {**DEFAULT_TRAITS, **extra}


class TraitError(ValueError):
    """A trait that maps to an account field has a value that field cannot hold."""

    def __init__(self, trait: str, detail: str) -> None:
        super().__init__(detail)
        self.trait = trait


def _set(patch: dict[str, Any], path: str, value: Any) -> None:
    head, _, tail = path.partition(".")
    if tail:
        patch.setdefault(head, {})[tail] = value
    else:
        patch[head] = value


def account_patch(account_id: str, traits: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """The partial account record that ``traits`` describe (``account_id`` plus the mapped fields).

    Traits without a mapping, null values and empty strings are left out; ``mrr`` wins over ``arr`` when a
    call carries both (the record held whichever came last in the JSON object). Raises ``TraitError`` when a mapped
    trait's value does not fit the field (a negative ``mrr``, an unknown time zone…).
    """
    patch: dict[str, Any] = {}
    for trait, value in traits.items():
        target = mapping.get(trait)
        if target is None or _unset(value):
            continue
        if target == "owner":
            if isinstance(value, str):
                _set(patch, "owner.email" if "@" in value else "owner.name", value)
            elif isinstance(value, Mapping):
                for part in ("name", "email", "slack"):
                    if not _unset(value.get(part)):
                        _set(patch, f"owner.{part}", value[part])
            else:
                raise TraitError(trait, "owner must be a string or an object with name, email, slack")
        elif target == "arr":
            amount = _annual_amount(trait, value) / 12
            if not any(mapping.get(t) == "mrr" and not _unset(v) for t, v in traits.items()):
                _set(patch, "mrr", amount)  # a monthly amount sent in the same call wins, whatever the key order
        else:
            _set(patch, target, value)
    if "timezone" in patch:
        _check_zone(patch["timezone"])
    try:
        account = Account.model_validate({"account_id": account_id, **patch})
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])
        trait = next((t for t, target in mapping.items() if target == field and t in traits), field)
        raise TraitError(trait, f"{trait}: {error['msg']}") from None
    # The fields as the account model reads them ("1200" → 1200.0, "5" seats → 5), so the record
    # written to preempt.accounts holds the committed account schema's types, not the SDK's.
    read = account.model_dump(mode="json", exclude_unset=True)
    return {"account_id": account_id, **{name: read[name] for name in patch}}


def _unset(value: Any) -> bool:
    """A trait that says nothing: null, or a string of nothing but spaces — what apps send for a CRM field
    they do not have (``company.timezone || ""``). It wiped the value on record (``"owner": ""`` made the
    CSM's name empty) or refused the whole group call (``"timezone": ""``: not an IANA zone)."""
    return value is None or (isinstance(value, str) and not value.strip())


def _annual_amount(trait: str, value: Any) -> float:
    """An annual amount (``arr``): a number or its text, as the account model reads ``mrr``; finite and ≥ 0.

    Checked here, not by the account model: it would name ``mrr``, a trait the caller did not send.
    """
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise TraitError(trait, f"{trait} must be a number, got {value[:64]!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TraitError(trait, f"{trait} must be a number")
    if not (math.isfinite(value) and value >= 0):
        raise TraitError(trait, f"{trait} must be a finite amount of 0 or more, got {value}")
    return float(value)


def _check_zone(zone: object) -> None:
    if not isinstance(zone, str):
        raise TraitError("timezone", "timezone must be an IANA zone name such as Europe/Paris")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise TraitError("timezone", f"timezone {zone[:64]!r} is not an IANA zone name") from None


def merge_account(current: Mapping[str, Any] | None, patch: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` (a full account record, or None) with ``patch``'s fields set; nested owner/links merged.

    An owner with another email is another person: the patch's owner replaces the one on record rather
    than being merged into it (``csm_email`` naming the new CSM kept the old CSM's name and Slack id, so
    alerts read "Owner: <old CSM>" while the email went to the new one).
    """
    merged: dict[str, Any] = dict(current or {})
    for name, value in patch.items():
        if name == "owner" and isinstance(value, Mapping) and _another_person(merged.get(name), value):
            merged[name] = dict(value)
        elif isinstance(value, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = {**merged[name], **value}
        else:
            merged[name] = value
    return merged


def _another_person(current: Any, owner: Mapping[str, Any]) -> bool:
    """Whether ``owner`` (a patch's) names a different email than the ``current`` owner on record."""
    if not isinstance(current, Mapping):
        return False
    old, new = current.get("email"), owner.get("email")
    return isinstance(old, str) and isinstance(new, str) and old.strip().lower() != new.strip().lower()
