"""The Entra stand-in as MSAL and plain HTTP clients see it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import msal
import pytest
import requests

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.entra.backend import EntraBackend
from nylas_dataverse_sandbox.server import RunningServer
from nylas_dataverse_sandbox.tls import TlsFiles

RESOURCE = "https://127.0.0.1:9443"


MsalFactory = Callable[..., msal.ConfidentialClientApplication]


@pytest.fixture
def msal_app(entra_server: RunningServer, entra_tls: TlsFiles) -> Iterator[MsalFactory]:
    """Builds MSAL apps against the sandbox and closes their connections afterwards (fast stop)."""
    apps: list[msal.ConfidentialClientApplication] = []

    def build(secret: str = personas.CLIENT_SECRET) -> msal.ConfidentialClientApplication:
        app = msal.ConfidentialClientApplication(
            personas.CLIENT_ID,
            client_credential=secret,
            authority=f"{entra_server.url}/{personas.TENANT_ID}",
            instance_discovery=False,
            verify=str(entra_tls.ca_pem),
        )
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.http_client.close()


def _token_request(
    server: RunningServer, tenant: str = personas.TENANT_ID, **fields: str
) -> requests.Response:
    form = {
        "grant_type": "client_credentials",
        "client_id": personas.CLIENT_ID,
        "client_secret": personas.CLIENT_SECRET,
        "scope": f"{RESOURCE}/.default",
        "client_info": "1",
        **fields,
    }
    return requests.post(f"{server.url}/{tenant}/oauth2/v2.0/token", data=form, timeout=10)


def test_msal_gets_a_token_over_tls_and_then_serves_it_from_its_cache(
    msal_app: MsalFactory, entra_backend: EntraBackend
) -> None:
    app = msal_app()

    first = app.acquire_token_for_client([f"{RESOURCE}/.default"])
    second = app.acquire_token_for_client([f"{RESOURCE}/.default"])

    assert first["token_type"] == "Bearer"
    assert first["token_source"] == "identity_provider"
    assert second["token_source"] == "cache"
    assert second["access_token"] == first["access_token"]
    assert entra_backend.token_requests == 1
    info = entra_backend.validate(first["access_token"], RESOURCE)
    assert info is not None
    assert info.appid == personas.CLIENT_ID


def test_a_wrong_secret_comes_back_as_msal_error_dict_with_entra_codes(msal_app: MsalFactory) -> None:
    app = msal_app(secret="not-the-secret")

    result = app.acquire_token_for_client([f"{RESOURCE}/.default"])

    assert "access_token" not in result
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert f"for a secret added to app '{personas.CLIENT_ID}'" in result["error_description"]
    assert "Trace ID: " in result["error_description"]
    assert "not-the-secret" not in result["error_description"]


def test_wrong_secret_is_http_401_with_trace_and_correlation_ids(entra_server: RunningServer) -> None:
    response = _token_request(entra_server, client_secret="nope")

    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_client"
    assert body["trace_id"] in body["error_description"]
    assert body["correlation_id"] in body["error_description"]


@pytest.mark.parametrize(
    ("tenant", "fields", "status", "error", "code"),
    [
        (
            personas.TENANT_ID,
            {"client_id": "00000000-0000-0000-0000-0000000000aa"},
            400,
            "unauthorized_client",
            700016,
        ),
        ("11111111-2222-3333-4444-555555555555", {}, 400, "invalid_request", 90002),
        (personas.TENANT_ID, {"scope": RESOURCE}, 400, "invalid_scope", 1002012),
        (personas.TENANT_ID, {"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        (personas.TENANT_ID, {"client_secret": ""}, 401, "invalid_client", 7000216),
    ],
    ids=["unknown-client", "unknown-tenant", "scope-without-default", "other-grant", "no-secret"],
)
def test_bad_token_requests_get_entra_error_shapes(
    entra_server: RunningServer, tenant: str, fields: dict[str, str], status: int, error: str, code: int
) -> None:
    response = _token_request(entra_server, tenant, **fields)

    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")


def test_oidc_discovery_describes_endpoints_on_the_requested_base_url(entra_server: RunningServer) -> None:
    url = f"{entra_server.url}/{personas.TENANT_ID}/v2.0/.well-known/openid-configuration"

    document = requests.get(url, timeout=10).json()

    assert document["issuer"] == f"{entra_server.url}/{personas.TENANT_ID}/v2.0"
    assert document["token_endpoint"] == f"{entra_server.url}/{personas.TENANT_ID}/oauth2/v2.0/token"
    assert document["authorization_endpoint"].startswith("https://")


def test_msal_refuses_an_unknown_tenant_at_construction(
    entra_server: RunningServer, entra_tls: TlsFiles
) -> None:
    # Our own session, so its connection can be closed although the constructor raises.
    with requests.Session() as session:
        session.verify = str(entra_tls.ca_pem)
        with pytest.raises(ValueError, match="Unable to get authority configuration"):
            msal.ConfidentialClientApplication(
                personas.CLIENT_ID,
                client_credential=personas.CLIENT_SECRET,
                authority=f"{entra_server.url}/not-a-tenant",
                instance_discovery=False,
                http_client=session,
            )


def test_a_token_is_valid_only_for_its_audience_and_until_expire_all(
    entra_server: RunningServer, entra_backend: EntraBackend
) -> None:
    token = _token_request(entra_server).json()["access_token"]

    assert entra_backend.validate(token, RESOURCE + "/") is not None
    assert entra_backend.validate(token, "https://localhost:9443") is not None  # same loopback host
    assert entra_backend.validate(token, "https://127.0.0.1:9444") is None
    assert entra_backend.validate(token + "x", RESOURCE) is None
    entra_backend.expire_all()
    assert entra_backend.validate(token, RESOURCE) is None


def test_admin_faults_set_lifetime_and_expire_tokens_and_stats_count_requests(
    entra_server: RunningServer,
) -> None:
    token = _token_request(entra_server).json()["access_token"]

    changed = requests.post(
        f"{entra_server.url}/_sandbox/faults", json={"token_lifetime_s": 120, "expire_all": True}, timeout=10
    )
    refreshed = _token_request(entra_server).json()
    stats = requests.get(f"{entra_server.url}/_sandbox/stats", timeout=10).json()

    assert changed.status_code == 200
    assert refreshed["expires_in"] == 120
    assert refreshed["access_token"] != token
    assert stats["token_requests"] == 2
    assert stats["active_tokens"] == 1
    rejected = requests.post(f"{entra_server.url}/_sandbox/faults", json={"lifetime": 5}, timeout=10)
    assert rejected.status_code == 400
    assert "token_lifetime_s" in rejected.json()["error"]


def test_expired_lifetime_makes_tokens_invalid(entra_backend: EntraBackend) -> None:
    clock = [1000.0]
    backend = EntraBackend(token_lifetime_s=60, clock=lambda: clock[0])
    form = {
        "grant_type": "client_credentials",
        "client_id": personas.CLIENT_ID,
        "client_secret": personas.CLIENT_SECRET,
        "scope": f"{RESOURCE}/.default",
    }
    token = backend.issue_token(personas.TENANT_ID, form).access_token

    clock[0] += 59
    assert backend.validate(token, RESOURCE) is not None
    clock[0] += 1
    assert backend.validate(token, RESOURCE) is None


@pytest.mark.parametrize("validate", [False, True])
def test_tokens_for_unknown_resources_are_issued_or_refused_as_switched(
    msal_app: MsalFactory, entra_backend: EntraBackend, validate: bool
) -> None:
    entra_backend.restrict_resources([RESOURCE] if validate else None)
    try:
        known = msal_app().acquire_token_for_client([f"{RESOURCE}/.default"])
        other = msal_app().acquire_token_for_client(["https://other.crm.dynamics.com/.default"])
    finally:
        entra_backend.restrict_resources(None)

    assert "access_token" in known
    if validate:
        assert other["error"] == "invalid_resource"
        assert other["error_codes"] == [500011]
        assert "https://other.crm.dynamics.com" in other["error_description"]
    else:
        assert "access_token" in other
