"""Group traits → account patches, and merging a patch into the current account record."""

from __future__ import annotations

import json

import pytest

from streams.ingest.group_traits import TraitError, account_patch, merge_account, trait_map


def test_a_later_patch_updates_fields_and_never_wipes_others() -> None:
    """Merging sets the patch's fields, keeps the rest, and merges owner/links field by field."""
    current = {
        "account_id": "acme",
        "name": "Acme",
        "tier": "enterprise",
        "owner": {"name": "Dana", "email": "dana@vendor.test"},
        "links": {"crm": "https://crm.test/acme"},
    }
    patch = account_patch("acme", {"plan": "pro", "csm_slack": "U123"}, trait_map({}))
    assert merge_account(current, patch) == {
        "account_id": "acme",
        "name": "Acme",
        "tier": "enterprise",
        "plan": "pro",
        "owner": {"name": "Dana", "email": "dana@vendor.test", "slack": "U123"},
        "links": {"crm": "https://crm.test/acme"},
    }


def test_an_empty_trait_changes_nothing_as_a_null_one() -> None:
    """Apps send "" for a CRM field they do not have: "owner": "" emptied the CSM's name on record, "name": ""
    the account's name, and "timezone": "" refused the whole group call (its event too)."""
    current = {"account_id": "acme", "name": "Acme", "owner": {"name": "Dana", "email": "dana@vendor.test"}}
    traits = {"name": "", "owner": " ", "timezone": "", "csm_email": "", "plan": "pro", "mrr": "", "arr": ""}
    patch = account_patch("acme", traits, trait_map({}))
    assert patch == {"account_id": "acme", "plan": "pro"}
    assert merge_account(current, patch) == current | {"plan": "pro"}
    only_slack = account_patch("acme", {"owner": {"name": "", "email": "", "slack": "U1"}}, trait_map({}))
    assert only_slack == {"account_id": "acme", "owner": {"slack": "U1"}}


def test_merging_the_same_patches_again_gives_the_same_record() -> None:
    """Re-applying patches in order (a merger restarted before its commit) converges to the same record."""
    mapping = trait_map({})
    p1 = account_patch("acme", {"name": "Acme", "plan": "free"}, mapping)
    p2 = account_patch("acme", {"plan": "pro", "mrr": 99}, mapping)
    once = merge_account(merge_account(None, p1), p2)
    assert (
        merge_account(merge_account(once, p1), p2)
        == once
        == {"account_id": "acme", "name": "Acme", "plan": "pro", "mrr": 99}
    )


def test_owner_trait_may_be_an_email_a_name_or_an_object() -> None:
    """owner: "x@y" → owner.email, "Dana" → owner.name, {name, email, slack} → those fields; nulls are skipped."""
    mapping = trait_map({})
    assert account_patch("a", {"owner": "dana@vendor.test"}, mapping)["owner"] == {"email": "dana@vendor.test"}
    assert account_patch("a", {"owner": "Dana"}, mapping)["owner"] == {"name": "Dana"}
    assert account_patch("a", {"owner": {"name": "Dana", "slack": "U1", "email": None}}, mapping)["owner"] == {
        "name": "Dana",
        "slack": "U1",
    }
    assert account_patch("a", {"plan": None, "employees": 4}, mapping) == {"account_id": "a"}


def test_the_mapping_is_extended_by_the_setting_and_checked() -> None:
    """PREEMPT_INGEST_GROUP_TRAITS adds trait → field entries; an unknown field is a ValueError naming it."""
    mapping = trait_map({"success_manager": "owner.email", "segment": "tier"})
    patch = account_patch("a", {"success_manager": "cs@vendor.test", "segment": "smb"}, mapping)
    assert patch == {"account_id": "a", "owner": {"email": "cs@vendor.test"}, "tier": "smb"}
    with pytest.raises(ValueError, match="'seats' to 'capacity'"):
        trait_map({"seats": "capacity"})


def test_contract_traits_fill_seats_and_dates_and_bad_ones_are_refused() -> None:
    """seats, customer_since and renewal_date map to the record's fields; a date that is not YYYY-MM-DD is refused."""
    from streams.ingest.group_traits import TraitError

    mapping = trait_map({})
    traits = {"seats": 40, "customer_since": "2024-03-01", "renewal_date": "2027-02-28"}
    assert account_patch("a", traits, mapping) == {"account_id": "a", **traits}
    with pytest.raises(TraitError, match=r"renewal_date: .*expected a date as YYYY-MM-DD"):
        account_patch("a", {"renewal_date": "2027-02-28T10:00:00Z"}, mapping)
    with pytest.raises(TraitError, match="seats: "):
        account_patch("a", {"seats": -1}, mapping)


