"""The OData 4.0 multipart `$batch` wire format, read and written as Dataverse does.

Pure: bytes in, parts out, and response parts in, bytes out. Executing the operations, atomic change sets and
stop-on-first-error belong to the service; this module only knows the format and its limits. The reader is
tolerant where real servers are (LF line endings, quoted boundaries, a preamble, a missing blank line after a
bodiless request) and strict where Dataverse is (GET in a change set, nested change sets, more than 1000
operations, a batch that never closes).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

__all__ = [
    "MAX_OPERATIONS",
    "BatchFormatError",
    "BatchRequestPart",
    "ChangeSetPart",
    "ChangeSetResponse",
    "HeaderMap",
    "ResponsePart",
    "parse_batch",
    "resolve_content_id_references",
    "serialize_batch_response",
]

MAX_OPERATIONS = 1000
_CHANGE_SET_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_METHODS = _CHANGE_SET_METHODS | {"GET"}
# Like the real reader: method up to the first space, version after the last, the URL is all in between, so
# the official Python client's unencoded `$filter=a eq 'b'` inside a batch still parses.
_REQUEST_LINE = re.compile(r"(?P<method>\S+) (?P<url>.*\S) (?P<version>\S+)")
_BOUNDARY = re.compile(r';\s*boundary\s*=\s*(?:"(?P<quoted>[^"]+)"|(?P<bare>[^;\s]+))', re.IGNORECASE)
_URL_REFERENCE = re.compile(r"\$(?P<id>[^/?#\s]+)")
# `$n` is only a reference where a URL is expected: a bind or an entity-reference id, never ordinary text.
_BODY_REFERENCE = re.compile(
    r'(?P<key>"[^"\\]*@odata\.(?:bind|id)"\s*:\s*")\$(?P<id>[^"/\\\s]+)(?P<rest>[^"\\]*")'
)


class BatchFormatError(ValueError):
    """A `$batch` body Dataverse rejects as a whole; `message` is the text for the 400 error body."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HeaderMap(Mapping[str, str]):
    """Headers as spelt by the sender, looked up case-insensitively; the last of a repeated name wins."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs: dict[str, tuple[str, str]] = {name.lower(): (name, value) for name, value in pairs}

    def __getitem__(self, name: str) -> str:
        return self._pairs[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._pairs

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._pairs.values())

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"HeaderMap({list(self._pairs.values())!r})"


@dataclass(frozen=True)
class BatchRequestPart:
    """One operation: its request line, its own headers and body, and the Content-ID it declared."""

    method: str
    url: str
    headers: HeaderMap
    body: bytes = b""
    content_id: str | None = None


@dataclass(frozen=True)
class ChangeSetPart:
    """Operations that succeed or fail together; only they may declare Content-IDs others reference."""

    requests: list[BatchRequestPart]


@dataclass(frozen=True)
class ResponsePart:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    content_id: str | None = None


@dataclass(frozen=True)
class ChangeSetResponse:
    parts: list[ResponsePart]


def parse_batch(
    body: bytes,
    content_type: str,
    *,
    max_operations: int = MAX_OPERATIONS,
    unique_content_ids_per_batch: bool = False,
) -> list[BatchRequestPart | ChangeSetPart]:
    """Split a `$batch` request body into its operations and change sets, in request order.

    ``max_operations`` is Dataverse's documented 1000 unless a caller models the reported 250 cap;
    ``unique_content_ids_per_batch`` applies OData 4.01's rule (Content-IDs unique in the whole batch)
    instead of 4.0's (unique per change set)."""
    boundary = _boundary_of(content_type, "The $batch request")
    items: list[BatchRequestPart | ChangeSetPart] = []
    for part in _split_multipart(body, boundary, "The $batch request body"):
        headers, content = _split_headers(part)
        part_type = headers.get("Content-Type", "")
        if _media_type(part_type) == "multipart/mixed":
            items.append(_parse_change_set(content, _boundary_of(part_type, "A change set part")))
        else:
            items.append(_parse_operation(headers, content))
    operations = sum(len(item.requests) if isinstance(item, ChangeSetPart) else 1 for item in items)
    if operations > max_operations:
        raise BatchFormatError(
            "The current batch message contains too many parts. Only batch messages with a maximum number of "
            f"'{max_operations}' query operations, including changeset operations, are allowed."
        )
    if unique_content_ids_per_batch:
        seen: set[str] = set()
        for item in items:
            for request in item.requests if isinstance(item, ChangeSetPart) else [item]:
                if request.content_id is None:
                    continue
                if request.content_id in seen:
                    raise BatchFormatError(_duplicate_content_id(request.content_id))
                seen.add(request.content_id)
    return items


