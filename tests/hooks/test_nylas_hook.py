"""NylasHook at the HTTP level: paging, retries, errors, secrecy."""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
import responses
from responses import matchers

from nylas_dataverse.hooks._retry import RetryPolicy
from nylas_dataverse.hooks.errors import (
    NylasApiKeyError,
    NylasBadRequestError,
    NylasError,
    NylasGrantAuthError,
    NylasNotFoundError,
    NylasRetryExhaustedError,
    RetryExhaustedError,
)
from nylas_dataverse.hooks.nylas import NylasHook

if TYPE_CHECKING:
    from conftest import FakeTime, NylasEnv

GRANT = "41009df5-bf11-4c97-aa18-b285b5f2e386"
AFTER, BEFORE = 1_740_787_200, 1_740_873_600

pytestmark = pytest.mark.usefixtures("nylas")


@pytest.fixture
def messages_url(nylas: NylasEnv) -> str:
    return f"{nylas.url}/v3/grants/{GRANT}/messages"


MakeHook = Callable[..., NylasHook]


def message(n: int) -> dict[str, Any]:
    return {
        "id": f"m{n}",
        "object": "message",
        "grant_id": GRANT,
        "subject": f"Subject {n}",
        "date": AFTER + n,
    }


def page(ids: range, **extra: Any) -> dict[str, Any]:
    return {"request_id": f"req-{ids.start}", "data": [message(n) for n in ids], **extra}


def error_body(error_type: str, text: str) -> dict[str, Any]:
    return {
        "request_id": "5fa64c92-e840-4357-86b9-2aa364d35b88",
        "error": {"type": error_type, "message": text},
    }


def sent_query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query, keep_blank_values=True)


@pytest.mark.parametrize(
    "last_page_cursor",
    [
        pytest.param({}, id="absent"),
        pytest.param({"next_cursor": None}, id="null"),
        pytest.param({"next_cursor": ""}, id="empty"),
    ],
)
def test_iter_pages_follows_the_cursor_to_the_last_page_resending_the_filters(
    rsps: responses.RequestsMock,
    make_nylas_hook: MakeHook,
    last_page_cursor: dict[str, Any],
    messages_url: str,
) -> None:
    rsps.get(messages_url, json=page(range(0, 3), next_cursor="cursor-1"))
    rsps.get(messages_url, json=page(range(3, 6), next_cursor="cursor-2"))
    rsps.get(messages_url, json=page(range(6, 8), **last_page_cursor))

    pages = list(make_nylas_hook().iter_pages(GRANT, received_after=AFTER, received_before=BEFORE))

    assert [[m["id"] for m in p.messages] for p in pages] == [
        ["m0", "m1", "m2"],
        ["m3", "m4", "m5"],
        ["m6", "m7"],
    ]
    assert [p.next_cursor for p in pages] == ["cursor-1", "cursor-2", None]
    assert [p.request_id for p in pages] == ["req-0", "req-3", "req-6"]
    filters = {
        "limit": ["50"],
        "received_after": [str(AFTER)],
        "received_before": [str(BEFORE)],
        "fields": ["include_headers"],
    }
    assert [sent_query(call) for call in rsps.calls] == [
        filters,
        {**filters, "page_token": ["cursor-1"]},
        {**filters, "page_token": ["cursor-2"]},
    ]


def test_iter_messages_fetches_a_page_only_when_the_previous_one_is_consumed(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, messages_url: str
) -> None:
    rsps.get(messages_url, json=page(range(0, 2), next_cursor="cursor-1"))
    rsps.get(messages_url, json=page(range(2, 4)))

    messages = make_nylas_hook().iter_messages(GRANT, received_after=AFTER, received_before=BEFORE)

    assert next(messages)["id"] == "m0"
    assert next(messages)["id"] == "m1"
    assert len(rsps.calls) == 1
    assert [m["id"] for m in messages] == ["m2", "m3"]
    assert len(rsps.calls) == 2


