"""Lenient parsing of one Nylas v3 message object into a `NylasMessage`.

Nylas message JSON varies by provider (Microsoft sometimes omits `from`, headers are only present when
requested, names may be missing). Parsing is lenient where a value is merely absent and strict where a
wrong value would silently change what gets written to Dataverse.

Rules:

- The input must be a JSON object (a `dict`); anything else is `not_an_object`.
- `id` must be a string that is not blank (`missing_id` / `bad_id`); it is kept unchanged.
- `date` (Unix seconds) must be integer-like: an `int` (a `bool` is not), an integral finite `float`, or
  a string of ASCII digits; it must lie between 0 and 9999-12-31T23:59:59Z (`missing_date` / `bad_date`).
- `grant_id`, `thread_id`, `subject`, `snippet`: missing or null -> `""`; `body`: missing or null ->
  `None`. Any other non-string value is `bad_field`.
- `from`, `to`, `cc`, `bcc`, `reply_to`: missing or null -> empty. Otherwise they must be lists
  (`bad_field`); entries that are not objects or have no usable `email` (missing, null, not a string, or
  blank) are dropped. Emails are stripped of surrounding whitespace and keep their case for display
  (comparisons elsewhere casefold them). A missing, null or non-string `name` becomes `""`.
- `folders`: missing or null -> empty; must be a list (`bad_field`); non-string entries are dropped.
- `headers`: missing or null -> empty; must be a list (`bad_field`); entries without a string `name`
  are dropped, a null `value` becomes `""`, a non-string `value` drops the entry. Order and duplicates
  are kept, values are not decoded.
- Every kept string must be encodable as UTF-8 (JSON allows lone surrogates): `bad_encoding`.
- `attachments`: missing or null -> empty; must be a list (`bad_field`). Each entry is kept as a
  `NylasAttachment`, in order (its position is part of its identity); an entry that is not an object, or
  lacks a string `id`, is kept with its `problem` named, so the attachment policy skips it with a reason
  instead of dropping it. A missing `size` counts as 0, `is_inline` as false.
- Everything else in the object (raw_mime, metadata, ...) is not kept.

`parse_message` raises only `BadMessage`, whose `reason` is `"<code>"` or `"<code>: <detail>"`; the
code is stable and machine-friendly (the run report counts failures by it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# 9999-12-31T23:59:59Z: the largest instant every consumer (datetime, Dataverse) can represent.
MAX_DATE = 253_402_300_799
_ASCII_DIGITS = re.compile(r"[0-9]{1,12}", re.ASCII)
_PARTICIPANT_FIELDS = ("from", "to", "cc", "bcc", "reply_to")


class BadMessage(Exception):  # noqa: N818 - the name is part of the agreed interface
    """A Nylas message that cannot be used; `reason` is `code` or `code: detail`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def code(self) -> str:
        return self.reason.split(":", 1)[0]


@dataclass(frozen=True)
class Participant:
    email: str
    name: str


@dataclass(frozen=True)
class NylasAttachment:
    """One entry of a message's ``attachments[]`` (metadata only; the bytes are downloaded by load)."""

    id: str
    filename: str
    content_type: str
    size: int
    is_inline: bool = False
    content_id: str = ""
    problem: str | None = None


@dataclass(frozen=True)
class NylasMessage:
    id: str
    grant_id: str
    thread_id: str
    subject: str
    from_: tuple[Participant, ...]
    to: tuple[Participant, ...]
    cc: tuple[Participant, ...]
    bcc: tuple[Participant, ...]
    reply_to: tuple[Participant, ...]
    date: int
    folders: tuple[str, ...]
    body: str | None
    snippet: str
    headers: tuple[tuple[str, str], ...]
    attachments: tuple[NylasAttachment, ...] = ()


