"""Assigning mailboxes to Dataverse application users, and each user's pool (core/assignment.py)."""

from __future__ import annotations

import pytest

from nylas_dataverse.core.assignment import assign, loads, pool_name

USERS = ("dataverse_default", "dataverse_app_2")


def test_equal_volumes_are_dealt_out_evenly_and_deterministically() -> None:
    volumes = {f"grant-{n:02d}": 1.0 for n in range(7)}
    chosen = assign(volumes, USERS)
    counts = [list(chosen.values()).count(user) for user in USERS]
    assert sorted(counts) == [3, 4]
    assert assign(dict(reversed(list(volumes.items()))), USERS) == chosen


def test_by_volume_the_biggest_mailboxes_are_spread_first() -> None:
    volumes = {"big": 900.0, "mid-1": 500.0, "mid-2": 400.0, "small-1": 100.0, "small-2": 100.0}
    chosen = assign(volumes, USERS)
    assert chosen["big"] != chosen["mid-1"]
    assert loads(chosen, volumes, USERS) == {"dataverse_default": 1000.0, "dataverse_app_2": 1000.0}


def test_four_users_share_a_thousand_mailboxes_within_one_mailbox_of_each_other() -> None:
    users = [f"dataverse_app_{n}" for n in range(1, 5)]
    volumes = {f"m{n:04d}": float(10 + n % 37) for n in range(1000)}
    totals = loads(assign(volumes, users), volumes, users)
    assert max(totals.values()) - min(totals.values()) <= max(volumes.values())


def test_a_user_without_grants_still_shows_in_the_loads() -> None:
    assert loads(assign({"alice": 5.0}, USERS), {"alice": 5.0}, USERS) == {
        "dataverse_default": 5.0,
        "dataverse_app_2": 0.0,
    }


@pytest.mark.parametrize(
    ("users", "volumes", "message"),
    [
        ((), {"a": 1.0}, "at least one"),
        (("x", "x"), {"a": 1.0}, "named once"),
        (USERS, {"a": -1.0}, "cannot be negative: a"),
    ],
)
def test_impossible_requests_are_refused(
    users: tuple[str, ...], volumes: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        assign(volumes, users)


def test_each_application_user_has_its_own_pool_and_the_default_keeps_the_old_name() -> None:
    assert pool_name("dataverse_default") == "dataverse_api"
    assert pool_name("dataverse_emea") == "dataverse_api__dataverse_emea"
