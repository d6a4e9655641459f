"""Which Dataverse row a message is: its `messageid` (the dedupe key) and its deterministic `activityid`.

Rules:

- The dedupe key is the RFC 5322 `Message-ID` header exactly as sent, angle brackets included; only
  surrounding whitespace is stripped. Header names match case-insensitively and the first occurrence
  wins. A blank value counts as absent.
- Without a `Message-ID` (Nylas omits headers for some providers and folders) the key is synthetic: `<`
  + the first 32 hex digits of sha256("<grant_id>\\x00<nylas_id>") + `@synthetic.nylas-dataverse.invalid>`.
  It is stable across reruns of the same grant, which is all deduplication needs for such mail.
- Dataverse's `messageid` column holds at most 320 characters. A longer header is replaced by
  `<` + sha256(header)[:40] + `@long-id.nylas-dataverse.invalid>`, still derived from the real value, so
  every grant holding the message agrees on it.
- `activityid` = uuid5(ACTIVITY_NAMESPACE, messageid). The same message therefore maps to the same row
  whichever grant sees it, and Dataverse's primary key rejects a second create. The namespace must never
  change: doing so would duplicate every message already loaded.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from enum import StrEnum

from nylas_dataverse.core.messages import NylasMessage

MESSAGE_ID_MAX_LENGTH = 320
ACTIVITY_NAMESPACE = uuid.UUID("c8609b10-081d-48f2-a0c6-9af132d460d3")
SYNTHETIC_DOMAIN = "synthetic.nylas-dataverse.invalid"
LONG_ID_DOMAIN = "long-id.nylas-dataverse.invalid"


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


def extract_message_id(msg: NylasMessage) -> str | None:
    value = header_value(msg.headers, "Message-ID")
    if value is None or not value.strip():
        return None
    return value.strip()


def synthetic_message_id(grant_id: str, nylas_id: str) -> str:
    digest = hashlib.sha256(f"{grant_id}\x00{nylas_id}".encode()).hexdigest()
    return f"<{digest[:32]}@{SYNTHETIC_DOMAIN}>"


def dataverse_message_id(msg: NylasMessage) -> tuple[str, MessageIdSource]:
    """The value for Dataverse's `messageid` column and where it came from."""
    real = extract_message_id(msg)
    if real is None:
        return synthetic_message_id(msg.grant_id, msg.id), MessageIdSource.SYNTHETIC
    if len(real) > MESSAGE_ID_MAX_LENGTH:
        digest = hashlib.sha256(real.encode()).hexdigest()
        return f"<{digest[:40]}@{LONG_ID_DOMAIN}>", MessageIdSource.HASHED
    return real, MessageIdSource.HEADER


def activity_id(message_id: str) -> uuid.UUID:
    return uuid.uuid5(ACTIVITY_NAMESPACE, message_id)
