"""``$batch`` open behaviours and faults: a failed change set that stops the batch (#2735), per-change-set
429/5xx parts inside a 200 batch, the operation cap, Content-ID scope, CRLF strictness, and a gateway error
after the batch was applied. Where the official client's batch parser can judge the answer, it does."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest
import requests
from PowerPlatform.Dataverse.data._batch_base import _BatchBase

if TYPE_CHECKING:
    from conftest import DataverseApi, EmailFactory, Stack, Wire


def stored_ids(stack: Stack) -> set[str]:
    return {e["activityid"] for e in stack.dataverse.emails_with_parties()}


def parsed(response: requests.Response) -> Any:
    """The official client's reading of a $batch answer."""
    return _BatchBase(None)._parse_batch_response(response)  # type: ignore[arg-type]


def three_emails(wire: Wire, emails: list[dict[str, Any]], bad_middle: bool = False) -> list[str]:
    """Three change sets of one email each (create + close), the middle one invalid if asked."""
    items = []
    for number, email in enumerate(emails, start=1):
        if bad_middle and number == 2:
            email = {**email, "subject": "x" * 801}
        items.append(
            wire.change_set(
                wire.operation("POST", "/api/data/v9.2/emails", email, f"{number}a"),
                wire.operation("PATCH", f"${number}a", {"statecode": 1, "statuscode": 4}, f"{number}b"),
            )
        )
    return items


@pytest.mark.parametrize("stop", [False, True])
def test_a_failed_change_set_either_lets_the_rest_run_or_stops_the_batch_under_continue_on_error(
    api: DataverseApi, stack: Stack, wire: Wire, received_email: EmailFactory, stop: bool
) -> None:
    stack.dataverse.set_behaviour(batch_stop_on_failed_changeset=stop)
    emails = [received_email() for _ in range(3)]

    response = api.batch(*three_emails(wire, emails, bad_middle=True), continue_on_error=True)

    assert response.status_code == 200  # continue-on-error: the outer answer is 200 either way
    if stop:  # what #2735 reports: the failing change set's part, then nothing
        assert wire.statuses(response) == [204, 204, 400]
        assert stored_ids(stack) == {emails[0]["activityid"]}
    else:
        assert wire.statuses(response) == [204, 204, 400, 204, 204]
        assert stored_ids(stack) == {emails[0]["activityid"], emails[2]["activityid"]}
    assert [r.content_id for r in parsed(response).failed] == ["2a"]


def test_the_nth_change_set_of_every_batch_gets_a_throttling_part_and_is_rolled_back(
    api: DataverseApi, stack: Stack, wire: Wire, received_email: EmailFactory
) -> None:
    stack.dataverse.set_faults(changeset_fault_nth=2, changeset_throttle_code="0x80072321")
    emails = [received_email() for _ in range(3)]

    response = api.batch(*three_emails(wire, emails), continue_on_error=True)
    stored = stored_ids(stack)
    again = api.batch(*three_emails(wire, [received_email() for _ in range(3)]), continue_on_error=True)

    assert response.status_code == 200
    assert wire.statuses(response) == [204, 204, 429, 204, 204]
    [failure] = parsed(response).failed
    assert (failure.status_code, failure.content_id, failure.error_code) == (429, "2a", "0x80072321")
    assert failure.error_message.startswith("Combined execution time of incoming requests exceeded limit")
    assert "Retry-After: 1" in response.text
    assert stored == {emails[0]["activityid"], emails[2]["activityid"]}
    assert wire.statuses(again) == [204, 204, 429, 204, 204]  # every batch, not just the first


def test_change_sets_naming_a_messageid_fail_the_set_number_of_times_then_succeed(
    api: DataverseApi, stack: Stack, wire: Wire, received_email: EmailFactory
) -> None:
    target = received_email()
    stack.dataverse.set_faults(
        changeset_fault_match=[target["messageid"]], changeset_fault_times=2, changeset_fault_status=503
    )
    attempts = [
        api.batch(wire.change_set(wire.operation("POST", "emails", target, "1")), continue_on_error=True)
        for _ in range(3)
    ]

    assert [wire.statuses(a) for a in attempts] == [[503], [503], [204]]
    assert parsed(attempts[0]).failed[0].error_message
    assert stored_ids(stack) == {target["activityid"]}


