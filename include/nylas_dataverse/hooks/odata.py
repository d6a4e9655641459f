"""Dataverse Web API wire format: OData literals, query strings, ``In`` chunking and ``$batch``.

Pure functions and frozen dataclasses, no I/O: the hook sends what these build and hands back what the
service answered. Every URL built here is already percent-encoded and can be sent as is.
"""

from __future__ import annotations

import base64
import io
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import IO
from urllib.parse import quote

DEFAULT_MAX_URL_LENGTH = 16_000
"""Our limit for one GET URL. Dataverse accepts 32,768 characters; the margin covers proxies and logs."""

MAX_BATCH_REQUESTS = 1000
IN_FILTER = "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)"

# Characters left readable in query values. Everything else is percent-encoded, in particular
# '+' (else read as a space), '&', '#', '=', '%', '<', '>', '"' and non-ASCII (as UTF-8).
_VALUE_SAFE = "()',@"
_KEY_SAFE = "$@"
_GUID = re.compile(r"\(\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?\)")
_BATCH_METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})
_CRLF = "\r\n"


# --- literals and query strings ------------------------------------------------------------------------


def quote_literal(value: str) -> str:
    """An OData string literal: single quotes around the value, inner single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def encode_query(params: Mapping[str, str]) -> str:
    """``k=v&...`` with values percent-encoded for Dataverse (``+`` → ``%2B``, ``&`` → ``%26`` ...)."""
    return "&".join(f"{quote(key, safe=_KEY_SAFE)}={_encode_value(value)}" for key, value in params.items())


def build_url(url_prefix: str, params: Mapping[str, str]) -> str:
    """``url_prefix`` followed by the encoded query (no ``?`` when there are no parameters)."""
    return f"{url_prefix}?{encode_query(params)}" if params else url_prefix


def select_value(columns: Sequence[str] | str) -> str:
    """The ``$select`` value for a column list (a string is taken as already joined)."""
    if isinstance(columns, str):
        return columns
    if not columns:
        raise ValueError("select needs at least one column")
    return ",".join(columns)


def entity_id_from_url(url: str | None) -> str | None:
    """The GUID in the last ``(...)`` of an ``OData-EntityId``/``Location`` URL, lower-cased; else None."""
    if not url:
        return None
    matches = _GUID.findall(url)
    return matches[-1].lower() if matches else None


def _encode_value(value: str) -> str:
    return quote(value, safe=_VALUE_SAFE)


# --- In queries ----------------------------------------------------------------------------------------


def in_filter_params(
    property_name: str, values: Sequence[str], *, extra_filter: str | None = None
) -> dict[str, str]:
    """Unencoded ``$filter``, ``@p1``, ``@p2`` parameters for ``Microsoft.Dynamics.CRM.In``.

    Values travel in the ``@p2`` alias as a JSON array of double-quoted strings, so a ``'`` inside a
    value needs no escaping and quotes or backslashes are escaped the JSON way.
    """
    _check_property_name(property_name)
    filter_text = f"({extra_filter}) and {IN_FILTER}" if extra_filter else IN_FILTER
    return {"$filter": filter_text, "@p1": quote_literal(property_name), "@p2": _json_array(values)}


def in_query_urls(
    url_prefix: str,
    property_name: str,
    values: Iterable[str],
    *,
    select: Sequence[str] | str,
    extra_filter: str | None = None,
    max_url_length: int = DEFAULT_MAX_URL_LENGTH,
) -> list[str]:
    """GET URLs that together ask for every distinct value, each at most ``max_url_length`` characters.

    ``url_prefix`` is the absolute entity-set URL (e.g. ``https://org.crm.dynamics.com/api/data/v9.2/
    contacts``). Duplicate values are asked once, in first-seen order. A value too long to fit in any URL
    raises ``ValueError``.
    """
    unique = list(dict.fromkeys(values))
    for value in unique:
        if not isinstance(value, str):
            raise TypeError(f"In values must be strings, got {type(value).__name__}: {value!r}")
    if not unique:
        return []

    head_params = {
        "$select": select_value(select),
        **in_filter_params(property_name, [], extra_filter=extra_filter),
    }
    del head_params["@p2"]
    head = build_url(url_prefix, head_params) + "&@p2="
    fixed = len(head) + len(_encode_value("[")) + len(_encode_value("]"))
    comma = len(_encode_value(","))

    chunks: list[list[str]] = []
    current: list[str] = []
    length = fixed
    for value in unique:
        item = len(_encode_value(_json_string(value)))
        if fixed + item > max_url_length:
            raise ValueError(
                f"In value of {len(value)} characters cannot fit in a URL of at most {max_url_length} "
                f"characters: {value[:80]!r}"
            )
        added = item + (comma if current else 0)
        if current and length + added > max_url_length:
            chunks.append(current)
            current, length, added = [], fixed, item
        current.append(value)
        length += added
    chunks.append(current)

    urls = [head + _encode_value(_json_array(chunk)) for chunk in chunks]
    assert all(len(url) <= max_url_length for url in urls), "In chunk length bookkeeping is wrong"
    return urls


def _json_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _json_array(values: Sequence[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))


def _check_property_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not a Dataverse column name: {name!r}")


# --- $batch: request side ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Base64File:
    """A JSON string field of a request body whose value is the Base64 text of a file (an attachment's
    ``body``). ``open`` gives the file's bytes from the start each time it is called; ``size`` is their
    number, checked when the batch is written."""

    field: str
    open: Callable[[], IO[bytes]]
    size: int
    describe: str = "the file"

    @property
    def encoded_length(self) -> int:
        return 4 * -(-self.size // 3)


@dataclass(frozen=True)
class BatchRequest:
    """One request inside a ``$batch``.

    ``url`` is relative to the Web API root (``emails``, ``emails(<guid>)``), a ``$n`` Content-ID
    reference (inside a change set), or absolute. ``body`` is JSON-serialisable and may contain
    ``$n`` references (e.g. ``{"regardingobjectid_contact_email@odata.bind": "$1"}``). ``file`` adds one
    more field to the body, the Base64 text of a file, written piece by piece (see :func:`write_batch`).
    """

    method: str
    url: str
    body: object | None = None
    headers: Mapping[str, str] | None = None
    content_id: str | None = None
    file: Base64File | None = None


@dataclass(frozen=True)
class ChangeSet:
    """Requests applied atomically: if one fails, Dataverse rolls back all of them."""

    requests: Sequence[BatchRequest]


BatchOperation = BatchRequest | ChangeSet


def assign_content_ids(operations: Sequence[BatchOperation]) -> list[BatchOperation]:
    """Give every change-set request a batch-unique Content-ID, keeping the ones already set.

    Automatic ids are the smallest positive integers not used by the caller, so a failing change set
    (for which Dataverse returns only the failing part) can be recognised by its Content-ID.
    """
    used: set[str] = set()
    for request in _all_requests(operations):
        if request.content_id is None:
            continue
        if request.content_id in used:
            raise ValueError(f"Content-ID {request.content_id!r} is used twice in one batch")
        used.add(request.content_id)

    counter = 0

    def next_id() -> str:
        nonlocal counter
        while True:
            counter += 1
            if str(counter) not in used:
                used.add(str(counter))
                return str(counter)

    assigned: list[BatchOperation] = []
    for operation in operations:
        if isinstance(operation, ChangeSet):
            requests = [
                r if r.content_id is not None else replace(r, content_id=next_id())
                for r in operation.requests
            ]
            assigned.append(ChangeSet(requests=tuple(requests)))
        else:
            assigned.append(operation)
    return assigned


def encode_batch(
    operations: Sequence[BatchOperation], boundary: str | None = None, *, base_url: str = "/api/data/v9.2/"
) -> tuple[bytes, str]:
    """The ``multipart/mixed`` body (CRLF line endings) and its Content-Type for a ``$batch`` POST.

    Relative request URLs are prefixed with ``base_url``; ``$n`` references and absolute URLs are kept.
    Change-set requests without a Content-ID get one (see :func:`assign_content_ids`). Raises
    ``ValueError`` for an empty batch, more than 1000 requests, an empty change set, a GET inside a change
    set, an unknown method, or a URL/header containing whitespace or line breaks.
    """
    sink = io.BytesIO()
    content_type = write_batch(operations, sink, boundary, base_url=base_url)
    return sink.getvalue(), content_type


def write_batch(
    operations: Sequence[BatchOperation],
    sink: IO[bytes],
    boundary: str | None = None,
    *,
    base_url: str = "/api/data/v9.2/",
) -> str:
    """Write the body :func:`encode_batch` returns into ``sink`` piece by piece; returns its Content-Type.

    A request's :class:`Base64File` is read and encoded in small blocks straight into ``sink``, so a large
    file is never held whole (nor its Base64 text, nor the body around it).
    """
    operations = assign_content_ids(operations)
    _validate_batch(operations)
    batch_boundary = boundary or f"batch_{uuid.uuid4()}"
    for piece in _batch_pieces(operations, batch_boundary, bool(boundary), base_url):
        if isinstance(piece, Base64File):
            _write_base64(piece, sink)
        else:
            sink.write(piece.encode("utf-8"))
    return f"multipart/mixed; boundary={batch_boundary}"


def _batch_pieces(
    operations: Sequence[BatchOperation], batch_boundary: str, fixed: bool, base_url: str
) -> Iterator[str | Base64File]:
    for index, operation in enumerate(operations, start=1):
        yield f"--{batch_boundary}{_CRLF}"
        if isinstance(operation, ChangeSet):
            changeset_boundary = (
                f"changeset_{index}_{batch_boundary}" if fixed else f"changeset_{uuid.uuid4()}"
            )
            yield f"Content-Type: multipart/mixed; boundary={changeset_boundary}{_CRLF}{_CRLF}"
            for request in operation.requests:
                yield f"--{changeset_boundary}{_CRLF}"
                yield from _request_pieces(request, base_url)
            yield f"--{changeset_boundary}--{_CRLF}"
        else:
            yield from _request_pieces(operation, base_url)
    yield f"--{batch_boundary}--{_CRLF}"


def _request_pieces(request: BatchRequest, base_url: str) -> Iterator[str | Base64File]:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if request.content_id is not None:
        lines.append(f"Content-ID: {request.content_id}")
    lines += ["", f"{request.method.upper()} {_resolve(request.url, base_url)} HTTP/1.1"]
    headers = dict(request.headers or {})
    has_body = request.body is not None or request.file is not None
    if has_body and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/json; type=entry"
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += ["", ""]
    yield _CRLF.join(lines)
    if request.file is None:
        yield ("" if request.body is None else json.dumps(request.body, ensure_ascii=False)) + _CRLF
        return
    body = dict(request.body) if isinstance(request.body, Mapping) else {}
    if request.file.field in body:
        raise ValueError(f"the body already has the field {request.file.field!r} its file is written to")
    head = json.dumps(body, ensure_ascii=False)[:-1]
    yield f'{head}{", " if body else ""}{json.dumps(request.file.field)}: "'
    yield request.file
    yield '"}' + _CRLF


_BASE64_BLOCK = 3 * 64 * 1024  # a multiple of 3: the pieces join into one valid Base64 text


def _write_base64(source: Base64File, sink: IO[bytes]) -> None:
    written = 0
    with source.open() as handle:
        while block := handle.read(_BASE64_BLOCK):
            # read() may return less than asked; only the last block may have a length not divisible by 3
            while len(block) % 3 and (more := handle.read(3 - len(block) % 3)):
                block += more
            sink.write(base64.b64encode(block))
            written += len(block)
    if written != source.size:
        raise ValueError(f"{source.describe} has {written} bytes, {source.size} were expected")


def _resolve(url: str, base_url: str) -> str:
    if url.startswith(("$", "/")) or "://" in url:
        return url
    return base_url + url


def _all_requests(operations: Sequence[BatchOperation]) -> Iterator[BatchRequest]:
    for operation in operations:
        if isinstance(operation, ChangeSet):
            yield from operation.requests
        else:
            yield operation


def _validate_batch(operations: Sequence[BatchOperation]) -> None:
    if not operations:
        raise ValueError("a $batch needs at least one request")
    count = 0
    for operation in operations:
        if isinstance(operation, ChangeSet):
            if not operation.requests:
                raise ValueError("a change set needs at least one request")
            for request in operation.requests:
                if request.method.upper() == "GET":
                    raise ValueError(f"GET is not allowed inside a change set: {request.url}")
        elif not isinstance(operation, BatchRequest):
            raise TypeError(f"batch operations are BatchRequest or ChangeSet, got {type(operation).__name__}")
    for request in _all_requests(operations):
        count += 1
        if request.method.upper() not in _BATCH_METHODS:
            raise ValueError(f"unsupported method in $batch: {request.method!r}")
        if not request.url or re.search(r"\s", request.url):
            raise ValueError(f"batch request URL must be non-empty and percent-encoded: {request.url!r}")
        for name, value in (request.headers or {}).items():
            if re.search(r"[\r\n:]", name) or re.search(r"[\r\n]", value):
                raise ValueError(f"invalid header in batch request: {name!r}")
    if count > MAX_BATCH_REQUESTS:
        raise ValueError(f"a $batch holds at most {MAX_BATCH_REQUESTS} requests, got {count}")


# --- $batch: response side -----------------------------------------------------------------------------


class Headers(Mapping[str, str]):
    """Read-only HTTP headers with case-insensitive lookup; repeated headers are joined with ``, ``."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            if key in self._items:
                first_name, first_value = self._items[key]
                self._items[key] = (first_name, f"{first_value}, {value}")
            else:
                self._items[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self._items.values())!r})"


