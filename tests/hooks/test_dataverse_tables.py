"""The Dataverse vocabulary: names from the metadata, the email wire body, change sets, duplicate answers."""

from __future__ import annotations

import dataclasses
import io

import pytest

from nylas_dataverse.core.attachments import AttachmentPlan
from nylas_dataverse.core.contacts import NewContact, contact_id
from nylas_dataverse.core.identity import MessageIdSource
from nylas_dataverse.core.mapping import EmailRecord, Party, RecordRef
from nylas_dataverse.core.resolution import DirectoryRow, email_columns
from nylas_dataverse.hooks.dataverse_tables import (
    change_set_operations,
    directory_rows,
    email_change_sets,
    email_complete_body,
    email_create_body,
    entity_set,
    is_duplicate_detection,
    is_duplicate_key,
    is_sender_refused,
    party_nav,
    regarding_nav,
    select_columns,
    sender_binding_matters,
)
from nylas_dataverse.hooks.odata import Base64File, BatchResponse, Headers

ADDRESS = "carol@fabrikam.example"


@pytest.mark.parametrize(
    ("entity", "entity_set_name", "party", "regarding"),
    [
        ("systemuser", "systemusers", "partyid_systemuser", None),
        ("contact", "contacts", "partyid_contact", "regardingobjectid_contact_email"),
        ("account", "accounts", "partyid_account", "regardingobjectid_account_email"),
        ("lead", "leads", "partyid_lead", "regardingobjectid_lead_email"),
    ],
)
def test_dataverse_names_per_entity(
    entity: str, entity_set_name: str, party: str, regarding: str | None
) -> None:
    assert entity_set(entity) == entity_set_name
    assert party_nav(entity) == party
    assert regarding_nav(entity) == regarding


@pytest.mark.parametrize("function", [entity_set, party_nav, regarding_nav, select_columns])
@pytest.mark.parametrize("entity", ["queue", "Contact", "contacts", ""])
def test_unknown_entities_are_rejected(function: object, entity: str) -> None:
    with pytest.raises(ValueError, match="unknown entity"):
        function(entity)  # type: ignore[operator]


def test_rows_from_web_api_records() -> None:
    record = {
        "@odata.etag": 'W/"1"',
        "contactid": "c1",
        "fullname": "Carol Customer",
        "createdon": "2024-01-01T00:00:00Z",
        "emailaddress1": "carol@fabrikam.example",
        "emailaddress2": None,
        "emailaddress3": "c.customer@fabrikam.example",
    }
    assert directory_rows("contact", record) == (
        DirectoryRow(
            "contact",
            "c1",
            "emailaddress1",
            "carol@fabrikam.example",
            "2024-01-01T00:00:00Z",
            "Carol Customer",
        ),
        DirectoryRow(
            "contact",
            "c1",
            "emailaddress3",
            "c.customer@fabrikam.example",
            "2024-01-01T00:00:00Z",
            "Carol Customer",
        ),
    )
    user = {"systemuserid": "u1", "fullname": "Alice", "internalemailaddress": "alice@contoso.example"}
    assert directory_rows("systemuser", user) == (
        DirectoryRow("systemuser", "u1", "internalemailaddress", "alice@contoso.example", "", "Alice"),
    )
    account = {
        "accountid": "a1",
        "name": "Fabrikam",
        "emailaddress1": "  ",
        "emailaddress2": "info@fabrikam.example",
    }
    assert [r.email_column for r in directory_rows("account", account)] == ["emailaddress2"]
    with pytest.raises(ValueError, match="leadid"):
        directory_rows("lead", {"emailaddress1": ADDRESS})


@pytest.mark.parametrize(
    ("entity", "columns"),
    [
        ("systemuser", ("systemuserid", "fullname", "createdon", "internalemailaddress")),
        (
            "contact",
            (
                "contactid",
                "fullname",
                "createdon",
                "statecode",
                "emailaddress1",
                "emailaddress2",
                "emailaddress3",
            ),
        ),
        (
            "account",
            (
                "accountid",
                "name",
                "createdon",
                "statecode",
                "emailaddress1",
                "emailaddress2",
                "emailaddress3",
            ),
        ),
        (
            "lead",
            (
                "leadid",
                "fullname",
                "createdon",
                "statecode",
                "emailaddress1",
                "emailaddress2",
                "emailaddress3",
            ),
        ),
    ],
)
def test_select_columns_cover_what_directory_rows_reads(entity: str, columns: tuple[str, ...]) -> None:
    assert select_columns(entity) == columns
    assert set(email_columns(entity)) <= set(columns)


