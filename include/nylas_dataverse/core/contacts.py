"""Opt-in contacts for unresolved external addresses (``policy.create_contacts: off | senders | all``).

Which addresses of a message to be created get a new contact:

- ``off`` (the default): none; ``senders``: its From addresses; ``all``: every From, To, Cc and Bcc address;
- only an address no contact, account, lead or user resolved (the run's directory), with an ``@`` and a
  domain, and short enough for ``contact.emailaddress1`` (100 UTF-16 code units);
- never one on the org's own domains, the grant's own address, an address in ``excluded_addresses`` or on
  ``excluded_domains``, nor a role or no-reply address: its local part (before ``@``, ignoring a ``+tag``)
  matches one of ``policy.role_address_patterns`` (shell-style, casefolded; by default
  ``config.ROLE_ADDRESS_PATTERNS``).

A new contact's ``contactid`` is uuid5(``CONTACT_NAMESPACE``, the address stripped and casefolded), so every
run and grant names the same contact for an address and a rerun makes no second one; the load upserts it
(``PATCH contacts(<id>)``) in the email's own change set, before the email that binds it. Its names come from
the display name (last word the last name, the rest the first name), else the local part is the last name.
The email then binds the new contact as that party and, through the usual regarding rule, may be regarding
it. Once created, later runs resolve the address to it like any contact.
"""

from __future__ import annotations

import fnmatch
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nylas_dataverse.core.config import CreateContacts
from nylas_dataverse.core.messages import NylasMessage, Participant
from nylas_dataverse.core.policy import domain_of
from nylas_dataverse.core.resolution import Directory, Resolution, normalise_address
from nylas_dataverse.core.text import cut_utf16, utf16_len

CONTACT_NAMESPACE = uuid.UUID("5b0f4c1e-7d2a-4e8b-9a63-1c2d3e4f5a6b")
LASTNAME_MAX = 50
FIRSTNAME_MAX = 50
EMAILADDRESS_MAX = 100  # contact.emailaddress1 (2025 metadata); a longer address gets no contact


@dataclass(frozen=True)
class NewContact:
    id: str
    address: str
    firstname: str | None
    lastname: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "address": self.address,
            "firstname": self.firstname,
            "lastname": self.lastname,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NewContact:
        first = data.get("firstname")
        return cls(
            str(data["id"]),
            str(data["address"]),
            None if first is None else str(first),
            str(data["lastname"]),
        )


def contact_id(address: str) -> str:
    return str(uuid.uuid5(CONTACT_NAMESPACE, normalise_address(address)))


def _local_part(address: str) -> str:
    return address.rpartition("@")[0].split("+", 1)[0].strip().casefold()


def is_role_address(address: str, patterns: Iterable[str]) -> bool:
    local = _local_part(address)
    return any(fnmatch.fnmatchcase(local, pattern.casefold()) for pattern in patterns)


def _names(participant: Participant) -> tuple[str | None, str]:
    words = participant.name.split()
    if not words:
        return None, cut_utf16(_local_part(participant.email), LASTNAME_MAX)
    first = cut_utf16(" ".join(words[:-1]), FIRSTNAME_MAX) or None
    return first, cut_utf16(words[-1], LASTNAME_MAX)


def new_contacts(
    msg: NylasMessage,
    directory: Directory,
    *,
    mode: CreateContacts,
    org_domains: Iterable[str],
    grant_email: str | None,
    excluded_addresses: Iterable[str],
    excluded_domains: Iterable[str],
    role_patterns: Iterable[str],
) -> tuple[NewContact, ...]:
    """The contacts to create for ``msg`` (see the module docstring), in party order, each address once."""
    if mode == "off":
        return ()
    participants = msg.from_ if mode == "senders" else (*msg.from_, *msg.to, *msg.cc, *msg.bcc)
    own_domains = {d.casefold() for d in org_domains}
    never = {a.strip().casefold() for a in excluded_addresses}
    if grant_email:
        never.add(grant_email.strip().casefold())
    excluded = {d.strip().casefold() for d in excluded_domains}
    patterns = tuple(role_patterns)
    chosen: dict[str, NewContact] = {}
    for participant in participants:
        address = normalise_address(participant.email)
        domain = domain_of(address)
        if (
            address in chosen
            or "." not in domain
            or not _local_part(address)
            or utf16_len(address) > EMAILADDRESS_MAX
            or domain in own_domains
            or domain in excluded
            or address in never
            or is_role_address(address, patterns)
            or directory.resolve(address) is not None
        ):
            continue
        first, last = _names(participant)
        chosen[address] = NewContact(contact_id(address), participant.email.strip(), first, last)
    return tuple(chosen.values())


class WithNewContacts(Directory):
    """The run's directory, plus the contacts this message creates (so mapping binds and may regard them)."""

    def __init__(self, base: Directory, contacts: Iterable[NewContact]) -> None:
        self._base = base
        self._new = {normalise_address(c.address): Resolution("contact", c.id, False, 1) for c in contacts}

    def resolve(self, address: str) -> Resolution | None:
        return self._new.get(normalise_address(address)) or self._base.resolve(address)

    def __len__(self) -> int:
        return len(self._base) + len(self._new)
