"""DataverseHook at the HTTP level: tokens via MSAL, OData calls, $batch, throttling, concurrency."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from responses import matchers

from nylas_dataverse.hooks._retry import RetryPolicy
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.errors import (
    DataverseAuthError,
    DataverseError,
    DataverseRetryExhaustedError,
    DataverseThrottledError,
)
from nylas_dataverse.hooks.odata import BatchRequest, ChangeSet

if TYPE_CHECKING:
    from conftest import DataverseEnv, FakeTime, SampleBatchAnswer

pytestmark = pytest.mark.usefixtures("dataverse")

MakeHook = Callable[..., DataverseHook]
EMAIL_ID = "5a1b2c3d-0000-4000-8000-00000000e001"
CONTACT_ID = "5a1b2c3d-0000-4000-8000-00000000c001"
WHOAMI = {"UserId": "u-1", "BusinessUnitId": "bu-1", "OrganizationId": "org-1"}
THROTTLED = {
    "error": {
        "code": "0x80072322",
        "message": "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
    }
}


def test_one_token_request_across_100_calls_and_no_microsoft_discovery(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook
) -> None:
    dataverse.issue_token("token-1")
    dataverse.rsps.get(f"{dataverse.api}WhoAmI", json=WHOAMI)

    hook = make_dataverse_hook()
    for _ in range(100):
        assert hook.whoami()["UserId"] == "u-1"

    assert len(dataverse.token_calls()) == 1
    assert hook.token_requests == 1
    assert hook.request_count == 100
    assert all(c.request.headers["Authorization"] == "Bearer token-1" for c in dataverse.api_calls())
    assert not [c for c in dataverse.rsps.calls if "login.microsoftonline.com" in c.request.url]
    form = parse_qs(dataverse.token_calls()[0].request.body)
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_id"] == [dataverse.client_id]
    assert form["scope"] == [f"{dataverse.url}/.default"]


def test_a_401_drops_the_token_fetches_a_new_one_and_retries_once(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook
) -> None:
    dataverse.issue_token("token-old")
    dataverse.issue_token("token-new")
    dataverse.rsps.get(
        f"{dataverse.api}WhoAmI", status=401, json={"error": {"code": "0x80072560", "message": "expired"}}
    )
    dataverse.rsps.get(f"{dataverse.api}WhoAmI", json=WHOAMI)

    hook = make_dataverse_hook()
    assert hook.whoami() == WHOAMI

    assert len(dataverse.token_calls()) == 2
    assert hook.token_requests == 2
    sent = [c.request.headers["Authorization"] for c in dataverse.api_calls()]
    assert sent == ["Bearer token-old", "Bearer token-new"]


def test_401s_on_tokens_entra_just_issued_are_an_auth_error(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook
) -> None:
    # Three fresh tokens refused in a row: the application user itself is refused, not an expired token.
    dataverse.issue_token("token-1")
    dataverse.issue_token("token-2")
    dataverse.issue_token("token-3")
    dataverse.rsps.get(
        f"{dataverse.api}WhoAmI",
        status=401,
        json={"error": {"code": "0x80072560", "message": "no such user"}},
    )

    with pytest.raises(DataverseAuthError, match="application user") as caught:
        make_dataverse_hook().whoami()

    assert caught.value.status == 401
    assert caught.value.transient is False
    assert caught.value.kind == "credentials"
    assert len(dataverse.api_calls()) == 3
    assert len(dataverse.token_calls()) == 3


def test_a_refused_token_names_tenant_and_client_but_never_the_secret(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dataverse.rsps.post(
        dataverse.token_url,
        status=401,
        json={
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.",
        },
    )

    with pytest.raises(DataverseAuthError) as caught:
        make_dataverse_hook().whoami()

    text = str(caught.value)
    assert dataverse.client_id in text
    assert dataverse.tenant_id in text
    assert "invalid_client" in text
    assert "AADSTS7000215" in text
    assert caught.value.code == "invalid_client"
    assert dataverse.client_secret in dataverse.token_calls()[0].request.body  # it was sent, and nowhere else
    assert dataverse.client_secret not in text
    assert dataverse.client_secret not in caplog.text
    assert dataverse.api_calls() == []


def test_secrets_and_tokens_never_reach_logs_or_errors(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dataverse.issue_token("tok-SECRET-123")
    dataverse.rsps.get(f"{dataverse.api}WhoAmI", status=429, headers={"Retry-After": "1"}, json=THROTTLED)
    dataverse.rsps.get(f"{dataverse.api}WhoAmI", json=WHOAMI)
    echo = {"error": {"code": "0x0", "message": f"bad secret {dataverse.client_secret}"}}
    dataverse.rsps.get(f"{dataverse.api}contacts", status=400, json=echo)

    hook = make_dataverse_hook()
    hook.whoami()
    with pytest.raises(DataverseError) as caught:
        list(hook.query("contacts"))

    assert caplog.records
    assert "tok-SECRET-123" not in caplog.text
    assert dataverse.client_secret not in caplog.text
    assert dataverse.client_secret not in str(caught.value)
    assert "***" in str(caught.value)


def test_odata_headers_on_every_call_and_json_content_type_with_bodies(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook
) -> None:
    dataverse.issue_token("token-1")
    dataverse.rsps.get(f"{dataverse.api}WhoAmI", json=WHOAMI)
    dataverse.rsps.post(
        f"{dataverse.api}emails", status=204, headers={"OData-EntityId": f"{dataverse.api}emails({EMAIL_ID})"}
    )

    hook = make_dataverse_hook()
    hook.whoami()
    hook.create("emails", {"subject": "Zoë"})

    get, post = (c.request for c in dataverse.api_calls())
    for request in (get, post):
        assert request.headers["Accept"] == "application/json"
        assert request.headers["OData-MaxVersion"] == "4.0"
        assert request.headers["OData-Version"] == "4.0"
        assert request.headers["If-None-Match"] == "null"
    assert "Content-Type" not in get.headers
    assert post.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(post.body) == {"subject": "Zoë"}


def test_query_follows_next_link_unchanged_with_the_page_size_preference(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook
) -> None:
    next_link = f"{dataverse.api}contacts?$select=fullname&$skiptoken=%3Ccookie%20pagenumber=%222%22%20/%3E"
    dataverse.issue_token("token-1")
    dataverse.rsps.get(
        f"{dataverse.api}contacts",
        json={"value": [{"contactid": "1"}, {"contactid": "2"}], "@odata.nextLink": next_link},
    )
    dataverse.rsps.get(f"{dataverse.api}contacts", json={"value": [{"contactid": "3"}]})

    rows = list(
        make_dataverse_hook().query(
            "contacts",
            filter="lastname eq 'O''Bryan+1'",
            select=["fullname"],
            page_size=2,
            extra_params={"$orderby": "fullname"},
        )
    )

    assert [r["contactid"] for r in rows] == ["1", "2", "3"]
    first, second = dataverse.api_calls()
    assert parse_qs(urlsplit(first.request.url).query) == {
        "$select": ["fullname"],
        "$filter": ["lastname eq 'O''Bryan+1'"],
        "$orderby": ["fullname"],
    }
    assert second.request.url == next_link
    assert first.request.headers["Prefer"] == second.request.headers["Prefer"] == "odata.maxpagesize=2"


def test_a_next_link_to_another_host_is_refused(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook
) -> None:
    dataverse.issue_token("token-1")
    dataverse.rsps.get(
        f"{dataverse.api}contacts",
        json={"value": [], "@odata.nextLink": "https://elsewhere.test/api/data/v9.2/contacts"},
    )

    with pytest.raises(DataverseError, match=r"elsewhere\.test"):
        list(make_dataverse_hook().query("contacts"))
    assert len(dataverse.api_calls()) == 1


def test_a_next_link_back_to_a_page_already_read_ends_the_query(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook
) -> None:
    first = f"{dataverse.api}contacts"
    second = f"{dataverse.api}contacts?$skiptoken=2"
    dataverse.issue_token("token-1")
    dataverse.rsps.get(first, json={"value": [{"contactid": "1"}], "@odata.nextLink": second})
    dataverse.rsps.get(second, json={"value": [{"contactid": "2"}], "@odata.nextLink": first})

    with pytest.raises(DataverseError, match="already read"):
        list(make_dataverse_hook().query("contacts"))
    assert len(dataverse.api_calls()) == 2


def test_query_in_for_1000_addresses_finds_each_once_with_every_url_under_the_limit(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook
) -> None:
    addresses = [f"o'brien+{i}@example.com" if i % 2 else f"first&last+{i}@example.org" for i in range(1000)]
    directory = {a: f"contact-{i}" for i, a in enumerate(addresses)}

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        params = parse_qs(urlsplit(request.url or "").query)
        assert params["@p1"] == ["'emailaddress1'"]
        values = json.loads(params["@p2"][0])
        rows = [{"contactid": directory[v], "emailaddress1": v} for v in values if v in directory]
        return 200, {}, json.dumps({"value": rows})

    dataverse.issue_token("token-1")
    dataverse.rsps.add_callback(responses.GET, f"{dataverse.api}contacts", callback=answer)

    rows = list(
        make_dataverse_hook().query_in(
            "contacts",
            "emailaddress1",
            [*addresses, *addresses[:10]],
            select=["contactid", "emailaddress1"],
            max_url_length=8000,
        )
    )

    assert sorted(r["emailaddress1"] for r in rows) == sorted(addresses)
    calls = dataverse.api_calls()
    assert len(calls) > 1
    assert all(len(c.request.url) <= 8000 for c in calls)
    assert all("+" not in urlsplit(c.request.url).query for c in calls)


def test_create_returns_the_id_from_odata_entity_id_or_location(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook
) -> None:
    dataverse.issue_token("token-1")
    dataverse.rsps.post(
        f"{dataverse.api}emails",
        status=204,
        headers={"OData-EntityId": f"{dataverse.api}emails({EMAIL_ID.upper()})"},
    )
    dataverse.rsps.post(
        f"{dataverse.api}contacts", status=204, headers={"Location": f"{dataverse.api}contacts({CONTACT_ID})"}
    )

    hook = make_dataverse_hook()
    assert hook.create("emails", {"subject": "s"}) == EMAIL_ID
    assert (
        hook.create("contacts", {"lastname": "x"}, headers={"MSCRM.SuppressDuplicateDetection": "false"})
        == CONTACT_ID
    )
    assert dataverse.api_calls()[1].request.headers["MSCRM.SuppressDuplicateDetection"] == "false"


def test_create_with_return_representation_reads_the_id_attribute(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook
) -> None:
    dataverse.issue_token("token-1")
    dataverse.rsps.post(
        f"{dataverse.api}emails",
        status=201,
        json={
            "@odata.context": f"{dataverse.api}$metadata#emails/$entity",
            "activityid": EMAIL_ID,
            "subject": "s",
        },
        match=[matchers.header_matcher({"Prefer": "return=representation"})],
    )

    hook = make_dataverse_hook()
    assert (
        hook.create("emails", {"subject": "s"}, return_representation=True, id_attribute="activityid")
        == EMAIL_ID
    )
    with pytest.raises(ValueError, match="id_attribute"):
        hook.create("emails", {"subject": "s"}, return_representation=True)


def test_update_patches_with_if_match_star_and_a_missing_row_is_a_404_error(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook
) -> None:
    dataverse.issue_token("token-1")
    dataverse.rsps.patch(
        f"{dataverse.api}emails({EMAIL_ID})", status=204, match=[matchers.header_matcher({"If-Match": "*"})]
    )
    dataverse.rsps.patch(
        f"{dataverse.api}emails({CONTACT_ID})",
        status=404,
        json={"error": {"code": "0x80040217", "message": f"email With Id = {CONTACT_ID} Does Not Exist"}},
    )

    hook = make_dataverse_hook()
    hook.update("emails", EMAIL_ID, {"statecode": 1, "statuscode": 3})
    with pytest.raises(DataverseError) as caught:
        hook.update("emails", CONTACT_ID, {"statecode": 1})

    assert json.loads(dataverse.api_calls()[0].request.body) == {"statecode": 1, "statuscode": 3}
    assert (caught.value.status, caught.value.code) == (404, "0x80040217")
    assert "Does Not Exist" in str(caught.value)
    assert caught.value.transient is False


def test_execute_batch_round_trip_with_two_change_sets_and_a_failing_part(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook, batch_answer: SampleBatchAnswer
) -> None:
    dataverse.issue_token("token-1")
    dataverse.rsps.post(
        f"{dataverse.api}$batch",
        body=batch_answer.body(),
        headers={"Content-Type": batch_answer.content_type},
    )
    operations = [
        ChangeSet(
            [
                BatchRequest("POST", "contacts", {"emailaddress1": "a@x.com"}, content_id="1"),
                BatchRequest(
                    "POST", "emails", {"regardingobjectid_contact_email@odata.bind": "$1"}, content_id="2"
                ),
            ]
        ),
        ChangeSet(
            [
                BatchRequest("POST", "emails", {"subject": "ok"}),
                BatchRequest("POST", "emails", {"subject": "x" * 900}),
            ]
        ),
        BatchRequest("GET", "WhoAmI"),
    ]

    outcomes = make_dataverse_hook().execute_batch(operations)

    assert [o.ok for o in outcomes] == [True, False, True]
    assert [r.entity_id for r in outcomes[0].responses] == [batch_answer.contact_id, batch_answer.email_id]
    failure = outcomes[1].responses[0]
    assert (failure.status, failure.content_id, failure.error_code) == (400, "4", "0x80044331")
    whoami = outcomes[2].responses[0].json
    assert isinstance(whoami, dict)
    assert whoami["UserId"] == "u-1"
    sent = dataverse.api_calls()[0].request
    assert sent.headers["Prefer"] == "odata.continue-on-error"
    assert sent.headers["Content-Type"].startswith("multipart/mixed; boundary=batch_")
    assert b"Content-ID: 4\r\n" in sent.body
    assert f"POST {dataverse.api}emails HTTP/1.1".encode() in sent.body


def test_execute_batch_without_continue_on_error_marks_later_operations_not_executed(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook
) -> None:
    answer = "\r\n".join(
        [
            "--batchresponse_x",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "",
            "HTTP/1.1 400 Bad Request",
            "Content-Type: application/json; odata.metadata=minimal",
            "",
            '{"error":{"code":"0x80060888","message":"Could not find a property named \'nope\'."}}',
            "--batchresponse_x--",
            "",
        ]
    )
    dataverse.issue_token("token-1")
    dataverse.rsps.post(
        f"{dataverse.api}$batch",
        status=400,
        body=answer,
        headers={"Content-Type": "multipart/mixed; boundary=batchresponse_x"},
    )

    outcomes = make_dataverse_hook().execute_batch(
        [BatchRequest("POST", "contacts", {"nope": 1}), BatchRequest("POST", "contacts", {"lastname": "b"})],
        continue_on_error=False,
    )

    assert [(o.ok, len(o.responses)) for o in outcomes] == [(False, 1), (False, 0)]
    assert outcomes[0].responses[0].error_code == "0x80060888"
    assert "Prefer" not in dataverse.api_calls()[0].request.headers


def test_a_rejected_batch_with_a_json_error_raises(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook
) -> None:
    dataverse.issue_token("token-1")
    dataverse.rsps.post(
        f"{dataverse.api}$batch",
        status=400,
        json={"error": {"code": "0x0", "message": "The batch is malformed."}},
    )

    with pytest.raises(DataverseError, match="malformed"):
        make_dataverse_hook().execute_batch([BatchRequest("GET", "WhoAmI")])


def test_429_waits_retry_after_then_succeeds(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook, fake_time: FakeTime
) -> None:
    dataverse.issue_token("token-1")
    dataverse.rsps.get(f"{dataverse.api}WhoAmI", status=429, headers={"Retry-After": "4"}, json=THROTTLED)
    dataverse.rsps.get(f"{dataverse.api}WhoAmI", status=429, headers={"Retry-After": "9"}, json=THROTTLED)
    dataverse.rsps.get(f"{dataverse.api}WhoAmI", json=WHOAMI)

    hook = make_dataverse_hook()
    assert hook.whoami() == WHOAMI

    assert fake_time.sleeps == [4.0, 9.0]
    assert (hook.request_count, hook.retry_count, hook.throttled_count) == (3, 2, 2)
    assert hook.throttle_wait_s == 13.0
    assert len(dataverse.token_calls()) == 1


def test_persistent_429_raises_a_throttled_error_with_the_service_code(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook, fake_time: FakeTime
) -> None:
    dataverse.issue_token("token-1")
    dataverse.rsps.get(f"{dataverse.api}WhoAmI", status=429, headers={"Retry-After": "30"}, json=THROTTLED)
    hook = make_dataverse_hook(retry_policy=RetryPolicy(max_attempts=3, max_total_wait_s=1000))

    with pytest.raises(DataverseThrottledError) as caught:
        hook.whoami()

    error = caught.value
    assert (error.status, error.code, error.retry_after, error.transient) == (429, "0x80072322", 30.0, True)
    assert "6000" in str(error)
    assert fake_time.sleeps == [30.0, 30.0]


def test_5xx_is_retried_with_backoff(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook, fake_time: FakeTime
) -> None:
    dataverse.issue_token("token-1")
    dataverse.rsps.get(
        f"{dataverse.api}WhoAmI",
        status=503,
        body="<html>Service Unavailable</html>",
        content_type="text/html",
    )
    dataverse.rsps.get(
        f"{dataverse.api}WhoAmI",
        status=500,
        json={"error": {"code": "0x80040216", "message": "An unexpected error occurred."}},
    )
    dataverse.rsps.get(f"{dataverse.api}WhoAmI", json=WHOAMI)

    hook = make_dataverse_hook()
    assert hook.whoami() == WHOAMI
    assert len(fake_time.sleeps) == 2
    assert all(0 <= s <= 2 for s in fake_time.sleeps)
    assert hook.throttled_count == 0


def test_persistent_5xx_raises_a_transient_retry_exhausted_error(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook
) -> None:
    dataverse.issue_token("token-1")
    dataverse.rsps.get(
        f"{dataverse.api}WhoAmI", status=502, body="<html>Bad Gateway</html>", content_type="text/html"
    )

    with pytest.raises(DataverseRetryExhaustedError) as caught:
        make_dataverse_hook(retry_policy=RetryPolicy(max_attempts=2)).whoami()

    assert not isinstance(caught.value, DataverseThrottledError)
    assert (caught.value.status, caught.value.transient, caught.value.attempts) == (502, True, 2)


def test_concurrency_cap_bounds_requests_in_flight_across_threads(
    monkeypatch: pytest.MonkeyPatch,
    dataverse: DataverseEnv,
    make_dataverse_hook: MakeHook,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DATAVERSE_DEFAULT", json.dumps(dataverse.connection(max_concurrency=2)))
    lock = threading.Lock()
    in_flight = peak = 0
    # Every request waits inside the server for a partner, so two are in flight together; without the
    # cap all eight threads would be in at once. One call per thread, so no thread waits for itself.
    pair_up = threading.Barrier(2, timeout=10)

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        pair_up.wait()
        with lock:
            in_flight -= 1
        return 200, {}, json.dumps(WHOAMI)

    dataverse.issue_token("token-1")
    dataverse.rsps.add_callback(responses.GET, f"{dataverse.api}WhoAmI", callback=answer)
    hook = make_dataverse_hook()
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            hook.whoami()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert failures == []
    assert peak == 2
    assert hook.request_count == 8
    assert len(dataverse.token_calls()) == 1


def test_test_connection_reports_the_user_or_the_failure(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook
) -> None:
    dataverse.issue_token("token-1")
    dataverse.rsps.get(f"{dataverse.api}WhoAmI", json=WHOAMI)
    dataverse.rsps.get(
        f"{dataverse.api}WhoAmI",
        status=403,
        json={"error": {"code": "0x80040220", "message": "PrivilegeDenied"}},
    )

    hook = make_dataverse_hook()
    assert hook.test_connection() == (True, f"Connected to {dataverse.url} as user u-1")
    ok, text = hook.test_connection()
    assert ok is False
    assert "PrivilegeDenied" in text


def test_test_connection_reports_throttling_at_once_instead_of_waiting_it_out(
    dataverse: DataverseEnv, make_dataverse_hook: MakeHook, fake_time: FakeTime
) -> None:
    # The UI's Test button waits for the answer; the pipeline's 8 attempts over up to 10 minutes must
    # not apply there.
    dataverse.issue_token("token-1")
    dataverse.rsps.get(
        f"{dataverse.api}WhoAmI",
        status=429,
        headers={"Retry-After": "30"},
        json={"error": {"code": "0x80072322", "message": "Number of requests exceeded the limit"}},
    )

    ok, text = make_dataverse_hook().test_connection()

    assert ok is False
    assert "Dataverse kept throttling while calling WhoAmI" in text
    assert len(dataverse.api_calls()) == 1
    assert fake_time.sleeps == []
