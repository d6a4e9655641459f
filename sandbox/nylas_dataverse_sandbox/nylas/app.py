"""Starlette routes of the Nylas v3 stand-in: parse the request, call the backend, serialize.

Query parameters follow the real API's quirks: a repeated parameter keeps its last value, booleans
accept ``true``/``True``/``1`` (Go-style), and responses are gzip-compressed when the client accepts it
(Nylas skips bodies under about 200 bytes; attachment downloads are streamed as they are, with their
``Content-Length``). Every response carries ``request_id`` (JSON) and ``x-request-id`` (header). The
``/_sandbox/`` routes are the admin side: reset, stats, faults, switches, cursor expiry, bulk days,
second copies of seeded messages, and webhook deliveries built from the backend's messages.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas import attachments, errors
from nylas_dataverse_sandbox.nylas.backend import DEFAULT_LIMIT, MAX_LIMIT, MessageFilters, NylasBackend
from nylas_dataverse_sandbox.nylas.webhooks import MALFORMED_KINDS, WebhookSender
from nylas_dataverse_sandbox.personas import GrantPersona

FIELDS = ("standard", "include_headers", "include_basic_headers", "include_tracking_options", "raw_mime")
_BASIC_HEADERS = {"message-id", "in-reply-to", "references"}
_TRUE = {"true", "True", "TRUE", "1", "t", "T"}
_FALSE = {"false", "False", "FALSE", "0", "f", "F"}

GRANTS_DEFAULT_LIMIT = 10
# iCloud and Yahoo are IMAP underneath; the sandbox's IMAP persona stands for all three.
_IMAP_LIKE = {"imap", "icloud", "yahoo"}
Handler = Callable[[NylasBackend, Request], Awaitable[dict[str, Any] | Response]]


# Query parsing --------------------------------------------------------------------------------------------


def _param(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    return values[-1] if values else None


def _bool_param(request: Request, name: str) -> bool | None:
    value = _param(request, name)
    if value is None:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise errors.InvalidRequestError(f"{name}={value!r} is not a boolean; use true or false")


def _int_param(request: Request, name: str) -> int | None:
    value = _param(request, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise errors.InvalidRequestError(f"{name}={value!r} is not an integer") from None


def _limit(request: Request) -> int:
    limit = _int_param(request, "limit")
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise errors.InvalidRequestError(
            f"limit={limit} is out of range: use 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"
        )
    return limit


def _fields(request: Request) -> str:
    fields = _param(request, "fields") or "standard"
    if fields not in FIELDS:
        raise errors.InvalidRequestError(
            f"fields={fields!r} is not supported; use one of {', '.join(FIELDS)}"
        )
    return fields


def _select(request: Request) -> set[str] | None:
    value = _param(request, "select")
    if value is None:
        return None
    chosen = {name.strip() for name in value.split(",") if name.strip()}
    return chosen or None


def _filters(request: Request) -> MessageFilters:
    if _param(request, "search_query_native") is not None:
        raise errors.InvalidRequestError(
            "search_query_native is not implemented by the sandbox; filter with the other query parameters"
        )
    any_email = _param(request, "any_email")
    return MessageFilters(
        received_after=_int_param(request, "received_after"),
        received_before=_int_param(request, "received_before"),
        in_folder=_param(request, "in"),
        subject=_param(request, "subject"),
        any_email=tuple(a.strip() for a in any_email.split(",") if a.strip())
        if any_email is not None
        else None,
        from_=_param(request, "from"),
        to=_param(request, "to"),
        cc=_param(request, "cc"),
        bcc=_param(request, "bcc"),
        unread=_bool_param(request, "unread"),
        starred=_bool_param(request, "starred"),
        has_attachment=_bool_param(request, "has_attachment"),
        thread_id=_param(request, "thread_id"),
        metadata_pair=_param(request, "metadata_pair"),
    )


# Serialization --------------------------------------------------------------------------------------------


def _render(
    backend: NylasBackend,
    grant: GrantPersona,
    message: dict[str, Any],
    *,
    fields: str,
    select: set[str] | None,
    include_body: bool,
) -> dict[str, Any]:
    if fields == "raw_mime":
        return {
            "grant_id": message["grant_id"],
            "object": "message",
            "id": message["id"],
            "raw_mime": backend.raw_mime(grant, message),
        }
    out = {
        key: value for key, value in message.items() if key != "headers" and (include_body or key != "body")
    }
    headers = message.get("headers", [])
    # The 2024 contract: headers are not supported for IMAP, iCloud or Yahoo (no field at all).
    headers_supported = grant.provider not in _IMAP_LIKE or backend.switches.imap_headers == "supported"
    if fields == "include_headers" and headers_supported:
        out["headers"] = list(headers)
    elif fields == "include_basic_headers" and headers_supported:
        out["headers"] = [header for header in headers if header["name"].lower() in _BASIC_HEADERS]
    elif fields == "include_tracking_options":
        out["tracking_options"] = {"opens": False, "thread_replies": False, "links": False, "label": ""}
    if select is not None:
        out = {key: value for key, value in out.items() if key in select}
    return out


# Endpoints ------------------------------------------------------------------------------------------------


async def _get_grant(backend: NylasBackend, request: Request) -> dict[str, Any]:
    grant = backend.resolve_grant(request.path_params["grant"])
    data = backend.grant_object(grant)
    select = _select(request)
    return {"data": {k: v for k, v in data.items() if k in select} if select else data}


async def _list_grants(backend: NylasBackend, request: Request) -> dict[str, Any]:
    """Application-level grant list: offset pagination (default 10, max 200), unlike messages."""
    limit = _int_param(request, "limit")
    limit = GRANTS_DEFAULT_LIMIT if limit is None else limit
    if not 1 <= limit <= MAX_LIMIT:
        raise errors.InvalidRequestError(f"limit={limit} is out of range: use 1 to {MAX_LIMIT}")
    offset = _int_param(request, "offset") or 0
    if offset < 0:
        raise errors.InvalidRequestError(f"offset={offset} must not be negative")
    grants = [backend.grant_object(grant) for grant in backend.grants]
    return {"data": grants[offset : offset + limit], "limit": limit, "offset": offset}


async def _list_messages(backend: NylasBackend, request: Request) -> dict[str, Any]:
    grant = backend.resolve_grant(request.path_params["grant"])
    limit, fields, select, filters = _limit(request), _fields(request), _select(request), _filters(request)
    page = backend.list_messages(
        grant, filters, limit=limit, page_token=_param(request, "page_token"), fields=fields
    )
    data = [
        _render(backend, grant, m, fields=fields, select=select, include_body=backend.list_includes_body)
        for m in page.items
    ]
    payload: dict[str, Any] = {"data": data}
    if page.next_cursor is not None:
        payload["next_cursor"] = page.next_cursor
    return payload


def _ids_from_raw_path(request: Request, what: str, *, suffix: str | None = None) -> str:
    """The id as sent: one percent-encoded path segment after ``/v3/grants/<grant>/<what>s/``, then
    ``suffix`` if given. An unencoded ``/`` splits the id and finds nothing, as in Nylas."""
    raw_path = request.scope.get("raw_path")
    if raw_path is None:  # pragma: no cover - every ASGI server the sandbox runs on sets raw_path
        raw_path = request.url.path.encode()
    segments = raw_path.decode("latin-1").split("?")[0].split("/")
    # ['', 'v3', 'grants', '<grant>', '<what>s', '<id>'(, suffix)]
    expected = 6 if suffix is None else 7
    if len(segments) != expected or not segments[5] or (suffix is not None and segments[6] != suffix):
        raise errors.NotFoundError(
            f"{what} not found: URL-encode the {what} id (ids can contain '/', '+', '=' and '#')"
        )
    return unquote(segments[5])


async def _get_message(backend: NylasBackend, request: Request) -> dict[str, Any]:
    grant = backend.resolve_grant(request.path_params["grant"])
    fields, select = _fields(request), _select(request)
    message = backend.get_message(grant, _ids_from_raw_path(request, "message"))
    return {"data": _render(backend, grant, message, fields=fields, select=select, include_body=True)}


async def _get_attachment(backend: NylasBackend, request: Request) -> dict[str, Any]:
    grant = backend.resolve_grant(request.path_params["grant"])
    _, attachment = backend.get_attachment(
        grant, _param(request, "message_id"), _ids_from_raw_path(request, "attachment")
    )
    select = _select(request)
    return {"data": {k: v for k, v in attachment.items() if k in select} if select else dict(attachment)}


async def _download_attachment(backend: NylasBackend, request: Request) -> Response:
    """The file's bytes, streamed: ``application/octet-stream`` as the contract says (or the
    attachment's own type with the ``download_content_type`` switch), with its exact Content-Length."""
    grant = backend.resolve_grant(request.path_params["grant"])
    attachment_id = _ids_from_raw_path(request, "attachment", suffix="download")
    message, attachment = backend.get_attachment(grant, _param(request, "message_id"), attachment_id)
    media_type = "application/octet-stream"
    if backend.switches.download_content_type == "attachment" and attachment.get("content_type"):
        media_type = str(attachment["content_type"])
    length = attachments.file_length(grant, attachment)
    return StreamingResponse(
        attachments.iter_bytes(grant, message["id"], attachment),
        media_type=media_type,
        headers={"Content-Length": str(length)},
    )


