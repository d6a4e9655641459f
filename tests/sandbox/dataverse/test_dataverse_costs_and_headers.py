"""Execution-cost profiles, the informational service-protection headers in each format, Retry-After under
continued pressure, a messageid index that keeps lookups off the table size, and reset() restoring every
switch. Costs are the modelled server milliseconds the limits charge, read back from the window, never
timed."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
import requests

from nylas_dataverse_sandbox.dataverse.behaviour import DataverseBehaviour, DataverseFaults
from nylas_dataverse_sandbox.dataverse.errors import ThrottledError
from nylas_dataverse_sandbox.dataverse.throttle import (
    COST_PROFILES,
    ServiceProtection,
    ServiceProtectionLimits,
)

if TYPE_CHECKING:
    from conftest import DataverseApi, EmailFactory, Stack, Wire

TWO_PARTIES = {
    "email_activity_parties": [
        {"addressused": "maria.garcia@fabrikam.example", "participationtypemask": 1},
        {"addressused": "alice@contoso.example", "participationtypemask": 2},
    ]
}


def spent_ms(stack: Stack) -> float:
    users = stack.dataverse.protection.snapshot()["users"]
    assert isinstance(users, dict)
    return float(sum(u["execution_ms_in_window"] for u in users.values()))


@pytest.mark.parametrize(("profile", "per_email"), [("fast", 75), ("typical", 200), ("plugin-heavy", 600)])
def test_a_created_and_completed_email_costs_what_its_profile_says(
    api: DataverseApi, stack: Stack, wire: Wire, received_email: EmailFactory, profile: str, per_email: int
) -> None:
    stack.dataverse.set_limits(ServiceProtectionLimits(time_scale=0.001, window_s=60, cost_profile=profile))
    limits = stack.dataverse.limits
    email = received_email(**TWO_PARTIES)
    email.pop("regardingobjectid_contact_email@odata.bind")

    response = api.batch(
        wire.change_set(
            wire.operation("POST", "emails", email, "1"),
            wire.operation("PATCH", "$1", {"statecode": 1, "statuscode": 4}, "2"),
        )
    )

    assert wire.statuses(response) == [204, 204]
    assert limits.email_create_cost(2) + limits.cost("update") == per_email
    assert spent_ms(stack) == pytest.approx(per_email + limits.cost("batch"))


def test_profiles_cover_every_operation_and_overrides_apply_on_top() -> None:
    for profile in COST_PROFILES.values():
        assert set(profile) == set(COST_PROFILES["fast"])
    limits = ServiceProtectionLimits(cost_profile="typical", cost_ms={"party": 1.0})

    assert limits.cost("party") == 1.0
    assert limits.cost("create_email") == COST_PROFILES["typical"]["create_email"]
    with pytest.raises(ValueError, match="unknown cost_profile"):
        ServiceProtectionLimits(cost_profile="slow")
    with pytest.raises(ValueError, match="unknown cost_ms"):
        ServiceProtectionLimits(cost_ms={"teleport": 1.0})


@pytest.mark.parametrize(
    ("style", "burst", "time_remaining"),
    [
        ("observed", "5998", "1,199.99"),
        ("plain", "5998", "1199.99"),
        ("milliseconds", "5998", "1199990"),
        ("omit", None, None),
    ],
)
def test_the_ratelimit_headers_in_each_format(
    api: DataverseApi, stack: Stack, style: str, burst: str | None, time_remaining: str | None
) -> None:
    stack.dataverse.set_limits(ServiceProtectionLimits(time_scale=0.01, ratelimit_header_format=style))
    api.get("WhoAmI")  # 5 modelled ms

    headers = api.get("WhoAmI").headers  # counted with itself: 2 requests, 10 ms of the 1,200 s

    assert headers.get("x-ms-ratelimit-burst-remaining-xrm-requests") == burst
    assert headers.get("x-ms-ratelimit-time-remaining-xrm-requests") == time_remaining
    assert headers["x-ms-dop-hint"].isdigit()


def test_dop_hint_is_on_every_answer_even_unauthenticated_ones_unless_switched_off(stack: Stack) -> None:
    url = f"{stack.dataverse_url}/api/data/v9.2/WhoAmI"
    verify = str(stack.tls.ca_pem)

    anonymous = requests.get(url, verify=verify, timeout=10)
    stack.dataverse.set_limits(ServiceProtectionLimits(time_scale=0.0001, dop_hint_header=False, dop_hint=7))
    without = requests.get(url, verify=verify, timeout=10)

    assert anonymous.status_code == 401
    assert anonymous.headers["x-ms-dop-hint"] == "4"  # 1,200,000 ms / 300 s: four requests in parallel
    assert "x-ms-ratelimit-burst-remaining-xrm-requests" not in anonymous.headers
    assert "x-ms-dop-hint" not in without.headers


@pytest.mark.parametrize(("growth", "grows"), [(0.1, True), (0.0, False)])
def test_retry_after_grows_under_pressure_only_when_asked(growth: float, grows: bool) -> None:
    clock = [0.0]
    protection = ServiceProtection(
        ServiceProtectionLimits(max_requests=1, window_s=100, retry_after_growth=growth),
        clock=lambda: clock[0],
    )
    protection.finish(protection.admit("app"), 1.0)

    waits = []
    for _ in range(12):
        with pytest.raises(ThrottledError) as rejected:
            protection.admit("app")
        assert rejected.value.headers["Retry-After"] == str(rejected.value.retry_after_s)
        waits.append(rejected.value.retry_after_s)

    assert (waits[-1] > waits[0]) is grows
    assert waits[0] == 100


# --- the messageid index ------------------------------------------------------------------------------------
def lookup(api: DataverseApi, messageids: list[str]) -> requests.Response:
    quoted = ",".join(f"'{m}'" for m in messageids)
    return api.get(
        "emails",
        params={
            "$select": "activityid,messageid",
            "$filter": f"Microsoft.Dynamics.CRM.In(PropertyName='messageid',PropertyValues=[{quoted}])",
        },
    )


@pytest.mark.parametrize("indexed", [True, False])
def test_a_messageid_lookup_examines_the_index_hits_or_the_whole_table(
    api: DataverseApi, stack: Stack, indexed: bool
) -> None:
    stack.dataverse.set_behaviour(messageid_indexed=indexed)
    stack.dataverse.set_limits(ServiceProtectionLimits(time_scale=0.0001, window_s=100_000))
    small = stack.dataverse.bulk_emails(1_000)
    costs, examined = [], []
    for size in (1_000, 10_000):
        if size > 1_000:
            stack.dataverse.bulk_emails(size - 1_000)
        before_cost = spent_ms(stack)
        before_rows = stack.dataverse.counters().get("query.rows_examined", 0)
        response = lookup(api, [small[3].upper(), small[700], "<absent@x.example>"])
        assert sorted(r["messageid"] for r in response.json()["value"]) == sorted([small[3], small[700]])
        costs.append(spent_ms(stack) - before_cost)
        examined.append(stack.dataverse.counters()["query.rows_examined"] - before_rows)

    if indexed:
        assert examined == [2, 2]
        assert costs[0] == pytest.approx(costs[1])
    else:
        assert examined == [1_000, 10_000]
        scan = stack.dataverse.limits.cost("query_scan_per_row")
        assert costs[1] - costs[0] == pytest.approx(9_000 * scan)


def test_an_eq_filter_combined_with_other_conditions_is_served_by_the_index_too(
    api: DataverseApi, stack: Stack
) -> None:
    ids = stack.dataverse.bulk_emails(500)
    before = stack.dataverse.counters().get("query.rows_examined", 0)

    response = api.get(
        "emails",
        params={"$select": "subject", "$filter": f"messageid eq '{ids[9]}' and statecode eq 1"},
    )

    assert [r["subject"] for r in response.json()["value"]] == ["Bulk message 9"]
    assert stack.dataverse.counters()["query.rows_examined"] - before == 1


# --- reset() ------------------------------------------------------------------------------------------------
def test_reset_restores_limits_behaviour_and_faults_to_the_configured_start(
    api: DataverseApi, stack: Stack
) -> None:
    configured = stack.dataverse.limits
    stack.dataverse.set_limits(ServiceProtectionLimits(max_requests=1))
    stack.dataverse.set_behaviour(messageid_duplicates="rejected", missing_privileges=["prvReadLead"])
    stack.dataverse.set_faults(throttle_fraction=1.0, changeset_fault_nth=3)
    assert api.get("WhoAmI").status_code == 429

    stack.dataverse.reset()

    assert stack.dataverse.limits == configured
    assert stack.dataverse.behaviour == DataverseBehaviour()
    assert stack.dataverse.faults == DataverseFaults()
    assert api.get("leads").status_code == 200


def test_configured_defaults_are_what_reset_returns_to(stack: Stack) -> None:
    original = stack.dataverse.limits
    try:
        stack.dataverse.configure_defaults(behaviour=DataverseBehaviour(sender_party_restricted=True))
        stack.dataverse.set_behaviour(sender_party_restricted=False)
        stack.dataverse.reset()
        assert stack.dataverse.behaviour.sender_party_restricted is True
    finally:
        stack.dataverse.configure_defaults(limits=original, behaviour=DataverseBehaviour())


def test_the_scaled_window_still_frees_capacity(api: DataverseApi, stack: Stack) -> None:
    stack.dataverse.set_limits(ServiceProtectionLimits(max_requests=1, time_scale=0.002))  # a 0.6 s window
    assert api.get("WhoAmI").status_code == 200
    refused = api.get("WhoAmI")
    time.sleep(int(refused.headers["Retry-After"]))

    assert refused.status_code == 429
    assert api.get("WhoAmI").status_code == 200
