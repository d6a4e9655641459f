"""Airflow hook for the Microsoft Dataverse Web API (v9.2) with Entra ID client credentials.

Connection: ``host`` = environment URL (``https://contoso.crm.dynamics.com``; no scheme means https),
``login`` = client (application) id, ``password`` = client secret, extras ``tenant_id`` (required),
``authority_host`` (default ``https://login.microsoftonline.com``), ``timeout`` (seconds, default 120) and
``max_concurrency`` (requests in flight from this hook at most, default 52: Dataverse's limit per user).

The hook is safe to share between threads: one MSAL application (one token cache), one session, and a pacing
gate around each HTTP send (``_gate.py``, rule in ``core/pacing.py``): up to ``max_concurrency`` requests in
flight while the window's execution-time budget lasts, then the service's ``x-ms-dop-hint`` (4 by default, the
budget's refill rate); a 429 holds every thread until its ``Retry-After``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import quote, urlsplit

import msal
import requests

from nylas_dataverse.core.attachments import DEFAULT_ORG_LIMIT_BYTES
from nylas_dataverse.core.pacing import MAX_CONCURRENT, Pacer
from nylas_dataverse.hooks._base import RetryingServiceHook
from nylas_dataverse.hooks._connection import (
    about_this_connection,
    normalize_base_url,
    number_extra,
    read_extras,
    refuse_path,
    required_text,
)
from nylas_dataverse.hooks._gate import PacingGate
from nylas_dataverse.hooks._retry import GiveUp, RetryBudget, RetryPolicy, send_with_retry
from nylas_dataverse.hooks.dataverse_tables import MAX_UPLOAD_COLUMN, ORGANIZATIONS
from nylas_dataverse.hooks.errors import (
    ConnectionConfigError,
    DataverseAuthError,
    DataverseError,
    DataversePermissionError,
    DataverseRetryExhaustedError,
    DataverseThrottledError,
    DataverseTimeoutError,
)
from nylas_dataverse.hooks.odata import (
    DEFAULT_MAX_URL_LENGTH,
    BatchOperation,
    BatchOutcome,
    BatchRequest,
    BatchResponse,
    ChangeSet,
    align_batch_outcomes,
    assign_content_ids,
    boundary_from_content_type,
    build_url,
    encode_batch,
    entity_id_from_url,
    in_query_urls,
    parse_batch_response,
    select_value,
    write_batch,
)

log = logging.getLogger(__name__)

# Authority hosts MSAL knows as Microsoft's; anything else (a sandbox, ADFS) gets no instance discovery.
MICROSOFT_LOGIN_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
        "login-us.microsoftonline.com",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
        "login.sovcloud-identity.fr",
        "login.sovcloud-identity.de",
        "login.sovcloud-identity.sg",
    }
)
MAX_GET_URL_LENGTH = 32_768
# Tokens one request may drop after a 401 before it gives up; the request's retry time budget spans them all.
MAX_TOKEN_REFRESHES = 10
# Tokens Entra issued moments before that Dataverse refuses in a row: the application user itself is refused
# (more than one, because a token can also die in transit on an overloaded machine or proxy).
MAX_FRESH_REFUSALS = 3
MAX_PAGE_SIZE = 5000
MAX_BATCH_PARTS = 1000
# A GET part Dataverse answered with one of these is asked again on its own, with the hook's retries.
_PART_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_ENTITY_SET = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A refusal for a missing privilege: 403, or PrivilegeDenied's code (dataverse.md 1.6) whatever the status.
_PRIVILEGE_DENIED_CODES = frozenset({"0x80040220"})
# What Dataverse's PrivilegeDenied message names: "... is missing prvReadContact privilege (Id=...) on
# OTC=2 for entity 'contact' ...".
_MISSING_PRIVILEGE = re.compile(r"\bmissing (prv\w+) privilege")
_PRIVILEGE_TABLE = re.compile(r"\bfor entity '(\w+)'")
_ROLE_PATH = (
    "Power Platform admin center > Environments > your environment > Settings > Users + permissions >"
    " Application users > the app > Edit security roles"
)
# A tenant GUID or a verified domain; a URL or a pasted sentence is a mistake worth naming.
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")


@dataclass(frozen=True)
class InLookup:
    """One ``In`` lookup for :meth:`DataverseHook.query_in_batched` (the arguments of ``query_in``)."""

    entity_set: str
    property_name: str
    values: Sequence[str]
    select: Sequence[str]
    extra_filter: str | None = None


@dataclass(frozen=True)
class DataverseSettings:
    """What the hook read from its connection (the client secret is left out of ``repr``)."""

    env_url: str
    client_id: str
    client_secret: str = field(repr=False)
    tenant_id: str
    authority_host: str
    timeout_s: float
    max_concurrency: int

    @property
    def api_url(self) -> str:
        return f"{self.env_url}/api/data/v9.2/"

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def scope(self) -> str:
        return f"{self.env_url}/.default"


class DataverseHook(RetryingServiceHook[DataverseSettings]):
    """Dataverse Web API client: queries, ``In`` lookups, create/update and ``$batch``.

    ``sleep``, ``clock`` (wall-clock epoch seconds) and ``rng`` exist so tests can fake time;
    ``session`` lets callers inject a transport for Web API calls (MSAL keeps its own). Nothing is
    read or sent until the first call.
    """

    conn_name_attr = "dataverse_conn_id"
    default_conn_name = "dataverse_default"
    conn_type = "dataverse"
    hook_name = "Microsoft Dataverse"

    DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
    DEFAULT_TIMEOUT_S = 120.0
    DEFAULT_MAX_CONCURRENCY = MAX_CONCURRENT
    DEFAULT_RETRY_POLICY = RetryPolicy(
        max_attempts=8, max_total_wait_s=600.0, base_delay_s=1.0, max_delay_s=60.0
    )
    EXTRAS = frozenset({"tenant_id", "authority_host", "timeout", "max_concurrency"})

    def __init__(
        self,
        dataverse_conn_id: str = default_conn_name,
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
        self.dataverse_conn_id = dataverse_conn_id
        self._token_lock = threading.Lock()
        self._gate: PacingGate | None = None
        self._last_send = threading.local()
        self._app: Any = None
        self._token_requests = 0
        self._invalidated_token: str | None = None
        self._max_upload: int | None = None

    # --- counters ---------------------------------------------------------------------------------

    @property
    def token_requests(self) -> int:
        """Tokens fetched from Entra ID (cache hits not counted)."""
        return self._token_requests

    # --- connection -------------------------------------------------------------------------------

    def _settings_loaded(self, settings: DataverseSettings) -> None:
        # More than Dataverse's 52 per user would only draw 429s.
        pacer = Pacer(burst=min(settings.max_concurrency, MAX_CONCURRENT))
        self._gate = PacingGate(pacer, clock=self._clock, sleep=self._sleep)

    @property
    def api_url(self) -> str:
        """``<environment URL>/api/data/v9.2/``."""
        return self.settings.api_url

    @property
    def max_concurrency(self) -> int:
        """Requests this hook keeps in flight at most (the connection's ``max_concurrency`` extra)."""
        return self.settings.max_concurrency

    def last_send_seconds(self) -> float:
        """How long this thread's last request took on the wire (not counting time queued in the gate)."""
        return float(getattr(self._last_send, "seconds", 0.0))

    @property
    def pacing(self) -> dict[str, object]:
        """How the pacing gate has run so far: peak in flight, the 429s by code, the service's dop hint."""
        gate = self._gate
        if gate is None:
            return {}
        return gate.snapshot()

    def _load_settings(self) -> DataverseSettings:
        conn_id = self.dataverse_conn_id
        conn = self.get_connection(conn_id)
        extras = read_extras(conn.extra_dejson, self.EXTRAS, conn_id=conn_id)
        env_url = normalize_base_url(
            conn.host, conn.port, default=None, conn_id=conn_id, field="Dataverse environment URL"
        )
        refuse_path(
            env_url,
            conn.host,
            conn_id=conn_id,
            must_be="the environment URL (e.g. https://contoso.crm.dynamics.com)",
            containing="/api/data",
        )
        tenant_id = extras.get("tenant_id")
        if not isinstance(tenant_id, str) or not tenant_id.strip():
            raise ConnectionConfigError(
                f"Connection {conn_id!r} has no extra 'tenant_id'; "
                "set it to the Entra ID tenant (directory) id."
            )
        if not _TENANT.fullmatch(tenant_id.strip()):
            raise ConnectionConfigError(
                f"Connection {conn_id!r}: extra 'tenant_id' must be the Entra ID tenant (directory) id, a "
                f"GUID, or its domain such as contoso.onmicrosoft.com; got {tenant_id!r}"
            )
        authority = extras.get("authority_host", self.DEFAULT_AUTHORITY_HOST)
        settings = DataverseSettings(
            env_url=env_url,
            client_id=required_text(conn.login, conn_id=conn_id, what="login (the client/application id)"),
            client_secret=required_text(conn.password, conn_id=conn_id, what="password (the client secret)"),
            tenant_id=tenant_id.strip(),
            authority_host=normalize_base_url(
                str(authority),
                None,
                default=None,
                conn_id=conn_id,
                field="authority host (extra authority_host)",
            ),
            timeout_s=number_extra(
                extras, "timeout", default=self.DEFAULT_TIMEOUT_S, conn_id=conn_id, minimum=1, maximum=3600
            ),
            max_concurrency=int(
                number_extra(
                    extras,
                    "max_concurrency",
                    default=self.DEFAULT_MAX_CONCURRENCY,
                    conn_id=conn_id,
                    minimum=1,
                    integer=True,
                )
            ),
        )
        log.debug("Dataverse connection %r: environment %s", conn_id, settings.env_url)
        return settings

    def _session_headers(self, settings: DataverseSettings) -> dict[str, str]:
        # The bearer token is added per request: it is refreshed while the session lives.
        return {
            "Accept": "application/json",
            "OData-MaxVersion": "4.0",
            "OData-Version": "4.0",
            "If-None-Match": "null",
        }

    def _secrets(self, settings: DataverseSettings) -> list[str | None]:
        return [settings.client_secret]

    def counters(self) -> dict[str, float]:
        return {**super().counters(), "token_requests": self.token_requests}

    def test_connection(self) -> tuple[bool, str]:
        """Read-only check used by the Airflow UI: get a token and call ``WhoAmI``, no retries.

        The UI waits for the answer, so a throttled or failing service is reported, not waited out.
        """
        try:
            who = self.whoami(policy=RetryPolicy(max_attempts=1))
        except Exception as exc:  # the UI shows any failure, including a bad connection, as text
            return False, about_this_connection(self._redact(str(exc)), self.dataverse_conn_id)
        return True, f"Connected to {self.settings.env_url} as user {who.get('UserId')}"

    # --- tokens -----------------------------------------------------------------------------------

    def _build_app(self, settings: DataverseSettings) -> Any:
        # The constructor talks to the authority (OIDC discovery), hence built on first token request.
        authority_hostname = urlsplit(settings.authority_host).hostname or ""
        try:
            return msal.ConfidentialClientApplication(
                settings.client_id,
                client_credential=settings.client_secret,
                authority=settings.authority,
                instance_discovery=authority_hostname.lower() in MICROSOFT_LOGIN_HOSTS,
                verify=os.environ.get("REQUESTS_CA_BUNDLE") or True,
            )
        except (ValueError, KeyError, requests.RequestException) as exc:
            text = (
                f"Could not reach the Entra ID authority {settings.authority} for client id "
                f"{settings.client_id!r} (tenant {settings.tenant_id!r}): {type(exc).__name__}: {exc}. "
                "Check the tenant_id and authority_host extras."
            )
            raise DataverseAuthError(
                self._redact(text), transient=isinstance(exc, requests.RequestException)
            ) from exc

    def _access_token(self) -> str:
        return self._token()[0]

    def _token(self) -> tuple[str, bool]:
        """(access token, whether Entra issued it just now rather than the cache)."""
        settings = self.settings
        with self._token_lock:
            if self._app is None:
                self._app = self._build_app(settings)
            try:
                result = self._app.acquire_token_for_client(scopes=[settings.scope])
            except (ValueError, requests.RequestException) as exc:
                text = (
                    f"Token request to {settings.authority} for client id {settings.client_id!r} failed: "
                    f"{type(exc).__name__}: {exc}"
                )
                raise DataverseAuthError(
                    self._redact(text), transient=isinstance(exc, requests.RequestException)
                ) from exc
            if not isinstance(result, dict) or "access_token" not in result:
                error = result.get("error") if isinstance(result, dict) else None
                description = result.get("error_description") if isinstance(result, dict) else None
                text = (
                    f"Entra ID refused a token for client id {settings.client_id!r} in tenant "
                    f"{settings.tenant_id!r} (scope {settings.scope}): {error}: {description}. Check the "
                    "client id, the client secret (not expired; the secret value, not its id) and tenant_id."
                )
                raise DataverseAuthError(self._redact(text), code=str(error) if error else None)
            fresh = result.get("token_source") != "cache"
            if fresh:
                self._token_requests += 1
                log.debug("Fetched a Dataverse access token from %s", settings.authority_host)
            return str(result["access_token"]), fresh

    def _drop_token(self, rejected: str) -> None:
        """Forget a token Dataverse refused; once per token even if several threads saw the 401."""
        with self._token_lock:
            if self._app is None or rejected == self._invalidated_token:
                return
            self._invalidated_token = rejected
            try:
                self._app.remove_tokens_for_client()
            except (ValueError, requests.RequestException) as exc:
                # For Microsoft hosts MSAL looks up authority aliases first; if that fails the cached
                # token stays, and a second 401 surfaces as DataverseAuthError.
                log.warning("Could not drop the cached Dataverse token: %s", type(exc).__name__)

    # --- API --------------------------------------------------------------------------------------

    def whoami(self, *, policy: RetryPolicy | None = None) -> dict[str, Any]:
        """``GET WhoAmI`` → ``UserId``, ``BusinessUnitId``, ``OrganizationId`` (``policy``: other retries)."""
        response = self._request("GET", "WhoAmI", what="calling WhoAmI", policy=policy)
        return _json_object(response, what="WhoAmI")

    def user_privileges(self, user_id: str) -> list[dict[str, Any]]:
        """``RetrieveUserPrivileges``: every privilege the user holds through its roles, with its depth."""
        path = (
            f"systemusers({quote(user_id, safe=_KEY_SAFE)})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()"
        )
        what = "reading the application user's privileges"
        payload = _json_object(self._request("GET", path, what=what), what=what)
        privileges = payload.get("RolePrivileges")
        if not isinstance(privileges, list):
            raise DataverseError("Dataverse answered RetrieveUserPrivileges without RolePrivileges")
        return [entry for entry in privileges if isinstance(entry, dict)]

    def max_upload_file_size(self) -> int:
        """``organizations.maxuploadfilesize``: the longest attachment body (Base64 text, in bytes) the org
        accepts. Read once per hook (one per run); an org row without it counts as Dataverse's default."""
        if self._max_upload is None:
            row = next(iter(self.query(ORGANIZATIONS, select=[MAX_UPLOAD_COLUMN], page_size=1)), None)
            value = row.get(MAX_UPLOAD_COLUMN) if row else None
            self._max_upload = value if isinstance(value, int) and value > 0 else DEFAULT_ORG_LIMIT_BYTES
        return self._max_upload

    def query(
        self,
        entity_set: str,
        *,
        filter: str | None = None,
        select: Sequence[str] | str | None = None,
        page_size: int | None = None,
        extra_params: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Rows of ``entity_set`` matching ``filter`` (raw OData), following ``@odata.nextLink``.

        ``page_size`` sends ``Prefer: odata.maxpagesize`` (1-5000). ``extra_params`` are further query
        options (e.g. ``{"$orderby": "createdon desc"}``), percent-encoded here.
        """
        params: dict[str, str] = {}
        if select is not None:
            params["$select"] = select_value(select)
        if filter:
            params["$filter"] = filter
        params.update(extra_params or {})
        url = build_url(self.api_url + _entity_set(entity_set), params)
        yield from self._pages(url, page_size, what=f"querying {entity_set}")

    def query_in(
        self,
        entity_set: str,
        property_name: str,
        values: Iterable[str],
        *,
        select: Sequence[str] | str,
        extra_filter: str | None = None,
        page_size: int | None = None,
        max_url_length: int = DEFAULT_MAX_URL_LENGTH,
    ) -> Iterator[dict[str, Any]]:
        """Rows whose ``property_name`` is one of ``values``, via ``Microsoft.Dynamics.CRM.In`` queries.

        Values are de-duplicated and split so that every URL stays within ``max_url_length`` (at most
        32,768). ``extra_filter`` is ANDed with each ``In``. String matching is case-insensitive in
        Dataverse, so compare returned values case-insensitively.
        """
        if not 1 <= max_url_length <= MAX_GET_URL_LENGTH:
            raise ValueError(
                f"max_url_length must be between 1 and {MAX_GET_URL_LENGTH}, got {max_url_length}"
            )
        urls = in_query_urls(
            self.api_url + _entity_set(entity_set),
            property_name,
            values,
            select=select,
            extra_filter=extra_filter,
            max_url_length=max_url_length,
        )
        for url in urls:
            yield from self._pages(url, page_size, what=f"looking up {entity_set} by {property_name}")

    def query_in_batched(
        self, lookups: Sequence[InLookup], *, max_url_length: int = DEFAULT_MAX_URL_LENGTH
    ) -> list[list[dict[str, Any]] | DataverseError]:
        """Several ``In`` lookups as GET parts of one ``$batch``: one request for the service's request
        count instead of one per lookup (every part still counts against the 24-hour platform allocation).

        One result per lookup, in order: its rows, or the ``DataverseError`` its part was answered with (a
        404 for a table the environment lacks, say), so one failed lookup does not hide the others. A part
        answered 429 or 5xx, or not run, is asked again on its own with the hook's retries; further pages
        (``@odata.nextLink``) are read one by one.
        """
        urls: list[tuple[int, str]] = []
        for index, lookup in enumerate(lookups):
            for url in in_query_urls(
                self.api_url + _entity_set(lookup.entity_set),
                lookup.property_name,
                lookup.values,
                select=lookup.select,
                extra_filter=lookup.extra_filter,
                max_url_length=max_url_length,
            ):
                urls.append((index, url))
        results: list[list[dict[str, Any]] | DataverseError] = [[] for _ in lookups]
        for start in range(0, len(urls), MAX_BATCH_PARTS):
            part_urls = urls[start : start + MAX_BATCH_PARTS]
            if len(part_urls) == 1:
                outcomes = [BatchOutcome(ok=False, responses=())]  # one lookup: no $batch needed
            else:
                outcomes = self.execute_batch([BatchRequest("GET", url) for _, url in part_urls])
            for (index, url), outcome in zip(part_urls, outcomes, strict=True):
                earlier = results[index]
                if isinstance(earlier, DataverseError):
                    continue
                what = f"looking up {lookups[index].entity_set} by {lookups[index].property_name}"
                try:
                    earlier.extend(self._part_rows(url, outcome, what=what))
                except DataverseError as exc:
                    results[index] = exc
        return results

    def _part_rows(self, url: str, outcome: BatchOutcome, *, what: str) -> Iterator[dict[str, Any]]:
        response: BatchResponse | None = outcome.responses[0] if outcome.responses else None
        if response is None or response.status in _PART_RETRY_STATUSES:
            yield from self._pages(url, None, what=what)
            return
        payload = response.json
        if not response.ok or not isinstance(payload, dict):
            raise self._refusal(
                what,
                status=response.status,
                code=response.error_code,
                message=response.error_message or "no message",
                request_id=response.headers.get("REQ_ID") or response.headers.get("x-ms-service-request-id"),
            )
        rows = payload.get("value")
        if not isinstance(rows, list):
            raise DataverseError(f"Dataverse answered without a 'value' list while {what}")
        yield from rows
        link = payload.get("@odata.nextLink")
        if isinstance(link, str) and link:
            yield from self._pages(link, None, what=what)

    def create(
        self,
        entity_set: str,
        body: Mapping[str, Any],
        *,
        return_representation: bool = False,
        id_attribute: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """``POST entity_set`` and return the new row's id (lower-case GUID).

        The id comes from ``OData-EntityId`` (else ``Location``). With ``return_representation`` Dataverse
        sends the row instead of that header, so ``id_attribute`` (e.g. ``"activityid"``) is required.
        """
        if return_representation and not id_attribute:
            raise ValueError("create(return_representation=True) needs id_attribute, e.g. 'activityid'")
        request_headers = dict(headers or {})
        if return_representation:
            request_headers["Prefer"] = "return=representation"
        what = f"creating a row in {entity_set}"
        response = self._request(
            "POST", _entity_set(entity_set), json_body=body, headers=request_headers, what=what
        )
        new_id = entity_id_from_url(response.headers.get("OData-EntityId")) or entity_id_from_url(
            response.headers.get("Location")
        )
        if new_id is None and id_attribute and response.content:
            row = _json_object(response, what=what)
            new_id = str(row[id_attribute]).lower() if row.get(id_attribute) else None
        if new_id is None:
            raise DataverseError(
                f"Dataverse answered {response.status_code} to {what} but named no id "
                "(no OData-EntityId header)",
                status=response.status_code,
            )
        return new_id

    def update(
        self,
        entity_set: str,
        record_id: str,
        body: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """``PATCH entity_set(record_id)`` with ``If-Match: *``, so a missing row is a 404, never a create."""
        if not record_id:
            raise ValueError("record_id must not be empty")
        path = f"{_entity_set(entity_set)}({quote(record_id, safe=_KEY_SAFE)})"
        request_headers = {"If-Match": "*", **(headers or {})}
        what = f"updating {entity_set}({record_id})"
        self._request("PATCH", path, json_body=body, headers=request_headers, what=what)

    def delete(self, entity_set: str, record_id: str) -> None:
        """``DELETE entity_set(record_id)``; a row that is already gone is not an error."""
        if not record_id:
            raise ValueError("record_id must not be empty")
        path = f"{_entity_set(entity_set)}({quote(record_id, safe=_KEY_SAFE)})"
        try:
            self._request("DELETE", path, what=f"deleting {entity_set}({record_id})")
        except DataverseError as exc:
            if exc.status != 404:
                raise

    def execute_batch(
        self, operations: Sequence[BatchOperation], *, continue_on_error: bool = True
    ) -> list[BatchOutcome]:
        """Send ``operations`` as one ``$batch``; one :class:`BatchOutcome` per operation, in order.

        With ``continue_on_error`` (``Prefer: odata.continue-on-error``) every operation is attempted
        and each outcome says how it went; a failed change set is rolled back as a whole. Without it
        Dataverse stops at the first failure: that operation's outcome holds the error and every
        later operation gets ``ok=False`` with no responses (it was not executed).
        """
        prepared = assign_content_ids(operations)
        count = len(prepared)
        # A batch carrying files is written to a temporary file, the files' Base64 text block by block, and
        # sent from there: memory holds neither a file nor its Base64 text nor the body around them.
        spool: IO[bytes] | None = None
        if any(request.file is not None for request in _requests_of(prepared)):
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed below, after the request
            content_type = write_batch(prepared, spool, base_url=self.api_url)
            body: bytes | IO[bytes] = spool
        else:
            body, content_type = encode_batch(prepared, base_url=self.api_url)
        headers = {"Content-Type": content_type}
        if continue_on_error:
            headers["Prefer"] = "odata.continue-on-error"
        try:
            response = self._request(
                "POST", "$batch", data=body, headers=headers, what=f"sending a $batch of {count}", batch=True
            )
        except requests.exceptions.ReadTimeout as exc:
            raise DataverseTimeoutError(
                f"Dataverse did not answer a $batch of {count} within {self.settings.timeout_s:.0f} s; it may"
                " or may not have been applied (send it again in smaller parts: every write is idempotent)"
            ) from exc
        finally:
            if spool is not None:
                spool.close()
        answer_type = response.headers.get("Content-Type", "")
        return align_batch_outcomes(prepared, parse_batch_response(response.content, answer_type))

    # --- plumbing ---------------------------------------------------------------------------------

    def _pages(self, url: str, page_size: int | None, *, what: str) -> Iterator[dict[str, Any]]:
        headers: dict[str, str] = {}
        if page_size is not None:
            if isinstance(page_size, bool) or not 1 <= page_size <= MAX_PAGE_SIZE:
                raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size!r}")
            headers["Prefer"] = f"odata.maxpagesize={page_size}"
        next_url: str | None = url
        followed: set[str] = set()
        while next_url:
            followed.add(next_url)
            payload = _json_object(self._request("GET", next_url, headers=headers, what=what), what=what)
            rows = payload.get("value")
            if not isinstance(rows, list):
                raise DataverseError(f"Dataverse answered without a 'value' list while {what}")
            yield from rows
            link = payload.get("@odata.nextLink")
            next_url = link if isinstance(link, str) and link else None
            if next_url is not None and next_url in followed:
                raise DataverseError(
                    f"Dataverse's @odata.nextLink pointed at a page already read while {what}"
                    f" (after {len(followed)} pages); stopping instead of reading it forever"
                )

    def _request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        json_body: Mapping[str, Any] | None = None,
        data: bytes | IO[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        batch: bool = False,
        policy: RetryPolicy | None = None,
    ) -> requests.Response:
        """Send one Web API request: token, concurrency cap, retries, one token refresh on 401."""
        session = self.get_conn()
        settings = self.settings
        gate = self._gate
        assert gate is not None
        full_url = self._absolute(url)
        request_headers = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            request_headers.setdefault("Content-Type", "application/json; charset=utf-8")
        path = urlsplit(full_url).path
        describe = f"Dataverse {method} {path}"
        log.debug("%s", describe)

        # The token is taken per attempt: a request that waits out 429s for minutes may outlive several
        # tokens. A 401 drops the token and sends again; three 401s in a row on tokens Entra issued moments
        # before mean the application user itself is refused.
        sent: list[tuple[str, bool]] = []
        refreshes = fresh_refusals = 0
        budget = RetryBudget(started_at=self._clock())
        while True:

            def send() -> requests.Response:
                token, fresh = self._token()
                sent.append((token, fresh))
                if data is not None and not isinstance(data, bytes):
                    data.seek(0)  # a spooled body is sent again from its start
                entered, queued = gate.enter()
                budget.started_at += queued  # queueing behind other requests is not waiting to retry
                response: requests.Response | None = None
                try:
                    response = session.request(
                        method,
                        full_url,
                        data=data,
                        headers={**request_headers, "Authorization": f"Bearer {token}"},
                        timeout=settings.timeout_s,
                    )
                    return response
                finally:
                    self._last_send.seconds = self._clock() - entered
                    gate.leave(entered, response)

            try:
                response = send_with_retry(
                    send,
                    policy=policy or self.retry_policy,
                    describe=describe,
                    give_up=lambda outcome: self._give_up_error(outcome, what),
                    stats=self._stats,
                    sleep=self._sleep,
                    clock=self._clock,
                    rng=self._rng,
                    retry_timeouts=not batch,
                    budget=budget,
                )
            except requests.exceptions.ReadTimeout:
                raise  # only a $batch gets here (not retried): execute_batch says what it means
            except requests.RequestException as exc:
                text = f"Request to Dataverse failed while {what}: {type(exc).__name__}: {exc}"
                raise DataverseError(self._redact(text)) from exc

            if response.status_code == 401:
                token, fresh = sent[-1]
                response_details = _error_details(response)
                response.close()
                fresh_refusals = fresh_refusals + 1 if fresh else 0
                if fresh_refusals < MAX_FRESH_REFUSALS and refreshes < MAX_TOKEN_REFRESHES:
                    log.info(
                        "Dataverse answered 401 to %s; dropping the cached token and sending again", describe
                    )
                    self._drop_token(token)
                    refreshes += 1
                    continue
                code, message, request_id = response_details
                text = (
                    f"Dataverse refused a fresh token for client id {settings.client_id!r} while {what} "
                    f"({message}). Check that the application user exists in the environment and is enabled."
                )
                raise DataverseAuthError(self._redact(text), status=401, code=code, request_id=request_id)
            if response.ok or (batch and _is_multipart(response)):
                return response
            raise self._status_error(response, what)

    def _absolute(self, url: str) -> str:
        if "://" not in url:
            return self.api_url + url
        # Only ever send the token to the environment (nextLinks are absolute).
        expected = urlsplit(self.settings.env_url)
        actual = urlsplit(url)
        if (actual.scheme, actual.netloc.lower()) != (expected.scheme, expected.netloc.lower()):
            raise DataverseError(f"refusing to send a Dataverse token to {actual.scheme}://{actual.netloc}")
        return url

    def _status_error(self, response: requests.Response, what: str) -> DataverseError:
        code, message, request_id = _error_details(response)
        return self._refusal(
            what, status=response.status_code, code=code, message=message, request_id=request_id
        )

    def _refusal(
        self, what: str, *, status: int, code: str | None, message: str, request_id: str | None
    ) -> DataverseError:
        """The error for a refused request or ``$batch`` part: a missing privilege is a permission error."""
        if status == 403 or (code or "").lower() in _PRIVILEGE_DENIED_CODES:
            missing = _MISSING_PRIVILEGE.search(message)
            table = _PRIVILEGE_TABLE.search(message)
            if missing is None:
                lacks = "its security role lacks a privilege"
            else:
                lacks = f"it lacks {missing.group(1)}" + (f" on table '{table.group(1)}'" if table else "")
            text = (
                f"Dataverse refused {what} for the application user of connection {self.dataverse_conn_id!r}:"
                f" {lacks}. Add the privilege to a security role of that user ({_ROLE_PATH});"
                " `nylas-dataverse doctor` lists every privilege the pipeline needs."
                f" Dataverse said: {message}"
            )
            return DataversePermissionError(
                self._redact(text), status=status, code=code, request_id=request_id
            )
        text = f"Dataverse answered {status} while {what}: {message}"
        return DataverseError(self._redact(text), status=status, code=code, request_id=request_id)

    def _give_up_error(self, outcome: GiveUp, what: str) -> DataverseRetryExhaustedError:
        code: str | None = None
        request_id: str | None = None
        if outcome.response is not None:
            code, message, request_id = _error_details(outcome.response)
            last = f"last answer {outcome.status}: {message}"
        else:
            last = f"last error {type(outcome.exception).__name__}: {outcome.exception}"
        throttled = outcome.status == 429
        text = (
            f"Dataverse {'kept throttling' if throttled else 'still failing'} while {what} after "
            f"{outcome.attempts} attempt(s) in {outcome.elapsed_s:.1f} s "
            f"(stopped by the retry {outcome.reason}); {last}"
        )
        error_class = DataverseThrottledError if throttled else DataverseRetryExhaustedError
        return error_class(
            self._redact(text),
            attempts=outcome.attempts,
            elapsed_s=outcome.elapsed_s,
            status=outcome.status,
            code=code,
            request_id=request_id,
            retry_after=outcome.retry_after_s,
        )


_KEY_SAFE = "=',-"


def _requests_of(operations: Sequence[BatchOperation]) -> Iterator[BatchRequest]:
    for operation in operations:
        if isinstance(operation, ChangeSet):
            yield from operation.requests
        else:
            yield operation


def _entity_set(name: str) -> str:
    if not _ENTITY_SET.fullmatch(name):
        raise ValueError(f"not a Dataverse entity set name: {name!r} (e.g. 'emails', 'contacts')")
    return name


def _is_multipart(response: requests.Response) -> bool:
    return boundary_from_content_type(response.headers.get("Content-Type", "")) is not None


def _json_object(response: requests.Response, *, what: str) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise DataverseError(
            f"Dataverse answered {response.status_code} with a non-JSON-object body while {what}",
            status=response.status_code,
        )
    return payload


def _error_details(response: requests.Response) -> tuple[str | None, str, str | None]:
    """(error.code, error.message, request id) from any error response, JSON or not."""
    request_id = (
        response.headers.get("x-ms-service-request-id")
        or response.headers.get("REQ_ID")
        or response.headers.get("x-ms-request-id")
    )
    try:
        payload = response.json()
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        code = str(error["code"]) if error.get("code") else None
        return code, str(error.get("message") or "no message"), request_id
    content_type = response.headers.get("Content-Type", "no content type")
    return (
        None,
        f"{response.reason or 'error'}; non-JSON body ({content_type}, {len(response.content)} bytes)",
        request_id,
    )