@pytest.mark.parametrize(("statecode", "active"), [(0, True), (None, True), (1, False), (2, False)])
def test_inactive_records_are_read_as_inactive(statecode: int | None, active: bool) -> None:
    record = {"contactid": "c1", "statecode": statecode, "emailaddress1": ADDRESS}
    assert [row.active for row in directory_rows("contact", record)] == [active]


# --- the email on the wire ---------------------------------------------------------------------------------

RECORD = EmailRecord(
    activity_id="1d7152f4-ab9d-51a3-95b7-c8b64a26317d",
    internet_message_id="<quote-40@fabrikam.example>",
    message_id_source=MessageIdSource.HEADER,
    subject="Quote",
    description="<p>hi</p>",
    outgoing=False,
    actual_end="2026-11-03T10:30:00Z",
    parties=(
        Party(1, "carol@fabrikam.example", RecordRef("contact", "c1")),
        Party(2, "alice@contoso.example", RecordRef("systemuser", "u1")),
        Party(3, "stranger@nowhere.example"),
    ),
    sender="carol@fabrikam.example",
    regarding=RecordRef("contact", "c1"),
    owner_id="u1",
)


def test_the_create_body_uses_the_metadata_s_names() -> None:
    assert email_create_body(RECORD, parent_activity_id="aaaaaaaa-0000-0000-0000-000000000001") == {
        "activityid": RECORD.activity_id,
        "subject": "Quote",
        "description": "<p>hi</p>",
        "directioncode": False,
        "actualend": "2026-11-03T10:30:00Z",
        "messageid": "<quote-40@fabrikam.example>",
        "sender": "carol@fabrikam.example",
        "email_activity_parties": [
            {
                "participationtypemask": 1,
                "partyid_contact@odata.bind": "/contacts(c1)",
                "addressused": "carol@fabrikam.example",
            },
            {
                "participationtypemask": 2,
                "partyid_systemuser@odata.bind": "/systemusers(u1)",
                "addressused": "alice@contoso.example",
            },
            {"participationtypemask": 3, "addressused": "stranger@nowhere.example"},
        ],
        "regardingobjectid_contact_email@odata.bind": "/contacts(c1)",
        "ownerid@odata.bind": "/systemusers(u1)",
        "parentactivityid@odata.bind": "/emails(aaaaaaaa-0000-0000-0000-000000000001)",
    }


def test_without_external_sender_binding_only_the_sender_party_loses_its_record() -> None:
    body = email_create_body(RECORD, bind_external_sender=False)
    parties = body["email_activity_parties"]
    assert parties[0] == {"participationtypemask": 1, "addressused": "carol@fabrikam.example"}
    assert "partyid_systemuser@odata.bind" in parties[1]
    assert body["regardingobjectid_contact_email@odata.bind"] == "/contacts(c1)"
    assert sender_binding_matters(RECORD)
    user_sender = dataclasses.replace(
        RECORD, parties=(Party(1, "bob@contoso.example", RecordRef("systemuser", "u2")),)
    )
    assert not sender_binding_matters(user_sender)
    assert (
        "partyid_systemuser@odata.bind"
        in email_create_body(user_sender, bind_external_sender=False)["email_activity_parties"][0]
    )


@pytest.mark.parametrize(("outgoing", "status"), [(False, 4), (True, 3)])
def test_completing_sets_sent_or_received(outgoing: bool, status: int) -> None:
    record = dataclasses.replace(RECORD, outgoing=outgoing)
    assert email_complete_body(record) == {"statecode": 1, "statuscode": status}


def test_change_sets_use_content_ids_unique_across_the_batch() -> None:
    change_sets = email_change_sets([RECORD, dataclasses.replace(RECORD, activity_id="other")])
    ids = [request.content_id for change_set in change_sets for request in change_set.requests]
    assert ids == ["1", "2", "3", "4"]
    assert [r.url for r in change_sets[1].requests] == ["emails", "$3"]


