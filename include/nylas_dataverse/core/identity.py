"""Which Dataverse row a message is: its Internet Message-ID (the dedupe key) and its deterministic id.

Names: the **Nylas id** (``nylas_id``) is Nylas' id of one copy of a message in one grant; the **Internet
Message-ID** (``internet_message_id``) is the RFC 5322 ``Message-ID`` header, the same in every mailbox that
holds the message, stored in Dataverse's ``messageid`` column. Only the second deduplicates.

The Message-ID rule (one home; the lookup, the deterministic id and the ledger all use it):

- **Canonical form**: the header value with all whitespace removed (surrounding, and the folding whitespace a
  long header may carry; a msg-id contains none of its own) and wrapped in ``<`` ``>`` when the sender left
  them out. Case is kept as sent. For every well-formed Message-ID the canonical form is the header as sent.
- **Comparison**: two Message-IDs are the same message when their canonical forms are equal ignoring case
  (``message_id_key``), because Dataverse compares ``messageid`` case-insensitively.
- **Lookup**: ask Dataverse for the canonical form and for the same id without angle brackets
  (``lookup_values``), since other writers (server-side sync, the Outlook app) may have stored either.
- Header names match case-insensitively and the first occurrence wins; a blank value counts as absent.
- Without a ``Message-ID`` (Nylas omits headers for some providers and folders) the id is synthetic:
  ``<`` + the first 32 hex digits of sha256("<grant_id>\\x00<nylas_id>") +
  ``@synthetic.nylas-dataverse.invalid>``,
  stable across reruns of the same grant, which is all deduplication needs for such mail.
- Dataverse's ``messageid`` holds at most 320 UTF-16 code units. A longer canonical id is replaced by
  ``<`` + sha256(canonical)[:40] + ``@long-id.nylas-dataverse.invalid>``, still derived from the real value,
  so
  every grant holding the message agrees on it.
- ``activity_id`` = uuid5(ACTIVITY_NAMESPACE, canonical id). The same message therefore maps to the same row
  whichever grant sees it, and Dataverse's primary key rejects a second create. The namespace and the
  canonical form must never change: doing so would duplicate every message already loaded.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from enum import StrEnum

from nylas_dataverse.core.messages import NylasMessage
from nylas_dataverse.core.text import utf16_len

MESSAGE_ID_MAX_LENGTH = 320
ACTIVITY_NAMESPACE = uuid.UUID("c8609b10-081d-48f2-a0c6-9af132d460d3")
SYNTHETIC_DOMAIN = "synthetic.nylas-dataverse.invalid"
LONG_ID_DOMAIN = "long-id.nylas-dataverse.invalid"
_WHITESPACE = re.compile(r"\s+")


class MessageIdSource(StrEnum):
    HEADER = "header"
    SYNTHETIC = "synthetic"
    HASHED = "hashed"


def header_value(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    """The value of the first header called `name` (case-insensitive), unchanged; None if absent."""
    wanted = name.casefold()
    for header_name, value in headers:
        if header_name.strip().casefold() == wanted:
            return value
    return None


def canonical_message_id(value: str) -> str | None:
    """The canonical form of a Message-ID value (see the module docstring); None when it is blank."""
    compact = _WHITESPACE.sub("", value)
    if not compact or compact == "<>":
        return None
    if not (compact.startswith("<") and compact.endswith(">")):
        compact = f"<{compact.strip('<>')}>"
    return compact


def message_id_key(value: str) -> str:
    """What two Message-IDs are compared by: the canonical form, casefolded."""
    canonical = canonical_message_id(value)
    return (canonical or value.strip()).casefold()


def lookup_values(internet_message_id: str) -> tuple[str, ...]:
    """The ``messageid`` values to ask Dataverse for: the canonical form and its bare inner id."""
    inner = internet_message_id[1:-1] if internet_message_id.startswith("<") else internet_message_id
    return (internet_message_id, inner) if inner and inner != internet_message_id else (internet_message_id,)


def extract_message_id(msg: NylasMessage) -> str | None:
    """The canonical ``Message-ID`` of ``msg`` from its headers, or None."""
    value = header_value(msg.headers, "Message-ID")
    return None if value is None else canonical_message_id(value)


def reply_parent_message_id(msg: NylasMessage) -> str | None:
    """The Message-ID ``msg`` answers: ``In-Reply-To``, else the last id in ``References``; canonical."""
    for name in ("In-Reply-To", "References"):
        value = header_value(msg.headers, name)
        if value is None:
            continue
        ids: list[str] = re.findall(r"<[^<>\s]+>", value)
        if ids:
            return ids[-1] if name == "References" else ids[0]
        canonical = canonical_message_id(value)
        if canonical is not None and name == "In-Reply-To":
            return canonical
    return None


def referenced_message_ids(msg: NylasMessage) -> tuple[str, ...]:
    """Every Message-ID ``msg`` names in ``In-Reply-To`` and ``References``, canonical, without repeats."""
    found: dict[str, str] = {}
    for name in ("In-Reply-To", "References"):
        value = header_value(msg.headers, name)
        if value is None:
            continue
        ids = re.findall(r"<[^<>\s]+>", value)
        if not ids and name == "In-Reply-To" and (canonical := canonical_message_id(value)) is not None:
            ids = [canonical]
        for message_id in ids:
            found.setdefault(message_id_key(message_id), message_id)
    return tuple(found.values())


def synthetic_message_id(grant_id: str, nylas_id: str) -> str:
    digest = hashlib.sha256(f"{grant_id}\x00{nylas_id}".encode()).hexdigest()
    return f"<{digest[:32]}@{SYNTHETIC_DOMAIN}>"


def dataverse_message_id(msg: NylasMessage) -> tuple[str, MessageIdSource]:
    """The value for Dataverse's ``messageid`` column and where it came from."""
    real = extract_message_id(msg)
    if real is None:
        return synthetic_message_id(msg.grant_id, msg.id), MessageIdSource.SYNTHETIC
    if utf16_len(real) > MESSAGE_ID_MAX_LENGTH:
        digest = hashlib.sha256(real.encode("utf-8", "surrogatepass")).hexdigest()
        return f"<{digest[:40]}@{LONG_ID_DOMAIN}>", MessageIdSource.HASHED
    return real, MessageIdSource.HEADER


def activity_id(internet_message_id: str) -> uuid.UUID:
    return uuid.uuid5(ACTIVITY_NAMESPACE, internet_message_id)
