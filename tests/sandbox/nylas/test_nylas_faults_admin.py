"""Fault injection for drills, the admin routes, and the wire responses against the OpenAPI contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import jsonschema
import pytest

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas.backend import NylasBackend

if TYPE_CHECKING:
    from conftest import NylasApi


def test_every_nth_request_is_rate_limited_with_retry_after(
    api: NylasApi, bob: personas.GrantPersona
) -> None:
    api.admin("POST", "/_sandbox/faults", {"rate_limit_every": 3, "retry_after_s": 2})

    statuses = [api.get(f"/v3/grants/{bob.grant_id}/folders") for _ in range(6)]

    assert [r.status_code for r in statuses] == [200, 200, 429, 200, 200, 429]
    limited = statuses[2]
    assert limited.headers["Retry-After"] == "2"
    assert limited.json()["error"] == {
        "type": "rate_limit_error",
        "message": "Too many requests, please try again shortly.",
    }
    assert limited.json()["request_id"] == limited.headers["x-request-id"]


def test_gateway_502_is_html_not_json(api: NylasApi, alice: personas.GrantPersona) -> None:
    api.admin("POST", "/_sandbox/faults", {"html_502_every": 2})

    first = api.get(f"/v3/grants/{alice.grant_id}/messages", {"limit": 1})
    second = api.get(f"/v3/grants/{alice.grant_id}/messages", {"limit": 1})

    assert first.status_code == 200
    assert second.status_code == 502
    assert second.headers["Content-Type"].startswith("text/html")
    assert "<h1>502 Bad Gateway</h1>" in second.text
    assert second.headers["x-request-id"]


def test_provider_timeouts_on_demand_and_for_large_pages(
    api: NylasApi, nylas_backend: NylasBackend, bob: personas.GrantPersona
) -> None:
    nylas_backend.set_faults({"timeout_504_every": 1})
    every = api.get(f"/v3/grants/{bob.grant_id}/messages")
    nylas_backend.set_faults({"timeout_504_every": 0, "timeout_504_over_limit": 100})
    large = api.get(f"/v3/grants/{bob.grant_id}/messages", {"limit": 200})
    small = api.get(f"/v3/grants/{bob.grant_id}/messages", {"limit": 100})

    for response in (every, large):
        assert response.status_code == 504
        assert response.json()["error"] == {
            "type": "provider_error",
            "message": "Provider request timed out.",
        }
    assert small.status_code == 200


def test_a_grant_can_be_expired_for_a_drill_and_reset_restores_it(
    api: NylasApi, alice: personas.GrantPersona
) -> None:
    set_response = api.admin("POST", "/_sandbox/faults", {"expired_grants": ["alice"]})
    expired = api.get(f"/v3/grants/{alice.email}/messages")
    status = api.get(f"/v3/grants/{alice.grant_id}").json()["data"]["grant_status"]
    api.admin("POST", "/_sandbox/reset")
    restored = api.get(f"/v3/grants/{alice.email}/messages")

    assert set_response.json()["data"]["expired_grants"] == ["alice"]
    assert expired.status_code == 401
    assert expired.json()["error"]["type"] == "unauthorized"
    assert expired.json()["error"]["provider_error"]["code"] == 401  # Google's refusal
    assert status == "invalid"
    assert restored.status_code == 200


def test_latency_slows_requests_without_failing_them(
    api: NylasApi, nylas_backend: NylasBackend, alice: personas.GrantPersona
) -> None:
    nylas_backend.set_faults({"latency_s": 0.05})

    response = api.get(f"/v3/grants/{alice.grant_id}")

    assert response.status_code == 200
    assert nylas_backend.faults.latency_s == 0.05


@pytest.mark.parametrize(
    "body",
    [
        {"rate_limit_evry": 2},
        {"rate_limit_every": -1},
        {"rate_limit_every": 1.5},
        {"expired_grants": "alice"},
    ],
)
def test_bad_fault_settings_are_refused_with_the_reason(api: NylasApi, body: dict[str, object]) -> None:
    response = api.admin("POST", "/_sandbox/faults", body)

    assert response.status_code == 400
    assert next(iter(body)).split("_")[0] in response.json()["error"]["message"]


def test_stats_count_requests_by_route_and_status(
    api: NylasApi, alice: personas.GrantPersona, bob: personas.GrantPersona
) -> None:
    api.admin("POST", "/_sandbox/reset")
    api.get(f"/v3/grants/{alice.grant_id}/messages")
    api.get(f"/v3/grants/{bob.grant_id}/messages")
    api.get(f"/v3/grants/{bob.grant_id}/folders", api_key="wrong")

    stats = api.admin("GET", "/_sandbox/stats").json()["data"]

    assert stats["total"] == 3
    assert stats["by_route"] == {"GET /v3/grants/{grant}/folders": 1, "GET /v3/grants/{grant}/messages": 2}
    assert stats["by_status"] == {"200": 2, "401": 1}


def test_wire_responses_match_the_contract(
    api: NylasApi,
    nylas_backend: NylasBackend,
    openapi_validator: Callable[[str], jsonschema.Draft202012Validator],
    carol: personas.GrantPersona,
) -> None:
    responses = "#/components/responses/{}/content/application~1json/schema"
    listing = api.get(f"/v3/grants/{carol.grant_id}/messages", {"fields": "include_headers"}).json()
    one = api.get(f"/v3/grants/{carol.grant_id}/messages/{listing['data'][0]['id']}").json()
    folders = api.get(f"/v3/grants/{carol.grant_id}/folders").json()
    errors = {
        "400": api.get(f"/v3/grants/{carol.grant_id}/messages", {"limit": 500}).json(),
        "401": api.get(f"/v3/grants/{carol.grant_id}/messages", api_key="nope").json(),
        "404": api.get("/v3/grants/nobody/messages").json(),
    }
    nylas_backend.set_faults({"rate_limit_every": 1})
    errors["429"] = api.get(f"/v3/grants/{carol.grant_id}/messages").json()
    nylas_backend.set_faults({"rate_limit_every": 0, "timeout_504_every": 1})
    errors["504"] = api.get(f"/v3/grants/{carol.grant_id}/messages").json()

    # The contract's list envelopes combine common_response_with_cursor (data: object) with data: array
    # in an allOf that no list can satisfy, so list items are checked against the item schemas instead.
    checks = [
        (responses.format("message"), one),
        *((responses.format(status), body) for status, body in errors.items()),
        *(("#/components/schemas/message", item) for item in listing["data"]),
        *(("#/components/schemas/folder", item) for item in folders["data"]),
    ]
    for pointer, body in checks:
        problems = [e.message for e in openapi_validator(pointer).iter_errors(body)]
        assert problems == [], pointer
    for envelope in (listing, folders):
        assert isinstance(envelope["request_id"], str)
        assert isinstance(envelope.get("next_cursor", ""), str)
    assert {body["error"]["type"] for body in errors.values()} == {
        "invalid_request_error",
        "token.unauthorized_access",
        "not_found_error",
        "rate_limit_error",
        "provider_error",
    }