def _duplicate_content_id(content_id: str) -> str:
    return (
        f"The content ID '{content_id}' was found more than once in the same change set or same batch "
        "request. Content IDs have to be unique across all operations of a change set for OData V4.0 and "
        "have to be unique across all operations in the whole batch request for OData V4.01."
    )


def _parse_change_set(body: bytes, boundary: str) -> ChangeSetPart:
    requests: list[BatchRequestPart] = []
    for part in _split_multipart(body, boundary, "A change set"):
        headers, content = _split_headers(part)
        if _media_type(headers.get("Content-Type", "")) == "multipart/mixed":
            raise BatchFormatError("Nested change sets in a batch payload are not supported.")
        request = _parse_operation(headers, content)
        if request.method not in _CHANGE_SET_METHODS:
            raise BatchFormatError(
                f"An invalid HTTP method '{request.method}' was detected for a request in a change set. "
                "Requests in change sets only support the HTTP methods 'POST', 'PUT', 'DELETE', and 'PATCH'."
            )
        if request.content_id is not None and any(r.content_id == request.content_id for r in requests):
            raise BatchFormatError(_duplicate_content_id(request.content_id))
        requests.append(request)
    if len(requests) > MAX_OPERATIONS:
        raise BatchFormatError(
            "The current change set contains too many operations. A maximum number of "
            f"'{MAX_OPERATIONS}' operations are allowed in a change set."
        )
    return ChangeSetPart(requests)


def _parse_operation(part_headers: HeaderMap, content: bytes) -> BatchRequestPart:
    part_type = part_headers.get("Content-Type", "")
    if _media_type(part_type) != "application/http":
        raise BatchFormatError(
            f"The batch part Content-Type '{part_type}' is not valid: an operation must be "
            "'application/http' and a change set 'multipart/mixed' with a boundary."
        )
    content = content.lstrip(b"\r\n")  # some clients leave an extra blank line before the request line
    first_line, _, rest = content.partition(b"\n")
    request_line = first_line.rstrip(b"\r").decode("utf-8", errors="replace")
    match = _REQUEST_LINE.fullmatch(request_line)
    if match is None:
        raise BatchFormatError(
            f"The request line '{request_line}' of a batch operation is not of the form "
            "'METHOD URL HTTP/1.1'."
        )
    if match["version"] != "HTTP/1.1":
        raise BatchFormatError(
            f"The HTTP version '{match['version']}' used in a batch operation request or response is not "
            "valid. The value must be 'HTTP/1.1'."
        )
    method = match["method"]
    if method not in _METHODS:
        raise BatchFormatError(
            f"HTTP method '{method}' is not valid in a batch operation: use GET, POST, PATCH, PUT or DELETE."
        )
    headers, body = _split_headers(rest)
    content_id = part_headers.get("Content-ID") or headers.get("Content-ID")
    return BatchRequestPart(method, match["url"].strip(), headers, body, content_id)


