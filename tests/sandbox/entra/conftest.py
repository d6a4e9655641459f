"""The Entra ID stand-in served over TLS on a free loopback port, shared by this directory's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nylas_dataverse_sandbox.entra.app import create_app
from nylas_dataverse_sandbox.entra.backend import EntraBackend
from nylas_dataverse_sandbox.server import RunningServer, serve_in_thread
from nylas_dataverse_sandbox.tls import TlsFiles, generate_tls


@pytest.fixture(scope="module")
def entra_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return generate_tls(tmp_path_factory.mktemp("entra-tls"))


@pytest.fixture(scope="module")
def entra_backend() -> EntraBackend:
    return EntraBackend()


@pytest.fixture(scope="module")
def entra_server(entra_backend: EntraBackend, entra_tls: TlsFiles) -> Iterator[RunningServer]:
    server = serve_in_thread("entra-test", create_app(entra_backend), port=0, tls=entra_tls)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh_entra(entra_backend: EntraBackend, entra_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test starts with no tokens issued, and HTTP clients trust the sandbox CA."""
    entra_backend.reset()
    # requests lets REQUESTS_CA_BUNDLE override a session's own `verify`, so point it at the sandbox CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(entra_tls.ca_pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(entra_tls.ca_pem))
    return entra_tls.ca_pem
