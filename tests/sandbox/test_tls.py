"""The sandbox's CA and server certificate: made once per state directory, trusted only through ca.pem,
valid for 127.0.0.1 and localhost, and acceptable to strict X.509 verification."""

from __future__ import annotations

import socket
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from nylas_dataverse_sandbox.server import RunningServer, serve_in_thread
from nylas_dataverse_sandbox.tls import TlsFiles, generate_tls


async def _hello(_request: object) -> PlainTextResponse:
    return PlainTextResponse("hello")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return generate_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def server(tls: TlsFiles) -> Iterator[RunningServer]:
    running = serve_in_thread("tls-test", Starlette(routes=[Route("/", _hello)]), port=0, tls=tls)
    yield running
    running.stop()


def _handshake(port: int, context: ssl.SSLContext, server_hostname: str) -> str:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls_socket,
    ):
        return str(tls_socket.version())


def test_the_files_are_made_once_and_reused_by_every_later_start(tmp_path: Path) -> None:
    first = generate_tls(tmp_path / "tls")
    written = {path: path.read_bytes() for path in (first.ca_pem, first.cert_pem, first.key_pem)}

    second = generate_tls(tmp_path / "tls")

    assert second == first
    assert {path: path.read_bytes() for path in written} == written
    assert b"BEGIN CERTIFICATE" in written[first.ca_pem]
    assert b"PRIVATE KEY" in written[first.key_pem]
    assert b"PRIVATE KEY" not in written[first.ca_pem] + written[first.cert_pem]
    assert stat.S_IMODE(first.key_pem.stat().st_mode) == 0o600


def test_a_missing_file_makes_a_new_ca_and_certificate(tmp_path: Path) -> None:
    first = generate_tls(tmp_path / "tls")
    old_ca = first.ca_pem.read_bytes()
    first.key_pem.unlink()

    second = generate_tls(tmp_path / "tls")

    assert second.key_pem.exists()
    assert second.ca_pem.read_bytes() != old_ca


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_clients_trusting_ca_pem_reach_the_server_by_ip_and_by_name(
    server: RunningServer, tls: TlsFiles, host: str
) -> None:
    response = requests.get(f"https://{host}:{server.port}/", verify=str(tls.ca_pem), timeout=10)

    assert (response.status_code, response.text) == (200, "hello")


def test_requests_picks_the_ca_up_from_requests_ca_bundle(
    server: RunningServer, tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_pem))

    with requests.Session() as session:
        response = session.get(f"{server.url}/", timeout=10)

    assert response.status_code == 200


def test_without_the_ca_the_server_is_not_trusted(server: RunningServer) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{server.url}/", verify=True, timeout=10)


def test_the_certificate_names_no_other_host(server: RunningServer, tls: TlsFiles) -> None:
    context = ssl.create_default_context(cafile=str(tls.ca_pem))

    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(server.port, context, "api.us.nylas.com")


def test_the_chain_passes_strict_x509_verification(server: RunningServer, tls: TlsFiles) -> None:
    # Python 3.13 turns VERIFY_X509_STRICT on in create_default_context; the sandbox must not break there.
    context = ssl.create_default_context(cafile=str(tls.ca_pem))
    context.verify_flags |= ssl.VERIFY_X509_STRICT

    assert _handshake(server.port, context, "localhost").startswith("TLS")