def parse_message(raw: object) -> NylasMessage:
    """Parse one message object from the Nylas API; raise `BadMessage` if it cannot be used."""
    if not isinstance(raw, dict):
        raise BadMessage(f"not_an_object: got {type(raw).__name__}")
    participants = {field: _participants(raw.get(field), field) for field in _PARTICIPANT_FIELDS}
    return NylasMessage(
        id=_nylas_id(raw.get("id")),
        grant_id=_optional_text(raw.get("grant_id"), "grant_id"),
        thread_id=_optional_text(raw.get("thread_id"), "thread_id"),
        subject=_optional_text(raw.get("subject"), "subject"),
        from_=participants["from"],
        to=participants["to"],
        cc=participants["cc"],
        bcc=participants["bcc"],
        reply_to=participants["reply_to"],
        date=_date(raw.get("date")),
        folders=_folders(raw.get("folders")),
        body=None if raw.get("body") is None else _optional_text(raw.get("body"), "body"),
        snippet=_optional_text(raw.get("snippet"), "snippet"),
        headers=_headers(raw.get("headers")),
        attachments=_attachments(raw.get("attachments")),
    )


def _checked(text: str, field: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadMessage(f"bad_encoding: '{field}' is not valid Unicode") from None
    return text


def _nylas_id(value: object) -> str:
    if value is None:
        raise BadMessage("missing_id")
    if not isinstance(value, str):
        raise BadMessage(f"bad_id: must be a string, got {type(value).__name__}")
    if not value.strip():
        raise BadMessage("missing_id")
    return _checked(value, "id")


def _optional_text(value: object, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadMessage(f"bad_field: '{field}' must be a string, got {type(value).__name__}")
    return _checked(value, field)


def _date(value: object) -> int:
    if value is None:
        raise BadMessage("missing_date")
    seconds: int | None = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int):
        seconds = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        seconds = int(value)
    elif isinstance(value, str) and _ASCII_DIGITS.fullmatch(value.strip()):
        seconds = int(value.strip())
    if seconds is None or not 0 <= seconds <= MAX_DATE:
        raise BadMessage(f"bad_date: {_short_repr(value)}")
    return seconds


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _list(value: object, field: str) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadMessage(f"bad_field: '{field}' must be a list, got {type(value).__name__}")
    return value


def _participants(value: object, field: str) -> tuple[Participant, ...]:
    kept: list[Participant] = []
    for entry in _list(value, field):
        if not isinstance(entry, dict):
            continue
        email = entry.get("email")
        if not isinstance(email, str) or not email.strip():
            continue
        name = entry.get("name")
        kept.append(
            Participant(
                email=_checked(email.strip(), f"{field}.email"),
                name=_checked(name, f"{field}.name") if isinstance(name, str) else "",
            )
        )
    return tuple(kept)


def _folders(value: object) -> tuple[str, ...]:
    return tuple(_checked(f, "folders") for f in _list(value, "folders") if isinstance(f, str))


def _headers(value: object) -> tuple[tuple[str, str], ...]:
    kept: list[tuple[str, str]] = []
    for entry in _list(value, "headers"):
        if not isinstance(entry, dict):
            continue
        name, header_value = entry.get("name"), entry.get("value")
        if header_value is None:
            header_value = ""
        if isinstance(name, str) and isinstance(header_value, str):
            kept.append((_checked(name, "headers.name"), _checked(header_value, "headers.value")))
    return tuple(kept)


def _attachments(value: object) -> tuple[NylasAttachment, ...]:
    return tuple(_attachment(entry) for entry in _list(value, "attachments"))


def _attachment(entry: object) -> NylasAttachment:
    if not isinstance(entry, dict):
        return NylasAttachment("", "", "", 0, problem=f"not an object ({type(entry).__name__})")
    raw_id, size = entry.get("id"), entry.get("size")
    problem = None
    if not isinstance(raw_id, str) or not raw_id.strip():
        problem = "no id to download it by"
    elif size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        problem = f"size is not a byte count ({_short_repr(size)})"

    def text(name: str) -> str:
        value = entry.get(name)
        return _checked(value, f"attachments.{name}") if isinstance(value, str) else ""

    return NylasAttachment(
        id=text("id"),
        filename=text("filename"),
        content_type=text("content_type"),
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else 0,
        is_inline=entry.get("is_inline") is True,
        content_id=text("content_id"),
        problem=problem,
    )
