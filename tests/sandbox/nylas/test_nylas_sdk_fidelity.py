"""The official ``nylas`` Python SDK (6.18) as a judge: what it can read from the stand-in, it could read
from Nylas. The SDK uses module-level ``requests`` calls, so the CA is given via ``REQUESTS_CA_BUNDLE``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import nylas
import pytest
import requests
from nylas.models.errors import NylasApiError

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas import seed
from nylas_dataverse_sandbox.nylas.backend import NylasBackend

if TYPE_CHECKING:
    from conftest import NylasApi

START_DAY, DAYS = seed.DEFAULT_START_DAY, seed.DEFAULT_DAYS


@pytest.fixture
def client(api: NylasApi, monkeypatch: pytest.MonkeyPatch) -> nylas.Client:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(api.ca_pem))
    return nylas.Client(personas.NYLAS_API_KEY, api_uri=api.url)


def _sdk_walk(
    client: nylas.Client, grant_id: str, query: dict[str, object]
) -> list[nylas.models.messages.Message]:
    messages: list[nylas.models.messages.Message] = []
    params = dict(query)
    while True:
        page = client.messages.list(grant_id, query_params=params)  # type: ignore[arg-type]
        messages.extend(page.data)
        if page.next_cursor is None:
            return messages
        params["page_token"] = page.next_cursor


@pytest.mark.parametrize("grant_key", ["alice", "bob", "carol"])
def test_the_sdk_pages_through_a_grants_messages(client: nylas.Client, grant_key: str) -> None:
    grant = personas.grant_by_key(grant_key)

    messages = _sdk_walk(client, grant.grant_id, {"limit": 50})

    expected = [s.message for s in seed.mailboxes(START_DAY, DAYS)[grant_key]]
    assert [m.id for m in messages] == [m["id"] for m in expected]
    assert all(m.grant_id == grant.grant_id and m.object == "message" for m in messages)
    first = messages[0]
    assert first.subject == expected[0]["subject"]
    assert first.date == expected[0]["date"]
    assert (first.from_ or [{}])[0].get("email") == (expected[0].get("from") or [{}])[0].get("email")


def test_the_sdk_filters_a_day_with_headers(client: nylas.Client, alice: personas.GrantPersona) -> None:
    day = START_DAY
    start, end = seed.day_bounds(day)

    messages = _sdk_walk(
        client,
        alice.grant_id,
        {"limit": 20, "received_after": start, "received_before": end, "fields": "include_basic_headers"},
    )

    assert len(messages) == seed.expected_counts(START_DAY, DAYS)["alice"][day]
    with_id = [m for m in messages if any(h.name.lower() == "message-id" for h in m.headers or [])]
    assert len(with_id) == len(messages) - 1  # the day's one message without a Message-ID


def test_the_sdk_finds_a_microsoft_message_whose_id_needs_encoding(
    client: nylas.Client, bob: personas.GrantPersona
) -> None:
    wanted = next(m for m in seed.messages_for(START_DAY, DAYS, "bob", START_DAY) if "/" in m["id"])

    found = client.messages.find(bob.grant_id, wanted["id"], query_params={"fields": "include_headers"}).data

    assert found.id == wanted["id"]
    assert found.body == wanted["body"]
    assert [(h.name, h.value) for h in found.headers or []] == [
        (h["name"], h["value"]) for h in wanted["headers"]
    ]


def test_the_sdk_reads_grants_and_folders(client: nylas.Client, bob: personas.GrantPersona) -> None:
    grant = client.grants.find(bob.grant_id).data
    folders = client.folders.list(bob.grant_id).data

    assert grant.provider == "microsoft"
    assert grant.email == bob.email
    assert any(f.name == "Sent Items" and "\\Sent" in (f.attributes or []) for f in folders)


def test_the_sdk_sees_errors_as_nylas_api_errors(
    client: nylas.Client, api: NylasApi, nylas_backend: NylasBackend, alice: personas.GrantPersona
) -> None:
    dave = personas.grant_by_key("dave")

    with pytest.raises(NylasApiError) as expired:
        client.messages.list(dave.grant_id)
    with pytest.raises(NylasApiError) as missing:
        client.messages.find(alice.grant_id, "0000000000000000")
    with pytest.raises(NylasApiError) as bad_key:
        nylas.Client("not-the-key", api_uri=client.api_uri).messages.list(alice.grant_id)
    nylas_backend.set_faults({"rate_limit_every": 1, "retry_after_s": 3})
    with pytest.raises(NylasApiError) as limited:
        client.messages.list(personas.grant_by_key("bob").grant_id)

    assert (expired.value.status_code, expired.value.type) == (401, "unauthorized")
    assert expired.value.provider_error == {
        "code": 401,
        "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential.",
    }
    assert (bad_key.value.status_code, bad_key.value.type) == (401, "token.unauthorized_access")
    assert (missing.value.status_code, missing.value.type) == (404, "not_found_error")
    assert (limited.value.status_code, limited.value.type) == (429, "rate_limit_error")
    assert limited.value.headers["retry-after"] == "3"
    assert limited.value.request_id


def test_the_sdk_trips_over_the_html_502_as_documented(
    client: nylas.Client, nylas_backend: NylasBackend, alice: personas.GrantPersona
) -> None:
    nylas_backend.set_faults({"html_502_every": 1})

    with pytest.raises(requests.exceptions.JSONDecodeError):
        client.messages.list(alice.grant_id)