async def _get_thread(backend: NylasBackend, request: Request) -> dict[str, Any]:
    grant = backend.resolve_grant(request.path_params["grant"])
    thread = backend.get_thread(grant, _ids_from_raw_path(request, "thread"))
    select = _select(request)
    return {"data": {k: v for k, v in thread.items() if k in select} if select else thread}


async def _list_folders(backend: NylasBackend, request: Request) -> dict[str, Any]:
    grant = backend.resolve_grant(request.path_params["grant"])
    page = backend.list_folders(
        grant,
        limit=_limit(request),
        page_token=_param(request, "page_token"),
        include_hidden=bool(_bool_param(request, "include_hidden_folders")),
        parent_id=_param(request, "parent_id"),
    )
    select = _select(request)
    data = [{k: v for k, v in f.items() if k in select} if select else f for f in page.items]
    payload: dict[str, Any] = {"data": data}
    if page.next_cursor is not None:
        payload["next_cursor"] = page.next_cursor
    return payload


def _api(backend: NylasBackend, route: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Faults, auth, the handler, the error envelope and the counters, in that order, for a /v3 route."""

    async def endpoint(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        response: Response
        try:
            fault = backend.take_fault(request.path_params.get("grant"))
            if backend.faults.latency_s:
                await asyncio.sleep(backend.faults.latency_s)
            if fault is not None:
                raise fault
            backend.authenticate(request.headers.get("authorization"))
            payload = await handler(backend, request)
            if isinstance(payload, Response):
                response = payload
                response.headers["x-request-id"] = request_id
            else:
                response = JSONResponse(
                    {"request_id": request_id, **payload}, headers={"x-request-id": request_id}
                )
        except errors.NylasError as error:
            response = errors.error_response(error, request_id)
        backend.stats.record(route, response.status_code)
        return response

    return endpoint


# Admin ------------------------------------------------------------------------------------------------------


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise errors.InvalidRequestError("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise errors.InvalidRequestError("the request body must be a JSON object")
    return body


def _admin(
    handler: Callable[[Request], Awaitable[dict[str, Any]]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            payload = await handler(request)
        except errors.NylasError as error:
            return errors.error_response(error, request_id)
        except KeyError as error:
            message = f"the request body lacks the field {error}"
            return errors.error_response(errors.InvalidRequestError(message), request_id)
        except (ValueError, TypeError, IndexError) as error:
            return errors.error_response(errors.InvalidRequestError(str(error)), request_id)
        return JSONResponse({"request_id": request_id, **payload}, headers={"x-request-id": request_id})

    return endpoint


def _admin_routes(backend: NylasBackend) -> list[Route]:
    async def reset(request: Request) -> dict[str, Any]:
        backend.reset()
        return {"reset": True}

    async def stats(request: Request) -> dict[str, Any]:
        return {"data": backend.stats.as_dict()}

    async def faults(request: Request) -> dict[str, Any]:
        if request.method == "POST":
            backend.set_faults(await _json_body(request))
        return {"data": backend.faults.as_dict()}

    async def switches(request: Request) -> dict[str, Any]:
        if request.method == "POST":
            backend.set_switches(await _json_body(request))
        return {"data": backend.switches.as_dict()}

    async def expire_cursors(request: Request) -> dict[str, Any]:
        backend.expire_cursors()
        return {"expired": True}

    async def bulk(request: Request) -> dict[str, Any]:
        body = await _json_body(request)
        bulk_day = backend.add_bulk_day(
            str(body["grant"]),
            dt.date.fromisoformat(str(body["day"])),
            int(body["count"]),
            int(body.get("body_bytes", 4000)),
        )
        data: dict[str, Any] = {
            "grant": bulk_day.grant.key,
            "day": bulk_day.day.isoformat(),
            "count": bulk_day.count,
            "body_bytes": bulk_day.body_bytes,
            "source": bulk_day.source_no,
        }
        if body.get("describe"):  # opt-in: it draws every thread (0.3 s for 100,000 messages)
            data["counterparts"] = bulk_day.counterparts()
        return {"data": data}

    async def copies(request: Request) -> dict[str, Any]:
        """``{"grant", "day", "count"}``: the day's first ``count`` seeded messages with a Message-ID
        appear a second time under new ids (``NylasBackend.add_copies``)."""
        body = await _json_body(request)
        for name in ("grant", "day", "count"):
            if name not in body:
                raise errors.InvalidRequestError(f"the request body lacks the field {name!r}")
        if not isinstance(body["grant"], str) or not body["grant"]:
            raise errors.InvalidRequestError(
                f"grant must be a grant key, id or email address, got {body['grant']!r}"
            )
        try:
            grant = backend.grant_by_any(body["grant"])
        except errors.NotFoundError:
            raise errors.InvalidRequestError(
                f"grant {body['grant']!r} is not a sandbox grant: use a key such as 'alice', a grant id "
                "or an email address"
            ) from None
        try:
            day = dt.date.fromisoformat(body["day"]) if isinstance(body["day"], str) else None
        except ValueError:
            day = None
        if day is None:
            raise errors.InvalidRequestError(f"day must be a date as YYYY-MM-DD, got {body['day']!r}")
        count = body["count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise errors.InvalidRequestError(f"count must be a whole number of at least 1, got {count!r}")
        added = backend.add_copies(grant.key, day, count)  # a count above the day's messages: ValueError
        return {
            "data": {
                "grant": grant.key,
                "day": day.isoformat(),
                "count": len(added),
                "ids": [message["id"] for message in added],
                "copy_of": {message["id"]: backend.copy_of(grant.key, message["id"]) for message in added},
            }
        }

    async def deliver(request: Request) -> dict[str, Any]:
        """One notification (``type``: message.* or grant.expired), or with ``malformed`` one of the
        defective bodies of ``WebhookSender.malformed_body``; ``duplicate`` sends it twice."""
        body = await _json_body(request)
        url = str(body["url"])
        sender = WebhookSender(
            str(body.get("secret", personas.WEBHOOK_SECRET)),
            retry_delays_s=tuple(float(d) for d in body.get("retry_delays_s", (1.0, 5.0))),
            ca_file=body.get("ca_file"),
        )
        grant = backend.grant_by_any(str(body["grant"]))
        kind = str(body.get("type", "message.created"))
        malformed = body.get("malformed")
        if malformed is not None and malformed not in MALFORMED_KINDS:
            raise ValueError(f"malformed must be one of {', '.join(MALFORMED_KINDS)}; got {malformed!r}")
        compress, timeout = bool(body.get("gzip")), float(body.get("timeout", 10))
        notification: dict[str, Any] | None = None
        raw: bytes | None = None
        if kind.startswith("grant."):
            notification = sender.grant_expired_notification(grant)
        else:
            if "message_id" in body:
                message = backend.find_message(grant, str(body["message_id"]))
            else:
                day_messages = backend.messages_for(grant.key, dt.date.fromisoformat(str(body["day"])))
                message = day_messages[int(body.get("index", 0))]
            if malformed is not None:
                raw = sender.malformed_body(str(malformed), message)
            else:
                notification = sender.build_notification(
                    message, type=kind, truncated=bool(body.get("truncated"))
                )
        results = []
        for _ in range(2 if body.get("duplicate") else 1):
            if raw is not None:
                result = await run_in_threadpool(sender.deliver_raw, url, raw, gzip=compress, timeout=timeout)
            else:
                assert notification is not None
                result = await run_in_threadpool(
                    sender.deliver,
                    url,
                    notification,
                    gzip=compress,
                    bad_signature=bool(body.get("bad_signature")),
                    timeout=timeout,
                )
            results.append(
                {
                    "status": result.status,
                    "attempts": result.attempts,
                    "statuses": list(result.statuses),
                    "elapsed_s": round(result.elapsed_s, 4),
                }
            )
        data: dict[str, Any] = {"deliveries": results}
        if notification is not None:
            data.update(notification_id=notification["id"], type=notification["type"])
        else:
            assert raw is not None
            data.update(malformed=malformed, bytes=len(raw))
        return {"data": data}

    async def challenge(request: Request) -> dict[str, Any]:
        body = await _json_body(request)
        sender = WebhookSender(personas.WEBHOOK_SECRET, ca_file=body.get("ca_file"))
        return {"data": {"verified": await run_in_threadpool(sender.challenge, str(body["url"]))}}

    return [
        Route("/_sandbox/reset", _admin(reset), methods=["POST"]),
        Route("/_sandbox/stats", _admin(stats), methods=["GET"]),
        Route("/_sandbox/faults", _admin(faults), methods=["GET", "POST"]),
        Route("/_sandbox/switches", _admin(switches), methods=["GET", "POST"]),
        Route("/_sandbox/cursors/expire", _admin(expire_cursors), methods=["POST"]),
        Route("/_sandbox/bulk", _admin(bulk), methods=["POST"]),
        Route("/_sandbox/copies", _admin(copies), methods=["POST"]),
        Route("/_sandbox/webhooks/deliver", _admin(deliver), methods=["POST"]),
        Route("/_sandbox/webhooks/challenge", _admin(challenge), methods=["POST"]),
    ]


async def _routing_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    response = errors.error_response(errors.for_http_status(exc.status_code, exc.detail), str(uuid.uuid4()))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


class _GzipExceptDownloads:
    """Gzip like Nylas, except attachment downloads: those keep their bytes and Content-Length."""

    def __init__(self, app: ASGIApp) -> None:
        self.plain = app
        self.gzipped = GZipMiddleware(app, minimum_size=200, compresslevel=5)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).endswith("/download"):
            await self.plain(scope, receive, send)
        else:
            await self.gzipped(scope, receive, send)


def create_app(backend: NylasBackend) -> Starlette:
    api = [
        Route("/v3/grants", _api(backend, "GET /v3/grants", _list_grants), methods=["GET"]),
        Route("/v3/grants/{grant}", _api(backend, "GET /v3/grants/{grant}", _get_grant), methods=["GET"]),
        Route(
            "/v3/grants/{grant}/messages",
            _api(backend, "GET /v3/grants/{grant}/messages", _list_messages),
            methods=["GET"],
        ),
        Route(
            "/v3/grants/{grant}/messages/{message_id:path}",
            _api(backend, "GET /v3/grants/{grant}/messages/{message_id}", _get_message),
            methods=["GET"],
        ),
        Route(
            "/v3/grants/{grant}/folders",
            _api(backend, "GET /v3/grants/{grant}/folders", _list_folders),
            methods=["GET"],
        ),
        Route(
            "/v3/grants/{grant}/threads/{thread_id:path}",
            _api(backend, "GET /v3/grants/{grant}/threads/{thread_id}", _get_thread),
            methods=["GET"],
        ),
        # One route for both: an attachment id may hold an (encoded) '/', so the path is split by hand.
        Route(
            "/v3/grants/{grant}/attachments/{attachment_path:path}",
            _attachment_endpoint(backend),
            methods=["GET"],
        ),
    ]
    return Starlette(
        routes=[*api, *_admin_routes(backend)],
        middleware=[Middleware(_GzipExceptDownloads)],
        exception_handlers={HTTPException: _routing_error},
    )


def _attachment_endpoint(backend: NylasBackend) -> Callable[[Request], Awaitable[Response]]:
    metadata = _api(backend, "GET /v3/grants/{grant}/attachments/{attachment_id}", _get_attachment)
    download = _api(
        backend, "GET /v3/grants/{grant}/attachments/{attachment_id}/download", _download_attachment
    )

    async def endpoint(request: Request) -> Response:
        return await (download if request.url.path.endswith("/download") else metadata)(request)

    return endpoint