def test_traits_sent_as_strings_are_stored_with_the_account_schemas_types() -> None:
    """Numbers an SDK sends as text ("1200", "40") are stored as the numbers the account schema says,
    so the record on preempt.accounts validates against schemas/account.schema.json."""
    import jsonschema

    from schemas.account import Account
    from schemas.json_schema import render

    patch = account_patch(
        "Zürich-9", {"name": "Zürich AG", "mrr": "1200", "seats": "40", "csm_email": "a@b.test"}, trait_map({})
    )
    assert patch == {
        "account_id": "Zürich-9",
        "name": "Zürich AG",
        "mrr": 1200.0,
        "seats": 40,
        "owner": {"email": "a@b.test"},
    }
    jsonschema.validate(patch, json.loads(render(Account)))


@pytest.mark.parametrize("mrr", ["Infinity", "inf", "1e400", "NaN"])
def test_an_mrr_that_is_not_a_finite_number_is_refused_not_stored_as_null(mrr: str) -> None:
    """A trait the account model would read as infinity or NaN is refused, naming the trait: written as
    JSON it became null and wiped the account's stored MRR."""
    with pytest.raises(TraitError, match="mrr"):
        account_patch("acc-1", {"name": "Acme", "mrr": mrr}, trait_map({}))


def test_arr_sent_as_text_is_read_like_mrr_sent_as_text() -> None:
    """arr "24000" (analytics-node, forms and CRMs send numbers as text) is mrr 2000.0, as mrr "2000" is 2000.0:
    it rejected the whole group call (event and account update) with "arr must be a number"."""
    mapping = trait_map({})
    assert account_patch("a", {"arr": "24000"}, mapping) == {"account_id": "a", "mrr": 2000.0}
    assert account_patch("a", {"arr": " 1.2e4 "}, mapping) == {"account_id": "a", "mrr": 1000.0}


@pytest.mark.parametrize("arr", ["Infinity", "NaN", "1e400", "24k", True, -12, "-12"])  # "": nothing said
def test_an_arr_that_is_not_a_finite_amount_is_refused_naming_arr(arr: object) -> None:
    """A text that is no number, a non-finite one, a boolean or a negative amount is refused as traits.arr."""
    with pytest.raises(TraitError, match="arr") as refused:
        account_patch("a", {"arr": arr}, trait_map({}))
    assert refused.value.trait == "arr"


def test_an_owner_with_another_email_replaces_the_owner_on_record() -> None:
    """A group call naming a new CSM by email only (csm_email) kept the old CSM's name and Slack id: alerts read
    "Owner: Hank" with Marge's email. Another email is another person; the same email (any case) still merges."""
    mapping = trait_map({})
    current = {"account_id": "globex", "owner": {"name": "Hank Scorpio", "email": "hank@vendor.test", "slack": "U1"}}
    moved = merge_account(current, account_patch("globex", {"csm_email": "marge@vendor.test"}, mapping))
    assert moved["owner"] == {"email": "marge@vendor.test"}
    named = merge_account(current, account_patch("globex", {"owner": {"name": "Marge", "email": "m@v.test"}}, mapping))
    assert named["owner"] == {"name": "Marge", "email": "m@v.test"}
    same = merge_account(current, account_patch("globex", {"csm_email": "HANK@vendor.test", "csm": "H. S."}, mapping))
    assert same["owner"] == {"name": "H. S.", "email": "HANK@vendor.test", "slack": "U1"}


def test_an_extra_trait_may_map_to_owner_or_arr_as_the_default_traits_do() -> None:
    """PREEMPT_INGEST_GROUP_TRAITS='{"account_manager": "owner"}' was refused at start ("not one of" the
    targets) although the default ``owner`` trait takes a name, an email or an object: now it maps the same way."""
    mapping = trait_map({"account_manager": "owner", "annual_revenue": "arr"})
    patch = account_patch(
        "a", {"account_manager": {"name": "Marge", "email": "m@v.test"}, "annual_revenue": 1200}, mapping
    )
    assert patch == {"account_id": "a", "owner": {"name": "Marge", "email": "m@v.test"}, "mrr": 100.0}
    assert account_patch("a", {"account_manager": "m@v.test"}, mapping)["owner"] == {"email": "m@v.test"}


def test_mrr_wins_over_arr_in_one_call_whatever_the_key_order() -> None:
    """A call with both mrr and arr stored whichever came last in the JSON object (3,500 or 3,000 for the same
    traits, by the SDK's key order): the monthly amount is the one kept; arr is still checked."""
    mapping = trait_map({})
    for traits in ({"arr": "36000", "mrr": 3500}, {"mrr": 3500, "arr": "36000"}):
        assert account_patch("a", traits, mapping)["mrr"] == 3500
    with pytest.raises(TraitError):
        account_patch("a", {"mrr": 3500, "arr": -1}, mapping)
