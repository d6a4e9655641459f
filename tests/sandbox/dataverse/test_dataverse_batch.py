"""``$batch`` execution: atomic change sets, ``$n`` references, stop-on-error versus continue-on-error."""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

import requests

from nylas_dataverse_sandbox.dataverse.throttle import ServiceProtectionLimits

if TYPE_CHECKING:
    from conftest import DataverseApi, EmailFactory, Stack

CRLF = "\r\n"


def operation(
    method: str, url: str, body: dict[str, Any] | None = None, content_id: str | None = None
) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"{method} {url} HTTP/1.1"]
    if body is not None:
        lines += ["Content-Type: application/json; type=entry", "", json.dumps(body)]
    else:
        lines += [""]
    return CRLF.join(lines)


def change_set(*operations: str) -> str:
    boundary = f"changeset_{uuid.uuid4()}"
    parts = [f"--{boundary}{CRLF}{op}" for op in operations]
    inner = CRLF.join(parts) + f"{CRLF}--{boundary}--"
    return f"Content-Type: multipart/mixed; boundary={boundary}{CRLF}{CRLF}{inner}"


def send_batch(api: DataverseApi, *items: str, continue_on_error: bool = False) -> requests.Response:
    boundary = f"batch_{uuid.uuid4()}"
    body = CRLF.join(f"--{boundary}{CRLF}{item}" for item in items) + f"{CRLF}--{boundary}--{CRLF}"
    headers = {"Content-Type": f"multipart/mixed; boundary={boundary}"}
    if continue_on_error:
        headers["Prefer"] = "odata.continue-on-error"
    return api.post("$batch", data=body.encode("utf-8"), headers=headers)


def statuses(response: requests.Response) -> list[int]:
    return [int(s) for s in re.findall(r"^HTTP/1\.1 (\d{3}) ", response.text, flags=re.MULTILINE)]


def test_two_change_sets_one_failing_stops_the_batch_without_continue_on_error(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    good, bad, never = received_email(), received_email(subject="x" * 801), received_email()

    response = send_batch(
        api,
        change_set(operation("POST", "/api/data/v9.2/emails", good, "1")),
        change_set(
            operation("POST", "/api/data/v9.2/emails", received_email(), "2"),
            operation("POST", "/api/data/v9.2/emails", bad, "3"),
        ),
        operation("POST", "/api/data/v9.2/emails", never),
    )

    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("multipart/mixed; boundary=batchresponse_")
    assert statuses(response) == [204, 400]
    assert "Content-ID: 3" in response.text
    assert "0x80044331" in response.text
    stored = {e["activityid"] for e in stack.dataverse.emails_with_parties()}
    assert stored == {good["activityid"]}  # the failing change set left nothing behind


def test_continue_on_error_runs_every_part_and_answers_200(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    good, bad, later = received_email(), received_email(subject="x" * 801), received_email()

    response = send_batch(
        api,
        change_set(operation("POST", "emails", good, "1")),
        change_set(operation("POST", "emails", received_email(), "2"), operation("POST", "emails", bad, "3")),
        operation("POST", f"{api.root}/emails", later),
        continue_on_error=True,
    )

    assert response.status_code == 200
    assert statuses(response) == [204, 400, 204]
    assert "OData-EntityId: " in response.text
    assert "Location: " in response.text
    stored = {e["activityid"] for e in stack.dataverse.emails_with_parties()}
    assert stored == {good["activityid"], later["activityid"]}


def test_content_id_references_link_operations_within_a_change_set(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    body = received_email()
    body.pop("activityid")

    response = send_batch(
        api,
        change_set(
            operation("POST", "/api/data/v9.2/emails", body, "1"),
            operation("PATCH", "$1", {"statecode": 1, "statuscode": 4}, "2"),
        ),
    )

    assert response.status_code == 200, response.text
    assert statuses(response) == [204, 204]
    [email] = stack.dataverse.emails_with_parties()
    assert (email["statecode"], email["statuscode"]) == (1, 4)


def test_reference_to_an_undeclared_content_id_fails_its_change_set(api: DataverseApi, stack: Stack) -> None:
    response = send_batch(api, change_set(operation("PATCH", "$7", {"subject": "x"}, "1")))

    assert response.status_code == 400
    assert "Content-ID Reference: '$7' does not exist in the batch context." in response.text
    assert stack.dataverse.emails_with_parties() == []


def test_get_parts_answer_json_and_the_batch_counts_as_one_request(api: DataverseApi, stack: Stack) -> None:
    stack.dataverse.set_limits(ServiceProtectionLimits(max_requests=2, time_scale=0.01))  # a 3 s window

    response = send_batch(
        api,
        operation("GET", "/api/data/v9.2/contacts?$select=fullname&$filter=lastname eq 'Raman'"),
        operation("GET", "accounts?$select=name&$top=1"),
        operation("GET", "leads?$select=fullname"),
    )
    second = api.get("WhoAmI")
    third = api.get("WhoAmI")

    assert response.status_code == 200
    assert statuses(response) == [200, 200, 200]
    assert '"fullname": "Priya Raman"' in response.text
    assert "Content-Type: application/json; odata.metadata=minimal" in response.text
    assert second.status_code == 200
    assert third.status_code == 429


def test_get_inside_a_change_set_rejects_the_whole_batch(api: DataverseApi) -> None:
    response = send_batch(api, change_set(operation("GET", "contacts", None, "1")))

    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("An invalid HTTP method 'GET'")
