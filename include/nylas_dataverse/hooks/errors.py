"""Typed errors raised by the hooks.

Every error that comes from a remote service is a :class:`ServiceError` carrying what the service said
(status, code, message, request id, ``Retry-After``) and whether retrying later may help (``transient``).
Each is also a ``core.errors.PipelineError`` whose ``kind`` (``grant_expired``, ``credentials``,
``permissions``, ``service_refused``, ``service_unavailable``) callers decide on instead of parsing messages.
Configuration problems in an Airflow connection are :class:`ConnectionConfigError` (kind ``config``, a
``ValueError``): no request was sent.

Messages never contain API keys, client secrets or tokens: hooks pass them through :func:`redact`.
"""

from __future__ import annotations

from collections.abc import Iterable

from nylas_dataverse.core.errors import FailureKind, PipelineError


class ConnectionConfigError(PipelineError, ValueError):
    """An Airflow connection is missing a field or has an invalid one; nothing was sent."""

    KIND = FailureKind.CONFIG


class ServiceError(PipelineError):
    """A remote service refused or failed a request.

    ``transient`` is True when the same request may succeed later (throttling, 5xx, network trouble
    after all retries were used); False when repeating it cannot help until something is fixed. A transient
    error's kind is always ``service_unavailable``; otherwise the class's ``KIND``.
    """

    KIND = FailureKind.SERVICE_REFUSED
    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        if transient is not None:
            self.transient = transient

    @property
    def kind(self) -> FailureKind:
        return FailureKind.SERVICE_UNAVAILABLE if self.transient else self.KIND

    def __str__(self) -> str:
        details = [f"HTTP {self.status}" if self.status is not None else None]
        details.append(f"code {self.code}" if self.code else None)
        details.append(f"request id {self.request_id}" if self.request_id else None)
        shown = ", ".join(d for d in details if d)
        return f"{self.message} ({shown})" if shown else self.message


class RetryExhaustedError(ServiceError):
    """A retryable failure (429, 5xx, connection error) persisted past the retry budget."""

    transient = True

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        elapsed_s: float,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, status=status, code=code, request_id=request_id, retry_after=retry_after, transient=True
        )
        self.attempts = attempts
        self.elapsed_s = elapsed_s


# --- Nylas -------------------------------------------------------------------------------------------


class NylasError(ServiceError):
    """The Nylas API refused a request; ``code`` holds the error ``type`` (e.g. ``invalid_request_error``)."""


class NylasGrantAuthError(NylasError):
    """401 on a grant: the grant expired or was revoked; its owner must re-authenticate it in Nylas."""

    KIND = FailureKind.GRANT_EXPIRED

    def __init__(
        self,
        message: str,
        *,
        grant_id: str,
        status: int | None = 401,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id, transient=False)
        self.grant_id = grant_id


class NylasApiKeyError(NylasError):
    """401 for the application: the connection's API key is wrong, revoked, or for another region."""

    KIND = FailureKind.CREDENTIALS


class NylasNotFoundError(NylasError):
    """404: the grant or message does not exist (or is not visible with this API key)."""


class NylasBadRequestError(NylasError):
    """400: Nylas rejected the request; the message is the API's own explanation."""


class NylasRetryExhaustedError(NylasError, RetryExhaustedError):
    """Nylas kept answering 429/5xx (or the network kept failing) until the retry budget ran out."""


# --- Dataverse ---------------------------------------------------------------------------------------


class DataverseError(ServiceError):
    """The Dataverse Web API refused a request; ``code`` is its ``error.code`` (e.g. ``0x80040237``)."""


class DataverseAuthError(DataverseError):
    """No usable token: Entra ID refused the client credentials, or Dataverse refused a fresh token."""

    KIND = FailureKind.CREDENTIALS


class DataversePermissionError(DataverseError):
    """403: the application user lacks a privilege (its security role); ``code`` is Dataverse's."""

    KIND = FailureKind.PERMISSIONS


class DataverseRetryExhaustedError(DataverseError, RetryExhaustedError):
    """Dataverse kept answering 5xx (or the network kept failing) until the retry budget ran out."""


class DataverseTimeoutError(DataverseError):
    """A ``$batch`` got no answer within the client timeout; it may or may not have been applied."""

    transient = True


class DataverseThrottledError(DataverseRetryExhaustedError):
    """Service protection (429) persisted past the retry budget; ``retry_after`` is the last wait asked."""


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each secret in ``text``; a last line of defence for messages."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
