"""Entra ID state: registered confidential clients, issued access tokens, and their validation.

Tokens look like Entra's (three base64url segments with ``aud``/``appid``/``exp`` claims) but carry a random
signature that only this backend knows: resource servers must ask ``validate`` rather than trust the claims.
Error descriptions follow Entra's ``AADSTS<code>: <text>\\r\\nTrace ID: ...`` shape so clients that log or
match on them behave as they would in production.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import urlsplit

from nylas_dataverse_sandbox import personas

_DEFAULT_CLIENTS: Mapping[str, str] = MappingProxyType({personas.CLIENT_ID: personas.CLIENT_SECRET})


@dataclass(frozen=True)
class TokenInfo:
    """What a resource server learns about a valid bearer token."""

    client_id: str
    audience: str
    tenant_id: str
    issued_at: float
    expires_at: float

    @property
    def appid(self) -> str:
        return self.client_id


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


class EntraError(Exception):
    """An OAuth error answer: HTTP status, ``error`` and the AADSTS code with its text."""

    def __init__(self, status: int, error: str, aadsts: int, text: str) -> None:
        super().__init__(f"AADSTS{aadsts}: {text}")
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.text = text

    def body(self) -> dict[str, object]:
        now = dt.datetime.now(dt.UTC)
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.aadsts}: {self.text}\r\nTrace ID: {trace_id}"
                f"\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {stamp}"
            ),
            "error_codes": [self.aadsts],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.aadsts}",
        }


def normalize_audience(resource: str) -> str:
    """Compare resources the way a caller means them: scheme, host and port, ignoring a trailing slash.

    ``localhost`` and ``127.0.0.1`` are the same host here because the sandbox binds to the loopback only.
    """
    parts = urlsplit(resource.strip())
    host = (parts.hostname or "").lower()
    if host == "localhost":
        host = "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme.lower()}://{host}:{port}{parts.path.rstrip('/')}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class EntraBackend:
    """Client registrations and the tokens issued to them; thread-safe."""

    def __init__(
        self,
        *,
        tenant_id: str = personas.TENANT_ID,
        clients: Mapping[str, str] = _DEFAULT_CLIENTS,
        token_lifetime_s: int = 3599,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tenant_id = tenant_id
        self.clients = dict(clients)
        self.token_lifetime_s = token_lifetime_s
        self._initial_lifetime_s = token_lifetime_s
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, TokenInfo] = {}  # keyed by the token's signature segment
        self.token_requests = 0
        self.tokens_issued = 0
        self.failures: dict[str, int] = {}
        self.expire_all_calls = 0
        # None: any https resource gets a token (uncertain-behaviours row 20); else only these.
        self.known_resources: frozenset[str] | None = None

    def restrict_resources(self, resources: list[str] | None) -> None:
        """Issue tokens only for ``resources`` (as real Entra does for resources it knows); None lifts it."""
        with self._lock:
            self.known_resources = (
                None if resources is None else frozenset(normalize_audience(r) for r in resources)
            )

    # --- token endpoint -------------------------------------------------------------------------------
    def issue_token(self, tenant: str, form: Mapping[str, str]) -> IssuedToken:
        """Answer a ``client_credentials`` token request, or raise ``EntraError`` as Entra would."""
        with self._lock:
            self.token_requests += 1
        try:
            return self._issue(tenant, form)
        except EntraError as exc:
            with self._lock:
                key = f"AADSTS{exc.aadsts}"
                self.failures[key] = self.failures.get(key, 0) + 1
            raise

    def _issue(self, tenant: str, form: Mapping[str, str]) -> IssuedToken:
        self.check_tenant(tenant)
        grant_type = form.get("grant_type", "")
        if grant_type != "client_credentials":
            raise EntraError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'. This sandbox supports only "
                "'client_credentials'.",
            )
        client_id = form.get("client_id", "")
        if client_id not in self.clients:
            raise EntraError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You may have sent "
                "your authentication request to the wrong tenant.",
            )
        secret = form.get("client_secret")
        if not secret:
            raise EntraError(
                401,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' "
                "grant type.",
            )
        if not secrets.compare_digest(secret, self.clients[client_id]):
            raise EntraError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
            )
        audience = self._audience_from_scope(form.get("scope", ""))
        return self._mint(client_id, audience)

    def _audience_from_scope(self, scope: str) -> str:
        requested = [s for s in scope.split() if s not in {"openid", "profile", "offline_access"}]
        if len(requested) != 1 or not requested[0].endswith("/.default"):
            raise EntraError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope or '(empty)'} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        resource = requested[0][: -len("/.default")]
        parts = urlsplit(resource)
        known = self.known_resources
        unknown = known is not None and normalize_audience(resource) not in known
        if parts.scheme not in {"https", "http"} or not parts.hostname or unknown:
            raise EntraError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.tenant_id}. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant.",
            )
        return resource

    def _mint(self, client_id: str, audience: str) -> IssuedToken:
        now = self._clock()
        lifetime = self.token_lifetime_s
        signature = _b64url(secrets.token_bytes(32))
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + lifetime),
            "appid": client_id,
            "appidacr": "1",
            "idtyp": "app",
            "oid": personas.stable_id("service-principal", client_id),
            "sub": personas.stable_id("service-principal", client_id),
            "tid": self.tenant_id,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "1.0",
        }
        header = {"typ": "JWT", "alg": "RS256", "kid": "sandbox"}
        token = ".".join(
            [
                _b64url(json.dumps(header, separators=(",", ":")).encode()),
                _b64url(json.dumps(claims, separators=(",", ":")).encode()),
                signature,
            ]
        )
        info = TokenInfo(client_id, audience, self.tenant_id, now, now + lifetime)
        with self._lock:
            self._drop_expired(now)
            self._tokens[signature] = info
            self.tokens_issued += 1
        return IssuedToken(token, lifetime)

    def _drop_expired(self, now: float) -> None:
        if len(self._tokens) > 1000:
            for key in [k for k, v in self._tokens.items() if v.expires_at <= now]:
                del self._tokens[key]

    # --- resource-server side -------------------------------------------------------------------------
    def validate(self, token: str, audience: str) -> TokenInfo | None:
        """The token's facts when it was issued here, has not expired, and is meant for ``audience``."""
        signature = token.rsplit(".", 1)[-1]
        with self._lock:
            info = self._tokens.get(signature)
        if info is None or info.expires_at <= self._clock():
            return None
        if normalize_audience(info.audience) != normalize_audience(audience):
            return None
        return info

    def check_tenant(self, tenant: str) -> None:
        if tenant.lower() != self.tenant_id.lower():
            raise EntraError(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
                "signing into the correct cloud. Check with your subscription administrator, this may "
                "happen if there are no active subscriptions for the tenant.",
            )

    # --- fault knobs and admin ------------------------------------------------------------------------
    def expire_all(self) -> None:
        """Every token issued so far stops working now (clients must notice the 401 and fetch a new one)."""
        with self._lock:
            self._tokens.clear()
            self.expire_all_calls += 1

    def set_token_lifetime(self, seconds: int) -> None:
        if seconds < 1:
            raise ValueError(f"token_lifetime_s must be at least 1 second, got {seconds}")
        self.token_lifetime_s = seconds

    def reset(self) -> None:
        with self._lock:
            self._tokens.clear()
            self.token_requests = 0
            self.tokens_issued = 0
            self.failures = {}
            self.expire_all_calls = 0
            self.token_lifetime_s = self._initial_lifetime_s

    def stats(self) -> dict[str, object]:
        now = self._clock()
        with self._lock:
            return {
                "token_requests": self.token_requests,
                "tokens_issued": self.tokens_issued,
                "active_tokens": sum(1 for t in self._tokens.values() if t.expires_at > now),
                "failures": dict(self.failures),
                "expire_all_calls": self.expire_all_calls,
                "token_lifetime_s": self.token_lifetime_s,
            }
