"""GET /threads/{id}: a grant's view of a conversation, built from its own seeded messages."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jsonschema
import nylas
import pytest

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas import seed

if TYPE_CHECKING:
    from conftest import NylasApi

START_DAY, DAYS = seed.DEFAULT_START_DAY, seed.DEFAULT_DAYS


def _box(grant_key: str) -> list[dict[str, Any]]:
    return [s.message for s in seed.mailboxes(START_DAY, DAYS)[grant_key]]


def _thread(api: NylasApi, grant: personas.GrantPersona, thread_id: str) -> dict[str, Any]:
    response = api.get(f"/v3/grants/{grant.grant_id}/threads/{quote(thread_id, safe='')}")
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize("grant_key", ["alice", "bob", "carol"])
def test_a_thread_lists_its_messages_newest_first_and_matches_the_contract(
    api: NylasApi, openapi_validator: Callable[[str], jsonschema.Draft202012Validator], grant_key: str
) -> None:
    grant = personas.grant_by_key(grant_key)
    box = _box(grant_key)
    thread_id, size = Counter(m["thread_id"] for m in box).most_common(1)[0]
    members = [m for m in box if m["thread_id"] == thread_id]

    body = _thread(api, grant, thread_id)
    thread = body["data"]

    validator = openapi_validator("#/components/responses/thread/content/application~1json/schema")
    assert [e.message for e in validator.iter_errors(body)] == []
    assert size >= 3
    assert set(thread["message_ids"]) | set(thread["draft_ids"]) == {m["id"] for m in members}
    assert thread["latest_draft_or_message"]["id"] == members[0]["id"]
    assert "headers" not in thread["latest_draft_or_message"]
    assert thread["earliest_message_date"] == min(m["date"] for m in members)
    assert thread["subject"] == members[-1]["subject"]
    assert {p["email"].lower() for p in thread["participants"]} == {
        p["email"].lower() for m in members for f in ("from", "to", "cc", "bcc") for p in m.get(f, [])
    }


def test_a_grant_sees_only_its_own_part_of_a_conversation(
    api: NylasApi, bob: personas.GrantPersona, carol: personas.GrantPersona
) -> None:
    [bobs_reply] = [
        s.message for s in seed.mailboxes(START_DAY, DAYS)["bob"] if s.kind == "reply_cross_grant"
    ]
    [carols_reply] = [
        s.message for s in seed.mailboxes(START_DAY, DAYS)["carol"] if s.kind == "reply_cross_grant"
    ]

    bobs = _thread(api, bob, bobs_reply["thread_id"])["data"]
    carols = _thread(api, carol, carols_reply["thread_id"])["data"]

    assert len(bobs["message_ids"]) == 2
    assert "latest_message_sent_date" in bobs
    assert carols["message_ids"] == [carols_reply["id"]]
    assert "latest_message_sent_date" not in carols


def test_unknown_threads_are_404_and_graph_ids_must_be_encoded(
    api: NylasApi, bob: personas.GrantPersona
) -> None:
    thread_id = next(m["thread_id"] for m in _box("bob") if "/" in m["thread_id"])

    unknown = api.get(f"/v3/grants/{bob.grant_id}/threads/no-such-thread")
    unencoded = api.get(f"/v3/grants/{bob.grant_id}/threads/{thread_id}")

    assert unknown.status_code == unencoded.status_code == 404
    assert unknown.json()["error"]["type"] == "not_found_error"


def test_the_sdk_finds_a_thread(api: NylasApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(api.ca_pem))
    client = nylas.Client(personas.NYLAS_API_KEY, api_uri=api.url)
    bob = personas.grant_by_key("bob")
    thread_id = next(m["thread_id"] for m in _box("bob") if "/" in m["thread_id"])

    thread = client.threads.find(bob.grant_id, thread_id).data

    assert thread.id == thread_id
    assert thread.message_ids
