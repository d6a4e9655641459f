"""One `NylasMessage` + a resolved `Directory` + grant context -> one `EmailRecord` for Dataverse.

An ``EmailRecord`` holds what the ``email`` row will say, in the project's own terms; the Dataverse wire body
(column and navigation-property names, ``@odata.bind`` references, state codes) is rendered from it next to
the
hook (``hooks/dataverse_tables.py``). The rules, per field:

- ``activity_id``: uuid5 of the Internet Message-ID (see identity), so a second create of the message
  collides.
- ``subject``: RFC 2047 encoded-words decoded (an undecodable word is kept as written); longer than 800 UTF-16
  code units -> cut to fit, ending in "…".
- ``description``: the HTML body sanitised by nh3 (scripts, styles, event handlers, ``javascript:`` links
  and comments removed; ordinary formatting tags and links kept, links get ``rel="noopener noreferrer"``).
  Without a body: the snippet, HTML-escaped, in a ``<p>``.
- ``sender``: the first From address, cut to 250 units; None without a From address.
- ``to_recipients``: distinct To addresses joined with ";", as many whole addresses (in order) as fit in 500
  units; None without a To address.
- ``outgoing``: see policy.is_outgoing.
- ``actual_end``: the message date, ``YYYY-MM-DDTHH:MM:SSZ`` in UTC.
- ``parties``: mask 1 per From, 2 per To, 3 per Cc, 4 per Bcc address, de-duplicated by (mask, casefolded
  address). A resolved address names its record; every party keeps its address (cut to 320 units).
- ``regarding`` (optional): candidates are the counterpart first (the sender of incoming mail, the first To
  recipient of outgoing mail), then the other external parties (not on the org's domains) in From, To, Cc
  order. For each entity of ``regarding_preference`` in turn, the first candidate resolving to that entity is
  chosen (``regarding_rule`` says which: ``counterpart`` or ``other_party``). No match -> None.
- ``owner_id`` (optional): the mailbox owner's system user, when known.
- ``parent_message_id``: the Message-ID the message answers (identity.reply_parent_message_id), if any.
- ``attachments``: the file plan (``core/attachments.plan_attachments``), set by transform with the grant's
  attachment policy and the org's upload limit; empty for a message without files.

All lengths are counted in UTF-16 code units, as Dataverse counts them (``core/text.py``).
"""

from __future__ import annotations

import datetime
import html
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.header import decode_header
from typing import Any

import nh3

from nylas_dataverse.core.attachments import AttachmentPlan
from nylas_dataverse.core.identity import (
    MessageIdSource,
    activity_id,
    dataverse_message_id,
    reply_parent_message_id,
)
from nylas_dataverse.core.messages import NylasMessage, Participant
from nylas_dataverse.core.policy import FolderRoles, domain_of, is_outgoing
from nylas_dataverse.core.resolution import Directory, check_entity
from nylas_dataverse.core.text import cut_utf16, utf16_len

SUBJECT_MAX = 800
SENDER_MAX = 250
TORECIPIENTS_MAX = 500
ADDRESSUSED_MAX = 320
TRUNCATION_MARK = "…"
MASK_FROM, MASK_TO, MASK_CC, MASK_BCC = 1, 2, 3, 4
PARTY_MASKS = (MASK_FROM, MASK_TO, MASK_CC, MASK_BCC)
REGARDING_COUNTERPART = "counterpart"
REGARDING_OTHER_PARTY = "other_party"

_WORD = r"=\?[^?\s]+\?[qQbB]\?[^?\s]*\?="
# A run of encoded-words separated only by whitespace, which RFC 2047 says to drop when decoding.
_ENCODED_RUN = re.compile(rf"{_WORD}(?:\s+{_WORD})*")
# Content of these elements is dropped entirely rather than kept as loose text.
_DROP_WITH_CONTENT = {"script", "style", "title", "noscript", "template"}


@dataclass(frozen=True)
class MappingContext:
    grant_id: str
    grant_email: str | None
    owner_systemuser_id: str | None
    folder_roles: FolderRoles
    regarding_preference: tuple[str, ...]
    org_domains: tuple[str, ...]


@dataclass(frozen=True)
class RecordRef:
    """A Dataverse record by table (systemuser, contact, account, lead) and id."""

    entity: str
    id: str

    def __post_init__(self) -> None:
        check_entity(self.entity)


