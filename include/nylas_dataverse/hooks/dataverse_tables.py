"""The Dataverse vocabulary of this project, in one place: tables, columns, navigation properties, the wire
body of an ``email``, change sets, and how Dataverse says "this row already exists".

Everything here is pure (no I/O); the names come from Dataverse's 2025 entity metadata (the CSDL that
``sandbox/scripts/build_dataverse_schema.py`` turns into the sandbox's schema) and are checked against the
sandbox, which validates every key with that metadata. The pipeline's rules (core/) speak of entities and
``EmailRecord``s; only this module turns them into what the Web API reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from nylas_dataverse.core.attachments import OPERATIONS_PER_EMAIL, AttachmentPlan
from nylas_dataverse.core.contacts import NewContact
from nylas_dataverse.core.mapping import MASK_FROM, EmailRecord, Party, RecordRef
from nylas_dataverse.core.resolution import ENTITY_EMAIL_COLUMNS, DirectoryRow, check_entity
from nylas_dataverse.core.text import cut_utf16
from nylas_dataverse.hooks.errors import ServiceError
from nylas_dataverse.hooks.odata import Base64File, BatchRequest, BatchResponse, ChangeSet

EMAILS = "emails"
ATTACHMENTS = "activitymimeattachments"
# The CSDL names objectid_email (partner email_activity_mime_attachment) for an attachment's email.
ATTACHMENT_EMAIL_NAV = "objectid_email"
ATTACHMENT_FILENAME_MAX, ATTACHMENT_MIMETYPE_MAX, ATTACHMENT_CONTENT_ID_MAX = 255, 256, 250
ORGANIZATIONS = "organizations"
MAX_UPLOAD_COLUMN = "maxuploadfilesize"
# Dataverse's answer to an attachment over organization.maxuploadfilesize.
ATTACHMENT_TOO_LARGE_CODE = "0x80044a02"
CONTACTS = "contacts"
ENTITY_SETS: Mapping[str, str] = MappingProxyType(
    {"systemuser": "systemusers", "contact": "contacts", "account": "accounts", "lead": "leads"}
)
ID_COLUMNS: Mapping[str, str] = MappingProxyType(
    {"systemuser": "systemuserid", "contact": "contactid", "account": "accountid", "lead": "leadid"}
)
NAME_COLUMNS: Mapping[str, str] = MappingProxyType(
    {"systemuser": "fullname", "contact": "fullname", "account": "name", "lead": "fullname"}
)
# The regarding lookup on email has one navigation property per target table; a system user cannot be one.
REGARDING_NAVS: Mapping[str, str] = MappingProxyType(
    {
        "contact": "regardingobjectid_contact_email",
        "account": "regardingobjectid_account_email",
        "lead": "regardingobjectid_lead_email",
    }
)
# Rows a lookup must not bind: disabled users keep their address but must not own or be party to new mail.
DIRECTORY_FILTERS: Mapping[str, str] = MappingProxyType({"systemuser": "isdisabled eq false"})
# statecode 0 is Active everywhere; leads use 1 Qualified and 2 Disqualified, which count as inactive too.
ACTIVE_STATECODE = 0
STATE_COMPLETED, STATUS_SENT, STATUS_RECEIVED = 1, 3, 4
MESSAGE_ID_COLUMNS = ("activityid", "messageid")

# Dataverse's answers to a create whose key exists. The status is undocumented (412 and 400 are reported)
# so the code or the message decides: 0x80040237 "A record with matching key values already exists." /
# "Cannot insert duplicate key", 0x80060892 (alternate key).
DUPLICATE_KEY_CODES = frozenset({"0x80040237", "0x80060892"})
_DUPLICATE_KEY_TEXTS = ("duplicate key", "matching key values already exist")
# A duplicate-detection rule refusing a second email with the same messageid (when an org enables one).
DUPLICATE_DETECTION_CODE = "0x80040333"


def entity_set(entity: str) -> str:
    """The Web API entity set name, e.g. contact -> contacts."""
    return ENTITY_SETS[check_entity(entity)]


def party_nav(entity: str) -> str:
    """The activity party navigation property, e.g. contact -> partyid_contact."""
    return f"partyid_{check_entity(entity)}"


def regarding_nav(entity: str) -> str | None:
    """The email's regarding navigation property; a system user cannot be regarding (None)."""
    return REGARDING_NAVS.get(check_entity(entity))


def bind(ref: RecordRef) -> str:
    return f"/{entity_set(ref.entity)}({ref.id})"


def select_columns(entity: str) -> tuple[str, ...]:
    """The columns ``directory_rows`` needs, for ``$select``."""
    check_entity(entity)
    state = () if entity == "systemuser" else ("statecode",)
    return (ID_COLUMNS[entity], NAME_COLUMNS[entity], "createdon", *state, *ENTITY_EMAIL_COLUMNS[entity])


