"""Each switch gives each documented (or undocumented) answer, over HTTP, and reset() undoes them.

Every test that changes a switch uses the ``api`` fixture, which resets the session backend afterwards.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
import requests

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.cli import build_parser, serve_config
from nylas_dataverse_sandbox.nylas import seed
from nylas_dataverse_sandbox.nylas.backend import MessageFilters, NylasBackend, NylasFaults
from nylas_dataverse_sandbox.nylas.switches import NylasSwitches
from nylas_dataverse_sandbox.sandbox import Sandbox, SandboxConfig

if TYPE_CHECKING:
    from conftest import NylasApi

START_DAY, DAYS = seed.DEFAULT_START_DAY, seed.DEFAULT_DAYS
DAY = START_DAY + dt.timedelta(days=2)


def _error(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"request_id", "error"}
    assert body["request_id"] == response.headers["x-request-id"]
    return dict(body["error"])


def _box(grant_key: str) -> tuple[seed.SeedMessage, ...]:
    return seed.mailboxes(START_DAY, DAYS)[grant_key]


def _on(grant_key: str, kind: str, day: dt.date) -> dict[str, Any]:
    return next(s.message for s in _box(grant_key) if s.kind == kind and s.day == day)


# Row 3: the time window --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "before"),
    [
        ("inclusive", "exclusive"),
        ("exclusive", "exclusive"),
        ("inclusive", "inclusive"),
        ("exclusive", "inclusive"),
    ],
)
def test_each_bound_is_inclusive_or_exclusive_as_switched(
    api: NylasApi, nylas_backend: NylasBackend, carol: personas.GrantPersona, after: str, before: str
) -> None:
    nylas_backend.set_switches({"received_after": after, "received_before": before})
    start, end = seed.day_bounds(DAY)
    at_start = _on("carol", "day_start", DAY)
    next_start = _on("carol", "day_start", DAY + dt.timedelta(days=1))
    assert (at_start["date"], next_start["date"]) == (start, end)

    listed = api.walk(
        carol.grant_id, {"received_after": start, "received_before": end, "limit": 7, "select": "id,date"}
    )

    ids = {m["id"] for m in listed}
    assert (at_start["id"] in ids) is (after == "inclusive")
    assert (next_start["id"] in ids) is (before == "inclusive")
    low = start if after == "inclusive" else start + 1
    high = end + 1 if before == "inclusive" else end
    expected = {s.message["id"] for s in _box("carol") if low <= s.message["date"] < high}
    assert ids == expected


def test_the_window_can_compare_created_at_so_late_mail_lands_on_the_next_day(
    api: NylasApi, nylas_backend: NylasBackend, bob: personas.GrantPersona
) -> None:
    start, end = seed.day_bounds(DAY)
    late_yesterday = _on("bob", "day_end", DAY - dt.timedelta(days=1))
    late_today = _on("bob", "day_end", DAY)
    query = {"received_after": start, "received_before": end, "limit": 9, "select": "id,date,created_at"}

    by_date = api.walk(bob.grant_id, query)
    nylas_backend.set_switches({"received_field": "created_at"})
    by_sync = api.walk(bob.grant_id, query)

    assert late_yesterday["date"] < start <= late_yesterday["created_at"]
    assert {m["id"] for m in by_date} == {s.message["id"] for s in _box("bob") if s.day == DAY}
    assert late_yesterday["id"] in {m["id"] for m in by_sync}
    assert late_today["id"] not in {m["id"] for m in by_sync}
    assert all(start <= m["created_at"] < end for m in by_sync)
    expected = {s.message["id"] for s in _box("bob") if start <= s.message["created_at"] < end}
    assert {m["id"] for m in by_sync} == expected
    dates = [m["date"] for m in by_sync]
    assert dates == sorted(dates, reverse=True)


def test_created_at_windows_on_bulk_days_match_a_brute_force_count() -> None:
    backend = NylasBackend(
        api_key="k", start_day=START_DAY, days=DAYS, switches=NylasSwitches(received_field="created_at")
    )
    alice = personas.grant_by_key("alice")
    bulk = backend.add_bulk_day("alice", DAY, 3000)
    start, _ = seed.day_bounds(DAY)
    low, high = start + 3600, start + 7200

    found: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = backend.list_messages(
            alice, MessageFilters(received_after=low, received_before=high), limit=200, page_token=token
        )
        found.extend(page.items)
        if page.next_cursor is None:
            break
        token = page.next_cursor

    bulk_expected = {bulk.id_at(i) for i in range(bulk.count) if low <= bulk.created_at_at(i) < high}
    seed_expected = {s.message["id"] for s in _box("alice") if low <= s.message["created_at"] < high}
    assert {m["id"] for m in found} == bulk_expected | seed_expected
    assert any(m["date"] < low for m in found), "mail dated before the window but synced inside it"


# Row 7: body in lists -----------------------------------------------------------------------------------


def test_lists_carry_body_unless_switched_off_and_the_single_get_always_does(
    api: NylasApi, nylas_backend: NylasBackend, bob: personas.GrantPersona
) -> None:
    path = f"/v3/grants/{bob.grant_id}/messages"
    with_body = api.get(path, {"limit": 5}).json()["data"]
    nylas_backend.set_switches({"list_body": "omitted"})
    without = api.get(path, {"limit": 5}).json()["data"]
    one = api.get(f"{path}/{requests.utils.quote(without[0]['id'], safe='')}").json()["data"]

    assert all(m["body"] for m in with_body)
    assert all("body" not in m and m["snippet"] for m in without)
    assert one["body"] == with_body[0]["body"]
    assert nylas_backend.list_includes_body is False


# Row 8: 504 for large pages with headers ------------------------------------------------------------------


def test_large_pages_with_headers_time_out_when_switched_on(
    api: NylasApi, nylas_backend: NylasBackend, bob: personas.GrantPersona
) -> None:
    path = f"/v3/grants/{bob.grant_id}/messages"
    before = api.get(path, {"fields": "include_headers", "limit": 200})
    nylas_backend.set_switches({"headers_504_over_limit": 50})

    large = api.get(path, {"fields": "include_headers", "limit": 51})
    at_limit = api.get(path, {"fields": "include_headers", "limit": 50})
    basic = api.get(path, {"fields": "include_basic_headers", "limit": 200})
    plain = api.get(path, {"limit": 200})

    assert before.status_code == 200
    assert _error(large, 504) == {"type": "provider_error", "message": "Provider request timed out."}
    assert [r.status_code for r in (at_limit, basic, plain)] == [200, 200, 200]
    assert len(at_limit.json()["data"]) == 50


# Row 11: Retry-After ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "google", "microsoft"),
    [("microsoft", False, True), ("always", True, True), ("never", False, False)],
)
def test_which_429s_carry_retry_after(
    api: NylasApi,
    nylas_backend: NylasBackend,
    alice: personas.GrantPersona,
    bob: personas.GrantPersona,
    mode: str,
    google: bool,
    microsoft: bool,
) -> None:
    nylas_backend.set_switches({"retry_after": mode})
    nylas_backend.set_faults({"rate_limit_every": 1, "retry_after_s": 4})

    answers = {
        "google": api.get(f"/v3/grants/{alice.grant_id}/messages"),
        "microsoft": api.get(f"/v3/grants/{bob.email}/folders"),
        "application": api.get("/v3/grants"),
    }

    for response in answers.values():
        assert _error(response, 429) == {
            "type": "rate_limit_error",
            "message": "Too many requests, please try again shortly.",
        }
    has_header = {name: "Retry-After" in response.headers for name, response in answers.items()}
    assert has_header == {"google": google, "microsoft": microsoft, "application": mode == "always"}
    if microsoft:
        assert answers["microsoft"].headers["Retry-After"] == "4"


# Row 18: headers on IMAP ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fields", ["include_headers", "include_basic_headers"])
def test_imap_grants_can_ignore_header_requests(
    api: NylasApi,
    nylas_backend: NylasBackend,
    alice: personas.GrantPersona,
    carol: personas.GrantPersona,
    fields: str,
) -> None:
    supported = api.get(f"/v3/grants/{carol.grant_id}/messages", {"fields": fields, "limit": 5}).json()
    nylas_backend.set_switches({"imap_headers": "unsupported"})
    listed = api.get(f"/v3/grants/{carol.grant_id}/messages", {"fields": fields, "limit": 5}).json()
    one = api.get(f"/v3/grants/{carol.grant_id}/messages/{listed['data'][0]['id']}", {"fields": fields})
    google = api.get(f"/v3/grants/{alice.grant_id}/messages", {"fields": fields, "limit": 5}).json()

    assert all(m["headers"] for m in supported["data"])
    assert all("headers" not in m for m in listed["data"])
    assert "headers" not in one.json()["data"]
    assert all(m["headers"] for m in google["data"])


# Cursor pathologies and row 19 ---------------------------------------------------------------------------


def _page(api: NylasApi, grant: personas.GrantPersona, token: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": 10, "select": "id"}
    if token:
        params["page_token"] = token
    response = api.get(f"/v3/grants/{grant.grant_id}/messages", params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_cursors_are_all_different_by_default(api: NylasApi, carol: personas.GrantPersona) -> None:
    cursors: list[str] = []
    token: str | None = None
    while True:
        token = _page(api, carol, token).get("next_cursor")
        if token is None:
            break
        cursors.append(token)

    assert len(cursors) == len(set(cursors)) > 20


def test_a_cycling_cursor_goes_a_b_a_b(
    api: NylasApi, nylas_backend: NylasBackend, carol: personas.GrantPersona
) -> None:
    nylas_backend.set_switches({"cursor": "cycle"})
    first = _page(api, carol, None)
    tokens = [first["next_cursor"]]
    pages = []
    for _ in range(5):
        body = _page(api, carol, tokens[-1])
        pages.append([m["id"] for m in body["data"]])
        tokens.append(body["next_cursor"])

    a, b = tokens[0], tokens[1]
    assert a != b
    assert tokens == [a, b, a, b, a, b]
    assert pages[0] == pages[2] == pages[4] != pages[1] == pages[3]
    assert not set(pages[0]) & {m["id"] for m in first["data"]}


def test_a_repeating_cursor_hands_back_the_token_it_was_given(
    api: NylasApi, nylas_backend: NylasBackend, carol: personas.GrantPersona
) -> None:
    nylas_backend.set_switches({"cursor": "repeat"})
    first = _page(api, carol, None)
    second = _page(api, carol, first["next_cursor"])
    third = _page(api, carol, second["next_cursor"])

    assert first["next_cursor"] == second["next_cursor"] == third["next_cursor"]
    assert second["data"] == third["data"] != first["data"]


def test_cursors_expire_after_their_lifetime(
    api: NylasApi, nylas_backend: NylasBackend, alice: personas.GrantPersona
) -> None:
    now = [1_000_000.0]
    nylas_backend.clock = lambda: now[0]
    nylas_backend.set_switches({"cursor_ttl_s": 30})
    token = _page(api, alice, None)["next_cursor"]
    folder_token = api.get(f"/v3/grants/{alice.grant_id}/folders", {"limit": 2}).json()["next_cursor"]

    now[0] += 30
    fresh = api.get(f"/v3/grants/{alice.grant_id}/messages", {"limit": 10, "page_token": token})
    now[0] += 1
    stale = api.get(f"/v3/grants/{alice.grant_id}/messages", {"limit": 10, "page_token": token})
    stale_folders = api.get(f"/v3/grants/{alice.grant_id}/folders", {"limit": 2, "page_token": folder_token})
    nylas_backend.set_switches({"cursor_ttl_s": 0})
    forever = api.get(f"/v3/grants/{alice.grant_id}/messages", {"limit": 10, "page_token": token})

    assert fresh.status_code == 200
    for response in (stale, stale_folders):
        error = _error(response, 400)
        assert error["type"] == "invalid_request_error"
        assert "expired" in error["message"]
    assert forever.status_code == 200


def test_every_cursor_issued_so_far_can_be_expired_at_once(
    api: NylasApi, alice: personas.GrantPersona
) -> None:
    token = _page(api, alice, None)["next_cursor"]

    assert api.admin("POST", "/_sandbox/cursors/expire").status_code == 200
    stale = api.get(f"/v3/grants/{alice.grant_id}/messages", {"limit": 10, "page_token": token})
    restarted = _page(api, alice, None)
    continued = _page(api, alice, restarted["next_cursor"])

    assert "expired" in _error(stale, 400)["message"]
    assert continued["data"]


# A rejected API key is not an expired grant -------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", f"Basic {personas.NYLAS_API_KEY}"])
@pytest.mark.parametrize("status", [401, 400])
def test_a_rejected_api_key_answers_token_unauthorized_access(
    api: NylasApi, nylas_backend: NylasBackend, authorization: str | None, status: int
) -> None:
    nylas_backend.set_switches({"bad_api_key_status": status})
    dave = personas.grant_by_key("dave")  # expired too: the key is checked first
    headers = {"Authorization": authorization} if authorization else {}

    error = _error(api.get(f"/v3/grants/{dave.grant_id}/messages", api_key="", headers=headers), status)

    assert error["type"] == "token.unauthorized_access"
    assert error["message"].startswith("Bearer token")
    assert "provider_error" not in error


@pytest.mark.parametrize(
    ("grant_key", "code"),
    [("dave", 401), ("bob", "InvalidAuthenticationToken"), ("carol", "AUTHENTICATIONFAILED")],
)
def test_an_expired_grant_answers_the_contracts_401_with_the_providers_refusal(
    api: NylasApi, nylas_backend: NylasBackend, grant_key: str, code: object
) -> None:
    nylas_backend.set_faults({"expired_grants": ["bob", "carol"]})
    grant = personas.grant_by_key(grant_key)

    for path in ("/messages", "/folders", "/messages/anything", "/attachments/x?message_id=y"):
        error = _error(api.get(f"/v3/grants/{grant.grant_id}{path}"), 401)
        assert (error["type"], error["message"]) == ("unauthorized", "Unauthorized")
        assert error["provider_error"]["code"] == code
        assert error["provider_error"]["message"]


def test_an_expired_grant_can_answer_the_catalogues_type_instead(
    api: NylasApi, nylas_backend: NylasBackend
) -> None:
    nylas_backend.set_switches({"expired_grant_error": "refresh_token_invalid"})
    dave = personas.grant_by_key("dave")

    error = _error(api.get(f"/v3/grants/{dave.grant_id}/messages"), 401)

    assert error["type"] == "grant.refresh_token_invalid"
    assert dave.grant_id in error["message"]
    assert "provider_error" not in error


def test_both_401s_match_the_contract(
    api: NylasApi, openapi_validator: Callable[[str], jsonschema.Draft202012Validator]
) -> None:
    dave = personas.grant_by_key("dave")
    validator = openapi_validator("#/components/responses/401/content/application~1json/schema")

    bad_key = api.get(f"/v3/grants/{dave.grant_id}/messages", api_key="nope").json()
    expired = api.get(f"/v3/grants/{dave.grant_id}/messages").json()

    for body in (bad_key, expired):
        assert [e.message for e in validator.iter_errors(body)] == []
    assert bad_key["error"]["type"] != expired["error"]["type"]


# Configuration, admin route, reset and CLI ------------------------------------------------------------------


def test_reset_returns_to_the_configured_switches_and_faults() -> None:
    configured = NylasSwitches(cursor="cycle", retry_after="always")
    backend = NylasBackend(
        api_key="k",
        start_day=START_DAY,
        days=2,
        switches=configured,
        faults=NylasFaults(rate_limit_every=7, expired_grants={"alice"}),
    )
    backend.set_switches({"cursor": "repeat", "list_body": "omitted", "cursor_ttl_s": 5})
    backend.set_faults({"rate_limit_every": 0, "html_502_every": 2, "expired_grants": ["bob"]})
    backend.expire_cursors()

    backend.reset()

    assert backend.switches == configured
    assert backend.faults.as_dict() == NylasFaults(rate_limit_every=7, expired_grants={"alice"}).as_dict()
    assert backend.list_includes_body is True
    assert backend.is_expired(personas.grant_by_key("alice"))
    assert not backend.is_expired(personas.grant_by_key("bob"))


def test_switches_are_read_and_set_over_http_and_bad_ones_refused(
    api: NylasApi, nylas_backend: NylasBackend
) -> None:
    defaults = api.admin("GET", "/_sandbox/switches").json()["data"]
    changed = api.admin("POST", "/_sandbox/switches", {"cursor": "repeat", "headers_504_over_limit": 20})
    unknown = api.admin("POST", "/_sandbox/switches", {"cursors": "repeat"})
    bad_value = api.admin("POST", "/_sandbox/switches", {"received_after": "sometimes"})
    bad_number = api.admin("POST", "/_sandbox/switches", {"cursor_ttl_s": -1})
    api.admin("POST", "/_sandbox/reset")

    assert defaults == NylasSwitches().as_dict()
    assert changed.json()["data"]["cursor"] == "repeat"
    assert changed.json()["data"]["headers_504_over_limit"] == 20
    assert "known" in _error(unknown, 400)["message"]
    assert "inclusive, exclusive" in _error(bad_value, 400)["message"]
    assert "cursor_ttl_s" in _error(bad_number, 400)["message"]
    assert nylas_backend.switches == NylasSwitches()


def test_every_switch_has_a_serve_flag(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--state-dir",
            str(tmp_path),
            "--nylas-received-after",
            "exclusive",
            "--nylas-received-before",
            "inclusive",
            "--nylas-received-field",
            "created_at",
            "--nylas-list-body",
            "omitted",
            "--nylas-headers-504-over-limit",
            "50",
            "--nylas-retry-after",
            "never",
            "--nylas-imap-headers",
            "unsupported",
            "--nylas-cursor",
            "cycle",
            "--nylas-cursor-ttl",
            "2.5",
            "--nylas-bad-api-key-status",
            "400",
            "--nylas-expired-grant-error",
            "refresh_token_invalid",
            "--nylas-download-content-type",
            "attachment",
        ]
    )

    switches = serve_config(args).nylas_switches

    assert switches == NylasSwitches(
        received_after="exclusive",
        received_before="inclusive",
        received_field="created_at",
        list_body="omitted",
        headers_504_over_limit=50,
        retry_after="never",
        imap_headers="unsupported",
        cursor="cycle",
        cursor_ttl_s=2.5,
        bad_api_key_status=400,
        expired_grant_error="refresh_token_invalid",
        download_content_type="attachment",
    )
    assert switches.changed().keys() == NylasSwitches().as_dict().keys()
    assert serve_config(build_parser().parse_args(["serve"])).nylas_switches == NylasSwitches()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--nylas-cursor", "sideways"])


def test_a_started_sandbox_serves_the_configured_switches(tmp_path: Path) -> None:
    config = SandboxConfig(
        state_dir=tmp_path,
        nylas_port=0,
        entra_port=0,
        dataverse_port=0,
        nylas_switches=NylasSwitches(bad_api_key_status=400),
        list_includes_body=False,
    )
    sandbox = Sandbox.start(config)
    try:
        response = requests.get(
            f"{sandbox.nylas_url}/v3/grants",
            headers={"Authorization": "Bearer nope"},
            verify=str(sandbox.ca_pem),
            timeout=30,
        )
        sandbox.nylas.reset()
        switches = sandbox.nylas.switches
    finally:
        sandbox.stop()

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "token.unauthorized_access"
    assert switches == NylasSwitches(bad_api_key_status=400, list_body="omitted")