@dataclass(frozen=True)
class Party:
    mask: int
    address: str
    record: RecordRef | None = None

    def __post_init__(self) -> None:
        if self.mask not in PARTY_MASKS:
            raise ValueError(f"participation mask must be one of {PARTY_MASKS}, got {self.mask!r}")


@dataclass(frozen=True)
class EmailRecord:
    """What one Dataverse ``email`` row will hold (see the module docstring for each field's rule)."""

    activity_id: str
    internet_message_id: str
    message_id_source: MessageIdSource
    subject: str
    description: str
    outgoing: bool
    actual_end: str
    parties: tuple[Party, ...]
    sender: str | None = None
    to_recipients: str | None = None
    regarding: RecordRef | None = None
    regarding_rule: str | None = None
    owner_id: str | None = None
    parent_message_id: str | None = None
    attachments: tuple[AttachmentPlan, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "activity_id": self.activity_id,
            "internet_message_id": self.internet_message_id,
            "message_id_source": self.message_id_source.value,
            "subject": self.subject,
            "description": self.description,
            "outgoing": self.outgoing,
            "actual_end": self.actual_end,
            "parties": [_party_json(party) for party in self.parties],
            "sender": self.sender,
            "to_recipients": self.to_recipients,
            "regarding": _ref_json(self.regarding),
            "regarding_rule": self.regarding_rule,
            "owner_id": self.owner_id,
            "parent_message_id": self.parent_message_id,
            "attachments": [plan.to_json() for plan in self.attachments],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EmailRecord:
        """Inverse of ``to_json``; raises ValueError/KeyError/TypeError on a malformed record."""
        return cls(
            activity_id=_str(data["activity_id"]),
            internet_message_id=_str(data["internet_message_id"]),
            message_id_source=MessageIdSource(data["message_id_source"]),
            subject=_str(data["subject"]),
            description=_str(data["description"]),
            outgoing=bool(data["outgoing"]),
            actual_end=_str(data["actual_end"]),
            parties=tuple(
                Party(int(p["mask"]), _str(p["address"]), _ref(p.get("record"))) for p in data["parties"]
            ),
            sender=_opt_str(data.get("sender")),
            to_recipients=_opt_str(data.get("to_recipients")),
            regarding=_ref(data.get("regarding")),
            regarding_rule=_opt_str(data.get("regarding_rule")),
            owner_id=_opt_str(data.get("owner_id")),
            parent_message_id=_opt_str(data.get("parent_message_id")),
            attachments=tuple(AttachmentPlan.from_json(plan) for plan in data.get("attachments") or ()),
        )


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _opt_str(value: object) -> str | None:
    return None if value is None else _str(value)


def _ref_json(ref: RecordRef | None) -> dict[str, str] | None:
    return None if ref is None else {"entity": ref.entity, "id": ref.id}


def _ref(data: object) -> RecordRef | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise TypeError(f"expected a record reference, got {type(data).__name__}")
    return RecordRef(_str(data["entity"]), _str(data["id"]))


def _party_json(party: Party) -> dict[str, Any]:
    return {"mask": party.mask, "address": party.address, "record": _ref_json(party.record)}


@dataclass(frozen=True)
class MappedEmail:
    """``map_message``'s result: the record, plus what the run report counts about its addresses."""

    record: EmailRecord
    unresolved: tuple[str, ...]
    ambiguous: tuple[str, ...]


def map_message(msg: NylasMessage, directory: Directory, ctx: MappingContext) -> MappedEmail:
    outgoing = is_outgoing(msg, ctx.grant_email, ctx.folder_roles)
    internet_message_id, source = dataverse_message_id(msg)
    parties, unresolved, ambiguous = _parties(msg, directory)
    regarding, rule = _regarding(msg, directory, ctx, outgoing)
    record = EmailRecord(
        activity_id=str(activity_id(internet_message_id)),
        internet_message_id=internet_message_id,
        message_id_source=source,
        subject=_subject(msg.subject),
        description=_description(msg),
        outgoing=outgoing,
        actual_end=_utc_timestamp(msg.date),
        parties=parties,
        sender=cut_utf16(msg.from_[0].email, SENDER_MAX) if msg.from_ else None,
        to_recipients=_to_recipients(msg.to) or None,
        regarding=regarding,
        regarding_rule=rule,
        owner_id=ctx.owner_systemuser_id or None,
        parent_message_id=reply_parent_message_id(msg),
    )
    return MappedEmail(record, unresolved, ambiguous)


def decode_subject(subject: str) -> str:
    """Decode RFC 2047 encoded-words; text outside them is kept as is (it may already be Unicode)."""
    return _ENCODED_RUN.sub(lambda match: _decode_run(match.group(0)), subject)


def _decode_run(run: str) -> str:
    # decode_header joins adjacent words of one charset before decoding, so a character split across
    # two words (common in the wild) survives.
    try:
        return "".join(
            part if isinstance(part, str) else part.decode(charset or "ascii", errors="replace")
            for part, charset in decode_header(run)
        )
    except (LookupError, ValueError):
        return run


def _subject(subject: str) -> str:
    return cut_utf16(decode_subject(subject), SUBJECT_MAX, TRUNCATION_MARK)


def _description(msg: NylasMessage) -> str:
    if msg.body is None:
        return f"<p>{html.escape(msg.snippet)}</p>"
    return nh3.clean(msg.body, clean_content_tags=_DROP_WITH_CONTENT)


def _utc_timestamp(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _distinct(participants: tuple[Participant, ...]) -> Iterator[str]:
    seen: set[str] = set()
    for participant in participants:
        folded = participant.email.casefold()
        if folded not in seen:
            seen.add(folded)
            yield participant.email


def _to_recipients(to: tuple[Participant, ...]) -> str:
    joined = ""
    for address in _distinct(to):
        candidate = f"{joined};{address}" if joined else address
        if utf16_len(candidate) > TORECIPIENTS_MAX:
            break
        joined = candidate
    return joined


def _parties(
    msg: NylasMessage, directory: Directory
) -> tuple[tuple[Party, ...], tuple[str, ...], tuple[str, ...]]:
    parties: list[Party] = []
    unresolved: dict[str, str] = {}
    ambiguous: dict[str, str] = {}
    for mask, participants in (
        (MASK_FROM, msg.from_),
        (MASK_TO, msg.to),
        (MASK_CC, msg.cc),
        (MASK_BCC, msg.bcc),
    ):
        for address in _distinct(participants):
            resolution = directory.resolve(address)
            used = cut_utf16(address, ADDRESSUSED_MAX)
            if resolution is None:
                unresolved.setdefault(address.casefold(), address)
                parties.append(Party(mask, used))
                continue
            if resolution.ambiguous:
                ambiguous.setdefault(address.casefold(), address)
            parties.append(Party(mask, used, RecordRef(resolution.entity, resolution.id)))
    return tuple(parties), tuple(unresolved.values()), tuple(ambiguous.values())


def _counterpart(msg: NylasMessage, outgoing: bool) -> str | None:
    if outgoing:
        return msg.to[0].email if msg.to else None
    return msg.from_[0].email if msg.from_ else None


def regarding_candidates(msg: NylasMessage, org_domains: tuple[str, ...], outgoing: bool) -> list[str]:
    """Addresses considered for the regarding link, best first (see the module docstring)."""
    counterpart = _counterpart(msg, outgoing)
    ordered = [] if counterpart is None else [counterpart]
    own_domains = {d.casefold() for d in org_domains}
    for participant in (*msg.from_, *msg.to, *msg.cc):
        if domain_of(participant.email) not in own_domains:
            ordered.append(participant.email)
    distinct: dict[str, str] = {}
    for address in ordered:
        distinct.setdefault(address.casefold(), address)
    return list(distinct.values())


REGARDING_ENTITIES = frozenset({"contact", "account", "lead"})


def _regarding(
    msg: NylasMessage, directory: Directory, ctx: MappingContext, outgoing: bool
) -> tuple[RecordRef | None, str | None]:
    candidates = regarding_candidates(msg, ctx.org_domains, outgoing)
    counterpart = (_counterpart(msg, outgoing) or "").casefold()
    resolved = [(address, r) for address in candidates if (r := directory.resolve(address)) is not None]
    for entity in ctx.regarding_preference:
        if entity not in REGARDING_ENTITIES:
            continue
        match = next(((address, r) for address, r in resolved if r.entity == entity), None)
        if match is not None:
            address, resolution = match
            rule = REGARDING_COUNTERPART if address.casefold() == counterpart else REGARDING_OTHER_PARTY
            return RecordRef(resolution.entity, resolution.id), rule
    return None, None
