"""Airflow hook for the Nylas v3 Email API (read-only: grants, folders, messages, attachment downloads).

Connection: ``host`` = API base URL (default ``https://api.us.nylas.com``; no scheme means https; no path:
the hook adds ``/v3/...``),
``password`` = API key, extras ``timeout`` (seconds, default 90) and ``page_size`` (1-200, default 200).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple
from urllib.parse import quote

import requests

from nylas_dataverse.hooks._base import RetryingServiceHook
from nylas_dataverse.hooks._connection import (
    about_this_connection,
    normalize_base_url,
    number_extra,
    read_extras,
    refuse_path,
    required_text,
)
from nylas_dataverse.hooks._retry import RETRYABLE_STATUSES, GiveUp, RetryPolicy, send_with_retry
from nylas_dataverse.hooks.errors import (
    NylasApiKeyError,
    NylasBadRequestError,
    NylasError,
    NylasGrantAuthError,
    NylasNotFoundError,
    NylasRetryExhaustedError,
)

log = logging.getLogger(__name__)

QueryValue = str | int | bool
MIN_PAGE_SIZE = 10
# Error types Nylas uses for a refused API key (nylas.md 5.1: the catalogue lists token.unauthorized_access
# as a 400, the CLI's fixtures as a 401); whichever the status, it is the key, not the grant.
_API_KEY_ERROR_TYPES = frozenset({"token.unauthorized_access", "api.authentication_error"})
PAGES_BEFORE_GROWING = 5
# What a Nylas connection's host must be: the hook adds /v3/... itself.
HOST_HINT = "https://api.us.nylas.com or https://api.eu.nylas.com (no /v3: the hook adds it)"


@dataclass(frozen=True)
class MessagePage:
    """One page of ``GET /v3/grants/{grant_id}/messages``; ``next_cursor`` is None on the last page."""

    messages: list[dict[str, Any]]
    next_cursor: str | None
    request_id: str | None


@dataclass(frozen=True)
class NylasSettings:
    """What the hook read from its connection (the API key is left out of ``repr``)."""

    base_url: str
    api_key: str = field(repr=False)
    timeout_s: float
    page_size: int


class NylasHook(RetryingServiceHook[NylasSettings]):
    """Talks to the Nylas v3 API with one ``requests.Session``; retries 429/5xx in ``_retry``.

    ``sleep``, ``clock`` (wall-clock epoch seconds) and ``rng`` exist so tests can fake time;
    ``session`` lets callers inject a transport. Nothing is read or sent until the first call.
    """

    conn_name_attr = "nylas_conn_id"
    default_conn_name = "nylas_default"
    conn_type = "nylas"
    hook_name = "Nylas"

    DEFAULT_BASE_URL = "https://api.us.nylas.com"
    DEFAULT_TIMEOUT_S = 90.0
    DEFAULT_PAGE_SIZE = 200
    MAX_PAGE_SIZE = 200
    DEFAULT_RETRY_POLICY = RetryPolicy(
        max_attempts=6, max_total_wait_s=300.0, base_delay_s=1.0, max_delay_s=30.0
    )
    EXTRAS = frozenset({"timeout", "page_size"})

    def __init__(
        self,
        nylas_conn_id: str = default_conn_name,
        *,
        retry_policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(
            retry_policy=retry_policy,
            session=session,
            sleep=sleep,
            clock=clock,
            rng=rng,
            logger_name=logger_name,
        )
        self.nylas_conn_id = nylas_conn_id

    # --- connection -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @property
    def page_size(self) -> int:
        return self.settings.page_size

    def _load_settings(self) -> NylasSettings:
        conn_id = self.nylas_conn_id
        conn = self.get_connection(conn_id)
        extras = read_extras(conn.extra_dejson, self.EXTRAS, conn_id=conn_id)
        base_url = normalize_base_url(
            conn.host, conn.port, default=self.DEFAULT_BASE_URL, conn_id=conn_id, field="Nylas API base URL"
        )
        refuse_path(base_url, conn.host, conn_id=conn_id, must_be=f"the Nylas API base URL, {HOST_HINT}")
        settings = NylasSettings(
            base_url=base_url,
            api_key=required_text(conn.password, conn_id=conn_id, what="password (the Nylas API key)"),
            timeout_s=number_extra(
                extras, "timeout", default=self.DEFAULT_TIMEOUT_S, conn_id=conn_id, minimum=1, maximum=3600
            ),
            page_size=int(
                number_extra(
                    extras,
                    "page_size",
                    default=self.DEFAULT_PAGE_SIZE,
                    conn_id=conn_id,
                    minimum=1,
                    maximum=self.MAX_PAGE_SIZE,
                    integer=True,
                )
            ),
        )
        log.debug("Nylas connection %r: base URL %s", conn_id, settings.base_url)
        return settings

    def _session_headers(self, settings: NylasSettings) -> dict[str, str]:
        return {"Authorization": f"Bearer {settings.api_key}", "Accept": "application/json"}

    def _secrets(self, settings: NylasSettings) -> list[str | None]:
        return [settings.api_key]

    def test_connection(self) -> tuple[bool, str]:
        """Read-only check used by the Airflow UI: list one grant, no retries."""
        try:
            self._get_json(
                "/v3/grants", params={"limit": 1}, what="listing grants", policy=RetryPolicy(max_attempts=1)
            )
        except Exception as exc:  # the UI shows any failure, including a bad connection, as text
            return False, about_this_connection(self._redact(str(exc)), self.nylas_conn_id)
        return True, f"Connected to the Nylas API at {self.base_url}"

    # --- API --------------------------------------------------------------------------------------

    def get_grant(self, grant_id: str) -> dict[str, Any]:
        """``GET /v3/grants/{grant_id}`` → the grant object (``id``, ``email``, ``provider``, ...)."""
        payload = self._get_json(
            _grant_path(grant_id), what=f"reading grant {grant_id!r}", grant_id=grant_id, reading_grant=True
        )
        return _data_object(payload, what=f"grant {grant_id!r}")

    def list_folders(self, grant_id: str) -> list[dict[str, Any]]:
        """All folders (labels on Google) of a grant, following ``next_cursor``."""
        folders: list[dict[str, Any]] = []
        path = f"{_grant_path(grant_id)}/folders"
        what = f"listing folders of grant {grant_id!r}"
        for items, _, _ in self._iter_cursor_pages(path, {}, None, what=what, grant_id=grant_id):
            folders.extend(items)
        return folders

    def get_message(
        self, grant_id: str, nylas_id: str, fields: str | None = "include_headers"
    ) -> dict[str, Any]:
        """One message; ``fields="include_headers"`` adds the RFC headers (Message-ID, References, ...)."""
        path = f"{_grant_path(grant_id)}/messages/{quote(nylas_id, safe='')}"
        params: dict[str, QueryValue] = {"fields": fields} if fields else {}
        what = f"reading message {nylas_id!r} of grant {grant_id!r}"
        payload = self._get_json(path, params=params, what=what, grant_id=grant_id)
        return _data_object(payload, what=f"message {nylas_id!r}")

    def iter_pages(
        self,
        grant_id: str,
        *,
        received_after: int,
        received_before: int,
        fields: str | None = "include_headers",
        page_size: int | None = None,
        page_token: str | None = None,
        in_folder: str | None = None,
        extra_params: Mapping[str, QueryValue] | None = None,
    ) -> Iterator[MessagePage]:
        """Pages of a grant's messages received in [``received_after``, ``received_before``] (Unix seconds).

        Follows ``next_cursor`` until it is absent, null or empty, resending the same filters with
        ``page_token`` each time. Start from ``page_token`` to resume an interrupted walk.
        """
        for name, value in (("received_after", received_after), ("received_before", received_before)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be Unix seconds (a non-negative int), got {value!r}")
        if received_after > received_before:
            raise ValueError(
                f"received_after ({received_after}) is after received_before ({received_before})"
            )
        limit = self.page_size if page_size is None else page_size
        if isinstance(limit, bool) or not 1 <= limit <= self.MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {self.MAX_PAGE_SIZE}, got {limit!r}")

        params: dict[str, QueryValue] = {
            "limit": limit,
            "received_after": received_after,
            "received_before": received_before,
        }
        if fields:
            params["fields"] = fields
        if in_folder:
            params["in"] = in_folder
        params.update(extra_params or {})
        path = f"{_grant_path(grant_id)}/messages"
        what = f"listing messages of grant {grant_id!r}"
        for items, cursor, request_id in self._iter_cursor_pages(
            path, params, page_token, what=what, grant_id=grant_id
        ):
            yield MessagePage(messages=items, next_cursor=cursor, request_id=request_id)

    def iter_messages(
        self,
        grant_id: str,
        *,
        received_after: int,
        received_before: int,
        fields: str | None = "include_headers",
        page_size: int | None = None,
        page_token: str | None = None,
        in_folder: str | None = None,
        extra_params: Mapping[str, QueryValue] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The messages of :meth:`iter_pages`, one at a time (one page in memory)."""
        for page in self.iter_pages(
            grant_id,
            received_after=received_after,
            received_before=received_before,
            fields=fields,
            page_size=page_size,
            page_token=page_token,
            in_folder=in_folder,
            extra_params=extra_params,
        ):
            yield from page.messages

    DOWNLOAD_CHUNK_BYTES = 64 * 1024

    def download_attachment(self, grant_id: str, attachment_id: str, message_id: str, sink: IO[bytes]) -> int:
        """Stream ``GET /v3/grants/{grant}/attachments/{id}/download?message_id=`` into ``sink``, one chunk at
        a time (the file is never held whole); returns the bytes written.

        A failure before the first byte is retried like any other request; one in the middle of the body
        raises ``NylasError`` (the caller starts the file again). A body shorter than its ``Content-Length``
        is an error too, never a truncated file.
        """
        path = f"{_grant_path(grant_id)}/attachments/{quote(attachment_id, safe='')}/download"
        what = f"downloading attachment {attachment_id!r} of message {message_id!r} (grant {grant_id!r})"
        session = self.get_conn()
        settings = self.settings
        url = settings.base_url + path
        log.debug("Nylas GET %s", path)

        def send() -> requests.Response:
            return session.get(
                url, params={"message_id": message_id}, timeout=settings.timeout_s, stream=True
            )

        try:
            response = send_with_retry(
                send,
                policy=self.retry_policy,
                describe=f"Nylas GET {path}",
                give_up=lambda outcome: self._give_up_error(outcome, what),
                stats=self._stats,
                sleep=self._sleep,
                clock=self._clock,
                rng=self._rng,
            )
        except requests.RequestException as exc:
            raise NylasError(
                self._redact(f"Request to Nylas failed while {what}: {type(exc).__name__}: {exc}")
            ) from exc
        with response:
            if not response.ok:
                raise self._status_error(response, what=what, grant_id=grant_id)
            written = 0
            try:
                for chunk in response.iter_content(self.DOWNLOAD_CHUNK_BYTES):
                    sink.write(chunk)
                    written += len(chunk)
            except requests.RequestException as exc:
                raise NylasError(
                    self._redact(f"The download broke off after {written} bytes while {what}: {exc}")
                ) from exc
            expected = response.headers.get("Content-Length")
            if expected is not None and expected.isdigit() and int(expected) != written:
                raise NylasError(f"Nylas sent {written} of {expected} bytes while {what}")
        return written

    # --- plumbing ---------------------------------------------------------------------------------

    def _iter_cursor_pages(
        self,
        path: str,
        params: Mapping[str, QueryValue],
        page_token: str | None,
        *,
        what: str,
        grant_id: str | None,
    ) -> Iterator[tuple[list[dict[str, Any]], str | None, str | None]]:
        """(items, next cursor or None, request id) per page, until the cursor is absent, null or empty.

        - A 504 (Nylas' answer to a page too slow to build, e.g. large pages with headers from Microsoft)
          halves the page size and asks for the same page again, down to ``MIN_PAGE_SIZE``; after
          ``PAGES_BEFORE_GROWING`` good pages the size doubles again, up to what was asked.
        - A cursor Nylas gave before in this walk (A, B, A, B ... or a page pointing at itself) ends the walk
          with an error instead of looping.
        - A cursor Nylas refuses as expired restarts the walk from the first page, once: callers must drop
          items they have already seen (extract does, by id).
        """
        token = page_token
        given: set[str] = set()
        wanted = params.get("limit")
        limit = wanted if isinstance(wanted, int) and not isinstance(wanted, bool) else None
        good_pages = restarts = 0
        while True:
            query = dict(params)
            if limit is not None:
                query["limit"] = limit
            if token:
                query["page_token"] = token
            can_shrink = limit is not None and limit > MIN_PAGE_SIZE
            try:
                payload = self._get_json(
                    path,
                    params=query,
                    what=what,
                    grant_id=grant_id,
                    retry_statuses=RETRYABLE_STATUSES - {504} if can_shrink else RETRYABLE_STATUSES,
                )
            except NylasError as exc:
                if exc.status == 504 and can_shrink and limit is not None:
                    limit = max(MIN_PAGE_SIZE, limit // 2)
                    good_pages = 0
                    log.warning(
                        "Nylas timed out building a page while %s; asking for %d at a time", what, limit
                    )
                    continue
                if token and restarts == 0 and _is_expired_cursor(exc):
                    log.warning(
                        "Nylas refused an expired cursor while %s; listing again from the start", what
                    )
                    token, restarts = page_token, 1
                    given.clear()
                    continue
                raise
            data = payload.get("data")
            cursor = payload.get("next_cursor")
            if not isinstance(data, list) or not (cursor is None or isinstance(cursor, str)):
                raise NylasError(f"Nylas sent a page without a data list or with a bad cursor while {what}")
            request_id = payload.get("request_id")
            yield data, cursor or None, request_id if isinstance(request_id, str) else None
            if not cursor:
                return
            if cursor == token or cursor in given:
                raise NylasError(
                    f"Nylas returned a cursor it had already given in this walk while {what} (after"
                    f" {len(given) + 1} pages); stopping instead of reading the same pages forever"
                )
            given.add(cursor)
            token = cursor
            good_pages += 1
            if (
                limit is not None
                and isinstance(wanted, int)
                and limit < wanted
                and good_pages >= PAGES_BEFORE_GROWING
            ):
                limit = min(wanted, limit * 2)
                good_pages = 0

    def _get_json(
        self,
        path: str,
        *,
        what: str,
        params: Mapping[str, QueryValue] | None = None,
        grant_id: str | None = None,
        reading_grant: bool = False,
        policy: RetryPolicy | None = None,
        retry_statuses: frozenset[int] = RETRYABLE_STATUSES,
    ) -> dict[str, Any]:
        session = self.get_conn()
        settings = self.settings
        url = settings.base_url + path
        query = {key: _query_value(value) for key, value in (params or {}).items()}
        log.debug("Nylas GET %s", path)

        def send() -> requests.Response:
            return session.get(url, params=query, timeout=settings.timeout_s)

        try:
            response = send_with_retry(
                send,
                policy=policy or self.retry_policy,
                describe=f"Nylas GET {path}",
                give_up=lambda outcome: self._give_up_error(outcome, what),
                stats=self._stats,
                sleep=self._sleep,
                clock=self._clock,
                rng=self._rng,
                retry_statuses=retry_statuses,
            )
        except requests.RequestException as exc:
            raise NylasError(
                self._redact(f"Request to Nylas failed while {what}: {type(exc).__name__}: {exc}")
            ) from exc
        if not response.ok:
            raise self._status_error(response, what=what, grant_id=grant_id, reading_grant=reading_grant)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise NylasError(
                f"Nylas answered {response.status_code} with a non-JSON-object body while {what}; if every"
                f" call does, check the host of connection {self.nylas_conn_id!r}: {HOST_HINT}",
                status=response.status_code,
                request_id=response.headers.get("x-request-id"),
            )
        return payload

    def _status_error(
        self, response: requests.Response, *, what: str, grant_id: str | None, reading_grant: bool = False
    ) -> NylasError:
        error_type, message, request_id, envelope = _error_details(response)
        status = response.status_code
        key_refused = status in (400, 401) and (error_type or "").lower() in _API_KEY_ERROR_TYPES
        if status == 401 and grant_id is not None and not key_refused and not self._api_key_rejected():
            return NylasGrantAuthError(
                self._redact(
                    f"Nylas grant {grant_id!r} is not authorized ({message}) while {what}: the grant has "
                    "expired or access was revoked. Re-authenticate the grant in Nylas (hosted "
                    "authentication or the Nylas Dashboard); it keeps its id, then re-run."
                ),
                grant_id=grant_id,
                status=status,
                code=error_type,
                request_id=request_id,
            )
        if status == 401 or key_refused:
            text = (
                f"Nylas rejected the API key of connection {self.nylas_conn_id!r} ({message}) while {what}: "
                "check the key and that the host matches its region (US or EU)."
            )
            return NylasApiKeyError(self._redact(text), status=status, code=error_type, request_id=request_id)
        if status == 404 and not envelope:
            # Nylas answers every 404 with its JSON error envelope: this answer came from another server.
            text = (
                f"{self.base_url} answered 404 without Nylas' error body ({message}) while {what}: check the "
                f"host of connection {self.nylas_conn_id!r}, it must be {HOST_HINT}"
            )
            return NylasError(self._redact(text), status=status, request_id=request_id)
        if status == 404 and grant_id is not None and (reading_grant or _is_grant_not_found(error_type)):
            during = "" if reading_grant else f" while {what}"
            text = (
                f"Nylas has no grant {grant_id!r} for the API key of connection {self.nylas_conn_id!r} "
                f"({message}){during}: check the grant_id in the grants file (a grant deleted in Nylas and "
                "connected again has a new id)"
            )
            return NylasNotFoundError(
                self._redact(text), status=status, code=error_type, request_id=request_id
            )
        if status == 404:
            text = f"Nylas found no such object while {what}: {message}"
            return NylasNotFoundError(
                self._redact(text), status=status, code=error_type, request_id=request_id
            )
        if status == 400:
            text = f"Nylas rejected the request while {what}: {message}"
            return NylasBadRequestError(
                self._redact(text), status=status, code=error_type, request_id=request_id
            )
        text = f"Nylas answered {status} while {what}: {message}"
        return NylasError(self._redact(text), status=status, code=error_type, request_id=request_id)

    def _api_key_rejected(self) -> bool:
        """Whether the API key itself is refused (a 401 on an application-level call).

        Nylas answers 401 both for an expired grant and for a wrong API key, with error types that vary
        (nylas.md 5.1), so one unretried ``GET /v3/grants?limit=1`` tells them apart. Any other outcome,
        including a failed probe, keeps the grant reading: that is what a 401 on a grant usually means.
        """
        session = self.get_conn()
        try:
            response = session.get(
                self.settings.base_url + "/v3/grants",
                params={"limit": "1"},
                timeout=self.settings.timeout_s,
            )
        except requests.RequestException:
            return False
        self._stats.count_request()
        response.close()
        return response.status_code == 401

    def _give_up_error(self, outcome: GiveUp, what: str) -> NylasRetryExhaustedError:
        if outcome.response is not None:
            error_type, message, request_id, _ = _error_details(outcome.response)
            last = f"last answer {outcome.status}: {message}"
        else:
            error_type = request_id = None
            last = f"last error {type(outcome.exception).__name__}: {outcome.exception}"
        text = (
            f"Nylas still failing while {what} after {outcome.attempts} attempt(s) in "
            f"{outcome.elapsed_s:.1f} s (stopped by the retry {outcome.reason}); {last}"
        )
        return NylasRetryExhaustedError(
            self._redact(text),
            attempts=outcome.attempts,
            elapsed_s=outcome.elapsed_s,
            status=outcome.status,
            code=error_type,
            request_id=request_id,
            retry_after=outcome.retry_after_s,
        )


def _is_expired_cursor(exc: NylasError) -> bool:
    text = exc.message.lower()
    return (
        exc.status == 400
        and ("page_token" in text or "cursor" in text)
        and ("expired" in text or "invalid" in text)
    )


def _grant_path(grant_id: str) -> str:
    if not grant_id:
        raise ValueError("grant_id must not be empty")
    return f"/v3/grants/{quote(grant_id, safe='@')}"


def _query_value(value: QueryValue) -> str:
    # Nylas documents lowercase booleans; str(True) would send "True".
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _data_object(payload: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    data = payload.get("data")
    if not isinstance(data, dict):
        raise NylasError(f"Nylas answered without a data object for {what}")
    return data


class _ErrorDetails(NamedTuple):
    error_type: str | None
    message: str
    request_id: str | None
    envelope: bool  # the body was Nylas' JSON error envelope ({"error": {...}})


def _is_grant_not_found(error_type: str | None) -> bool:
    # The error-type catalogue's name for an unknown grant (nylas.md 5.1), with or without a prefix.
    return (error_type or "").lower().endswith("grant.not_found")


def _error_details(response: requests.Response) -> _ErrorDetails:
    """(error type, readable message, request id, envelope) from any error response, JSON or not."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    request_id = response.headers.get("x-request-id")
    if isinstance(payload, dict):
        request_id = payload.get("request_id") if isinstance(payload.get("request_id"), str) else request_id
        error = payload.get("error")
        if isinstance(error, dict):
            error_type = str(error["type"]) if error.get("type") else None
            message = str(error.get("message") or error_type or "no message")
            provider = error.get("provider_error")
            if isinstance(provider, dict) and (provider.get("code") or provider.get("message")):
                message += f" (provider error {provider.get('code')}: {provider.get('message')})"
            return _ErrorDetails(error_type, message, request_id, envelope=True)
    content_type = response.headers.get("Content-Type", "no content type")
    body = "JSON body without an error object" if payload is not None else "non-JSON body"
    return _ErrorDetails(
        None,
        f"{response.reason or 'error'}; {body} ({content_type}, {len(response.content)} bytes)",
        request_id,
        envelope=False,
    )
