"""Authentication, service protection limits and the drill fault knobs."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest
import requests

from nylas_dataverse_sandbox.dataverse.errors import ThrottledError
from nylas_dataverse_sandbox.dataverse.throttle import (
    ServiceProtection,
    ServiceProtectionLimits,
    ceiling_breakdown,
    ceiling_emails_per_s,
)

if TYPE_CHECKING:
    from conftest import DataverseApi, EmailFactory, Stack


def error_of(response: requests.Response) -> tuple[str, str]:
    error = response.json()["error"]
    return error["code"], error["message"]


def test_requests_without_a_valid_token_get_an_empty_401(api: DataverseApi, stack: Stack) -> None:
    root = f"{stack.dataverse_url}/api/data/v9.2/WhoAmI"
    verify = str(stack.tls.ca_pem)

    missing = requests.get(root, verify=verify, timeout=10)
    forged = requests.get(root, headers={"Authorization": "Bearer a.b.c"}, verify=verify, timeout=10)

    assert (missing.status_code, missing.content) == (401, b"")
    assert forged.status_code == 401
    assert api.get("WhoAmI").status_code == 200


def test_a_token_for_another_resource_is_refused(stack: Stack) -> None:
    token = requests.post(
        f"{stack.entra_server.url}/7b1c0f6e-2a1d-4d3e-9f10-3c5a8e2b4d61/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "3f2a9c4d-8b7e-4a61-b0c2-5d6e7f8a9b10",
            "client_secret": "sandbox-client-secret-do-not-use",
            "scope": "https://other.crm.dynamics.com/.default",
        },
        verify=str(stack.tls.ca_pem),
        timeout=10,
    ).json()["access_token"]

    response = requests.get(
        f"{stack.dataverse_url}/api/data/v9.2/WhoAmI",
        headers={"Authorization": f"Bearer {token}"},
        verify=str(stack.tls.ca_pem),
        timeout=10,
    )

    assert response.status_code == 401


def test_exceeding_the_request_count_answers_429_with_code_message_and_retry_after(
    api: DataverseApi, stack: Stack
) -> None:
    stack.dataverse.set_limits(ServiceProtectionLimits(max_requests=3, time_scale=0.003))  # a 0.9 s window

    answers = [api.get("WhoAmI") for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert error_of(answers[3]) == (
        "0x80072322",
        "Number of requests exceeded the limit of 3 over time window of 300 seconds.",
    )
    retry_after = int(answers[3].headers["Retry-After"])
    assert retry_after == 1  # whole seconds, at least 1, although the scaled window is shorter
    assert answers[2].headers["x-ms-ratelimit-burst-remaining-xrm-requests"] == "0"
    time.sleep(retry_after)
    assert api.get("WhoAmI").status_code == 200


def test_combined_execution_time_limit_uses_the_documented_message(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    stack.dataverse.set_limits(ServiceProtectionLimits(max_execution_ms=50, time_scale=0.004))

    created = api.post("emails", json=received_email())  # 40 + 3 parties x 5 = 55 modelled ms
    refused = api.get("WhoAmI")

    assert created.status_code == 204
    assert refused.status_code == 429
    assert error_of(refused) == (
        "0x80072321",
        "Combined execution time of incoming requests exceeded limit of 50  milliseconds over time window "
        "of 300 seconds. Decrease number of concurrent requests or reduce the duration of requests and try "
        "again later.",
    )
    assert int(refused.headers["Retry-After"]) >= 1


def test_concurrent_requests_beyond_the_limit_are_refused_at_once(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    # Each create really takes 55 ms x 10 = 0.55 s, so the requests overlap.
    stack.dataverse.set_limits(ServiceProtectionLimits(max_concurrency=2, time_scale=10.0, window_s=0.1))

    def create() -> requests.Response:
        session = requests.Session()
        session.verify = api.session.verify
        session.headers.update(api.session.headers)
        with session:
            return session.post(f"{api.root}/emails", json=received_email(), timeout=30)

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: create(), range(4)))

    refused = [a for a in answers if a.status_code == 429]
    assert [a.status_code for a in answers].count(204) >= 1
    assert refused
    assert all(
        error_of(a) == ("0x80072326", "Number of concurrent requests exceeded the limit of 2.")
        for a in refused
    )


def test_peak_concurrency_per_user_is_reported_until_reset() -> None:
    protection = ServiceProtection(ServiceProtectionLimits())
    first, second, third = (protection.admit("app") for _ in range(3))
    for ticket in (first, second, third):
        protection.finish(ticket, 1.0)
    protection.finish(protection.admit("app"), 1.0)  # alone: does not lower the peak
    protection.finish(protection.admit("other"), 1.0)

    users = protection.snapshot()["users"]
    protection.reset()

    assert users["app"]["peak_in_flight"] == 3
    assert users["app"]["in_flight"] == 0
    assert users["other"]["peak_in_flight"] == 1
    assert protection.snapshot()["users"] == {}


def test_retry_after_grows_under_continued_pressure() -> None:
    clock = [0.0]
    protection = ServiceProtection(
        ServiceProtectionLimits(max_requests=1, window_s=100), clock=lambda: clock[0]
    )
    protection.finish(protection.admit("app"), 1.0)

    waits = []
    for _ in range(25):
        with pytest.raises(ThrottledError) as rejected:
            protection.admit("app")
        waits.append(rejected.value.retry_after_s)

    assert waits[0] == 100
    assert waits[-1] > waits[0]
    assert waits == sorted(waits)


def test_ceiling_names_the_binding_limit() -> None:
    limits = ServiceProtectionLimits()

    single = ceiling_breakdown(limits, batch_size=1)
    batched = ceiling_breakdown(limits, batch_size=10)

    # One email per request: 6000 requests / 300 s binds at 20 emails/s.
    assert ceiling_emails_per_s(limits, 1) == pytest.approx(20.0)
    assert min(single, key=single.__getitem__) == "requests"
    # Ten per batch: 10 x (40 + 3 x 5 + 25) + 5 = 805 ms per batch; 1,200,000 ms / 300 s binds.
    assert ceiling_emails_per_s(limits, 10) == pytest.approx(1_200_000 / 805 * 10 / 300)
    assert min(batched, key=batched.__getitem__) == "execution_time"
    scaled = ServiceProtectionLimits(time_scale=0.01)
    assert ceiling_emails_per_s(scaled, 10) == pytest.approx(ceiling_emails_per_s(limits, 10) * 100)


def test_injected_throttling_has_growing_retry_after(api: DataverseApi, stack: Stack) -> None:
    stack.dataverse.set_faults(throttle_fraction=1.0)

    answers = [api.get("WhoAmI") for _ in range(3)]

    assert [a.status_code for a in answers] == [429, 429, 429]
    assert [int(a.headers["Retry-After"]) for a in answers] == [1, 2, 3]
    assert error_of(answers[0])[0] == "0x80072322"
    stack.dataverse.set_faults(throttle_fraction=0.0)
    assert api.get("WhoAmI").status_code == 200


def test_injected_server_errors_carry_dataverse_error_json(api: DataverseApi, stack: Stack) -> None:
    stack.dataverse.set_faults(error_5xx_fraction=1.0, seed=7)

    answers = [api.get("WhoAmI") for _ in range(6)]

    assert {a.status_code for a in answers} <= {500, 503}
    assert all(error_of(a)[1] for a in answers)
    assert stack.dataverse.counters()["faults.5xx"] == 6


def test_early_token_expiry_forces_a_new_token(stack: Stack) -> None:
    token = stack.token()
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{stack.dataverse_url}/api/data/v9.2/WhoAmI"
    verify = str(stack.tls.ca_pem)
    assert requests.get(url, headers=headers, verify=verify, timeout=10).status_code == 200

    stack.dataverse.set_faults(expire_tokens_every_s=0.05)
    time.sleep(0.1)
    expired = requests.get(url, headers=headers, verify=verify, timeout=10)
    stack.dataverse.set_faults(expire_tokens_every_s=None)
    fresh = requests.get(url, headers={"Authorization": f"Bearer {stack.token()}"}, verify=verify, timeout=10)

    assert expired.status_code == 401
    assert fresh.status_code == 200


def test_admin_endpoints_set_faults_and_limits_and_report_stats(stack: Stack) -> None:
    admin = f"{stack.dataverse_url}/_sandbox"
    verify = str(stack.tls.ca_pem)

    bad = requests.post(f"{admin}/faults", json={"throttle": 1}, verify=verify, timeout=10)
    good = requests.post(f"{admin}/faults", json={"latency_s": 0.01}, verify=verify, timeout=10)
    limits = requests.post(f"{admin}/limits", json={"max_requests": 10}, verify=verify, timeout=10)
    stats = requests.get(f"{admin}/stats", verify=verify, timeout=10).json()

    assert bad.status_code == 400
    assert "throttle" in bad.json()["error"]
    assert good.json()["latency_s"] == 0.01
    assert limits.json()["max_requests"] == 10
    assert stats["limits"]["max_requests"] == 10
    assert stats["faults"]["latency_s"] == 0.01
    assert stats["counters"]["rows.contacts"] == 11  # 9 active, 2 inactive
