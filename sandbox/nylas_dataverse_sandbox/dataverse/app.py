"""HTTP face of the Dataverse stand-in: authentication, fault knobs, service protection, admin routes.

Per request under ``/api/data/v9.2/``: injected latency, bearer-token check against Entra (401), injected
faults (429/5xx), admission by service protection (429), the OData work on a worker thread, then the modelled
execution time is really spent (``cost * time_scale``, asleep, outside every lock) before the answer goes out
with the ``x-ms-ratelimit-*`` and ``x-ms-dop-hint`` headers. A write the gateway fault picks is committed
first and then answered with a gateway 502/504 (an HTML page, as a front door sends) or not at all (the
connection is dropped), so clients meet work that was applied although they saw it fail.

Admin routes: ``POST /_sandbox/reset`` (rows, counters, limits, behaviour and faults back to the configured
start), ``GET /_sandbox/stats``, ``GET /_sandbox/emails``, ``POST /_sandbox/faults``, ``/_sandbox/limits``,
``/_sandbox/behaviour`` (JSON objects of the fields to change; the answer is the new whole).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nylas_dataverse_sandbox.dataverse import errors
from nylas_dataverse_sandbox.dataverse.backend import Caller, DataverseBackend
from nylas_dataverse_sandbox.dataverse.behaviour import as_json
from nylas_dataverse_sandbox.dataverse.service import API_PREFIX, ODataRequest, ODataResponse, ODataService
from nylas_dataverse_sandbox.dataverse.throttle import ServiceProtectionLimits, Ticket


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _response(status: int, headers: list[tuple[str, str]], body: bytes) -> Response:
    response = Response(body, status_code=status)
    for name, value in headers:
        if name.lower() == "content-type":
            response.headers["content-type"] = value
        else:
            response.headers.append(name, value)
    return response


def _error_response(
    backend: DataverseBackend, caller: Caller | None, error: errors.DataverseError
) -> Response:
    status, headers, body = errors.serialize(error)
    if isinstance(error, errors.NotAuthenticatedError):
        # Dataverse answers a missing or expired token with an empty 401.
        headers, body = [(n, v) for n, v in headers if n.lower() != "content-type"], b""
    headers += backend.protection.headers(caller.client_id if caller is not None else None)
    return _response(status, headers, body)


_DROP_CONNECTION = "nylas_dataverse_sandbox.drop_connection"
_GATEWAY_PAGES = {
    502: ("502 Bad Gateway", "The gateway received an invalid response from the service."),
    504: ("504 Gateway Time-out", "The gateway did not receive a response from the service in time."),
}


def _gateway_response(status: int) -> Response:
    title, text = _GATEWAY_PAGES[status]
    page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1><p>{text}</p></body></html>"
    return Response(page, status_code=status, media_type="text/html")


class _ConnectionDropper:
    """Outermost ASGI layer: a response whose request is marked ``_DROP_CONNECTION`` is never sent; the
    TCP connection is aborted instead, so the client sees it reset without a status line."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        dropped = False

        async def guarded(message: Any) -> None:
            nonlocal dropped
            if message.get("type") == "http.response.start" and scope.get(_DROP_CONNECTION):
                cycle = getattr(send, "__self__", None)
                transport = getattr(cycle, "transport", None)
                if transport is None:  # not served by uvicorn: fail loudly rather than answer
                    raise ConnectionAbortedError("sandbox gateway fault: connection dropped")
                transport.abort()
                dropped = True
                for _ in range(50):  # let uvicorn notice the lost connection before the app returns
                    if getattr(cycle, "disconnected", True):
                        break
                    await asyncio.sleep(0)
            if not dropped:
                await send(message)

        await self.app(scope, receive, guarded)


@dataclass(frozen=True)
class _Outcome:
    caller: Caller | None
    ticket: Ticket | None
    result: ODataResponse | errors.DataverseError


