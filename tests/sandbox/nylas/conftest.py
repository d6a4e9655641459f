"""One Nylas stand-in over HTTPS for the whole test session, reset to its seed after every test."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import yaml

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas import seed
from nylas_dataverse_sandbox.nylas.app import create_app
from nylas_dataverse_sandbox.nylas.backend import NylasBackend
from nylas_dataverse_sandbox.server import RunningServer, serve_in_thread
from nylas_dataverse_sandbox.tls import TlsFiles, generate_tls

START_DAY = seed.DEFAULT_START_DAY
DAYS = seed.DEFAULT_DAYS
# The contract lives next to the repository, in the shared reference data (the checkout may be a
# worktree one level further down, so every ancestor is tried).
_CONTRACT = "shared/reference/data/nylas-openapi/nylas-v3-unified-2026-08.openapi.yml"
OPENAPI = next(
    (folder / _CONTRACT for folder in Path(__file__).resolve().parents if (folder / _CONTRACT).exists()),
    Path(__file__).resolve().parents[3].parent / _CONTRACT,
)


@dataclass
class NylasApi:
    """Plain ``requests`` against the stand-in; ``verify`` is passed per call so the environment's
    ``REQUESTS_CA_BUNDLE`` cannot override it."""

    url: str
    ca_pem: Path
    api_key: str = personas.NYLAS_API_KEY

    def get(
        self, path: str, params: Any = None, *, api_key: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        key = self.api_key if api_key is None else api_key
        if key:
            headers.setdefault("Authorization", f"Bearer {key}")
        return requests.get(
            f"{self.url}{path}", params=params, headers=headers, verify=str(self.ca_pem), timeout=30, **kwargs
        )

    def admin(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, f"{self.url}{path}", json=body, verify=str(self.ca_pem), timeout=60)

    def walk(self, grant: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every message of a listing, following next_cursor until it is absent."""
        query = dict(params or {})
        out: list[dict[str, Any]] = []
        while True:
            response = self.get(f"/v3/grants/{grant}/messages", query)
            assert response.status_code == 200, response.text
            body = response.json()
            out.extend(body["data"])
            if "next_cursor" not in body:
                return out
            query["page_token"] = body["next_cursor"]


@pytest.fixture(scope="session")
def nylas_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return generate_tls(tmp_path_factory.mktemp("nylas-tls"))


@pytest.fixture(scope="session")
def nylas_backend() -> NylasBackend:
    return NylasBackend(api_key=personas.NYLAS_API_KEY, start_day=START_DAY, days=DAYS)


@pytest.fixture(scope="session")
def nylas_server(nylas_backend: NylasBackend, nylas_tls: TlsFiles) -> Iterator[RunningServer]:
    server = serve_in_thread("nylas", create_app(nylas_backend), port=0, tls=nylas_tls)
    yield server
    # A dead requests.Response (kept alive by a reference cycle, e.g. a caught exception's traceback)
    # still holds its keep-alive socket, and uvicorn waits for open connections before it stops.
    gc.collect()
    server.stop()


@pytest.fixture
def api(nylas_server: RunningServer, nylas_tls: TlsFiles, nylas_backend: NylasBackend) -> Iterator[NylasApi]:
    yield NylasApi(nylas_server.url, nylas_tls.ca_pem)
    nylas_backend.reset()


@pytest.fixture
def make_api(nylas_tls: TlsFiles) -> Callable[[str], NylasApi]:
    """A client for another server started by a test (same CA)."""
    return lambda url: NylasApi(url, nylas_tls.ca_pem)


@pytest.fixture
def alice() -> personas.GrantPersona:
    return personas.grant_by_key("alice")


@pytest.fixture
def bob() -> personas.GrantPersona:
    return personas.grant_by_key("bob")


@pytest.fixture
def carol() -> personas.GrantPersona:
    return personas.grant_by_key("carol")


@pytest.fixture(scope="session")
def openapi_spec() -> dict[str, Any]:
    if not OPENAPI.exists():
        pytest.skip(f"the Nylas OpenAPI contract is not available at {OPENAPI}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader reads the 1.5 MB file in 0.4 s
    return yaml.load(OPENAPI.read_text(), Loader=loader)  # noqa: S506 - a SafeLoader


@pytest.fixture(scope="session")
def openapi_validator(openapi_spec: dict[str, Any]) -> Callable[[str], jsonschema.Draft202012Validator]:
    """A validator for a JSON pointer into the contract, e.g. ``#/components/schemas/message``."""

    def make(pointer: str) -> jsonschema.Draft202012Validator:
        return jsonschema.Draft202012Validator({"$ref": pointer, "components": openapi_spec["components"]})

    return make
