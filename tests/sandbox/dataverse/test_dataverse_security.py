"""The security model of the sandbox's application user: WhoAmI and RetrieveUserPrivileges agree, and a
missing privilege answers Dataverse's 403 ``0x80040220`` naming it, for the operation that needs it only."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
import requests

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.dataverse.behaviour import KNOWN_PRIVILEGES

if TYPE_CHECKING:
    from conftest import DataverseApi, EmailFactory, Stack, Wire

MARIA = personas.stable_id("contact", "maria")
ALICE = personas.stable_id("systemuser", "alice")
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def denied(response: requests.Response, privilege: str, otc: int, entity: str) -> None:
    """Assert the real shape of a PrivilegeDenied answer."""
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "0x80040220"
    assert re.fullmatch(
        rf"Principal user \(Id={GUID}, type=8, roleCount=1, privilegeCount=\d+, "
        rf"accessMode='4 Non-interactive', AADObjectId='{GUID}', businessUnitId={GUID}\), "
        rf"is missing {privilege} privilege \(Id={GUID}\) on OTC={otc} for entity '{entity}' "
        rf"\(LocalizedName='[^']+'\)\. context\.Caller={GUID}\. Consider "
        r"adding missed privilege to one of the principal \(user/team\) roles\.",
        error["message"],
    ), error["message"]


def test_whoami_and_retrieve_user_privileges_describe_the_same_application_user(
    api: DataverseApi, stack: Stack
) -> None:
    stack.dataverse.set_behaviour(missing_privileges=["prvAppendToLead"])
    me = api.get("WhoAmI").json()

    response = api.get(f"systemusers({me['UserId']})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()")

    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"].endswith("$metadata#Microsoft.Dynamics.CRM.RetrieveUserPrivilegesResponse")
    names = {p["PrivilegeName"] for p in body["RolePrivileges"]}
    assert names == set(KNOWN_PRIVILEGES) - {"prvAppendToLead"}
    assert {"prvCreateActivity", "prvAppendToContact", "prvAssignActivity", "prvReadUser"} <= names
    assert {p["Depth"] for p in body["RolePrivileges"]} == {"Global"}
    assert {p["BusinessUnitId"] for p in body["RolePrivileges"]} == {me["BusinessUnitId"]}
    assert all(re.fullmatch(GUID, p["PrivilegeId"]) for p in body["RolePrivileges"])


def test_the_bound_function_must_be_qualified_and_the_user_must_exist(api: DataverseApi) -> None:
    me = api.get("WhoAmI").json()["UserId"]

    unqualified = api.get(f"systemusers({me})/RetrieveUserPrivileges()")
    nobody = api.get(
        "systemusers(00000000-0000-0000-0000-0000000000aa)/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()"
    )

    assert unqualified.status_code == 404
    assert (
        unqualified.json()["error"]["message"]
        == "Resource not found for the segment 'RetrieveUserPrivileges'."
    )
    assert nobody.status_code == 404


def test_without_create_on_activities_no_email_is_created(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    stack.dataverse.set_behaviour(missing_privileges=["prvCreateActivity"])

    response = api.post("emails", json=received_email())

    denied(response, "prvCreateActivity", 4202, "email")
    assert stack.dataverse.emails_with_parties() == []
    assert api.post("contacts", json={"lastname": "Still allowed"}).status_code == 204


def test_append_to_is_needed_on_each_bound_table_and_append_on_the_email(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    stack.dataverse.set_behaviour(missing_privileges=["prvAppendToContact"])
    unbound = received_email(
        email_activity_parties=[{"addressused": "maria.garcia@fabrikam.example", "participationtypemask": 1}]
    )
    unbound.pop("regardingobjectid_contact_email@odata.bind")

    regarding_a_contact = api.post("emails", json=received_email())
    without_contacts = api.post("emails", json=unbound)
    stack.dataverse.set_behaviour(missing_privileges=["prvAppendActivity"])
    no_append = api.post("emails", json=received_email())

    denied(regarding_a_contact, "prvAppendToContact", 2, "contact")
    assert without_contacts.status_code == 204
    denied(no_append, "prvAppendActivity", 4202, "email")


def test_setting_another_owner_needs_assign(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    stack.dataverse.set_behaviour(missing_privileges=["prvAssignActivity"])
    me = api.get("WhoAmI").json()["UserId"]

    to_alice = api.post("emails", json=received_email())
    to_myself = api.post("emails", json=received_email(**{"ownerid@odata.bind": f"/systemusers({me})"}))

    denied(to_alice, "prvAssignActivity", 4202, "email")
    assert to_myself.status_code == 204


def test_reading_lookup_tables_and_closing_emails_need_read_and_write(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    activity_id = api.create_email(received_email())
    stack.dataverse.set_behaviour(missing_privileges=["prvReadContact", "prvWriteActivity", "prvReadUser"])

    contacts = api.get("contacts?$select=fullname&$filter=emailaddress1 eq 'priya@northwind.example'")
    one_contact = api.get(f"contacts({MARIA})")
    users = api.get("systemusers?$select=fullname")
    close = api.patch(f"emails({activity_id})", json={"statecode": 1, "statuscode": 4})
    accounts = api.get("accounts?$select=name")

    denied(contacts, "prvReadContact", 2, "contact")
    denied(one_contact, "prvReadContact", 2, "contact")
    denied(users, "prvReadUser", 8, "systemuser")
    denied(close, "prvWriteActivity", 4202, "email")
    assert accounts.status_code == 200
    assert stack.dataverse.emails_with_parties()[0]["statecode"] == 0


def test_inside_a_batch_the_denial_is_the_failing_part(
    api: DataverseApi, stack: Stack, wire: Wire, received_email: EmailFactory
) -> None:
    stack.dataverse.set_behaviour(missing_privileges=["prvAppendToUser"])  # the To party is Alice

    response = api.batch(wire.change_set(wire.operation("POST", "emails", received_email(), "1")))

    assert response.status_code == 400
    assert wire.statuses(response) == [403]
    assert "is missing prvAppendToUser privilege" in response.text


def test_migrated_creation_dates_need_the_override_privilege(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    stack.dataverse.set_behaviour(missing_privileges=["prvOverrideCreatedOnCreatedBy"])

    response = api.post("emails", json=received_email(overriddencreatedon="2026-11-02T10:15:00Z"))

    denied(response, "prvOverrideCreatedOnCreatedBy", 4202, "email")


@pytest.mark.parametrize("route", ["behaviour", "reset"])
def test_the_admin_endpoint_sets_missing_privileges_and_reset_restores_them(
    api: DataverseApi, stack: Stack, route: str
) -> None:
    admin = f"{stack.dataverse_url}/_sandbox"
    verify = str(stack.tls.ca_pem)
    answer = requests.post(
        f"{admin}/behaviour", json={"missing_privileges": ["prvReadAccount"]}, verify=verify, timeout=10
    )
    bad = requests.post(
        f"{admin}/behaviour", json={"missing_privileges": ["prvFly"]}, verify=verify, timeout=10
    )
    assert answer.json()["missing_privileges"] == ["prvReadAccount"]
    assert bad.status_code == 400
    assert "prvFly" in bad.json()["error"]
    assert api.get("accounts").status_code == 403

    if route == "reset":
        requests.post(f"{admin}/reset", verify=verify, timeout=10).raise_for_status()
        assert api.get("accounts").status_code == 200
    else:
        requests.post(f"{admin}/behaviour", json={"missing_privileges": []}, verify=verify, timeout=10)
        assert api.get("accounts").status_code == 200


def test_attachments_use_the_activity_privileges_of_their_email(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    email_id = api.create_email(received_email())
    body = {
        "objectid_email@odata.bind": f"/emails({email_id})",
        "objecttypecode": "email",
        "filename": "a.txt",
        "mimetype": "text/plain",
        "body": "aGVsbG8=",
    }
    stack.dataverse.set_behaviour(missing_privileges=["prvAppendToActivity"])

    refused = api.post("activitymimeattachments", json=body)
    stack.dataverse.set_behaviour(missing_privileges=[])
    accepted = api.post("activitymimeattachments", json=body)

    denied(refused, "prvAppendToActivity", 4202, "email")
    assert accepted.status_code == 204
