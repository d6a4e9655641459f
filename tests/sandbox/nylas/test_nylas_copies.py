"""Copies: one seeded RFC message a second time in the same mailbox, under another Nylas id."""

from __future__ import annotations

import base64
import datetime as dt
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas import seed
from nylas_dataverse_sandbox.nylas.backend import NylasBackend

if TYPE_CHECKING:
    from conftest import NylasApi

DAY = seed.DEFAULT_START_DAY + dt.timedelta(days=1)
OTHER_DAY = DAY + dt.timedelta(days=1)


def _header(message: dict[str, Any], name: str) -> str | None:
    return next((h["value"] for h in message.get("headers", []) if h["name"].lower() == name.lower()), None)


def _day_listing(api: NylasApi, grant: personas.GrantPersona, day: dt.date) -> list[dict[str, Any]]:
    start, end = seed.day_bounds(day)
    return api.walk(
        grant.grant_id,
        {"received_after": start, "received_before": end, "limit": 7, "fields": "include_headers"},
    )


@pytest.mark.parametrize("grant_key", ["alice", "bob", "carol"])
def test_copies_are_listed_on_their_day_with_the_same_message_id_and_another_id(
    api: NylasApi, nylas_backend: NylasBackend, grant_key: str
) -> None:
    grant = personas.grant_by_key(grant_key)
    seeded = nylas_backend.messages_for(grant_key, DAY)
    expected_originals = [m for m in seeded if _header(m, "Message-ID")][:3]

    added = api.admin("POST", "/_sandbox/copies", {"grant": grant_key, "day": DAY.isoformat(), "count": 3})

    assert added.status_code == 200, added.text
    data = added.json()["data"]
    copy_ids = data["ids"]
    assert data["count"] == len(copy_ids) == 3
    assert {data["copy_of"][i] for i in copy_ids} == {m["id"] for m in expected_originals}
    listed = _day_listing(api, grant, DAY)  # a small page size: the copies sit between pages
    assert len(listed) == len(seeded) + 3 == nylas_backend.message_count(grant_key, DAY)
    assert len({m["id"] for m in listed}) == len(listed)
    dates = [m["date"] for m in listed]
    assert dates == sorted(dates, reverse=True)
    by_id = {m["id"]: m for m in listed}
    originals = {m["id"]: m for m in seeded}
    for copy_id in copy_ids:
        original = originals[data["copy_of"][copy_id]]
        assert copy_id != original["id"]
        stored = nylas_backend.find_message(grant, copy_id)
        assert _header(stored, "Message-ID") == _header(original, "Message-ID")
        assert {k: v for k, v in stored.items() if k != "id"} == {
            k: v for k, v in original.items() if k != "id"
        }
        assert {k: v for k, v in by_id[copy_id].items() if k != "id"} == {
            k: v for k, v in by_id[original["id"]].items() if k != "id"
        }
        _assert_provider_shape(grant, copy_id, original["id"])


def _assert_provider_shape(grant: personas.GrantPersona, copy_id: str, original_id: str) -> None:
    if grant.provider == "google":
        assert all(c in "0123456789abcdef" for c in copy_id)
        assert int(copy_id, 16) >> 20 == (int(original_id, 16) >> 20) // 1000 * 1000  # same second
    elif grant.provider == "microsoft":
        assert copy_id.startswith("AAMkA")
        assert "/" in copy_id
        assert "+" in copy_id
        assert base64.b64decode(copy_id)[:20] == base64.b64decode(original_id)[:20]  # same mailbox tag
        assert len(copy_id) == len(original_id)
    else:
        assert len(copy_id) == len(original_id) == 25
        assert copy_id.isalnum()
        assert copy_id.islower()


