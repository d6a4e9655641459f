"""``activitymimeattachments``: bound to an email by id or by ``$n`` in the email's change set, validated by
the real metadata's names and lengths, limited by ``organization.maxuploadfilesize`` on the Base64 text,
and (switch) refused or accepted on a closed email."""

from __future__ import annotations

import base64
import uuid
from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from conftest import DataverseApi, EmailFactory, Stack, Wire

PDF = b"%PDF-1.7 sandbox attachment\n" * 10


def attachment(
    email_ref: str, nav: str = "objectid_email", data: bytes = PDF, **extra: Any
) -> dict[str, Any]:
    return {
        f"{nav}@odata.bind": email_ref,
        "objecttypecode": "email",
        "filename": "quote.pdf",
        "mimetype": "application/pdf",
        "subject": "Quote",
        "body": base64.b64encode(data).decode("ascii"),
        **extra,
    }


def error_of(response: requests.Response) -> tuple[str, str]:
    error = response.json()["error"]
    return error["code"], error["message"]


def test_the_organization_advertises_the_upload_limit(api: DataverseApi, stack: Stack) -> None:
    default = api.get("organizations?$select=maxuploadfilesize").json()["value"]
    stack.dataverse.set_behaviour(max_upload_file_size=1_048_576)
    changed = api.get("organizations?$select=maxuploadfilesize").json()["value"]

    assert [row["maxuploadfilesize"] for row in default] == [5_242_880]
    assert [row["maxuploadfilesize"] for row in changed] == [1_048_576]


