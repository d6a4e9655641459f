"""Bulk days: thousands of extra messages generated lazily, paged like the seeded ones."""

from __future__ import annotations

import datetime as dt
import itertools
import tracemalloc
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas import seed
from nylas_dataverse_sandbox.nylas.backend import MessageFilters, NylasBackend

if TYPE_CHECKING:
    from conftest import NylasApi

START_DAY, DAYS = seed.DEFAULT_START_DAY, seed.DEFAULT_DAYS
BULK_DAY = START_DAY + dt.timedelta(days=3)


def _header(message: dict[str, Any], name: str) -> str | None:
    return next((h["value"] for h in message.get("headers", []) if h["name"].lower() == name.lower()), None)


@pytest.mark.parametrize("grant_key", ["alice", "bob", "carol"])
def test_a_bulk_day_pages_through_every_message_once_newest_first(
    api: NylasApi, nylas_backend: NylasBackend, grant_key: str
) -> None:
    grant = personas.grant_by_key(grant_key)
    added = api.admin(
        "POST", "/_sandbox/bulk", {"grant": grant_key, "day": BULK_DAY.isoformat(), "count": 5000}
    )
    start, end = seed.day_bounds(BULK_DAY)

    messages = api.walk(
        grant.grant_id,
        {"received_after": start, "received_before": end, "limit": 200, "select": "id,date,grant_id"},
    )

    assert added.json()["data"]["count"] == 5000
    seeded = seed.expected_counts(START_DAY, DAYS)[grant_key][BULK_DAY]
    assert len(messages) == seeded + 5000 == nylas_backend.message_count(grant_key, BULK_DAY)
    assert len({m["id"] for m in messages}) == len(messages)
    dates = [m["date"] for m in messages]
    assert dates == sorted(dates, reverse=True)
    assert all(start <= d < end for d in dates)


def test_bulk_messages_are_realistic_and_carry_unique_message_ids(
    api: NylasApi, nylas_backend: NylasBackend, bob: personas.GrantPersona
) -> None:
    nylas_backend.add_bulk_day("bob", BULK_DAY, 600, body_bytes=6000)
    start, end = seed.day_bounds(BULK_DAY)

    listed = api.walk(
        bob.grant_id,
        {"received_after": start, "received_before": end, "limit": 200, "fields": "include_basic_headers"},
    )

    seeded_ids = {s["id"] for s in nylas_backend.messages_for("bob", BULK_DAY)}
    bulk = [m for m in listed if m["id"] not in seeded_ids]
    assert len(bulk) == 600
    inbound = [m for m in bulk if m["headers"]]
    message_ids = [_header(m, "Message-ID") for m in inbound]
    assert len(set(message_ids)) == len(message_ids)
    assert all(mid and mid.startswith("<") for mid in message_ids)
    assert any(_header(m, "In-Reply-To") for m in inbound)
    assert all(5500 <= len(m["body"].encode()) <= 7500 for m in bulk)
    assert all("<p>" in m["body"] and m["snippet"] and "<" not in m["snippet"] for m in bulk)
    senders = {m["from"][0]["email"] for m in inbound}
    known = {e for p, _ in personas.CONTACTS for e in p.emails} | {
        e for a in personas.ACCOUNTS for e in a.emails
    }
    assert senders & known
    assert senders & set(personas.UNKNOWN_SENDERS)
    sent = [m for m in bulk if m["from"][0]["email"] == bob.email]
    assert sent
    assert all(m["headers"] == [] for m in sent), "Microsoft hides headers of Sent Items"


@pytest.mark.parametrize("day", ["2026-12-02", "2026-12-03"])
def test_describe_counts_the_messages_with_each_kind_of_counterpart(
    api: NylasApi, nylas_backend: NylasBackend, alice: personas.GrantPersona, day: str
) -> None:
    # 2026-12-03's 30 messages have no unknown sender; 2026-12-02's have: a caller needing one can tell.
    added = api.admin("POST", "/_sandbox/bulk", {"grant": "alice", "day": day, "count": 30, "describe": True})
    plain = api.admin("POST", "/_sandbox/bulk", {"grant": "alice", "day": "2026-12-01", "count": 3})
    start, end = seed.day_bounds(dt.date.fromisoformat(day))

    listed = api.walk(alice.grant_id, {"received_after": start, "received_before": end, "limit": 200})

    seeded_ids = {s["id"] for s in nylas_backend.messages_for("alice", dt.date.fromisoformat(day))}
    bulk = [m for m in listed if m["id"] not in seeded_ids]
    with_unknown = [
        m for m in bulk if {p["email"] for p in m["from"] + m["to"]} & set(personas.UNKNOWN_SENDERS)
    ]
    counterparts = added.json()["data"]["counterparts"]
    assert counterparts["unknown"] == len(with_unknown)
    assert sum(counterparts.values()) == len(bulk) == 30
    assert (counterparts["unknown"] > 0) == (day == "2026-12-02")
    assert "counterparts" not in plain.json()["data"]  # drawn only when asked