@dataclass(frozen=True)
class BatchResponse:
    """One response inside a ``$batch`` answer. ``json`` is None for an empty or non-JSON body."""

    status: int
    headers: Headers
    json: object | None
    content_id: str | None = None
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def entity_id(self) -> str | None:
        """The created/updated row's GUID from ``OData-EntityId`` (or ``Location``), if any."""
        return entity_id_from_url(self.headers.get("OData-EntityId") or self.headers.get("Location"))

    @property
    def error_code(self) -> str | None:
        error = self.json.get("error") if isinstance(self.json, dict) else None
        return str(error["code"]) if isinstance(error, dict) and error.get("code") is not None else None

    @property
    def error_message(self) -> str | None:
        error = self.json.get("error") if isinstance(self.json, dict) else None
        return str(error["message"]) if isinstance(error, dict) and error.get("message") is not None else None


@dataclass(frozen=True)
class BatchOutcome:
    """What happened to one operation (request or change set) of a ``$batch``, aligned with the input.

    ``ok`` is True when every request of the operation got a 2xx answer. An operation the service did
    not process (after the first failure, without continue-on-error) has ``ok=False`` and no responses;
    a failed change set usually has only the failing request's response.
    """

    ok: bool
    responses: tuple[BatchResponse, ...]


def boundary_from_content_type(content_type: str) -> str | None:
    """The ``boundary`` parameter of a ``multipart/*`` Content-Type, unquoted; None for other types."""
    media_type, _, params = content_type.partition(";")
    if not media_type.strip().lower().startswith("multipart/"):
        return None
    match = re.search(r'boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))', params, flags=re.IGNORECASE)
    return (match.group(1) or match.group(2)) if match else None


