"""What message, thread, folder and attachment ids look like for each provider.

- Google: Gmail ids are the hex of ``milliseconds << 20 | 20 low bits`` (``18d5a4b2c3e4f567``), and a
  thread's id is the id of its first message.
- Microsoft: Graph immutable ids are long standard-base64 strings that contain ``/``, ``+`` and ``=``
  (so they must be URL-encoded in a path).
- IMAP: Nylas derives ids by hashing, with the grant id in the hash.

Ids of lazily generated bulk messages carry their (source, index) in a form that can be decoded again,
so ``GET /messages/{id}`` can rebuild one message without keeping any of them in memory. Every decoded
id is re-encoded and compared, so a look-alike id never resolves to the wrong message.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools

MAX_BULK_SOURCES = 499
MAX_BULK_INDEX = (1 << 20) - 1

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_MS_MESSAGE_PREFIX = b"\x00\x03\x24\x00"  # encodes to "AAMkA", like Graph message ids
_MS_CONVERSATION_PREFIX = b"\x00\x04\x24\x00"  # "AAQkA", like Graph conversation ids
_MS_FOLDER_PREFIX = b"\x01\x03\x24\x00"  # "AQMkA", like Graph folder ids
_MS_SEEDED = b"\x53"
_MS_BULK = b"\x42"
_MS_RAW_LENGTH = 113  # 113 % 3 == 2: the encoding ends in one "=", as Graph ids often do


def digest(*parts: object) -> bytes:
    """A stable hash of the parts (the same on every machine and Python run)."""
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).digest()


def base36(data: bytes, length: int) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    for _ in range(length):
        number, remainder = divmod(number, 36)
        chars.append(_BASE36[remainder])
    return "".join(reversed(chars))


def _base36_fixed(number: int, length: int) -> str:
    return base36(number.to_bytes(8, "big"), length)


def _stretch(seed: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


# Google -----------------------------------------------------------------------------------------------


def google_id(epoch_s: int, milliseconds: int, low_bits: int) -> str:
    return format(((epoch_s * 1000 + milliseconds) << 20) | (low_bits & MAX_BULK_INDEX), "x")


def google_seeded_id(grant_id: str, key: str, epoch_s: int) -> str:
    # Seeded ids use milliseconds 500..999 and bulk ids 1..499, so the two can never coincide.
    raw = digest("google-message", grant_id, key)
    return google_id(epoch_s, 500 + int.from_bytes(raw[:2], "big") % 500, int.from_bytes(raw[2:5], "big"))


def google_bulk_id(epoch_s: int, source_no: int, index: int) -> str:
    return google_id(epoch_s, source_no, index)


def google_decode_bulk(message_id: str) -> tuple[int, int, int] | None:
    """``(epoch_s, source_no, index)`` of a bulk Gmail-shaped id, or None."""
    if not 1 <= len(message_id) <= 20 or any(c not in "0123456789abcdef" for c in message_id):
        return None
    value = int(message_id, 16)
    index = value & MAX_BULK_INDEX
    epoch_s, source_no = divmod(value >> 20, 1000)
    if not 1 <= source_no <= MAX_BULK_SOURCES:
        return None
    return epoch_s, source_no, index


# Microsoft --------------------------------------------------------------------------------------------


def _graph_base64(head: bytes, seed: str, raw_length: int) -> str:
    """Standard base64 of ``head`` + filler, retried until it shows both ``/`` and ``+``."""
    for salt in itertools.count():
        raw = head + _stretch(digest(seed, salt), raw_length - len(head))
        encoded = base64.b64encode(raw).decode()
        if "/" in encoded and "+" in encoded:
            return encoded
    raise AssertionError("unreachable")


def _mailbox_tag(grant_id: str) -> bytes:
    return digest("microsoft-mailbox", grant_id)[:16]


def microsoft_seeded_id(grant_id: str, key: str) -> str:
    head = _MS_MESSAGE_PREFIX + _mailbox_tag(grant_id) + _MS_SEEDED
    return _graph_base64(head, f"microsoft-message:{grant_id}:{key}", _MS_RAW_LENGTH)


def microsoft_bulk_id(grant_id: str, source_no: int, index: int) -> str:
    head = (
        _MS_MESSAGE_PREFIX
        + _mailbox_tag(grant_id)
        + _MS_BULK
        + source_no.to_bytes(2, "big")
        + index.to_bytes(4, "big")
    )
    return _graph_base64(head, f"microsoft-bulk:{grant_id}:{source_no}:{index}", _MS_RAW_LENGTH)


def microsoft_decode_bulk(grant_id: str, message_id: str) -> tuple[int, int] | None:
    try:
        raw = base64.b64decode(message_id, validate=True)
    except ValueError:
        return None
    head = _MS_MESSAGE_PREFIX + _mailbox_tag(grant_id) + _MS_BULK
    if len(raw) != _MS_RAW_LENGTH or not raw.startswith(head):
        return None
    source_no = int.from_bytes(raw[len(head) : len(head) + 2], "big")
    index = int.from_bytes(raw[len(head) + 2 : len(head) + 6], "big")
    if microsoft_bulk_id(grant_id, source_no, index) != message_id:
        return None
    return source_no, index


@functools.lru_cache(maxsize=8192)
def microsoft_conversation_id(grant_id: str, thread_key: str) -> str:
    return _graph_base64(
        _MS_CONVERSATION_PREFIX + _mailbox_tag(grant_id), f"conv:{grant_id}:{thread_key}", 62
    )


@functools.lru_cache(maxsize=1024)
def microsoft_folder_id(grant_id: str, name: str) -> str:
    return _graph_base64(_MS_FOLDER_PREFIX + _mailbox_tag(grant_id), f"folder:{grant_id}:{name}", 71)


# IMAP -------------------------------------------------------------------------------------------------


def imap_seeded_id(grant_id: str, folder: str, key: str) -> str:
    return base36(digest("imap-message", grant_id, folder, key), 25)


def imap_bulk_id(grant_id: str, source_no: int, index: int) -> str:
    tail = base36(digest("imap-bulk", grant_id, source_no, index), 18)
    return "z" + _base36_fixed(source_no, 2) + _base36_fixed(index, 4) + tail


def imap_decode_bulk(grant_id: str, message_id: str) -> tuple[int, int] | None:
    if len(message_id) != 25 or not message_id.startswith("z"):
        return None
    try:
        source_no = int(message_id[1:3], 36)
        index = int(message_id[3:7], 36)
    except ValueError:
        return None
    if imap_bulk_id(grant_id, source_no, index) != message_id:
        return None
    return source_no, index


@functools.lru_cache(maxsize=8192)
def imap_thread_id(grant_id: str, thread_key: str) -> str:
    return base36(digest("imap-thread", grant_id, thread_key), 25)


# Attachments ------------------------------------------------------------------------------------------


def attachment_id(
    provider: str, grant_id: str, message_key: str, filename: str, content_type: str, size: int, part: int = 0
) -> str:
    """``part`` is the attachment's position in its message (two parts may share a file name)."""
    raw = digest("attachment", grant_id, message_key, filename, *((part,) if part else ()))
    if provider == "google":
        return "ANGjdJ" + base64.urlsafe_b64encode(_stretch(raw, 90)).decode().rstrip("=")
    if provider == "microsoft":
        return base64.b64encode(_MS_MESSAGE_PREFIX + _stretch(raw, 86)).decode()
    name = base64.b64encode(filename.encode()).decode()
    kind = base64.b64encode(content_type.encode()).decode()
    return f"v0:{name}:{kind}:{size}"
