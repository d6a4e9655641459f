"""HTTP face of the Entra ID stand-in: OIDC discovery, the v2.0 token endpoint and the sandbox admin."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nylas_dataverse_sandbox.entra.backend import EntraBackend, EntraError

_NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _error(exc: EntraError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=_NO_STORE)


def create_app(backend: EntraBackend) -> Starlette:
    async def openid_configuration(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        try:
            backend.check_tenant(tenant)
        except EntraError as exc:
            return _error(exc)
        base = f"{_base_url(request)}/{tenant}"
        return JSONResponse(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "sandbox.local",
            }
        )

    async def token(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        # Parsed by hand: form decoding in Starlette needs python-multipart, which the sandbox avoids.
        fields = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        try:
            issued = backend.issue_token(tenant, fields)
        except EntraError as exc:
            return _error(exc)
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "ext_expires_in": issued.expires_in,
                "access_token": issued.access_token,
            },
            headers=_NO_STORE,
        )

    async def admin_reset(request: Request) -> Response:
        backend.reset()
        return JSONResponse({"reset": True})

    async def admin_stats(request: Request) -> Response:
        return JSONResponse(backend.stats())

    async def admin_faults(request: Request) -> Response:
        try:
            body: Any = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError as exc:
            return JSONResponse({"error": f"faults body must be JSON: {exc}"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "faults body must be a JSON object"}, status_code=400)
        unknown = sorted(set(body) - {"token_lifetime_s", "expire_all"})
        if unknown:
            return JSONResponse(
                {"error": f"unknown fault knobs {unknown}; use token_lifetime_s and expire_all"},
                status_code=400,
            )
        if "token_lifetime_s" in body:
            lifetime = body["token_lifetime_s"]
            if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime < 1:
                return JSONResponse(
                    {"error": f"token_lifetime_s must be a positive integer, got {lifetime!r}"},
                    status_code=400,
                )
            backend.set_token_lifetime(lifetime)
        if body.get("expire_all"):
            backend.expire_all()
        return JSONResponse(backend.stats())

    return Starlette(
        routes=[
            Route("/_sandbox/reset", admin_reset, methods=["POST"]),
            Route("/_sandbox/stats", admin_stats, methods=["GET"]),
            Route("/_sandbox/faults", admin_faults, methods=["POST"]),
            Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
            Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
        ]
    )