@pytest.mark.parametrize("grant_key", ["alice", "bob", "carol"])
def test_a_bulk_message_is_found_by_its_id(
    api: NylasApi, nylas_backend: NylasBackend, grant_key: str
) -> None:
    grant = personas.grant_by_key(grant_key)
    bulk_day = nylas_backend.add_bulk_day(grant_key, BULK_DAY, 1000)
    expected = bulk_day.message_at(777)

    found = api.get(f"/v3/grants/{grant.grant_id}/messages/{quote(expected['id'], safe='')}")

    assert found.status_code == 200, found.text
    assert found.json()["data"] == {k: v for k, v in expected.items() if k != "headers"}
    other_grant = "bob" if grant_key != "bob" else "alice"
    elsewhere = api.get(
        f"/v3/grants/{personas.grant_by_key(other_grant).grant_id}/messages/{quote(expected['id'], safe='')}"
    )
    assert elsewhere.status_code == 404


def test_gmail_bulk_threads_share_the_oldest_messages_id(nylas_backend: NylasBackend) -> None:
    bulk_day = nylas_backend.add_bulk_day("alice", BULK_DAY, 30)
    messages = [bulk_day.message_at(i) for i in range(30)]

    threads: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        threads.setdefault(m["thread_id"], []).append(m)

    assert any(len(members) == 3 for members in threads.values())
    for thread_id, members in threads.items():
        assert thread_id == min(members, key=lambda m: m["date"])["id"]
        for newer, older in itertools.pairwise(members):
            assert _header(newer, "In-Reply-To") == _header(older, "Message-ID")


def test_a_hundred_thousand_messages_cost_no_memory_until_asked(nylas_backend: NylasBackend) -> None:
    alice = personas.grant_by_key("alice")
    start, end = seed.day_bounds(BULK_DAY)
    tracemalloc.start()
    try:
        nylas_backend.add_bulk_day("alice", BULK_DAY, 100_000)
        middle = nylas_backend.list_messages(
            alice,
            MessageFilters(received_after=start, received_before=start + 43_200),
            limit=200,
            page_token=None,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(middle.items) == 200
    assert middle.next_cursor is not None
    assert all(m["date"] < start + 43_200 for m in middle.items)
    assert peak < 20 * 1024 * 1024
    assert nylas_backend.message_count("alice", BULK_DAY) > 100_000
    assert end - 1 >= middle.items[0]["date"]


def test_filters_apply_to_bulk_messages(api: NylasApi, nylas_backend: NylasBackend) -> None:
    carol = personas.grant_by_key("carol")
    nylas_backend.add_bulk_day("carol", BULK_DAY, 900)
    start, end = seed.day_bounds(BULK_DAY)

    sent = api.walk(
        carol.grant_id, {"received_after": start, "received_before": end, "in": "Sent", "limit": 200}
    )
    unread = api.walk(carol.grant_id, {"received_after": start, "received_before": end, "unread": "true"})

    assert len(sent) > 100
    assert all(m["from"][0]["email"] == carol.email and m["folders"] == ["Sent"] for m in sent)
    assert unread
    assert all(m["unread"] is True for m in unread)


def test_bulk_input_is_validated(api: NylasApi) -> None:
    too_many = api.admin(
        "POST", "/_sandbox/bulk", {"grant": "alice", "day": "2026-11-05", "count": 2_000_000}
    )
    unknown = api.admin("POST", "/_sandbox/bulk", {"grant": "zed", "day": "2026-11-05", "count": 5})

    assert too_many.status_code == 400
    assert "count" in too_many.json()["error"]["message"]
    assert unknown.status_code == 404


def test_reset_drops_bulk_days(api: NylasApi, nylas_backend: NylasBackend) -> None:
    nylas_backend.add_bulk_day("alice", BULK_DAY, 50)

    response = api.admin("POST", "/_sandbox/reset")

    assert response.status_code == 200
    assert (
        nylas_backend.message_count("alice", BULK_DAY)
        == seed.expected_counts(START_DAY, DAYS)["alice"][BULK_DAY]
    )