@pytest.mark.parametrize("grant_key", ["alice", "bob", "carol"])
def test_a_copy_is_fetched_by_id_with_the_originals_raw_mime(
    api: NylasApi, nylas_backend: NylasBackend, grant_key: str
) -> None:
    grant = personas.grant_by_key(grant_key)
    copy = nylas_backend.add_copies(grant_key, DAY, 1)[0]
    original_id = nylas_backend.copy_of(grant_key, copy["id"])
    assert original_id is not None

    found = api.get(f"/v3/grants/{grant.grant_id}/messages/{quote(copy['id'], safe='')}")
    original = api.get(f"/v3/grants/{grant.grant_id}/messages/{quote(original_id, safe='')}")
    raw, original_raw = (
        api.get(f"/v3/grants/{grant.grant_id}/messages/{quote(i, safe='')}", {"fields": "raw_mime"})
        for i in (copy["id"], original_id)
    )

    assert found.status_code == original.status_code == raw.status_code == 200, found.text
    assert found.json()["data"]["id"] == copy["id"]
    assert {k: v for k, v in found.json()["data"].items() if k != "id"} == {
        k: v for k, v in original.json()["data"].items() if k != "id"
    }
    assert raw.json()["data"]["raw_mime"] == original_raw.json()["data"]["raw_mime"]
    mime = base64.urlsafe_b64decode(raw.json()["data"]["raw_mime"] + "==").decode()
    assert f"{_header(copy, 'Message-ID')}\r\n" in mime


def test_copies_are_not_on_other_days_and_reset_drops_them(
    api: NylasApi, nylas_backend: NylasBackend, alice: personas.GrantPersona
) -> None:
    other_before = nylas_backend.message_count("alice", OTHER_DAY)
    day_before = nylas_backend.message_count("alice", DAY)
    copies = nylas_backend.add_copies("alice", DAY, 3)
    copy_ids = {m["id"] for m in copies}

    other = _day_listing(api, alice, OTHER_DAY)

    assert not copy_ids & {m["id"] for m in other}
    assert len(other) == other_before == nylas_backend.message_count("alice", OTHER_DAY)
    assert nylas_backend.message_count("alice", DAY) == day_before + 3

    nylas_backend.reset()

    assert nylas_backend.message_count("alice", DAY) == day_before
    assert not copy_ids & {m["id"] for m in _day_listing(api, alice, DAY)}
    for copy_id in copy_ids:
        assert api.get(f"/v3/grants/{alice.grant_id}/messages/{copy_id}").status_code == 404


def test_copying_again_gives_third_ids(nylas_backend: NylasBackend) -> None:
    first = nylas_backend.add_copies("bob", DAY, 2)
    second = nylas_backend.add_copies("bob", DAY, 2)

    originals = [nylas_backend.copy_of("bob", m["id"]) for m in first + second]
    assert originals[:2] == originals[2:]
    assert len({m["id"] for m in first + second} | set(originals)) == 6
    assert nylas_backend.message_count("bob", DAY) == len(nylas_backend.messages_for("bob", DAY)) + 4


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"day": "2026-11-03", "count": 1}, "grant"),
        ({"grant": "zed", "day": "2026-11-03", "count": 1}, "grant"),
        ({"grant": 7, "day": "2026-11-03", "count": 1}, "grant"),
        ({"grant": "alice", "count": 1}, "day"),
        ({"grant": "alice", "day": "03/11/2026", "count": 1}, "day"),
        ({"grant": "alice", "day": "2026-11-03"}, "count"),
        ({"grant": "alice", "day": "2026-11-03", "count": 0}, "count"),
        ({"grant": "alice", "day": "2026-11-03", "count": "3"}, "count"),
        ({"grant": "alice", "day": "2026-11-03", "count": 1000}, "count"),
        ({"grant": "alice", "day": "2030-01-01", "count": 1}, "count"),  # no seeded mail that day
    ],
)
def test_the_copies_route_names_the_bad_field(
    api: NylasApi, nylas_backend: NylasBackend, body: dict[str, Any], field: str
) -> None:
    response = api.admin("POST", "/_sandbox/copies", body)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert field in response.json()["error"]["message"]
    assert nylas_backend.message_count("alice", DAY) == len(nylas_backend.messages_for("alice", DAY))