def parse_batch_response(body: bytes, content_type: str) -> list[tuple[BatchResponse, ...]]:
    """Every response in a ``$batch`` answer: one tuple per top-level part, in order.

    A plain part gives a 1-tuple; a change-set part (nested ``multipart/mixed``) gives all its inner
    responses. Raises ``ValueError`` when ``content_type`` is not multipart with a boundary.
    """
    boundary = boundary_from_content_type(content_type)
    if boundary is None:
        raise ValueError(f"not a multipart $batch response: Content-Type {content_type!r}")
    groups: list[tuple[BatchResponse, ...]] = []
    for part in _split_multipart(body, boundary):
        mime_headers, content = _split_head(part)
        nested = boundary_from_content_type(mime_headers.get("Content-Type", ""))
        if nested is not None:
            inner = [_parse_http_part(*_split_head(p)) for p in _split_multipart(content, nested)]
            groups.append(tuple(inner))
        else:
            groups.append((_parse_http_part(mime_headers, content),))
    return groups


def align_batch_outcomes(
    operations: Sequence[BatchOperation], parts: Sequence[tuple[BatchResponse, ...]]
) -> list[BatchOutcome]:
    """Match response parts to the operations that produced them.

    Parts come back in request order; a part carrying a Content-ID of a later operation (a failed
    change set returns only its failing request) is matched by that id, any other part to the next
    operation. Operations left without a part were not processed.
    """
    owner: dict[str, int] = {}
    for index, operation in enumerate(operations):
        requests = operation.requests if isinstance(operation, ChangeSet) else [operation]
        owner.update({r.content_id: index for r in requests if r.content_id is not None})

    matched: list[tuple[BatchResponse, ...] | None] = [None] * len(operations)
    next_index = 0
    for part in parts:
        target = next(
            (
                owner[r.content_id]
                for r in part
                if r.content_id is not None and owner.get(r.content_id, -1) >= next_index
            ),
            next_index,
        )
        if target >= len(operations):
            raise ValueError(
                f"$batch answer has more parts ({len(parts)}) than operations ({len(operations)})"
            )
        matched[target] = part
        next_index = target + 1

    outcomes = []
    for operation, responses in zip(operations, matched, strict=True):
        if responses is None:
            outcomes.append(BatchOutcome(ok=False, responses=()))
            continue
        expected = len(operation.requests) if isinstance(operation, ChangeSet) else 1
        ok = len(responses) == expected and all(r.ok for r in responses)
        outcomes.append(BatchOutcome(ok=ok, responses=responses))
    return outcomes


