"""The Nylas v3 errors the stand-in can answer, and the one function that turns them into responses.

Every JSON error leaves through :func:`error_response` as Nylas' envelope
``{"request_id": ..., "error": {"type": ..., "message": ...}}`` (``type`` values as in the OpenAPI
contract's examples, unprefixed). The one exception is :class:`GatewayHtmlError`: a real gateway in
front of Nylas answers 502 with an HTML page, which clients that call ``response.json()`` first (the
Python SDK does) trip over.

A rejected API key and an expired grant are both 401s but never look alike: the key answers
``token.unauthorized_access`` ("Bearer token invalid", as in the Nylas CLI's fixtures; 400 instead of
401 with the ``bad_api_key_status`` switch, as the error-type catalogue lists it), the grant answers the
contract's 401 example, ``unauthorized`` with the provider's own refusal in ``provider_error`` (or the
catalogue's ``grant.refresh_token_invalid`` with the ``expired_grant_error`` switch).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from starlette.responses import JSONResponse, Response

from nylas_dataverse_sandbox.personas import GrantPersona


class NylasError(Exception):
    """Base class: one subclass per documented status; the class decides status, type and headers."""

    status: int = 500  # an instance may override it (see InvalidApiKeyError)
    error_type: str = "api.internal_error"
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


class InvalidApiKeyError(NylasError):
    """The application's API key is missing or wrong (never a grant problem)."""

    error_type = "token.unauthorized_access"
    default_message = "Bearer token invalid"

    def __init__(self, message: str | None = None, *, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


# What each provider says when the grant's token is refused; the Google one is the contract's example.
_PROVIDER_REFUSALS: dict[str, dict[str, Any]] = {
    "google": {
        "code": 401,
        "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential.",
    },
    "microsoft": {
        "code": "InvalidAuthenticationToken",
        "message": "Access token has expired or is not yet valid.",
    },
    "imap": {"code": "AUTHENTICATIONFAILED", "message": "Invalid credentials (Failure)"},
}


class GrantExpiredError(UnauthorizedError):
    """An invalid grant answers 401 on data calls until the user re-authenticates.

    ``style="unauthorized"``: the contract's 401 example (``unauthorized``, "Unauthorized", the provider's
    refusal in ``provider_error``); ``style="refresh_token_invalid"``: the error-type catalogue's
    ``grant.refresh_token_invalid``, without a provider error.
    """

    def __init__(self, grant: GrantPersona, *, style: str = "unauthorized") -> None:
        if style == "refresh_token_invalid":
            super().__init__(
                f"Grant {grant.grant_id} is not valid: its refresh token was rejected. "
                "The user must re-authenticate the grant."
            )
            self.error_type = "grant.refresh_token_invalid"
        else:
            super().__init__("Unauthorized", provider_error=dict(_PROVIDER_REFUSALS[grant.provider]))
        self.grant_id = grant.grant_id


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

    def __init__(self, retry_after_s: float | None) -> None:
        """``retry_after_s=None``: no ``Retry-After`` header (Nylas documents it only for Microsoft/EWS)."""
        super().__init__()
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": format_retry_after(self.retry_after_s)}


class CursorExpiredError(InvalidRequestError):
    """A ``page_token`` past its lifetime (the ``cursor_ttl_s`` switch) or from before ``expire_cursors``."""

    default_message = (
        "page_token has expired: cursors are short-lived; start the listing again without page_token"
    )


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