def _boundary_of(content_type: str, what: str) -> str:
    match = _BOUNDARY.search(content_type)
    if _media_type(content_type) != "multipart/mixed" or match is None:
        raise BatchFormatError(
            f"{what} has Content-Type '{content_type}'; Dataverse accepts only "
            "'multipart/mixed; boundary=...' (OData 4.0 multipart batches)."
        )
    return match["quoted"] or match["bare"]


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _split_multipart(body: bytes, boundary: str, what: str) -> list[bytes]:
    """The parts between `--boundary` lines; the line break before each delimiter belongs to the delimiter."""
    delimiter = b"--" + boundary.encode("utf-8")
    parts: list[bytes] = []
    current: list[bytes] | None = None  # None while still in the preamble
    for line in body.splitlines(keepends=True):
        marker = line.rstrip(b"\r\n").rstrip(b" \t")
        if marker in (delimiter, delimiter + b"--"):
            if current is not None:
                parts.append(_without_final_line_break(b"".join(current)))
            if marker != delimiter:
                return parts
            current = []
        elif current is not None:
            current.append(line)
    raise BatchFormatError(f"{what} ends without its closing boundary '--{boundary}--'.")


def _without_final_line_break(part: bytes) -> bytes:
    if part.endswith(b"\r\n"):
        return part[:-2]
    return part[:-1] if part.endswith(b"\n") else part


def _split_headers(block: bytes) -> tuple[HeaderMap, bytes]:
    """Header lines up to the first blank line, then the body untouched. No blank line: all headers."""
    pairs: list[tuple[str, str]] = []
    position = 0
    while position < len(block):
        end = block.find(b"\n", position)
        end = len(block) if end == -1 else end + 1
        line = block[position:end].rstrip(b"\r\n").decode("utf-8", errors="replace")
        position = end
        if not line:
            return HeaderMap(pairs), block[position:]
        if line[0] in " \t" and pairs:  # an obsolete folded continuation line
            pairs[-1] = (pairs[-1][0], f"{pairs[-1][1]} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise BatchFormatError(
                f"The header line '{line}' in a batch part is not of the form 'Name: value'."
            )
        pairs.append((name.strip(), value.strip()))
    return HeaderMap(pairs), b""


def resolve_content_id_references(text: str, ids: Mapping[str, str]) -> str:
    """Replace `$n` with the URL of the entity created by the operation whose Content-ID is `n`.

    `text` is a request URL (a reference is its first segment: `$1`, `$1/primarycontactid/$ref`) or a JSON
    body (references are the values of `...@odata.bind` and `@odata.id`). `ids` maps Content-ID values as
    declared (`"1"`) to entity URLs, and holds only those declared earlier in the same change set.
    """

    def url_for(content_id: str) -> str:
        if content_id not in ids:
            raise BatchFormatError(
                f"Content-ID Reference: '${content_id}' does not exist in the batch context."
            )
        return ids[content_id]

    if match := _URL_REFERENCE.match(text):
        return url_for(match["id"]) + text[match.end() :]
    return _BODY_REFERENCE.sub(lambda m: m["key"] + url_for(m["id"]) + m["rest"], text)


def serialize_batch_response(items: list[ResponsePart | ChangeSetResponse]) -> tuple[bytes, str]:
    """The multipart body and its Content-Type, laid out line for line as Dataverse answers a `$batch`."""
    boundary = f"batchresponse_{uuid.uuid4()}"
    chunks: list[bytes] = []
    for item in items:
        chunks.append(f"--{boundary}\r\n".encode())
        if isinstance(item, ChangeSetResponse):
            change_set = f"changesetresponse_{uuid.uuid4()}"
            chunks.append(f"Content-Type: multipart/mixed; boundary={change_set}\r\n\r\n".encode())
            for part in item.parts:
                chunks.append(f"--{change_set}\r\n".encode())
                chunks.append(_serialize_response_part(part))
            chunks.append(f"--{change_set}--\r\n".encode())
        else:
            chunks.append(_serialize_response_part(item))
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/mixed; boundary={boundary}"


def _serialize_response_part(part: ResponsePart) -> bytes:
    mime_headers = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if part.content_id is not None:
        mime_headers.append(f"Content-ID: {part.content_id}")
    try:
        reason = HTTPStatus(part.status).phrase
    except ValueError:
        reason = "Unknown"
    http_lines = [f"HTTP/1.1 {part.status} {reason}", *(f"{name}: {value}" for name, value in part.headers)]
    head = "\r\n".join(mime_headers) + "\r\n\r\n" + "\r\n".join(http_lines) + "\r\n\r\n"
    return head.encode() + part.body + b"\r\n"
