"""The Nylas v3 wire protocol of the stand-in, spoken with plain ``requests`` over HTTPS."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
import requests

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas import seed
from nylas_dataverse_sandbox.nylas.app import create_app
from nylas_dataverse_sandbox.nylas.backend import NylasBackend
from nylas_dataverse_sandbox.server import serve_in_thread
from nylas_dataverse_sandbox.tls import TlsFiles

if TYPE_CHECKING:
    from conftest import NylasApi

START_DAY, DAYS = seed.DEFAULT_START_DAY, seed.DEFAULT_DAYS


def _error(response: requests.Response, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"request_id", "error"}
    assert body["error"]["type"] == error_type
    assert response.headers["x-request-id"] == body["request_id"]
    return str(body["error"]["message"])


def _bob_sent_folder(api: NylasApi, bob: personas.GrantPersona) -> str:
    folders = api.get(f"/v3/grants/{bob.grant_id}/folders").json()["data"]
    return next(f["id"] for f in folders if "\\Sent" in f["attributes"])


def test_grant_is_found_by_id_and_by_email_with_a_request_id(
    api: NylasApi, bob: personas.GrantPersona
) -> None:
    by_id = api.get(f"/v3/grants/{bob.grant_id}")
    by_email = api.get(f"/v3/grants/{bob.email}")

    assert by_id.status_code == by_email.status_code == 200
    assert by_id.json()["data"]["id"] == by_email.json()["data"]["id"] == bob.grant_id
    assert by_id.json()["data"]["provider"] == "microsoft"
    assert by_id.json()["data"]["grant_status"] == "valid"
    assert str(uuid.UUID(by_id.json()["request_id"])) == by_id.headers["x-request-id"]
    assert by_id.json()["request_id"] != by_email.json()["request_id"]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", f"Basic {personas.NYLAS_API_KEY}"])
def test_missing_or_wrong_api_key_is_a_401_envelope(
    api: NylasApi, alice: personas.GrantPersona, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = api.get(f"/v3/grants/{alice.grant_id}/messages", api_key="", headers=headers)

    assert "Bearer token" in _error(response, 401, "token.unauthorized_access")


def test_unknown_grant_is_404(api: NylasApi) -> None:
    response = api.get("/v3/grants/nobody@contoso.example/messages")

    assert "nobody@contoso.example" in _error(response, 404, "not_found_error")


def test_expired_grant_answers_401_on_data_calls_and_reports_invalid_status(api: NylasApi) -> None:
    dave = personas.grant_by_key("dave")

    for path in ("/messages", "/folders", "/messages/anything"):
        assert _error(api.get(f"/v3/grants/{dave.grant_id}{path}"), 401, "unauthorized") == "Unauthorized"
    grant = api.get(f"/v3/grants/{dave.grant_id}")
    assert grant.status_code == 200
    assert grant.json()["data"]["grant_status"] == "invalid"


def test_limit_defaults_to_50_and_caps_at_200(api: NylasApi, alice: personas.GrantPersona) -> None:
    path = f"/v3/grants/{alice.grant_id}/messages"

    assert len(api.get(path).json()["data"]) == 50
    assert len(api.get(path, {"limit": 200}).json()["data"]) == 200
    for bad in ("201", "0", "ten"):
        assert "limit" in _error(api.get(path, {"limit": bad}), 400, "invalid_request_error")


def test_walking_the_cursor_returns_every_message_once_newest_first(
    api: NylasApi, alice: personas.GrantPersona
) -> None:
    messages = api.walk(alice.grant_id, {"limit": 37, "select": "id,date"})

    expected = {s.message["id"] for s in seed.mailboxes(START_DAY, DAYS)["alice"]}
    ids = [m["id"] for m in messages]
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected
    dates = [m["date"] for m in messages]
    assert dates == sorted(dates, reverse=True)


def test_last_page_has_no_next_cursor(api: NylasApi, carol: personas.GrantPersona) -> None:
    day_start, day_end = seed.day_bounds(START_DAY)
    window = {"received_after": day_start, "received_before": day_end}
    count = seed.expected_counts(START_DAY, DAYS)["carol"][START_DAY]

    first = api.get(f"/v3/grants/{carol.grant_id}/messages", {**window, "limit": count - 1}).json()
    second = api.get(
        f"/v3/grants/{carol.grant_id}/messages", {**window, "limit": 5, "page_token": first["next_cursor"]}
    ).json()
    exact = api.get(f"/v3/grants/{carol.grant_id}/messages", {**window, "limit": count}).json()

    assert isinstance(first["next_cursor"], str)
    assert len(second["data"]) == 1
    assert "next_cursor" not in second
    assert "next_cursor" not in exact


def test_a_cursor_is_refused_with_other_filters_another_grant_or_when_garbled(
    api: NylasApi, alice: personas.GrantPersona, bob: personas.GrantPersona
) -> None:
    cursor = api.get(f"/v3/grants/{alice.grant_id}/messages", {"limit": 5}).json()["next_cursor"]

    other_filter = api.get(
        f"/v3/grants/{alice.grant_id}/messages", {"page_token": cursor, "received_after": 1}
    )
    other_grant = api.get(f"/v3/grants/{bob.grant_id}/messages", {"page_token": cursor})
    garbled = api.get(f"/v3/grants/{alice.grant_id}/messages", {"page_token": cursor[:-6] + "!!"})
    other_limit = api.get(f"/v3/grants/{alice.grant_id}/messages", {"page_token": cursor, "limit": 7})

    assert "different query" in _error(other_filter, 400, "invalid_request_error")
    assert "different query" in _error(other_grant, 400, "invalid_request_error")
    assert "page_token" in _error(garbled, 400, "invalid_request_error")
    assert other_limit.status_code == 200


def test_a_day_window_returns_that_days_mail(api: NylasApi, bob: personas.GrantPersona) -> None:
    day = START_DAY.replace(day=START_DAY.day + 2)
    start, end = seed.day_bounds(day)

    messages = api.walk(bob.grant_id, {"received_after": start, "received_before": end, "limit": 10})

    assert len(messages) == seed.expected_counts(START_DAY, DAYS)["bob"][day]
    assert {m["id"] for m in messages} == {m["id"] for m in seed.messages_for(START_DAY, DAYS, "bob", day)}


def test_in_filters_by_folder_id_and_refuses_keywords_and_unknown_folders(
    api: NylasApi, alice: personas.GrantPersona, bob: personas.GrantPersona
) -> None:
    alice_sent = api.walk(alice.grant_id, {"in": "SENT", "limit": 200})
    bob_sent = api.walk(bob.grant_id, {"in": _bob_sent_folder(api, bob), "limit": 200})

    assert alice_sent
    assert all("SENT" in m["folders"] for m in alice_sent)
    assert all(m["from"][0]["email"] == alice.email for m in alice_sent)
    assert bob_sent
    assert all(m["from"][0]["email"] == bob.email for m in bob_sent)
    path = f"/v3/grants/{alice.grant_id}/messages"
    assert "keyword" in _error(api.get(path, {"in": "in:inbox"}), 400, "invalid_request_error")
    assert "Sent Items" in _error(api.get(path, {"in": "Sent Items"}), 400, "invalid_request_error")


def test_repeated_parameters_keep_the_last_value(api: NylasApi, alice: personas.GrantPersona) -> None:
    response = api.get(
        f"/v3/grants/{alice.grant_id}/messages", [("in", "SENT"), ("in", "SPAM"), ("limit", "200")]
    )

    messages = response.json()["data"]
    assert messages
    assert all("SPAM" in m["folders"] for m in messages)


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("True", True), ("1", True), ("false", False)]
)
def test_booleans_accept_the_spellings_clients_send(
    api: NylasApi, alice: personas.GrantPersona, value: str, expected: bool
) -> None:
    messages = api.get(f"/v3/grants/{alice.grant_id}/messages", {"unread": value, "limit": 200}).json()[
        "data"
    ]

    assert messages
    assert all(m["unread"] is expected for m in messages)


def test_a_non_boolean_is_a_400(api: NylasApi, alice: personas.GrantPersona) -> None:
    response = api.get(f"/v3/grants/{alice.grant_id}/messages", {"unread": "yes"})

    assert "unread" in _error(response, 400, "invalid_request_error")


def test_any_email_is_one_comma_separated_list_of_at_most_25(
    api: NylasApi, alice: personas.GrantPersona
) -> None:
    path = f"/v3/grants/{alice.grant_id}/messages"
    messages = api.walk(alice.grant_id, {"any_email": "priya@northwind.example,olga@tailspin.example"})

    def addresses(m: dict[str, object]) -> set[str]:
        return {p["email"].lower() for f in ("from", "to", "cc", "bcc") for p in m.get(f, [])}  # type: ignore[attr-defined]

    assert messages
    assert all(addresses(m) & {"priya@northwind.example", "olga@tailspin.example"} for m in messages)
    too_many = ",".join(f"p{n}@example.com" for n in range(26))
    assert "25" in _error(api.get(path, {"any_email": too_many}), 400, "invalid_request_error")


def test_microsoft_refuses_mixing_its_exclusive_filter_groups(
    api: NylasApi, bob: personas.GrantPersona
) -> None:
    response = api.get(f"/v3/grants/{bob.grant_id}/messages", {"unread": "true", "subject": "Re"})

    assert "Microsoft" in _error(response, 400, "invalid_request_error")


def test_fields_controls_headers(api: NylasApi, carol: personas.GrantPersona) -> None:
    path = f"/v3/grants/{carol.grant_id}/messages"

    standard = api.get(path, {"limit": 20}).json()["data"]
    full = api.get(path, {"limit": 20, "fields": "include_headers"}).json()["data"]
    basic = api.get(path, {"limit": 20, "fields": "include_basic_headers"}).json()["data"]

    assert all("headers" not in m for m in standard)
    assert all(any(h["name"] == "Subject" for h in m["headers"]) for m in full)
    basic_names = {h["name"].lower() for m in basic for h in m["headers"]}
    assert basic_names <= {"message-id", "in-reply-to", "references"}
    assert "message-id" in basic_names
    assert "fields" in _error(api.get(path, {"fields": "everything"}), 400, "invalid_request_error")


def test_microsoft_sent_items_have_no_headers_but_raw_mime_keeps_the_message_id(
    api: NylasApi, bob: personas.GrantPersona
) -> None:
    sent = api.get(
        f"/v3/grants/{bob.grant_id}/messages",
        {"in": _bob_sent_folder(api, bob), "fields": "include_headers", "limit": 5},
    ).json()["data"]
    raw = api.get(
        f"/v3/grants/{bob.grant_id}/messages/{quote(sent[0]['id'], safe='')}", {"fields": "raw_mime"}
    )

    assert all(m["headers"] == [] for m in sent)
    data = raw.json()["data"]
    assert set(data) == {"grant_id", "object", "id", "raw_mime"}
    mime = base64.urlsafe_b64decode(data["raw_mime"] + "=" * (-len(data["raw_mime"]) % 4)).decode()
    assert "\r\nMessage-ID: <" in mime
    assert f"From: Bob Okafor <{bob.email}>" in mime


def test_select_returns_only_the_named_top_level_fields(api: NylasApi, alice: personas.GrantPersona) -> None:
    messages = api.get(f"/v3/grants/{alice.grant_id}/messages", {"select": "id, subject,date"}).json()["data"]

    assert all(set(m) == {"id", "subject", "date"} for m in messages)


def test_microsoft_ids_need_url_encoding_in_the_path(api: NylasApi, bob: personas.GrantPersona) -> None:
    message = next(
        m for m in seed.messages_for(START_DAY, DAYS, "bob", START_DAY) if "/" in m["id"] and "+" in m["id"]
    )

    encoded = api.get(f"/v3/grants/{bob.grant_id}/messages/{quote(message['id'], safe='')}")
    unencoded = api.get(f"/v3/grants/{bob.grant_id}/messages/{message['id']}")

    assert encoded.status_code == 200
    assert encoded.json()["data"]["id"] == message["id"]
    assert encoded.json()["data"]["body"] == message["body"]
    assert "headers" not in encoded.json()["data"]
    _error(unencoded, 404, "not_found_error")


def test_unknown_message_id_is_404(api: NylasApi, alice: personas.GrantPersona) -> None:
    response = api.get(f"/v3/grants/{alice.grant_id}/messages/18d5a4b2c3e4f567")

    assert "18d5a4b2c3e4f567" in _error(response, 404, "not_found_error")


def test_responses_are_gzipped_when_the_client_accepts_it(
    api: NylasApi, alice: personas.GrantPersona
) -> None:
    response = api.get(
        f"/v3/grants/{alice.grant_id}/messages", headers={"Accept-Encoding": "gzip"}, stream=True
    )

    assert response.headers["Content-Encoding"] == "gzip"
    assert len(response.json()["data"]) == 50


def test_unknown_path_and_wrong_method_use_the_envelope(api: NylasApi) -> None:
    _error(api.get("/v3/nothing-here"), 404, "not_found_error")
    response = api.admin("GET", "/_sandbox/reset")
    _error(response, 405, "invalid_request_error")
    assert "POST" in response.headers["Allow"]


def test_folders_carry_attributes_per_provider(
    api: NylasApi, alice: personas.GrantPersona, bob: personas.GrantPersona, carol: personas.GrantPersona
) -> None:
    google = {f["id"]: f for f in api.get(f"/v3/grants/{alice.grant_id}/folders").json()["data"]}
    microsoft = api.get(f"/v3/grants/{bob.grant_id}/folders").json()["data"]
    hidden = api.get(f"/v3/grants/{bob.grant_id}/folders", {"include_hidden_folders": "true"}).json()["data"]
    imap = {f["name"]: f for f in api.get(f"/v3/grants/{carol.grant_id}/folders").json()["data"]}

    assert google["SENT"]["attributes"] == ["\\Sent"]
    assert google["INBOX"]["system_folder"] is True
    assert "CATEGORY_PROMOTIONS" in google
    assert google["Label_1"]["system_folder"] is False
    names = {f["name"] for f in microsoft}
    assert {"Inbox", "Sent Items", "AUDITS"} <= names
    assert "DELETIONS" not in names
    assert "DELETIONS" in {f["name"] for f in hidden}
    sent = next(f for f in microsoft if f["name"] == "Sent Items")
    assert sent["attributes"] == ["\\Sent"]
    assert "/" in sent["id"] or "+" in sent["id"]
    assert sent["total_count"] > 0
    assert "\\Sent" in imap["Sent"]["attributes"]


def test_folders_are_cursor_paginated(api: NylasApi, alice: personas.GrantPersona) -> None:
    seen: list[str] = []
    params: dict[str, object] = {"limit": 4}
    while True:
        body = api.get(f"/v3/grants/{alice.grant_id}/folders", params).json()
        seen.extend(f["id"] for f in body["data"])
        if "next_cursor" not in body:
            break
        params["page_token"] = body["next_cursor"]

    everything = api.get(f"/v3/grants/{alice.grant_id}/folders", {"limit": 200}).json()["data"]
    assert seen == [f["id"] for f in everything]
    assert len(seen) > 4


def test_list_can_omit_bodies_like_the_2026_guide(
    nylas_tls: TlsFiles, make_api: Callable[[str], NylasApi], alice: personas.GrantPersona
) -> None:
    backend = NylasBackend(
        api_key=personas.NYLAS_API_KEY, start_day=START_DAY, days=2, list_includes_body=False
    )
    server = serve_in_thread("nylas-no-body", create_app(backend), port=0, tls=nylas_tls)
    try:
        client = make_api(server.url)
        listed = client.get(f"/v3/grants/{alice.grant_id}/messages", {"limit": 5}).json()["data"]
        one = client.get(f"/v3/grants/{alice.grant_id}/messages/{listed[0]['id']}").json()["data"]
    finally:
        server.stop()

    assert all("body" not in m and m["snippet"] for m in listed)
    assert one["body"]
