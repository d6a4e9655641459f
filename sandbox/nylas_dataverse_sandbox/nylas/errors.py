"""The Nylas v3 errors the stand-in can answer, and the one function that turns them into responses.

Every JSON error leaves through :func:`error_response` as Nylas' envelope
``{"request_id": ..., "error": {"type": ..., "message": ...}}`` (``type`` values as in the OpenAPI
contract's examples, unprefixed). The one exception is :class:`GatewayHtmlError`: a real gateway in
front of Nylas answers 502 with an HTML page, which clients that call ``response.json()`` first (the
Python SDK does) trip over.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from starlette.responses import JSONResponse, Response


class NylasError(Exception):
    """Base class: one subclass per documented status; the class decides status, type and headers."""

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "api.internal_error"
    default_message: ClassVar[str] = "Internal server error."

    def __init__(self, message: str | None = None, *, provider_error: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.provider_error = provider_error
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequestError(NylasError):
    status = 400
    error_type = "invalid_request_error"
    default_message = "error parsing request"


class UnauthorizedError(NylasError):
    status = 401
    error_type = "unauthorized"
    default_message = "Unauthorized"


class GrantExpiredError(UnauthorizedError):
    """An invalid grant answers 401 on data calls until the user re-authenticates."""

    def __init__(self, grant_id: str) -> None:
        super().__init__(
            f"Grant {grant_id} has expired: the user's credentials are no longer valid. "
            "The user must re-authenticate before its data can be read."
        )


class NotFoundError(NylasError):
    status = 404
    error_type = "not_found_error"
    default_message = "requested object not found"


class MethodNotAllowedError(NylasError):
    status = 405
    error_type = "invalid_request_error"
    default_message = "method not allowed for this path"


class RateLimitError(NylasError):
    status = 429
    error_type = "rate_limit_error"
    default_message = "Too many requests, please try again shortly."

    def __init__(self, retry_after_s: float) -> None:
        super().__init__()
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": format_retry_after(self.retry_after_s)}


class ProviderTimeoutError(NylasError):
    status = 504
    error_type = "provider_error"
    default_message = "Provider request timed out."


class GatewayHtmlError(NylasError):
    """An upstream gateway's 502 page: HTML, not JSON."""

    status = 502
    error_type = "gateway"
    default_message = "The upstream server is unavailable."


_GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def format_retry_after(seconds: float) -> str:
    """Whole seconds as HTTP wants; a fractional value is kept so drills can use sub-second waits."""
    if seconds == math.floor(seconds):
        return str(int(seconds))
    return f"{seconds:g}"


def for_http_status(status: int, detail: str | None = None) -> NylasError:
    """Map a routing failure (unknown path, wrong method) to the error Nylas would send."""
    if status == 404:
        return NotFoundError(detail if detail and detail != "Not Found" else None)
    if status == 405:
        return MethodNotAllowedError()
    return NylasError(detail)


def error_response(error: NylasError, request_id: str) -> Response:
    """The single place an error becomes an HTTP response."""
    headers = {"x-request-id": request_id, **error.headers()}
    if isinstance(error, GatewayHtmlError):
        return Response(_GATEWAY_PAGE, status_code=error.status, media_type="text/html", headers=headers)
    body: dict[str, Any] = {"type": error.error_type, "message": error.message}
    if error.provider_error is not None:
        body["provider_error"] = error.provider_error
    return JSONResponse({"request_id": request_id, "error": body}, status_code=error.status, headers=headers)
