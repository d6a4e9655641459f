"""Attachment files: deterministic bytes, generated chunk by chunk when downloaded, never kept whole.

A file is a pure function of (grant, message id, attachment id, length): a type-specific signature at
the start (``%PDF-``, PNG, ``MZ`` for executables, ``PK`` for Office/zip files...), pseudo-random filler
drawn per 64 KiB block from a seed, and ``%%EOF`` at the end of PDFs. A 25 MB file therefore costs one
chunk of memory at a time, and the same download gives the same bytes on every machine.

Sizes follow the documented provider behaviour: the metadata ``size`` of a Microsoft attachment counts
the MIME part headers, so the downloaded file is smaller than ``size`` by their length ("treat size as
an estimate", Nylas' Attachments reference); elsewhere the two agree.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from nylas_dataverse_sandbox.nylas import ids
from nylas_dataverse_sandbox.personas import GrantPersona

CHUNK_BYTES = 64 * 1024

_SIGNATURES: tuple[tuple[tuple[str, ...], bytes], ...] = (
    (("application/pdf", ".pdf"), b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
    (("image/png", ".png"), b"\x89PNG\r\n\x1a\n"),
    (("image/jpeg", ".jpg", ".jpeg"), b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
    (("image/gif", ".gif"), b"GIF89a"),
    (("application/x-msdownload", "application/x-dosexec", ".exe"), b"MZ\x90\x00\x03\x00\x00\x00"),
    (
        ("application/zip", "application/vnd.openxmlformats", ".zip", ".xlsx", ".docx", ".pptx"),
        b"PK\x03\x04\x14\x00\x06\x00",
    ),
    (("video/mp4", ".mp4"), b"\x00\x00\x00\x18ftypmp42"),
    (("text/calendar", ".ics"), b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"),
)
_PDF_TRAILER = b"\n%%EOF\n"


def signature(attachment: dict[str, Any]) -> tuple[bytes, bytes]:
    """``(head, tail)`` bytes that make the file look like its type."""
    content_type = str(attachment.get("content_type") or "").lower()
    filename = str(attachment.get("filename") or "").lower()
    for markers, head in _SIGNATURES:
        if any(content_type.startswith(m) for m in markers if "/" in m) or any(
            filename.endswith(m) for m in markers if m.startswith(".")
        ):
            return head, _PDF_TRAILER if head.startswith(b"%PDF") else b""
    return b"", b""


def mime_overhead(attachment: dict[str, Any]) -> int:
    """The MIME part headers Microsoft counts in ``size`` (not part of the downloaded file)."""
    filename = attachment.get("filename") or "attachment"
    content_type = attachment.get("content_type") or "application/octet-stream"
    part = (
        f'Content-Type: {content_type}; name="{filename}"\r\n'
        f"Content-Description: {filename}\r\n"
        f'Content-Disposition: attachment; filename="{filename}"; size={attachment["size"]}\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    )
    return len(part.encode())


def file_length(grant: GrantPersona, attachment: dict[str, Any]) -> int:
    """How many bytes a download of the attachment returns."""
    size = int(attachment["size"])
    if grant.provider == "microsoft":
        return max(size - mime_overhead(attachment), 1)
    return size


def iter_bytes(
    grant: GrantPersona, message_id: str, attachment: dict[str, Any], *, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[bytes]:
    """The file in chunks of at most ``chunk_bytes``; generated lazily, so any size costs one chunk.

    The filler is drawn in fixed 64 KiB blocks, each from its own seed, so the bytes do not depend on
    the chunk size and any block can be produced on its own.
    """
    length = file_length(grant, attachment)
    head, tail = signature(attachment)
    seed = ids.digest("attachment-bytes", grant.grant_id, message_id, attachment["id"]).hex()
    tail_start = length - len(tail)
    cached: tuple[int, bytes] = (-1, b"")
    for start in range(0, length, chunk_bytes):
        end = min(start + chunk_bytes, length)
        chunk = bytearray()
        position = start
        while position < end:
            number, offset = divmod(position, CHUNK_BYTES)
            if cached[0] != number:
                cached = (number, random.Random(f"{seed}:{number}").randbytes(CHUNK_BYTES))
            piece = cached[1][offset : offset + (end - position)]
            chunk += piece
            position += len(piece)
        if start < len(head):
            overlap = head[start : min(end, len(head))]
            chunk[: len(overlap)] = overlap
        if tail and end > tail_start:
            first = max(start, tail_start)
            chunk[first - start :] = tail[first - tail_start : end - tail_start]
        yield bytes(chunk)


def find(message: dict[str, Any], attachment_id: str) -> dict[str, Any] | None:
    """The attachment of the message with this id (ids are unique within a message, not across them)."""
    return next((a for a in message.get("attachments", []) if a["id"] == attachment_id), None)