def test_iter_pages_resumes_from_a_page_token_and_sends_folder_page_size_and_lowercase_booleans(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, messages_url: str
) -> None:
    rsps.get(messages_url, json=page(range(0, 1)))

    pages = make_nylas_hook().iter_pages(
        GRANT,
        received_after=AFTER,
        received_before=BEFORE,
        page_size=20,
        page_token="resume-here",
        in_folder="SENT",
        fields="include_basic_headers",
        extra_params={"unread": True, "starred": False},
    )

    assert len(list(pages)) == 1
    assert sent_query(rsps.calls[0]) == {
        "limit": ["20"],
        "received_after": [str(AFTER)],
        "received_before": [str(BEFORE)],
        "fields": ["include_basic_headers"],
        "in": ["SENT"],
        "unread": ["true"],
        "starred": ["false"],
        "page_token": ["resume-here"],
    }


def test_a_cursor_that_repeats_stops_with_an_error_instead_of_looping(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, messages_url: str
) -> None:
    rsps.get(messages_url, json=page(range(0, 1), next_cursor="same"))

    with pytest.raises(NylasError, match="cursor"):
        list(make_nylas_hook().iter_pages(GRANT, received_after=AFTER, received_before=BEFORE))
    assert len(rsps.calls) == 2


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"received_after": BEFORE, "received_before": AFTER}, "after"),
        ({"received_after": "yesterday", "received_before": BEFORE}, "Unix seconds"),
        ({"received_after": AFTER, "received_before": BEFORE, "page_size": 201}, "page_size"),
        ({"received_after": AFTER, "received_before": BEFORE, "page_size": 0}, "page_size"),
    ],
)
def test_iter_pages_rejects_bad_arguments_before_sending(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, kwargs: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        list(make_nylas_hook().iter_pages(GRANT, **kwargs))
    assert len(rsps.calls) == 0


def test_session_sends_the_api_key_as_bearer_and_asks_for_json(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, nylas: NylasEnv
) -> None:
    rsps.get(
        f"{nylas.url}/v3/grants/{GRANT}", json={"request_id": "r", "data": {"id": GRANT, "email": "a@x.test"}}
    )

    hook = make_nylas_hook()
    grant = hook.get_grant(GRANT)

    assert grant == {"id": GRANT, "email": "a@x.test"}
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {nylas.api_key}"
    assert rsps.calls[0].request.headers["Accept"] == "application/json"
    assert hook.get_conn() is hook.get_conn()


def test_get_message_percent_encodes_the_whole_id(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, nylas: NylasEnv
) -> None:
    message_id = "<!&!AAAA+b/c=@example.com>"
    url = f"{nylas.url}/v3/grants/{GRANT}/messages/{quote(message_id, safe='')}"
    rsps.get(
        url,
        json={"request_id": "r", "data": {"id": message_id}},
        match=[matchers.query_param_matcher({"fields": "include_headers"})],
    )

    assert make_nylas_hook().get_message(GRANT, message_id) == {"id": message_id}
    assert "%2Fc%3D%40example.com%3E" in rsps.calls[0].request.url


def test_list_folders_follows_next_cursor(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, nylas: NylasEnv
) -> None:
    url = f"{nylas.url}/v3/grants/{GRANT}/folders"
    rsps.get(url, json={"request_id": "a", "data": [{"id": "INBOX"}], "next_cursor": "f2"})
    rsps.get(
        url,
        json={"request_id": "b", "data": [{"id": "SENT"}]},
        match=[matchers.query_param_matcher({"page_token": "f2"})],
    )

    assert make_nylas_hook().list_folders(GRANT) == [{"id": "INBOX"}, {"id": "SENT"}]


def test_retry_after_seconds_is_obeyed_exactly(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, fake_time: FakeTime, messages_url: str
) -> None:
    rsps.get(
        messages_url,
        status=429,
        headers={"Retry-After": "7"},
        json=error_body("rate_limit_error", "Too many requests"),
    )
    rsps.get(messages_url, json=page(range(0, 1)))

    hook = make_nylas_hook()
    pages = list(hook.iter_pages(GRANT, received_after=AFTER, received_before=BEFORE))

    assert len(pages) == 1
    assert fake_time.sleeps == [7.0]
    assert (hook.request_count, hook.retry_count, hook.throttled_count) == (2, 1, 1)


def test_retry_after_http_date_is_obeyed(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, fake_time: FakeTime, messages_url: str
) -> None:
    when = email.utils.formatdate(fake_time.now + 12, usegmt=True)
    rsps.get(messages_url, status=503, headers={"Retry-After": when}, body="busy")
    rsps.get(messages_url, json=page(range(0, 1)))

    list(make_nylas_hook().iter_pages(GRANT, received_after=AFTER, received_before=BEFORE))

    assert fake_time.sleeps == [12.0]


def test_502_with_an_html_body_is_retried_with_backoff_and_a_504_asks_for_a_smaller_page(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, fake_time: FakeTime, messages_url: str
) -> None:
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    rsps.get(messages_url, status=502, body=html, content_type="text/html")
    rsps.get(messages_url, status=504, json=error_body("provider_error", "Provider request timed out."))
    rsps.get(messages_url, json=page(range(0, 2)))

    hook = make_nylas_hook()
    messages = list(hook.iter_messages(GRANT, received_after=AFTER, received_before=BEFORE, page_size=200))

    assert [m["id"] for m in messages] == ["m0", "m1"]
    policy = hook.retry_policy
    assert len(fake_time.sleeps) == 1  # the 502 waits; the 504 is answered with a smaller page at once
    assert 0 <= fake_time.sleeps[0] <= policy.base_delay_s
    assert [sent_query(call)["limit"] for call in rsps.calls] == [["200"], ["200"], ["100"]]
    assert (hook.request_count, hook.retry_count, hook.throttled_count) == (3, 1, 0)


def test_pages_shrink_on_504s_down_to_a_floor_then_grow_back(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, fake_time: FakeTime, messages_url: str
) -> None:
    timeout = error_body("provider_error", "Provider request timed out.")
    for _ in range(5):  # 200 -> 100 -> 50 -> 25 -> 12 -> 10
        rsps.get(messages_url, status=504, json=timeout)
    for n in range(6):
        rsps.get(messages_url, json=page(range(n, n + 1), next_cursor=f"c{n}"))
    rsps.get(messages_url, json=page(range(6, 7)))

    messages = list(
        make_nylas_hook().iter_messages(GRANT, received_after=AFTER, received_before=BEFORE, page_size=200)
    )

    assert len(messages) == 7
    limits = [int(sent_query(call)["limit"][0]) for call in rsps.calls]
    assert limits[:6] == [200, 100, 50, 25, 12, 10]
    assert limits[6:] == [10, 10, 10, 10, 20, 20]  # after 5 good pages the size doubles again
    assert fake_time.sleeps == []


@pytest.mark.parametrize("cursors", [["A", "B", "A"], ["A", "A"]], ids=["cycle", "repeat"])
def test_a_cursor_that_comes_back_ends_the_walk_with_a_clear_error(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, messages_url: str, cursors: list[str]
) -> None:
    for n, cursor in enumerate(cursors):
        rsps.get(messages_url, json=page(range(n, n + 1), next_cursor=cursor))
    rsps.get(messages_url, json=page(range(9, 10), next_cursor="B"))

    with pytest.raises(NylasError, match="already given in this walk"):
        list(
            make_nylas_hook().iter_messages(
                GRANT, received_after=AFTER, received_before=BEFORE, page_size=200
            )
        )

    assert len(rsps.calls) <= len(cursors) + 1


def test_an_expired_cursor_restarts_the_walk_once(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, messages_url: str
) -> None:
    rsps.get(messages_url, json=page(range(0, 2), next_cursor="c1"))
    rsps.get(messages_url, status=400, json=error_body("invalid_request_error", "page_token has expired"))
    rsps.get(messages_url, json=page(range(0, 2), next_cursor="c1b"))
    rsps.get(messages_url, json=page(range(2, 3)))

    ids = [
        m["id"] for m in make_nylas_hook().iter_messages(GRANT, received_after=AFTER, received_before=BEFORE)
    ]

    assert ids == ["m0", "m1", "m0", "m1", "m2"]  # callers drop what they saw (extract does, by id)
    assert "page_token" not in sent_query(rsps.calls[2])


def test_persistent_502_html_gives_up_after_max_attempts_with_a_transient_error(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, fake_time: FakeTime, messages_url: str
) -> None:
    rsps.get(messages_url, status=502, body="<html>Bad Gateway</html>", content_type="text/html")
    hook = make_nylas_hook(
        retry_policy=RetryPolicy(max_attempts=4, max_total_wait_s=1000, base_delay_s=1, max_delay_s=4)
    )

    with pytest.raises(NylasRetryExhaustedError) as caught:
        list(hook.iter_pages(GRANT, received_after=AFTER, received_before=BEFORE))

    error = caught.value
    assert isinstance(error, RetryExhaustedError)
    assert error.transient is True
    assert error.status == 502
    assert error.attempts == 4
    assert "non-JSON body (text/html" in str(error)
    assert len(rsps.calls) == 4
    assert len(fake_time.sleeps) == 3
    assert all(0 <= s <= 4 for s in fake_time.sleeps)


def test_retry_after_beyond_the_time_budget_gives_up_at_once_and_reports_the_wait(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, fake_time: FakeTime, messages_url: str
) -> None:
    rsps.get(
        messages_url,
        status=429,
        headers={"Retry-After": "900"},
        json=error_body("rate_limit_error", "slow down"),
    )
    hook = make_nylas_hook(retry_policy=RetryPolicy(max_attempts=10, max_total_wait_s=300))

    with pytest.raises(NylasRetryExhaustedError) as caught:
        list(hook.iter_pages(GRANT, received_after=AFTER, received_before=BEFORE))

    assert caught.value.retry_after == 900.0
    assert caught.value.status == 429
    assert caught.value.code == "rate_limit_error"
    assert "time budget" in str(caught.value)
    assert fake_time.sleeps == []
    assert len(rsps.calls) == 1


def test_connection_errors_are_retried_like_5xx(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, fake_time: FakeTime, messages_url: str
) -> None:
    rsps.get(messages_url, body=requests.ConnectionError("connection reset"))
    rsps.get(messages_url, body=requests.Timeout("read timed out"))
    rsps.get(messages_url, json=page(range(0, 1)))

    hook = make_nylas_hook()
    assert len(list(hook.iter_pages(GRANT, received_after=AFTER, received_before=BEFORE))) == 1
    assert hook.request_count == 3
    assert len(fake_time.sleeps) == 2


def test_401_on_a_grant_names_the_grant_says_to_reauthenticate_and_is_not_retried(
    rsps: responses.RequestsMock,
    make_nylas_hook: MakeHook,
    fake_time: FakeTime,
    messages_url: str,
    nylas: NylasEnv,
) -> None:
    rsps.get(messages_url, status=401, json=error_body("unauthorized", "Unauthorized"))
    # The API key itself still works: one application-level call tells an expired grant from a bad key.
    rsps.get(f"{nylas.url}/v3/grants", json={"request_id": "r", "data": [], "next_cursor": None})

    with pytest.raises(NylasGrantAuthError) as caught:
        list(make_nylas_hook().iter_pages(GRANT, received_after=AFTER, received_before=BEFORE))

    error = caught.value
    assert error.grant_id == GRANT
    assert error.status == 401
    assert error.transient is False
    assert GRANT in str(error)
    assert "re-authenticate" in str(error).lower()
    assert error.kind == "grant_expired"
    assert [call.request.url.split("?")[0] for call in rsps.calls] == [messages_url, f"{nylas.url}/v3/grants"]
    assert fake_time.sleeps == []


def test_a_rejected_api_key_is_not_reported_as_an_expired_grant(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, messages_url: str, nylas: NylasEnv
) -> None:
    rsps.get(messages_url, status=401, json=error_body("unauthorized", "Unauthorized"))
    rsps.get(f"{nylas.url}/v3/grants", status=401, json=error_body("unauthorized", "Unauthorized"))

    with pytest.raises(NylasApiKeyError) as caught:
        list(make_nylas_hook().iter_pages(GRANT, received_after=AFTER, received_before=BEFORE))

    text = str(caught.value)
    assert "API key of connection 'nylas_default'" in text
    assert "re-authenticate" not in text.lower()
    assert caught.value.kind == "credentials"
    assert nylas.api_key not in text


def test_404_unknown_grant_raises_not_found_with_the_api_message(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, nylas: NylasEnv
) -> None:
    rsps.get(f"{nylas.url}/v3/grants/nope", status=404, json=error_body("not_found_error", "grant not found"))

    with pytest.raises(NylasNotFoundError, match="grant not found") as caught:
        make_nylas_hook().get_grant("nope")

    assert caught.value.status == 404
    assert caught.value.request_id == "5fa64c92-e840-4357-86b9-2aa364d35b88"
    assert caught.value.transient is False
    assert len(rsps.calls) == 1


def test_404_unknown_message_raises_not_found(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, messages_url: str
) -> None:
    rsps.get(
        f"{messages_url}/m-gone", status=404, json=error_body("not_found_error", "requested object not found")
    )

    with pytest.raises(NylasNotFoundError, match="m-gone"):
        make_nylas_hook().get_message(GRANT, "m-gone")


def test_400_raises_bad_request_with_the_api_message_and_type(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, messages_url: str
) -> None:
    rsps.get(
        messages_url, status=400, json=error_body("invalid_request_error", "in:inbox is not a folder id")
    )

    with pytest.raises(NylasBadRequestError, match="in:inbox is not a folder id") as caught:
        list(
            make_nylas_hook().iter_pages(
                GRANT, received_after=AFTER, received_before=BEFORE, in_folder="in:inbox"
            )
        )

    assert caught.value.code == "invalid_request_error"
    assert caught.value.status == 400
    assert len(rsps.calls) == 1


def test_the_api_key_never_appears_in_errors_or_logs(
    rsps: responses.RequestsMock,
    make_nylas_hook: MakeHook,
    caplog: pytest.LogCaptureFixture,
    messages_url: str,
    nylas: NylasEnv,
) -> None:
    caplog.set_level(logging.DEBUG)
    # A misbehaving server echoing the credential back in its error message.
    rsps.get(
        messages_url,
        status=400,
        json=error_body("invalid_request_error", f"bad header Bearer {nylas.api_key}"),
    )
    rsps.get(
        f"{nylas.url}/v3/grants/{GRANT}", status=401, json=error_body("unauthorized", f"key {nylas.api_key}")
    )
    rsps.get(f"{messages_url}/m1", status=502, body=f"<html>{nylas.api_key}</html>", content_type="text/html")
    rsps.get(f"{nylas.url}/v3/grants", body=requests.ConnectionError("refused"))
    hook = make_nylas_hook(retry_policy=RetryPolicy(max_attempts=2))

    errors: list[Exception] = []
    for call in (
        lambda: list(hook.iter_pages(GRANT, received_after=AFTER, received_before=BEFORE)),
        lambda: hook.get_grant(GRANT),
        lambda: hook.get_message(GRANT, "m1"),
    ):
        with pytest.raises(NylasError) as caught:
            call()
        errors.append(caught.value)
    ok, text = hook.test_connection()

    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {nylas.api_key}"
    assert ok is False
    assert nylas.api_key not in text
    assert "***" in str(errors[0])
    for error in errors:
        assert nylas.api_key not in str(error)
        assert nylas.api_key not in repr(error)
        assert nylas.api_key not in error.message
    assert caplog.records, "expected the hook to log its requests and retries"
    assert nylas.api_key not in caplog.text
    assert nylas.api_key not in repr(hook.settings)


def test_test_connection_is_a_read_only_get_of_one_grant(
    rsps: responses.RequestsMock, make_nylas_hook: MakeHook, nylas: NylasEnv
) -> None:
    rsps.get(
        f"{nylas.url}/v3/grants",
        json={"request_id": "r", "data": []},
        match=[matchers.query_param_matcher({"limit": "1"})],
    )

    ok, text = make_nylas_hook().test_connection()

    assert ok is True
    assert nylas.url in text
    assert [call.request.method for call in rsps.calls] == ["GET"]