def directory_rows(entity: str, record: Mapping[str, object]) -> tuple[DirectoryRow, ...]:
    """One row per non-empty email column of a Web API record (queried with ``select_columns``)."""
    check_entity(entity)
    record_id = record.get(ID_COLUMNS[entity])
    if not isinstance(record_id, str) or not record_id:
        raise ValueError(f"{entity} record has no {ID_COLUMNS[entity]}")
    created_on, name = record.get("createdon"), record.get(NAME_COLUMNS[entity])
    state = record.get("statecode", ACTIVE_STATECODE)
    return tuple(
        DirectoryRow(
            entity=entity,
            id=record_id,
            email_column=column,
            address=address,
            created_on=created_on if isinstance(created_on, str) else "",
            name=name if isinstance(name, str) else "",
            active=state in (None, ACTIVE_STATECODE),
        )
        for column in ENTITY_EMAIL_COLUMNS[entity]
        if isinstance(address := record.get(column), str) and address.strip()
    )


# The 2025 metadata lists only these targets for email.from; whether the Web API enforces it is undocumented.
SENDER_BIND_TARGETS = frozenset({"systemuser", "queue"})


def _party_body(party: Party, *, bind_external_sender: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"participationtypemask": party.mask}
    unbound_sender = (
        not bind_external_sender
        and party.mask == MASK_FROM
        and party.record is not None
        and party.record.entity not in SENDER_BIND_TARGETS
    )
    if party.record is not None and not unbound_sender:
        body[f"{party_nav(party.record.entity)}@odata.bind"] = bind(party.record)
    body["addressused"] = party.address
    return body


def email_create_body(
    record: EmailRecord, *, parent_activity_id: str | None = None, bind_external_sender: bool = True
) -> dict[str, Any]:
    """The body of ``POST emails`` (Open; ``statecode`` is never sent on create, Dataverse refuses it).

    ``bind_external_sender=False`` leaves a From party that resolved to a contact, account or lead as its
    address only (``addressused``), for orgs whose Dataverse refuses those bindings on the Sender; the
    regarding
    link still names the record.
    """
    body: dict[str, Any] = {
        "activityid": record.activity_id,
        "subject": record.subject,
        "description": record.description,
        "directioncode": record.outgoing,
        "actualend": record.actual_end,
        "messageid": record.internet_message_id,
        "email_activity_parties": [
            _party_body(party, bind_external_sender=bind_external_sender) for party in record.parties
        ],
    }
    if record.sender is not None:
        body["sender"] = record.sender
    if record.to_recipients is not None:
        body["torecipients"] = record.to_recipients
    if record.regarding is not None:
        nav = regarding_nav(record.regarding.entity)
        if nav is not None:
            body[f"{nav}@odata.bind"] = bind(record.regarding)
    if record.owner_id:
        body["ownerid@odata.bind"] = bind(RecordRef("systemuser", record.owner_id))
    if parent_activity_id:
        body["parentactivityid@odata.bind"] = f"/{EMAILS}({parent_activity_id})"
    return body


def email_complete_body(record: EmailRecord) -> dict[str, int]:
    """The follow-up PATCH: Completed, status Sent (3) for outgoing and Received (4) for incoming mail."""
    return {"statecode": STATE_COMPLETED, "statuscode": STATUS_SENT if record.outgoing else STATUS_RECEIVED}


def attachment_create_body(plan: AttachmentPlan, email_reference: str) -> dict[str, Any]:
    """The body of ``POST activitymimeattachments`` without ``body`` (the Base64 text is streamed in)."""
    body: dict[str, Any] = {
        "activitymimeattachmentid": plan.row_id,
        f"{ATTACHMENT_EMAIL_NAV}@odata.bind": email_reference,
        "objecttypecode": "email",
        "filename": cut_utf16(plan.filename, ATTACHMENT_FILENAME_MAX),
        "mimetype": cut_utf16(plan.content_type, ATTACHMENT_MIMETYPE_MAX),
    }
    if plan.is_inline and plan.content_id:
        body["attachmentcontentid"] = cut_utf16(plan.content_id, ATTACHMENT_CONTENT_ID_MAX)
    return body


def change_set_operations(record: EmailRecord, files: Mapping[int, Base64File] | None = None) -> int:
    """How many requests (and Content-IDs) ``email_change_set`` makes for ``record`` with ``files``: the
    contacts it creates, the email's create and complete, and one per uploaded file."""
    return len(record.new_contacts) + OPERATIONS_PER_EMAIL + len(_uploads(record, files))


def _uploads(
    record: EmailRecord, files: Mapping[int, Base64File] | None
) -> list[tuple[AttachmentPlan, Base64File]]:
    files = files or {}
    return [
        (plan, files[plan.position]) for plan in record.attachments if plan.upload and plan.position in files
    ]


def contact_upsert_request(contact: NewContact, content_id: int) -> BatchRequest:
    """``PATCH contacts(<id>)`` without ``If-Match``: an upsert, so the first email that needs the contact
    creates it and any later one (another change set, a rerun) finds it instead of making a second."""
    body: dict[str, Any] = {"emailaddress1": contact.address, "lastname": contact.lastname}
    if contact.firstname:
        body["firstname"] = contact.firstname
    return BatchRequest("PATCH", f"{CONTACTS}({contact.id})", body=body, content_id=str(content_id))