def test_random_change_set_faults_are_reproducible_from_the_seed(
    api: DataverseApi, stack: Stack, wire: Wire, received_email: EmailFactory
) -> None:
    def run() -> list[int]:
        stack.dataverse.reset()
        stack.dataverse.set_faults(changeset_throttle_fraction=0.3, changeset_5xx_fraction=0.3, seed=11)
        items = [wire.change_set(wire.operation("POST", "emails", received_email(), "1")) for _ in range(12)]
        return wire.statuses(api.batch(*items, continue_on_error=True))

    first, second = run(), run()

    assert first == second
    assert set(first) <= {204, 429, 500, 503}
    assert {204, 429} <= set(first)
    assert {500, 503} & set(first)
    assert len(stored_ids(stack)) == first.count(204)


def test_without_continue_on_error_an_injected_part_stops_the_batch_with_400(
    api: DataverseApi, stack: Stack, wire: Wire, received_email: EmailFactory
) -> None:
    stack.dataverse.set_faults(changeset_fault_nth=1, changeset_fault_status=500)
    emails = [received_email() for _ in range(2)]

    response = api.batch(*three_emails(wire, emails))

    assert response.status_code == 400
    assert wire.statuses(response) == [500]
    assert stored_ids(stack) == set()


@pytest.mark.parametrize(("cap", "accepted"), [(1000, True), (250, False)])
def test_the_operation_cap_is_1000_or_the_reported_250(
    api: DataverseApi, stack: Stack, wire: Wire, cap: int, accepted: bool
) -> None:
    stack.dataverse.set_behaviour(max_batch_operations=cap)
    gets = [wire.operation("GET", "WhoAmI") for _ in range(251)]

    response = api.batch(*gets)

    if accepted:
        assert response.status_code == 200
        assert len(wire.statuses(response)) == 251
    else:
        assert response.status_code == 400
        assert "maximum number of '250' query operations" in response.json()["error"]["message"]


@pytest.mark.parametrize("scope", ["changeset", "batch"])
def test_content_ids_may_repeat_across_change_sets_only_under_odata_4_0(
    api: DataverseApi, stack: Stack, wire: Wire, received_email: EmailFactory, scope: str
) -> None:
    stack.dataverse.set_behaviour(content_id_scope=scope)
    items = [wire.change_set(wire.operation("POST", "emails", received_email(), "1")) for _ in range(2)]

    response = api.batch(*items)

    if scope == "changeset":
        assert wire.statuses(response) == [204, 204]
    else:
        assert response.status_code == 400
        assert "The content ID '1' was found more than once" in response.json()["error"]["message"]


@pytest.mark.parametrize("strict", [False, True])
def test_bare_lf_line_endings_are_accepted_or_refused(
    api: DataverseApi, stack: Stack, wire: Wire, strict: bool
) -> None:
    stack.dataverse.set_behaviour(batch_require_crlf=strict)

    response = api.batch(wire.operation("GET", "WhoAmI"), line_end="\n")

    if strict:
        assert response.status_code == 400
        assert "CRLF" in response.json()["error"]["message"]
    else:
        assert wire.statuses(response) == [200]


@pytest.mark.parametrize("status", [502, 504])
def test_a_gateway_error_after_the_batch_was_applied_leaves_the_rows_behind(
    api: DataverseApi, stack: Stack, wire: Wire, received_email: EmailFactory, status: int
) -> None:
    stack.dataverse.set_faults(gateway_after_apply_every=1, gateway_after_apply_status=status)
    emails = [received_email() for _ in range(2)]

    response = api.batch(*three_emails(wire, emails), continue_on_error=True)

    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("text/html")
    assert stored_ids(stack) == {e["activityid"] for e in emails}  # applied although the client saw 5xx
    assert stack.dataverse.counters()["faults.gateway_after_apply"] == 1


def test_a_dropped_connection_after_the_write_was_applied(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    stack.dataverse.set_faults(gateway_after_apply_every=2, gateway_after_apply_status=0)
    first, second = received_email(), received_email()

    assert api.post("emails", json=first).status_code == 204
    with pytest.raises(requests.ConnectionError):
        api.post("emails", json=second)
    assert api.get("WhoAmI").status_code == 200  # reads are never picked, and the server lives on

    assert stored_ids(stack) == {first["activityid"], second["activityid"]}


def test_a_retried_batch_after_a_gateway_error_meets_its_own_rows_as_duplicates(
    api: DataverseApi, stack: Stack, wire: Wire, received_email: EmailFactory
) -> None:
    stack.dataverse.set_faults(gateway_after_apply_every=1)
    email = received_email(activityid=str(uuid.uuid4()))
    item = wire.change_set(wire.operation("POST", "emails", email, "1"))

    assert api.batch(item, continue_on_error=True).status_code == 504
    stack.dataverse.set_faults(gateway_after_apply_every=0)
    retry = api.batch(item, continue_on_error=True)

    assert wire.statuses(retry) == [412]
    assert parsed(retry).failed[0].error_code == "0x80040237"
