"""Capture policy: which messages are tracked in Dataverse, and the reason for every skip.

`decide` applies these checks in this order; the first that matches is the reason:

1. `draft`, 2. `spam`, 3. `trash` - the message is in a folder whose role is drafts, junk or trash.
   Never tracked, whatever the policy.
4. `excluded_address` - a party address (From, To, Cc, Bcc) is in `policy.excluded_addresses`.
5. `excluded_domain` - a party address's domain is in `policy.excluded_domains` (exact match).
6. `internal_only` - `policy.internal_only == "skip"` and every party address is on one of the org's
   own domains (exact match). A message without any party address is not internal.
7. `automated` - `policy.skip_automated` and `detect_automated(msg)`.
8. `no_known_party` - `policy.require_known_party` and no external party (an address neither on the
   org's domains nor the grant's own address) is known to Dataverse as a contact, account or lead
   (Dynamics' "only mail with a known contact, account or lead" option). The caller supplies that
   knowledge as a predicate or a set; either receives casefolded addresses.
9. `not_first_in_thread` - `policy.first_message_of_thread_only` and a message of its thread was already
   tracked earlier in this run, or the message is a reply to a tracked thread. When the caller consulted
   Dataverse (a `ThreadTracker` built with the Message-IDs Dataverse holds), a reply belongs to a tracked
   thread when one of the ids in its `In-Reply-To` / `References` is in Dataverse or was tracked earlier
   in this run; a reply whose thread is tracked nowhere is its thread's first tracked message. Without
   that knowledge any `In-Reply-To` or `References` header counts.

All address and domain comparisons casefold. Only a tracked message marks its thread as seen, so the
caller must decide messages oldest first for the thread rule to keep the first message.

Folder roles come from the grant's folder list (`attributes` such as `\\Sent`); Google's system label ids
(`SENT`, `DRAFT`, `SPAM`, `TRASH`, `INBOX`) are recognised even when absent from that list.
A message is outgoing when one of its folders has the role sent or one of its From addresses is the
grant's own address.

`detect_automated` treats a message as automated when: `Auto-Submitted` is present with a value other
than `no`; `Precedence` is bulk, list or junk; `List-Unsubscribe` or `List-Id` is present; or a From
address's local part (ignoring a `+tag`) is one of `AUTOMATED_LOCAL_PARTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from nylas_dataverse.core.config import PolicyConfig
from nylas_dataverse.core.identity import (
    extract_message_id,
    header_value,
    message_id_key,
    referenced_message_ids,
)
from nylas_dataverse.core.messages import NylasMessage, Participant

FOLDER_ROLES = frozenset({"inbox", "sent", "drafts", "junk", "trash", "archive"})
GOOGLE_SYSTEM_LABELS: Mapping[str, str] = MappingProxyType(
    {"SENT": "sent", "DRAFT": "drafts", "SPAM": "junk", "TRASH": "trash", "INBOX": "inbox"}
)
# Nylas folder `attributes` (IMAP special-use names) -> role.
_FOLDER_ATTRIBUTES: Mapping[str, str] = MappingProxyType(
    {
        "\\inbox": "inbox",
        "\\sent": "sent",
        "\\drafts": "drafts",
        "\\junk": "junk",
        "\\trash": "trash",
        "\\archive": "archive",
    }
)
AUTOMATED_LOCAL_PARTS = frozenset(
    {
        "noreply",
        "no-reply",
        "donotreply",
        "do-not-reply",
        "mailer-daemon",
        "postmaster",
        "notifications",
        "newsletter",
        "news",
        "bounce",
        "bounces",
    }
)
_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})

KnownExternal = Callable[[str], bool] | Container[str]


class SkipReason(StrEnum):
    DRAFT = "draft"
    SPAM = "spam"
    TRASH = "trash"
    EXCLUDED_ADDRESS = "excluded_address"
    EXCLUDED_DOMAIN = "excluded_domain"
    INTERNAL_ONLY = "internal_only"
    AUTOMATED = "automated"
    NO_KNOWN_PARTY = "no_known_party"
    NOT_FIRST_IN_THREAD = "not_first_in_thread"


@dataclass(frozen=True)
class FolderRoles:
    """Folder id -> role (one of FOLDER_ROLES) for one grant."""

    roles: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.roles.values()) - FOLDER_ROLES)
        if unknown:
            raise ValueError(f"unknown folder role(s) {unknown}; roles are {sorted(FOLDER_ROLES)}")
        object.__setattr__(self, "roles", MappingProxyType(dict(self.roles)))

    @classmethod
    def from_nylas_folders(cls, folders: Iterable[object]) -> FolderRoles:
        """Build from Nylas folder objects (`id` + `attributes`); entries without a role are ignored."""
        roles: dict[str, str] = {}
        for folder in folders:
            if not isinstance(folder, dict) or not isinstance(folder.get("id"), str):
                continue
            attributes = folder.get("attributes")
            for attribute in attributes if isinstance(attributes, list) else []:
                role = _FOLDER_ATTRIBUTES.get(attribute.casefold()) if isinstance(attribute, str) else None
                if role is not None:
                    roles[folder["id"]] = role
                    break
        return cls(roles)

    def role(self, folder_id: str) -> str | None:
        return self.roles.get(folder_id, GOOGLE_SYSTEM_LABELS.get(folder_id))

    def roles_of(self, msg: NylasMessage) -> frozenset[str]:
        return frozenset(role for folder in msg.folders if (role := self.role(folder)) is not None)


class ThreadTracker:
    """Thread ids tracked so far in this run (messages are decided oldest first), and optionally the
    Message-IDs tracked anywhere: those Dataverse holds, plus the ones this run tracks."""

    def __init__(self, tracked_message_ids: Iterable[str] | None = None) -> None:
        self._seen: set[str] = set()
        self.consulted = tracked_message_ids is not None
        self._tracked = {message_id_key(value) for value in tracked_message_ids or ()}

    def seen(self, thread_id: str) -> bool:
        return bool(thread_id) and thread_id in self._seen

    def answers_tracked(self, msg: NylasMessage) -> bool:
        return any(message_id_key(value) in self._tracked for value in referenced_message_ids(msg))

    def mark(self, thread_id: str, message_id: str | None = None) -> None:
        if thread_id:
            self._seen.add(thread_id)
        if message_id:
            self._tracked.add(message_id_key(message_id))


def domain_of(address: str) -> str:
    """The casefolded part after the last '@' ('' when there is none)."""
    return address.rpartition("@")[2].strip().casefold() if "@" in address else ""


def party_addresses(msg: NylasMessage) -> Iterator[str]:
    """Every From, To, Cc and Bcc address, in that order (duplicates included)."""
    for participants in (msg.from_, msg.to, msg.cc, msg.bcc):
        for participant in participants:
            yield participant.email


def is_outgoing(msg: NylasMessage, grant_email: str | None, folder_roles: FolderRoles) -> bool:
    if "sent" in folder_roles.roles_of(msg):
        return True
    if grant_email is None:
        return False
    own = grant_email.strip().casefold()
    return any(p.email.casefold() == own for p in msg.from_)


def _local_part(participant: Participant) -> str:
    local = participant.email.rpartition("@")[0] if "@" in participant.email else participant.email
    return local.split("+", 1)[0].strip().casefold()


def detect_automated(msg: NylasMessage) -> bool:
    auto_submitted = header_value(msg.headers, "Auto-Submitted")
    if auto_submitted is not None and auto_submitted.split(";", 1)[0].strip().casefold() != "no":
        return True
    precedence = header_value(msg.headers, "Precedence")
    if precedence is not None and precedence.strip().casefold() in _BULK_PRECEDENCE:
        return True
    if header_value(msg.headers, "List-Unsubscribe") is not None:
        return True
    if header_value(msg.headers, "List-Id") is not None:
        return True
    return any(_local_part(p) in AUTOMATED_LOCAL_PARTS for p in msg.from_)


def _is_known(address: str, known_external: KnownExternal) -> bool:
    if callable(known_external):
        return bool(known_external(address))
    return address in known_external


def decide(
    msg: NylasMessage,
    *,
    policy: PolicyConfig,
    org_domains: Iterable[str],
    grant_email: str | None,
    folder_roles: FolderRoles,
    known_external: KnownExternal,
    threads: ThreadTracker,
) -> SkipReason | None:
    """The reason to skip `msg`, or None to track it (and then mark its thread as seen)."""
    own = grant_email.strip().casefold() if grant_email else None
    domains = frozenset(d.casefold() for d in org_domains)
    reason = _skip_reason(msg, policy, domains, own, folder_roles, known_external, threads)
    if reason is None:
        threads.mark(msg.thread_id, extract_message_id(msg))
    return reason


def _skip_reason(
    msg: NylasMessage,
    policy: PolicyConfig,
    org_domains: frozenset[str],
    own_address: str | None,
    folder_roles: FolderRoles,
    known_external: KnownExternal,
    threads: ThreadTracker,
) -> SkipReason | None:
    roles = folder_roles.roles_of(msg)
    for role, reason in (
        ("drafts", SkipReason.DRAFT),
        ("junk", SkipReason.SPAM),
        ("trash", SkipReason.TRASH),
    ):
        if role in roles:
            return reason
    addresses = [a.casefold() for a in party_addresses(msg)]
    excluded_addresses = {a.strip().casefold() for a in policy.excluded_addresses}
    if any(a in excluded_addresses for a in addresses):
        return SkipReason.EXCLUDED_ADDRESS
    domains = [domain_of(a) for a in addresses]
    excluded_domains = {d.strip().casefold() for d in policy.excluded_domains}
    if any(d in excluded_domains for d in domains):
        return SkipReason.EXCLUDED_DOMAIN
    if policy.internal_only == "skip" and domains and all(d in org_domains for d in domains):
        return SkipReason.INTERNAL_ONLY
    if policy.skip_automated and detect_automated(msg):
        return SkipReason.AUTOMATED
    if policy.require_known_party:
        external = [
            a for a, d in zip(addresses, domains, strict=True) if d not in org_domains and a != own_address
        ]
        if not any(_is_known(a, known_external) for a in external):
            return SkipReason.NO_KNOWN_PARTY
    if policy.first_message_of_thread_only and (
        threads.seen(msg.thread_id) or (threads.answers_tracked(msg) if threads.consulted else _is_reply(msg))
    ):
        return SkipReason.NOT_FIRST_IN_THREAD
    return None


def _is_reply(msg: NylasMessage) -> bool:
    return any(
        (value := header_value(msg.headers, name)) is not None and value.strip()
        for name in ("In-Reply-To", "References")
    )