def _split_multipart(body: bytes, boundary: str) -> list[bytes]:
    delimiter = b"--" + boundary.encode("ascii")
    parts: list[bytes] = []
    current: list[bytes] | None = None
    for line in body.splitlines(keepends=True):
        marker = line.rstrip(b"\r\n").rstrip(b" \t")
        if marker in (delimiter, delimiter + b"--"):
            if current is not None:
                parts.append(_drop_final_newline(b"".join(current)))
            if marker == delimiter + b"--":
                return parts
            current = []
        elif current is not None:
            current.append(line)
    if current is not None and b"".join(current).strip():
        parts.append(_drop_final_newline(b"".join(current)))
    return parts


def _drop_final_newline(data: bytes) -> bytes:
    # The line break before a delimiter belongs to the delimiter, not to the part.
    if data.endswith(b"\r\n"):
        return data[:-2]
    if data.endswith(b"\n"):
        return data[:-1]
    return data


def _split_head(data: bytes) -> tuple[Headers, bytes]:
    lines = data.splitlines(keepends=True)
    items: list[tuple[str, str]] = []
    for index, line in enumerate(lines):
        text = line.decode("latin-1").rstrip("\r\n")
        if not text.strip():
            return Headers(items), b"".join(lines[index + 1 :])
        name, sep, value = text.partition(":")
        if sep:
            items.append((name.strip(), value.strip()))
    return Headers(items), b""


def _parse_http_part(mime_headers: Headers, content: bytes) -> BatchResponse:
    status_line, _, rest = content.lstrip(b"\r\n").partition(b"\n")
    fields = status_line.decode("latin-1").split()
    if len(fields) < 2 or not fields[0].upper().startswith("HTTP/") or not fields[1].isdigit():
        raise ValueError(f"$batch part does not start with an HTTP status line: {status_line[:80]!r}")
    headers, payload = _split_head(rest)
    payload = payload.strip()
    parsed: object | None = None
    if payload:
        try:
            parsed = json.loads(payload)
        except ValueError:
            parsed = None
    content_id = mime_headers.get("Content-ID") or headers.get("Content-ID")
    return BatchResponse(
        status=int(fields[1]), headers=headers, json=parsed, content_id=content_id, body=payload
    )
