"""The accounts contract: the optional commercial fields are checked, and records without them stay valid."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from schemas.account import Account, AccountLinks, Owner


def test_a_record_without_the_commercial_fields_is_still_valid() -> None:
    """A record written before seats, customer_since and renewal_date existed reads as before, with them unknown."""
    account = Account.model_validate_json(b'{"account_id": "acme", "name": "Acme", "tier": "growth", "mrr": 900}')
    assert (account.seats, account.customer_since, account.renewal_date) == (None, None, None)


def test_dates_are_calendar_dates_on_the_wire() -> None:
    """customer_since and renewal_date are YYYY-MM-DD and come back out the same way."""
    raw = b'{"account_id": "acme", "seats": 25, "customer_since": "2024-03-01", "renewal_date": "2027-02-28"}'
    account = Account.model_validate_json(raw)
    assert account.customer_since == date(2024, 3, 1)
    assert account.renewal_date == date(2027, 2, 28)
    dumped = account.model_dump(mode="json")
    assert (dumped["customer_since"], dumped["renewal_date"], dumped["seats"]) == ("2024-03-01", "2027-02-28", 25)
    assert Account.model_validate(dumped) == account


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("renewal_date", '"2027-02-30"', "is not a calendar date"),
        ("renewal_date", '"2027-02-28T00:00:00Z"', "expected a date as YYYY-MM-DD"),
        ("renewal_date", "1798675200", "expected a date as YYYY-MM-DD"),
        ("customer_since", '"01/03/2024"', "expected a date as YYYY-MM-DD"),
        ("seats", "-3", "greater than or equal to 0"),
        ("seats", "2.5", "valid integer"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(field: str, value: str, message: str) -> None:
    """A date that is not YYYY-MM-DD (a time, an epoch number, another order) or negative seats are refused."""
    with pytest.raises(ValidationError) as info:
        Account.model_validate_json(f'{{"account_id": "acme", "{field}": {value}}}'.encode())
    (error,) = info.value.errors()
    assert error["loc"] == (field,)
    assert message in error["msg"]


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"name": "n" * 257}, ("name",)),
        ({"plan": "p" * 257}, ("plan",)),
        ({"owner": {"email": "e" * 257}}, ("owner", "email")),
        ({"tags": ["t"] * 65}, ("tags",)),
        ({"tags": ["t" * 257]}, ("tags", 0)),
        ({"links": {"crm": "https://crm/" + "x" * 2048}}, ("links", "crm")),
    ],
)
def test_text_fields_are_bounded_so_an_alert_carrying_the_record_stays_small(
    record: dict[str, object], field: tuple[object, ...]
) -> None:
    """An over-long name, owner field, tag or link (or too many tags) is refused with the field named."""
    with pytest.raises(ValidationError) as info:
        Account.model_validate({"account_id": "acme", **record})
    assert info.value.errors()[0]["loc"] == field


def test_text_at_the_bounds_is_accepted() -> None:
    """256-character text, 64 tags and 2,048-character links are valid."""
    account = Account.model_validate(
        {"account_id": "acme", "name": "n" * 256, "tags": ["t" * 256] * 64, "links": {"crm": "h" * 2048}}
    )
    assert (len(account.name or ""), len(account.tags), len(account.links.crm or "")) == (256, 64, 2048)


def test_a_null_owner_links_or_tags_is_none_on_record() -> None:
    """``"owner": null`` (and ``links``, ``tags``), as CRM exports write an empty part, reads like a record
    without it: refused, the account's name and tier were lost from every alert too."""
    account = Account.model_validate_json(
        '{"account_id": "acme", "name": "Acme", "tier": "smb", "owner": null, "links": null, "tags": null}'
    )
    assert account.name == "Acme"
    assert account.owner == Owner()
    assert account.links == AccountLinks()
    assert account.tags == []


def test_a_number_where_text_goes_is_its_text_not_a_lost_record() -> None:
    """A CRM export's numeric tier, plan, name, id or owner field reads as its text: refused, the whole record
    (name, owner) was lost and the account's alerts went out without an owner."""
    raw = b'{"account_id": 42, "name": 1234, "tier": 1, "plan": 2024.5, "owner": {"slack": 7}, "tags": [3]}'
    account = Account.model_validate_json(raw)
    assert (account.account_id, account.name, account.tier, account.plan) == ("42", "1234", "1", "2024.5")
    assert (account.owner.slack, account.tags) == ("7", ["3"])
    with pytest.raises(ValidationError, match="tier"):  # other types are still refused
        Account.model_validate_json(b'{"account_id": "a", "tier": ["gold"]}')