def test_a_new_contact_is_upserted_before_its_email_in_one_change_set_and_a_reply_binds_its_parent() -> None:
    dana = NewContact(contact_id("dana@new.example"), "dana@new.example", "Dana", "New")
    with_contact = dataclasses.replace(RECORD, activity_id="other", new_contacts=(dana,))
    change_sets = email_change_sets([RECORD, with_contact], parents={"other": "parent-id"})
    upsert, create, complete = change_sets[1].requests
    assert (upsert.method, upsert.url, upsert.body) == (
        "PATCH",
        f"contacts({dana.id})",
        {"emailaddress1": "dana@new.example", "lastname": "New", "firstname": "Dana"},
    )
    assert [r.content_id for cs in change_sets for r in cs.requests] == ["1", "2", "3", "4", "5"]
    assert (create.url, complete.url) == ("emails", "$4")
    assert isinstance(create.body, dict)
    assert create.body["parentactivityid@odata.bind"] == "/emails(parent-id)"
    assert isinstance(change_sets[0].requests[0].body, dict)
    assert "parentactivityid@odata.bind" not in change_sets[0].requests[0].body


def _answer(status: int, code: str | None, message: str) -> BatchResponse:
    body = {"error": {"code": code, "message": message}} if code or message else None
    return BatchResponse(status=status, headers=Headers(), json=body)


@pytest.mark.parametrize(
    ("response", "duplicate"),
    [
        (_answer(412, "0x80040237", "A record with matching key values already exists."), True),
        (_answer(400, None, "Cannot insert duplicate key."), True),
        (_answer(400, "0x80060892", "alternate key"), True),
        (_answer(400, "0x80044331", "A validation error occurred."), False),
    ],
)
def test_a_duplicate_key_is_recognised_by_code_or_words(response: BatchResponse, duplicate: bool) -> None:
    assert is_duplicate_key(response) is duplicate


def test_a_duplicate_detection_rule_is_recognised() -> None:
    rule = _answer(500, "0x80040333", "A record was not created or updated because a duplicate ... exists.")
    assert is_duplicate_detection(rule)
    assert not is_duplicate_detection(_answer(500, "0x80040216", "An unexpected error occurred."))


@pytest.mark.parametrize(
    ("response", "refused"),
    [
        (
            _answer(400, "0x80040203", "The party type 'contact' is not valid for the Sender of an email."),
            True,
        ),
        (_answer(400, "0x80040203", "Invalid party object type for participation type From."), True),
        (_answer(400, "0x80044331", "A validation error occurred. The length of 'subject' exceeded"), False),
        (_answer(403, "0x80040220", "Principal user is missing prvAppendToContact privilege"), False),
    ],
)
def test_a_refused_sender_binding_is_recognised(response: BatchResponse, refused: bool) -> None:
    assert is_sender_refused(response) is refused


def test_a_new_contact_an_email_its_files_and_its_completion_share_one_change_set_in_that_order() -> None:
    dana = NewContact(contact_id("dana@new.example"), "dana@new.example", "Dana", "New")
    plans = tuple(
        AttachmentPlan(
            position, f"row-{position}", f"att-{position}", f"f{position}.pdf", "application/pdf", 3
        )
        for position in (0, 1)
    )
    record = dataclasses.replace(RECORD, activity_id="other", new_contacts=(dana,), attachments=plans)
    files = {p.position: Base64File("body", lambda: io.BytesIO(b"abc"), 3) for p in plans}

    change_sets = email_change_sets([RECORD, record], files={"other": files}, parents={"other": "parent-id"})

    upsert, create, *uploads, complete = change_sets[1].requests
    assert [r.content_id for cs in change_sets for r in cs.requests] == [str(n) for n in range(1, 8)]
    assert (upsert.url, create.url, complete.url) == (
        f"contacts({dana.id})",
        "emails",
        f"${create.content_id}",
    )
    assert [u.url for u in uploads] == ["activitymimeattachments"] * 2
    assert all(isinstance(u.body, dict) and u.body["objectid_email@odata.bind"] == "$4" for u in uploads)
    assert isinstance(create.body, dict)
    assert create.body["parentactivityid@odata.bind"] == "/emails(parent-id)"
    assert change_set_operations(record, files) == len(change_sets[1].requests)
