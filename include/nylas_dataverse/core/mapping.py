"""One `NylasMessage` + a resolved `Directory` + grant context -> one Dataverse `email` payload.

`create` is the body of `POST /emails` and holds only these keys:

- `activityid`: uuid5 of the `messageid` (see identity), so a second create of the message collides.
- `subject`: RFC 2047 encoded-words decoded (an undecodable word is kept as written); longer than 800
  characters -> the first 799 and "…".
- `description`: the HTML body sanitised by nh3 (scripts, styles, event handlers, `javascript:` links
  and comments removed; ordinary formatting tags and links kept, links get `rel="noopener noreferrer"`).
  Without a body: the snippet, HTML-escaped, in a `<p>`.
- `sender`: the first From address, cut to 250 characters. Omitted when there is no From address.
- `torecipients`: distinct To addresses joined with ";", as many whole addresses (in order) as fit in
  500 characters. Omitted when there is no To address.
- `directioncode`: true for outgoing mail (see policy.is_outgoing).
- `actualend`: the message date, `YYYY-MM-DDTHH:MM:SSZ` in UTC.
- `messageid`: see identity.
- `email_activity_parties`: mask 1 per From, 2 per To, 3 per Cc, 4 per Bcc address, de-duplicated by
  (mask, casefolded address). A resolved address binds `partyid_<entity>` and keeps `addressused`; an
  unresolved one has only `addressused` (cut to 320 characters).
- `regardingobjectid_<entity>_email@odata.bind` (optional): candidates are the counterpart first (the
  sender of incoming mail, the first To recipient of outgoing mail), then the other external parties
  (not on the org's domains) in From, To, Cc order. For each entity of `regarding_preference` in turn,
  the first candidate resolving to that entity is chosen. No match -> no regarding key.
- `ownerid@odata.bind` (optional): the mailbox owner's system user, when known.

`statecode`/`statuscode` are never in `create` (Dataverse ignores or rejects them on create); `complete`
is the follow-up PATCH: Completed with status Sent (3) for outgoing, Received (4) for incoming mail.
"""

from __future__ import annotations

import datetime
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.header import decode_header
from typing import Any

import nh3

from nylas_dataverse.core.identity import MessageIdSource, activity_id, dataverse_message_id
from nylas_dataverse.core.messages import NylasMessage, Participant
from nylas_dataverse.core.policy import FolderRoles, domain_of, is_outgoing
from nylas_dataverse.core.resolution import Directory, entity_set, party_nav, regarding_nav

SUBJECT_MAX = 800
SENDER_MAX = 250
TORECIPIENTS_MAX = 500
ADDRESSUSED_MAX = 320
TRUNCATION_MARK = "…"
MASK_FROM, MASK_TO, MASK_CC, MASK_BCC = 1, 2, 3, 4
STATE_COMPLETED, STATUS_SENT, STATUS_RECEIVED = 1, 3, 4

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
class EmailPayload:
    activity_id: str
    message_id: str
    message_id_source: MessageIdSource
    create: dict[str, Any]
    complete: dict[str, int]
    outgoing: bool
    unresolved: tuple[str, ...]
    ambiguous: tuple[str, ...]


def map_message(msg: NylasMessage, directory: Directory, ctx: MappingContext) -> EmailPayload:
    outgoing = is_outgoing(msg, ctx.grant_email, ctx.folder_roles)
    message_id, source = dataverse_message_id(msg)
    activity = str(activity_id(message_id))
    parties, unresolved, ambiguous = _parties(msg, directory)

    create: dict[str, Any] = {
        "activityid": activity,
        "subject": _subject(msg.subject),
        "description": _description(msg),
        "directioncode": outgoing,
        "actualend": _utc_timestamp(msg.date),
        "messageid": message_id,
        "email_activity_parties": parties,
    }
    if msg.from_:
        create["sender"] = msg.from_[0].email[:SENDER_MAX]
    to_recipients = _to_recipients(msg.to)
    if to_recipients:
        create["torecipients"] = to_recipients
    create.update(_regarding(msg, directory, ctx, outgoing))
    if ctx.owner_systemuser_id:
        create["ownerid@odata.bind"] = f"/{entity_set('systemuser')}({ctx.owner_systemuser_id})"

    return EmailPayload(
        activity_id=activity,
        message_id=message_id,
        message_id_source=source,
        create=create,
        complete={"statecode": STATE_COMPLETED, "statuscode": STATUS_SENT if outgoing else STATUS_RECEIVED},
        outgoing=outgoing,
        unresolved=unresolved,
        ambiguous=ambiguous,
    )


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
    decoded = decode_subject(subject)
    if len(decoded) > SUBJECT_MAX:
        return decoded[: SUBJECT_MAX - len(TRUNCATION_MARK)] + TRUNCATION_MARK
    return decoded


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
        if len(candidate) > TORECIPIENTS_MAX:
            break
        joined = candidate
    return joined


def _parties(
    msg: NylasMessage, directory: Directory
) -> tuple[list[dict[str, Any]], tuple[str, ...], tuple[str, ...]]:
    parties: list[dict[str, Any]] = []
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
            if resolution is None:
                unresolved.setdefault(address.casefold(), address)
                parties.append({"participationtypemask": mask, "addressused": address[:ADDRESSUSED_MAX]})
                continue
            if resolution.ambiguous:
                ambiguous.setdefault(address.casefold(), address)
            bind = f"/{entity_set(resolution.entity)}({resolution.id})"
            parties.append(
                {
                    "participationtypemask": mask,
                    f"{party_nav(resolution.entity)}@odata.bind": bind,
                    "addressused": address[:ADDRESSUSED_MAX],
                }
            )
    return parties, tuple(unresolved.values()), tuple(ambiguous.values())


def regarding_candidates(msg: NylasMessage, org_domains: tuple[str, ...], outgoing: bool) -> list[str]:
    """Addresses considered for the regarding link, best first (see the module docstring)."""
    counterpart = msg.to[0].email if outgoing and msg.to else None
    if not outgoing and msg.from_:
        counterpart = msg.from_[0].email
    ordered = [] if counterpart is None else [counterpart]
    own_domains = {d.casefold() for d in org_domains}
    for participant in (*msg.from_, *msg.to, *msg.cc):
        if domain_of(participant.email) not in own_domains:
            ordered.append(participant.email)
    distinct: dict[str, str] = {}
    for address in ordered:
        distinct.setdefault(address.casefold(), address)
    return list(distinct.values())


def _regarding(
    msg: NylasMessage, directory: Directory, ctx: MappingContext, outgoing: bool
) -> dict[str, str]:
    candidates = regarding_candidates(msg, ctx.org_domains, outgoing)
    resolutions = [r for r in map(directory.resolve, candidates) if r is not None]
    for entity in ctx.regarding_preference:
        nav = regarding_nav(entity)
        match = next((r for r in resolutions if r.entity == entity), None)
        if nav is not None and match is not None:
            return {f"{nav}@odata.bind": f"/{entity_set(entity)}({match.id})"}
    return {}
