"""Creating and closing email activities: parties, binds, state rules and the validation Dataverse applies."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
import requests

from nylas_dataverse_sandbox import personas

if TYPE_CHECKING:
    from conftest import DataverseApi, EmailFactory, Stack

MARIA = personas.stable_id("contact", "maria")
ALICE = personas.stable_id("systemuser", "alice")
FABRIKAM = personas.stable_id("account", "fabrikam")


def error_of(response: requests.Response) -> tuple[str, str]:
    error = response.json()["error"]
    return error["code"], error["message"]


def test_create_answers_204_with_absolute_entity_id_and_stores_parties(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    body = received_email()

    response = api.post("emails", json=body)

    assert response.status_code == 204
    assert response.headers["OData-EntityId"] == f"{api.root}/emails({body['activityid']})"
    [stored] = stack.dataverse.emails_with_parties()
    assert stored["activityid"] == body["activityid"]
    assert stored["_regardingobjectid_value"] == MARIA
    assert stored["_ownerid_value"] == ALICE
    assert stored["_emailsender_value"] == MARIA
    assert (stored["statecode"], stored["statuscode"]) == (0, 1)
    parties = {p["participationtypemask"]: p for p in stored["email_activity_parties"]}
    assert parties[1]["_partyid_value"] == MARIA
    assert parties[1]["addressused"] == "maria.garcia@fabrikam.example"  # filled from the bound contact
    assert parties[2]["_partyid_value"] == ALICE
    assert parties[3]["addressused"] == "unknown@example.org"
    assert "_partyid_value" not in parties[3]


def test_return_representation_answers_201_with_selected_columns_and_no_entity_id(
    api: DataverseApi, received_email: EmailFactory
) -> None:
    body = received_email()

    response = api.post(
        "emails?$select=subject,messageid", json=body, headers={"Prefer": "return=representation"}
    )

    assert response.status_code == 201
    assert "OData-EntityId" not in response.headers
    assert response.headers["Preference-Applied"] == "return=representation"
    created = response.json()
    assert created["@odata.context"].endswith("/$metadata#emails(subject,messageid)/$entity")
    assert created["@odata.etag"].startswith('W/"')
    assert created["activityid"] == body["activityid"]
    assert created["messageid"] == body["messageid"]
    assert "description" not in created


def test_read_back_with_expanded_parties_and_lookup_annotations(
    api: DataverseApi, received_email: EmailFactory
) -> None:
    activity_id = api.create_email(received_email())

    response = api.get(
        f"emails({activity_id})?$select=subject,_regardingobjectid_value&$expand=email_activity_parties($select=participationtypemask,addressused)",
        headers={"Prefer": 'odata.include-annotations="*"'},
    )

    assert response.status_code == 200
    email = response.json()
    assert email["_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "contact"
    masks = sorted(p["participationtypemask"] for p in email["email_activity_parties"])
    assert masks == [1, 2, 3]
    assert all("activitypartyid" in p for p in email["email_activity_parties"])


def test_statecode_on_create_is_ignored_and_the_email_is_closed_with_a_patch(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    activity_id = api.create_email(received_email(statecode=1))
    assert stack.dataverse.emails_with_parties()[0]["statecode"] == 0

    closed = api.patch(f"emails({activity_id})", json={"statecode": 1, "statuscode": 4})

    assert closed.status_code == 204
    [email] = stack.dataverse.emails_with_parties()
    assert (email["statecode"], email["statuscode"]) == (1, 4)


def test_a_completed_status_on_create_is_rejected(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    body = received_email(statuscode=4)

    response = api.post("emails", json=body)

    assert response.status_code == 400
    assert error_of(response) == (
        "0x80048408",
        f"4 is not a valid status code for state code EmailState.Open on email with Id {body['activityid']}.",
    )
    assert stack.dataverse.emails_with_parties() == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"statecode": 1, "statuscode": 1}, 400),
        ({"statecode": 1}, 204),
        ({"statuscode": 8}, 204),
        ({"statuscode": 3}, 400),
    ],
    ids=["draft-is-not-completed", "state-takes-default-status", "open-status-alone", "closed-status-alone"],
)
def test_state_and_status_must_form_a_valid_pair(
    api: DataverseApi, change: dict[str, int], expected: int, received_email: EmailFactory
) -> None:
    activity_id = api.create_email(received_email())

    response = api.patch(f"emails({activity_id})", json=change)

    assert response.status_code == expected
    if expected == 400:
        assert error_of(response)[0] == "0x80048408"


def test_a_completed_email_is_read_only(api: DataverseApi, received_email: EmailFactory) -> None:
    activity_id = api.create_email(received_email())
    assert api.patch(f"emails({activity_id})", json={"statecode": 1, "statuscode": 4}).status_code == 204

    for change in ({"subject": "edited"}, {"statecode": 1, "statuscode": 4}):
        response = api.patch(f"emails({activity_id})", json=change)
        assert response.status_code == 400
        code, message = error_of(response)
        assert code == "0x80040203"
        assert "read-only" in message


@pytest.mark.parametrize(
    ("field", "limit"), [("subject", 800), ("messageid", 320), ("torecipients", 500), ("sender", 250)]
)
def test_string_lengths_are_enforced_with_dataverse_message(
    api: DataverseApi, field: str, limit: int, received_email: EmailFactory
) -> None:
    assert api.post("emails", json=received_email(**{field: "x" * limit})).status_code == 204

    response = api.post("emails", json=received_email(**{field: "x" * (limit + 1)}))

    assert response.status_code == 400
    assert error_of(response) == (
        "0x80044331",
        f"A validation error occurred.  The length of the '{field}' attribute of the 'email' entity exceeded "
        f"the maximum allowed length of '{limit}'.",
    )


def test_lengths_count_utf16_code_units_like_dotnet(api: DataverseApi, received_email: EmailFactory) -> None:
    response = api.post("emails", json=received_email(subject="😀" * 401))  # 802 UTF-16 units

    assert response.status_code == 400
    assert error_of(response)[0] == "0x80044331"


def test_party_address_longer_than_320_is_rejected(api: DataverseApi, received_email: EmailFactory) -> None:
    party = {"addressused": "a" * 315 + "@x.org", "participationtypemask": 2}

    response = api.post("emails", json=received_email(email_activity_parties=[party]))

    assert response.status_code == 400
    assert "'addressused' attribute of the 'activityparty' entity" in error_of(response)[1]


def test_unknown_property_is_rejected_with_the_type_name(
    api: DataverseApi, received_email: EmailFactory
) -> None:
    response = api.post("emails", json=received_email(in_reply_to="<x@y>"))

    assert response.status_code == 400
    assert error_of(response)[1] == (
        "The property 'in_reply_to' does not exist on type 'Microsoft.Dynamics.CRM.email'. "
        "Make sure to only use property names that are defined by the type."
    )


def test_navigation_property_names_without_the_email_suffix_are_undeclared(
    api: DataverseApi, received_email: EmailFactory
) -> None:
    body = received_email()
    body["regardingobjectid_contact@odata.bind"] = body.pop("regardingobjectid_contact_email@odata.bind")

    response = api.post("emails", json=body)

    assert response.status_code == 400
    assert error_of(response)[1] == (
        "An undeclared property 'regardingobjectid_contact' which only has property annotations in the "
        "payload but no property value was found in the payload. In OData, only declared navigation "
        "properties and declared named streams can be represented as properties without values."
    )


def test_bind_to_a_missing_row_is_404(api: DataverseApi, received_email: EmailFactory) -> None:
    missing = str(uuid.uuid4())

    response = api.post(
        "emails",
        json=received_email(**{"regardingobjectid_contact_email@odata.bind": f"contacts({missing})"}),
    )

    assert response.status_code == 404
    assert error_of(response) == ("0x80040217", f"contact With Id = {missing} Does Not Exist")


def test_bind_must_point_at_the_table_the_navigation_property_targets(
    api: DataverseApi, received_email: EmailFactory
) -> None:
    response = api.post(
        "emails",
        json=received_email(**{"regardingobjectid_contact_email@odata.bind": f"/accounts({FABRIKAM})"}),
    )

    assert response.status_code == 400
    assert "expects an entity of type 'Microsoft.Dynamics.CRM.contact'" in error_of(response)[1]


def test_binding_the_account_through_its_own_navigation_property_works(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    body = received_email()
    body.pop("regardingobjectid_contact_email@odata.bind")
    body["regardingobjectid_account_email@odata.bind"] = f"/accounts({FABRIKAM})"

    assert api.post("emails", json=body).status_code == 204
    assert stack.dataverse.emails_with_parties()[0]["_regardingobjectid_value"] == FABRIKAM


@pytest.mark.parametrize(
    ("party", "fragment"),
    [
        ({"addressused": "a@b.example", "participationtypemask": 5}, "participationtypemask 5 is not valid"),
        ({"participationtypemask": 2}, "names no party"),
        ({"addressused": "a@b.example"}, "has no participationtypemask"),
        ({"partyid_contact": "x", "participationtypemask": 2}, "navigation property 'partyid_contact'"),
        (
            {"addressused": "a@b.example", "participationtypemask": 2, "color": 1},
            "type 'Microsoft.Dynamics.CRM.activityparty'",
        ),
    ],
    ids=["mask-5", "no-party", "no-mask", "bind-without-annotation", "unknown-column"],
)
def test_invalid_activity_parties_are_rejected(
    api: DataverseApi, party: dict[str, object], fragment: str, received_email: EmailFactory
) -> None:
    response = api.post("emails", json=received_email(email_activity_parties=[party]))

    assert response.status_code == 400
    assert fragment in error_of(response)[1]


def test_read_only_columns_are_dropped_not_stored(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    response = api.post(
        "emails", json=received_email(inreplyto="<parent@x>", createdon="2001-01-01T00:00:00Z")
    )

    assert response.status_code == 204
    [email] = stack.dataverse.emails_with_parties()
    assert "inreplyto" not in email
    assert not email["createdon"].startswith("2001")


def test_a_second_create_with_the_same_activityid_fails_as_duplicate_key(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    body = received_email()
    assert api.post("emails", json=body).status_code == 204

    response = api.post("emails", json=received_email(activityid=body["activityid"], subject="other"))

    assert response.status_code == 412
    assert error_of(response)[0] == "0x80040237"
    [email] = stack.dataverse.emails_with_parties()
    assert email["subject"] == body["subject"]
    assert len(email["email_activity_parties"]) == 3


def test_wrong_value_types_are_rejected(api: DataverseApi, received_email: EmailFactory) -> None:
    response = api.post("emails", json=received_email(directioncode="no"))

    assert response.status_code == 400
    assert error_of(response)[1] == "Cannot convert the literal 'no' to the expected type 'Edm.Boolean'."


def test_patch_without_if_match_upserts_and_with_if_match_star_requires_the_row(
    api: DataverseApi, stack: Stack
) -> None:
    missing = str(uuid.uuid4())
    refused = api.patch(f"emails({missing})", json={"subject": "x"}, headers={"If-Match": "*"})
    assert refused.status_code == 404
    assert error_of(refused) == ("0x80040217", f"email With Id = {missing} Does Not Exist")

    created = api.patch(f"emails({missing})", json={"subject": "upserted"})

    assert created.status_code == 204
    assert created.headers["OData-EntityId"].endswith(f"/emails({missing})")
    assert stack.dataverse.emails_with_parties()[0]["subject"] == "upserted"
    exists = api.patch(f"emails({missing})", json={"subject": "again"}, headers={"If-None-Match": "*"})
    assert exists.status_code == 412


def test_stale_etag_is_refused(api: DataverseApi, received_email: EmailFactory) -> None:
    activity_id = api.create_email(received_email())
    etag = api.get(f"emails({activity_id})?$select=subject").json()["@odata.etag"]
    assert (
        api.patch(f"emails({activity_id})", json={"subject": "one"}, headers={"If-Match": etag}).status_code
        == 204
    )

    stale = api.patch(f"emails({activity_id})", json={"subject": "two"}, headers={"If-Match": etag})

    assert stale.status_code == 412
    assert error_of(stale)[0] == "0x80060882"


def test_activityparties_are_read_only_through_their_entity_set(
    api: DataverseApi, received_email: EmailFactory
) -> None:
    api.create_email(received_email())

    listed = api.get("activityparties?$select=addressused,participationtypemask")
    created = api.post("activityparties", json={"addressused": "a@b.example", "participationtypemask": 2})

    assert listed.status_code == 200
    assert len(listed.json()["value"]) == 3
    assert created.status_code == 405