def create_app(backend: DataverseBackend) -> Any:
    """The ASGI app (Starlette routes inside the connection-dropping layer)."""
    service = ODataService(backend)

    def process(authorization: str | None, odata: ODataRequest) -> _Outcome:
        """Authenticate, inject drill faults, admit and do the work: everything that may wait on a lock."""
        caller: Caller | None = None
        try:
            caller = backend.authenticate(authorization, audience=odata.base_url)
            injected = backend.inject_fault()
            if injected is not None:
                raise injected
            ticket = backend.protection.admit(caller.client_id)
        except errors.DataverseError as exc:
            if isinstance(exc, errors.ThrottledError):
                backend.count("throttled")
            backend.count_request(exc.status)
            return _Outcome(caller, None, exc)
        try:
            result = service.handle(odata, caller)
            backend.count_request(result.status)
            if odata.url.split("?", 1)[0].rstrip("/").endswith("$batch"):
                backend.count("requests.batch")  # its operations are counted as batch_operations
        except BaseException:
            backend.protection.finish(ticket, 0.0)
            raise
        return _Outcome(caller, ticket, result)

    async def api(request: Request) -> Response:
        if backend.faults.latency_s:
            await asyncio.sleep(backend.faults.latency_s)
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string", b"")
        target = raw_path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")
        odata = ODataRequest(
            request.method, target, request.headers, await request.body(), _base_url(request)
        )
        # Store and counter access can wait on the store lock, so it runs on a worker thread, never the loop.
        outcome = await run_in_threadpool(process, request.headers.get("Authorization"), odata)
        if isinstance(outcome.result, errors.DataverseError):
            return _error_response(backend, outcome.caller, outcome.result)
        assert outcome.caller is not None
        assert outcome.ticket is not None
        try:
            # The modelled execution time is really spent, asleep and outside every lock.
            await asyncio.sleep(backend.limits.sleep_s(outcome.result.cost_ms))
        finally:
            backend.protection.finish(outcome.ticket, outcome.result.cost_ms)
        result = outcome.result
        if result.status < 400:
            gateway = backend.gateway_fault_after(request.method)
            if gateway == 0:
                request.scope[_DROP_CONNECTION] = True
            elif gateway is not None:
                return _gateway_response(gateway)
        headers = [*result.headers, *backend.protection.headers(outcome.caller.client_id)]
        return _response(result.status, headers, result.body)

    async def admin_reset(request: Request) -> Response:
        await run_in_threadpool(backend.reset)
        return JSONResponse({"reset": True})

    async def admin_stats(request: Request) -> Response:
        counters = await run_in_threadpool(backend.counters)
        return JSONResponse(
            {
                "counters": counters,
                "service_protection": backend.protection.snapshot(),
                "limits": _limits_json(backend.limits),
                "faults": as_json(backend.faults),
                "behaviour": as_json(backend.behaviour),
            }
        )

    async def admin_emails(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(backend.emails_with_parties))

    async def admin_faults(request: Request) -> Response:
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        try:
            faults = backend.set_faults(**body)
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(as_json(faults))

    async def admin_behaviour(request: Request) -> Response:
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        try:
            behaviour = await run_in_threadpool(lambda: backend.set_behaviour(**body))
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(as_json(behaviour))

    async def admin_limits(request: Request) -> Response:
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        try:
            limits = ServiceProtectionLimits(**{**backend.limits.settings(), **body})
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": f"invalid limits: {exc}"}, status_code=400)
        backend.set_limits(limits)
        return JSONResponse(_limits_json(limits))

    starlette = Starlette(
        routes=[
            Route("/_sandbox/reset", admin_reset, methods=["POST"]),
            Route("/_sandbox/stats", admin_stats, methods=["GET"]),
            Route("/_sandbox/emails", admin_emails, methods=["GET"]),
            Route("/_sandbox/faults", admin_faults, methods=["POST"]),
            Route("/_sandbox/limits", admin_limits, methods=["POST"]),
            Route("/_sandbox/behaviour", admin_behaviour, methods=["POST"]),
            Route(API_PREFIX, api, methods=["GET"]),
            Route(API_PREFIX + "/{rest:path}", api, methods=["GET", "POST", "PATCH", "DELETE", "PUT"]),
        ]
    )
    return _ConnectionDropper(starlette)


def _limits_json(limits: ServiceProtectionLimits) -> dict[str, Any]:
    """The limits as set (``cost_ms``: the overrides) plus the effective cost of every operation."""
    return {**limits.settings(), "effective_cost_ms": dict(limits.costs)}


async def _json_object(request: Request) -> dict[str, Any] | Response:
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as exc:
        return JSONResponse({"error": f"body must be JSON: {exc}"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
    return body
