"""Open behaviours of email creation and queries, each with both answers: the sender-party restriction,
messageid uniqueness, duplicate primary keys, length units, description filters and URL length; plus the
threading lookup, contacts created in the same change set, and the inactive rows of the seed."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
import requests

from nylas_dataverse_sandbox import personas

if TYPE_CHECKING:
    from conftest import DataverseApi, EmailFactory, Stack, Wire

MARIA = personas.stable_id("contact", "maria")
ALICE = personas.stable_id("systemuser", "alice")
FABRIKAM = personas.stable_id("account", "fabrikam")
LENA = personas.stable_id("lead", "lena")


def error_of(response: requests.Response) -> tuple[str, str]:
    error = response.json()["error"]
    return error["code"], error["message"]


def sender(bind: dict[str, str]) -> list[dict[str, object]]:
    return [
        {**bind, "participationtypemask": 1},
        {"partyid_systemuser@odata.bind": f"/systemusers({ALICE})", "participationtypemask": 2},
    ]


# --- the From party (uncertain-behaviours row 9) ----------------------------------------------------------
@pytest.mark.parametrize(
    ("bind", "allowed_when_restricted"),
    [
        ({"partyid_contact@odata.bind": f"/contacts({MARIA})"}, False),
        ({"partyid_account@odata.bind": f"/accounts({FABRIKAM})"}, False),
        ({"partyid_lead@odata.bind": f"/leads({LENA})"}, False),
        ({"partyid_systemuser@odata.bind": f"/systemusers({ALICE})"}, True),
        ({"addressused": "stranger@unknown-corp.example"}, True),
    ],
)
def test_the_sender_party_restriction_allows_only_the_from_lists_targets(
    api: DataverseApi,
    stack: Stack,
    received_email: EmailFactory,
    bind: dict[str, str],
    allowed_when_restricted: bool,
) -> None:
    lenient = api.post("emails", json=received_email(email_activity_parties=sender(bind)))
    stack.dataverse.set_behaviour(sender_party_restricted=True)
    strict = api.post("emails", json=received_email(email_activity_parties=sender(bind)))

    assert lenient.status_code == 204
    if allowed_when_restricted:
        assert strict.status_code == 204
    else:
        assert strict.status_code == 400
        assert error_of(strict) == ("0x80043506", "Cannot create activity party of specified object type.")
    assert len(stack.dataverse.emails_with_parties()) == (2 if allowed_when_restricted else 1)


def test_to_cc_and_bcc_may_bind_contacts_accounts_and_leads_even_when_restricted(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    stack.dataverse.set_behaviour(sender_party_restricted=True)
    parties = [
        {"partyid_systemuser@odata.bind": f"/systemusers({ALICE})", "participationtypemask": 1},
        {"partyid_contact@odata.bind": f"/contacts({MARIA})", "participationtypemask": 2},
        {"partyid_account@odata.bind": f"/accounts({FABRIKAM})", "participationtypemask": 3},
        {"partyid_lead@odata.bind": f"/leads({LENA})", "participationtypemask": 4},
    ]

    assert api.post("emails", json=received_email(email_activity_parties=parties)).status_code == 204


# --- messageid uniqueness (row 13) -------------------------------------------------------------------------
DUPLICATE = "A record was not created or updated because a duplicate of the current record already exists."


@pytest.mark.parametrize(
    ("mode", "header", "refused"),
    [
        ("allowed", None, False),
        ("rejected", None, True),
        ("rejected-when-detection-on", None, False),
        ("rejected-when-detection-on", "false", True),
        ("rejected-when-detection-on", "true", False),
    ],
)
def test_a_second_email_with_a_known_messageid(
    api: DataverseApi,
    stack: Stack,
    received_email: EmailFactory,
    mode: str,
    header: str | None,
    refused: bool,
) -> None:
    stack.dataverse.set_behaviour(messageid_duplicates=mode)
    first = received_email(messageid="<Thread-42@Mail.Fabrikam.example>")
    headers = {"MSCRM.SuppressDuplicateDetection": header} if header else {}
    assert api.post("emails", json=first).status_code == 204

    second = api.post(
        "emails", json=received_email(messageid="<thread-42@mail.fabrikam.example>"), headers=headers
    )

    if refused:
        assert second.status_code == 500
        assert error_of(second) == ("0x80040333", DUPLICATE)
        assert len(stack.dataverse.emails_with_parties()) == 1
    else:
        assert second.status_code == 204
        assert len(stack.dataverse.emails_with_parties()) == 2


# --- duplicate primary keys (row 12) and length units (row 4) ----------------------------------------------
@pytest.mark.parametrize(
    ("status", "wording", "message"),
    [
        (412, "sql", "Cannot insert duplicate key."),
        (412, "matching-key", "A record with matching key values already exists."),
        (500, "integrity", "Operation failed due to a SQL integrity violation."),
    ],
)
def test_the_duplicate_key_answer_is_switchable_and_keeps_its_code(
    api: DataverseApi, stack: Stack, received_email: EmailFactory, status: int, wording: str, message: str
) -> None:
    stack.dataverse.set_behaviour(duplicate_key_status=status, duplicate_key_message=wording)
    body = received_email()
    api.create_email(body)

    again = api.post("emails", json=body)

    assert again.status_code == status
    assert error_of(again) == ("0x80040237", message)


@pytest.mark.parametrize(("unit", "accepted"), [("utf16", False), ("codepoints", True)])
def test_lengths_count_utf16_units_or_code_points(
    api: DataverseApi, stack: Stack, received_email: EmailFactory, unit: str, accepted: bool
) -> None:
    stack.dataverse.set_behaviour(length_unit=unit)

    response = api.post("emails", json=received_email(subject="\N{ROCKET}" * 800))  # 1,600 UTF-16 units

    assert response.status_code == (204 if accepted else 400)


# --- threads and contacts created in the same change set ---------------------------------------------------
def test_parentactivityid_binds_an_existing_email_and_nothing_else(
    api: DataverseApi, stack: Stack, received_email: EmailFactory
) -> None:
    parent = api.create_email(received_email())
    missing = str(uuid.uuid4())

    child = api.post("emails", json=received_email(**{"parentactivityid@odata.bind": f"/emails({parent})"}))
    orphan = api.post("emails", json=received_email(**{"parentactivityid@odata.bind": f"/emails({missing})"}))
    wrong_table = api.post(
        "emails", json=received_email(**{"parentactivityid@odata.bind": f"/contacts({MARIA})"})
    )

    assert child.status_code == 204
    reply = next(e for e in stack.dataverse.emails_with_parties() if e["activityid"] != parent)
    assert reply["_parentactivityid_value"] == parent
    assert orphan.status_code == 404
    assert error_of(orphan)[1] == f"email With Id = {missing} Does Not Exist"
    assert wrong_table.status_code == 400
    read = api.get(f"emails({reply['activityid']})?$select=_parentactivityid_value")
    assert read.json()["_parentactivityid_value"] == parent


def test_a_contact_and_a_reply_created_in_one_change_set_bind_by_reference_and_by_id(
    api: DataverseApi, stack: Stack, wire: Wire, received_email: EmailFactory
) -> None:
    contact_id, parent_id = str(uuid.uuid4()), str(uuid.uuid4())
    contact = {
        "contactid": contact_id,
        "firstname": "Nadia",
        "lastname": "Kowalski",
        "emailaddress1": "nadia@new-customer.example",
    }
    parent = received_email(
        activityid=parent_id,
        **{"regardingobjectid_contact_email@odata.bind": "$1"},
        email_activity_parties=[{"partyid_contact@odata.bind": "$1", "participationtypemask": 1}],
    )
    reply = received_email(
        **{
            "regardingobjectid_contact_email@odata.bind": f"/contacts({contact_id})",
            "parentactivityid@odata.bind": "$2",
        }
    )

    response = api.batch(
        wire.change_set(
            wire.operation("POST", "contacts", contact, "1"),
            wire.operation("POST", "emails", parent, "2"),
            wire.operation("POST", "emails", reply, "3"),
        )
    )

    assert wire.statuses(response) == [204, 204, 204], response.text
    stored = stack.dataverse.retrieve(stack.dataverse.entity_for_set("contacts"), contact_id)
    assert stored["fullname"] == "Nadia Kowalski"
    emails = {e["activityid"]: e for e in stack.dataverse.emails_with_parties()}
    assert emails[parent_id]["_regardingobjectid_value"] == contact_id
    assert emails[parent_id]["email_activity_parties"][0]["addressused"] == "nadia@new-customer.example"
    [child] = [e for e in emails.values() if e["activityid"] != parent_id]
    assert child["_parentactivityid_value"] == parent_id


# --- inactive rows (row 22) --------------------------------------------------------------------------------
def test_the_seed_has_inactive_contacts_accounts_and_disqualified_leads_unless_left_out(
    api: DataverseApi, stack: Stack
) -> None:
    hannah = personas.stable_id("contact", "hannah")

    seeded = api.get("contacts?$select=fullname,statecode,statuscode&$filter=statecode eq 1").json()["value"]
    accounts = api.get("accounts?$select=name&$filter=statecode eq 1").json()["value"]
    leads = api.get(
        "leads?$select=fullname,statuscode&$filter=emailaddress1 eq 'luis.ortega@wingtip.example'"
    ).json()["value"]
    shared = api.get("contacts?$select=fullname&$filter=emailaddress1 eq 'luis.ortega@wingtip.example'")
    stack.dataverse.set_behaviour(seed_inactive_rows=False)
    without = api.get("contacts?$select=fullname&$filter=statecode eq 1").json()["value"]
    stack.dataverse.reset()

    assert {(c["fullname"], c["statecode"], c["statuscode"]) for c in seeded} == {
        ("Hannah Weber", 1, 2),
        ("Luis Ortega", 1, 2),
    }
    assert [a["name"] for a in accounts] == ["Wingtip Toys (closed)"]
    assert [(lead["fullname"], lead["statuscode"]) for lead in leads] == [("Luis Ortega", 6)]
    assert [c["fullname"] for c in shared.json()["value"]] == ["Luis Ortega"]
    assert without == []
    assert stack.dataverse.exists("contact", hannah)  # reset seeds them again


# --- requests (row 14) -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("mode", "status"), [("rejected", 400), ("allowed", 200)])
def test_filters_on_the_email_body(api: DataverseApi, stack: Stack, mode: str, status: int) -> None:
    stack.dataverse.set_behaviour(description_filter=mode)

    response = api.get("emails?$select=subject&$filter=contains(description,'invoice')")

    assert response.status_code == status
    if status == 400:
        assert error_of(response)[0] == "0x80040203"


def test_urls_are_limited_to_32_kb_and_64_kb_inside_a_batch(
    api: DataverseApi, stack: Stack, wire: Wire
) -> None:
    values = ",".join(f"'{uuid.uuid4().hex}@x.example'" for _ in range(1000))  # about 40,000 characters
    condition = f"Microsoft.Dynamics.CRM.In(PropertyName='messageid',PropertyValues=[{values}])"
    query = f"$select=activityid&$filter={condition}"

    direct = api.get(f"emails?{query}")
    batched = api.batch(wire.operation("GET", f"/api/data/v9.2/emails?{query}"))
    stack.dataverse.set_behaviour(max_url_length=65_536)
    relaxed = api.get(f"emails?{query}")

    assert direct.status_code == 414
    assert "the limit is 32768" in error_of(direct)[1]
    assert wire.statuses(batched) == [200]
    assert relaxed.status_code == 200, relaxed.text