@pytest.mark.parametrize("nav", ["objectid_email", "objectid_activitypointer"])
def test_an_attachment_with_a_client_id_binds_to_an_email_by_either_navigation_property(
    api: DataverseApi, stack: Stack, received_email: EmailFactory, nav: str
) -> None:
    email_id = api.create_email(received_email())
    attachment_id = str(uuid.uuid4())

    response = api.post(
        "activitymimeattachments",
        json=attachment(f"/emails({email_id})", nav, activitymimeattachmentid=attachment_id),
    )
    read = api.get(
        f"activitymimeattachments?$select=filename,filesize,attachmentnumber,objecttypecode,_objectid_value"
        f"&$filter=_objectid_value eq {email_id}",
        headers={"Prefer": 'odata.include-annotations="*"'},
    ).json()["value"]

    assert response.status_code == 204, response.text
    assert response.headers["OData-EntityId"].endswith(f"/activitymimeattachments({attachment_id})")
    assert [(a["filename"], a["filesize"], a["attachmentnumber"], a["objecttypecode"]) for a in read] == [
        ("quote.pdf", len(PDF), 0, "email")
    ]
    assert read[0]["_objectid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "email"
    assert api.get(f"emails({email_id})?$select=attachmentcount").json()["attachmentcount"] == 1


def test_the_undeclared_objectid_bind_and_an_attachment_without_its_email_are_refused(
    api: DataverseApi, received_email: EmailFactory
) -> None:
    email_id = api.create_email(received_email())
    body = attachment(f"/emails({email_id})")

    undeclared = api.post("activitymimeattachments", json=attachment(f"/emails({email_id})", "objectid"))
    orphan = api.post("activitymimeattachments", json={k: v for k, v in body.items() if "@" not in k})
    missing_email = api.post("activitymimeattachments", json=attachment(f"/emails({uuid.uuid4()})"))

    assert undeclared.status_code == 400
    assert "An undeclared property 'objectid'" in error_of(undeclared)[1]
    assert orphan.status_code == 400
    assert "'objectid' of an attachment is required" in error_of(orphan)[1]
    assert missing_email.status_code == 404


def test_email_and_attachments_in_one_change_set_by_content_id_then_closed(
    api: DataverseApi, stack: Stack, wire: Wire, received_email: EmailFactory
) -> None:
    email = received_email()
    email.pop("activityid")

    response = api.batch(
        wire.change_set(
            wire.operation("POST", "emails", email, "1"),
            wire.operation("POST", "activitymimeattachments", attachment("$1"), "2"),
            wire.operation("POST", "activitymimeattachments", attachment("$1", filename="b.pdf"), "3"),
            wire.operation("PATCH", "$1", {"statecode": 1, "statuscode": 4}, "4"),
        )
    )

    assert wire.statuses(response) == [204, 204, 204, 204], response.text
    [stored] = stack.dataverse.emails_with_parties()
    assert stored["attachmentcount"] == 2
    numbers = sorted(a["attachmentnumber"] for a in stack.dataverse.attachments_of(stored["activityid"]))
    assert numbers == [0, 1]


def test_a_body_over_the_limit_counts_base64_characters(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    stack.dataverse.set_behaviour(max_upload_file_size=4000)
    email_id = api.create_email(received_email())
    fits = bytes(2999)  # 4,000 Base64 characters
    too_big = bytes(3001)  # 4,004

    ok = api.post("activitymimeattachments", json=attachment(f"/emails({email_id})", data=fits))
    refused = api.post("activitymimeattachments", json=attachment(f"/emails({email_id})", data=too_big))

    assert ok.status_code == 204
    assert refused.status_code == 400
    assert error_of(refused) == ("0x80044a02", "Attachment file size is too big.")


def test_an_admin_can_raise_the_limit_on_the_organization_row(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    stack.dataverse.set_behaviour(max_upload_file_size=100)
    email_id = api.create_email(received_email())
    [organization] = api.get("organizations?$select=organizationid").json()["value"]

    before = api.post("activitymimeattachments", json=attachment(f"/emails({email_id})"))
    raised = api.patch(f"organizations({organization['organizationid']})", json={"maxuploadfilesize": 10_000})
    after = api.post("activitymimeattachments", json=attachment(f"/emails({email_id})"))

    assert before.status_code == 400
    assert raised.status_code == 204
    assert after.status_code == 204


@pytest.mark.parametrize(("mode", "status"), [("rejected", 400), ("allowed", 204)])
def test_attachments_on_a_completed_email(
    api: DataverseApi, stack: Stack, received_email: EmailFactory, mode: str, status: int
) -> None:
    stack.dataverse.set_behaviour(attachments_on_closed_email=mode)
    email_id = api.create_email(received_email())
    api.patch(f"emails({email_id})", json={"statecode": 1, "statuscode": 4}).raise_for_status()

    response = api.post("activitymimeattachments", json=attachment(f"/emails({email_id})"))

    assert response.status_code == status
    if status == 400:
        assert "is read-only because its state is Completed" in error_of(response)[1]


def test_a_second_attachment_with_the_same_id_is_a_duplicate_key_like_emails(
    api: DataverseApi, received_email: EmailFactory
) -> None:
    email_id = api.create_email(received_email())
    body = attachment(f"/emails({email_id})", activitymimeattachmentid=str(uuid.uuid4()))

    first = api.post("activitymimeattachments", json=body)
    second = api.post("activitymimeattachments", json=body)

    assert first.status_code == 204
    assert second.status_code == 412
    assert error_of(second)[0] == "0x80040237"


def test_lengths_and_the_body_encoding_are_validated(api: DataverseApi, received_email: EmailFactory) -> None:
    email_id = api.create_email(received_email())

    long_name = api.post(
        "activitymimeattachments", json=attachment(f"/emails({email_id})", filename="a" * 256)
    )
    not_base64 = api.post(
        "activitymimeattachments", json={**attachment(f"/emails({email_id})"), "body": "not base64!"}
    )
    wrong_type = api.post(
        "activitymimeattachments",
        json={**attachment(f"/emails({email_id})"), "objecttypecode": "appointment"},
    )

    assert long_name.status_code == 400
    assert error_of(long_name) == (
        "0x80044331",
        "A validation error occurred.  The length of the 'filename' attribute of the "
        "'activitymimeattachment' entity exceeded the maximum allowed length of '255'.",
    )
    assert not_base64.status_code == 400
    assert wrong_type.status_code == 400


def test_deleting_an_email_deletes_its_attachments(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    email_id = api.create_email(received_email())
    api.post("activitymimeattachments", json=attachment(f"/emails({email_id})")).raise_for_status()

    assert api.request("DELETE", f"emails({email_id})").status_code == 204
    assert api.get("activitymimeattachments").json()["value"] == []