def email_change_set(
    record: EmailRecord,
    first_content_id: int,
    *,
    parent_activity_id: str | None = None,
    bind_external_sender: bool = True,
    files: Mapping[int, Base64File] | None = None,
) -> ChangeSet:
    """Upsert the contacts the email creates, create the email (Open), add its files, and complete it, in
    one atomic change set.

    The contacts (``record.new_contacts``) come first so that the email's parties can bind them. Dataverse
    ignores ``statecode`` on create and rejects a Completed status there, hence the PATCH that refers to the
    new row by its Content-ID; the files (``files``: the downloaded file of each uploaded plan, by position)
    come between the two, so none is added to a completed email. Content-IDs must be unique in the whole
    ``$batch``: this change set uses ``change_set_operations`` of them from ``first_content_id`` on.
    """
    requests = [
        contact_upsert_request(contact, first_content_id + index)
        for index, contact in enumerate(record.new_contacts)
    ]
    create_id = str(first_content_id + len(requests))
    requests.append(
        BatchRequest(
            "POST",
            EMAILS,
            body=email_create_body(
                record, parent_activity_id=parent_activity_id, bind_external_sender=bind_external_sender
            ),
            content_id=create_id,
        )
    )
    for offset, (plan, file) in enumerate(_uploads(record, files), start=1):
        requests.append(
            BatchRequest(
                "POST",
                ATTACHMENTS,
                body=attachment_create_body(plan, f"${create_id}"),
                content_id=str(int(create_id) + offset),
                file=file,
            )
        )
    requests.append(
        BatchRequest(
            "PATCH",
            f"${create_id}",
            body=email_complete_body(record),
            content_id=str(first_content_id + len(requests)),
        )
    )
    return ChangeSet(requests=requests)


def email_change_sets(
    records: Sequence[EmailRecord],
    *,
    bind_external_sender: bool = True,
    files: Mapping[str, Mapping[int, Base64File]] | None = None,
    parents: Mapping[str, str] | None = None,
) -> list[ChangeSet]:
    """One change set per email, with Content-IDs unique across the batch; ``files`` by activity id;
    ``parents`` maps an email's ``activity_id`` to the ``activityid`` of the email it answers (bound as
    ``parentactivityid``)."""
    change_sets: list[ChangeSet] = []
    next_id = 1
    for record in records:
        own = (files or {}).get(record.activity_id)
        change_sets.append(
            email_change_set(
                record,
                next_id,
                parent_activity_id=(parents or {}).get(record.activity_id),
                bind_external_sender=bind_external_sender,
                files=own,
            )
        )
        next_id += change_set_operations(record, own)
    return change_sets


def refused_attachment(change_set: ChangeSet, response: BatchResponse) -> str | None:
    """The row id of the file a failed change set's answer is about, when it is one of its files (Dataverse
    refused the file, not the email); None otherwise."""
    files = {
        request.content_id: str(request.body["activitymimeattachmentid"])
        for request in change_set.requests
        if request.url == ATTACHMENTS and isinstance(request.body, Mapping)
    }
    if response.content_id is not None and response.content_id in files:
        return files[response.content_id]
    if (response.error_code or "").lower() == ATTACHMENT_TOO_LARGE_CODE and len(files) == 1:
        return next(iter(files.values()))
    return None


def is_duplicate_key(response: BatchResponse) -> bool:
    """Dataverse's answer to a create with a primary key that exists (another run or grant made the row)."""
    code = (response.error_code or "").lower()
    message = (response.error_message or "").lower()
    return code in DUPLICATE_KEY_CODES or any(text in message for text in _DUPLICATE_KEY_TEXTS)


def is_duplicate_detection(response: BatchResponse) -> bool:
    """A duplicate-detection rule refused the email (the org enforces one ``messageid``)."""
    return (response.error_code or "").lower() == DUPLICATE_DETECTION_CODE


# Whether the Web API enforces email.from's targets is undocumented, and so is the error if it does; it is
# recognised by what it must talk about: a 400 about a party, the Sender or the From field being invalid.
_SENDER_WORDS = ("party", "sender", "from")
_REFUSAL_WORDS = ("not valid", "invalid", "not allowed", "not supported", "cannot")


def sender_binding_matters(record: EmailRecord) -> bool:
    """Whether ``record`` binds its From party to a table outside ``email.from``'s documented targets."""
    return any(
        party.mask == MASK_FROM
        and party.record is not None
        and party.record.entity not in SENDER_BIND_TARGETS
        for party in record.parties
    )


def is_sender_refused(response: BatchResponse) -> bool:
    """Dataverse refused a contact, account or lead bound as the email's Sender."""
    if response.status != 400:
        return False
    message = (response.error_message or "").lower()
    return any(word in message for word in _SENDER_WORDS) and any(word in message for word in _REFUSAL_WORDS)


def is_too_many_operations(error: ServiceError) -> bool:
    """Dataverse refused a ``$batch`` for its size (documented 1,000 operations; 250 is reported too)."""
    text = error.message.lower()
    return error.status == 400 and "maximum number" in text and ("operations" in text or "parts" in text)
