"""Entra ID and Dataverse stand-ins served over TLS once for this directory; state is reset per test.

Service protection runs with ``time_scale=0.0001`` (a 5-minute window lasts 30 ms and modelled costs are
slept for 1/10000 of their value) unless a test sets tighter limits. ``reset()`` puts limits, behaviour and
faults back to what the stack was built with, so a test may change any of them freely.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.dataverse.app import create_app as create_dataverse_app
from nylas_dataverse_sandbox.dataverse.backend import DataverseBackend
from nylas_dataverse_sandbox.dataverse.throttle import ServiceProtectionLimits
from nylas_dataverse_sandbox.entra.app import create_app as create_entra_app
from nylas_dataverse_sandbox.entra.backend import EntraBackend
from nylas_dataverse_sandbox.server import RunningServer, serve_in_thread
from nylas_dataverse_sandbox.tls import TlsFiles, generate_tls

FAST_LIMITS = ServiceProtectionLimits(time_scale=0.0001)
MARIA = personas.stable_id("contact", "maria")
PRIYA = personas.stable_id("contact", "priya")
FABRIKAM = personas.stable_id("account", "fabrikam")
ALICE = personas.stable_id("systemuser", "alice")


@dataclass
class Stack:
    tls: TlsFiles
    entra: EntraBackend
    entra_server: RunningServer
    dataverse: DataverseBackend
    dataverse_server: RunningServer

    @property
    def dataverse_url(self) -> str:
        return self.dataverse_server.url

    def token(self, client_id: str = personas.CLIENT_ID, secret: str = personas.CLIENT_SECRET) -> str:
        response = requests.post(
            f"{self.entra_server.url}/{personas.TENANT_ID}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": f"{self.dataverse_url}/.default",
            },
            verify=str(self.tls.ca_pem),
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("dataverse-stack")
    tls = generate_tls(state / "tls")
    entra = EntraBackend(clients={personas.CLIENT_ID: personas.CLIENT_SECRET, "second-app": "second-secret"})
    dataverse = DataverseBackend(db_path=state / "dataverse.sqlite3", entra=entra, limits=FAST_LIMITS)
    entra_server = serve_in_thread("entra-test", create_entra_app(entra), port=0, tls=tls)
    dataverse_server = serve_in_thread("dataverse-test", create_dataverse_app(dataverse), port=0, tls=tls)
    yield Stack(tls, entra, entra_server, dataverse, dataverse_server)
    dataverse_server.stop()
    entra_server.stop()
    dataverse.close()


@pytest.fixture(autouse=True)
def fresh_state(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    stack.dataverse.reset()
    # requests lets REQUESTS_CA_BUNDLE override a session's own `verify`, so point it at the sandbox CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(stack.tls.ca_pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(stack.tls.ca_pem))
    return stack


class DataverseApi:
    """A thin requests wrapper: paths are relative to ``/api/data/v9.2/``."""

    def __init__(self, stack: Stack, token: str) -> None:
        self.stack = stack
        self.root = f"{stack.dataverse_url}/api/data/v9.2"
        self.session = requests.Session()
        self.session.verify = str(stack.tls.ca_pem)
        self.session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "OData-MaxVersion": "4.0",
                "OData-Version": "4.0",
            }
        )

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else f"{self.root}/{path}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.url(path), timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def create_email(self, body: dict[str, Any]) -> str:
        response = self.post("emails", json=body)
        assert response.status_code == 204, response.text
        return response.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")

    def batch(
        self, *items: str, continue_on_error: bool = False, line_end: str = "\r\n"
    ) -> requests.Response:
        """POST a ``$batch`` of parts built with ``operation`` and ``change_set``."""
        boundary = f"batch_{uuid.uuid4()}"
        body = "".join(f"--{boundary}{CRLF}{item}{CRLF}" for item in items) + f"--{boundary}--{CRLF}"
        headers = {"Content-Type": f"multipart/mixed; boundary={boundary}"}
        if continue_on_error:
            headers["Prefer"] = "odata.continue-on-error"
        return self.post("$batch", data=body.replace(CRLF, line_end).encode("utf-8"), headers=headers)


CRLF = "\r\n"


def operation(
    method: str, url: str, body: dict[str, Any] | None = None, content_id: str | None = None
) -> str:
    """One ``application/http`` part of a ``$batch``."""
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"{method} {url} HTTP/1.1"]
    if body is not None:
        lines += ["Content-Type: application/json; type=entry", "", json.dumps(body)]
    else:
        lines += [""]
    return CRLF.join(lines)


def change_set(*operations: str) -> str:
    boundary = f"changeset_{uuid.uuid4()}"
    parts = [f"--{boundary}{CRLF}{op}" for op in operations]
    inner = CRLF.join(parts) + f"{CRLF}--{boundary}--"
    return f"Content-Type: multipart/mixed; boundary={boundary}{CRLF}{CRLF}{inner}"


def part_statuses(response: requests.Response) -> list[int]:
    return [int(s) for s in re.findall(r"^HTTP/1\.1 (\d{3}) ", response.text, flags=re.MULTILINE)]


@dataclass(frozen=True)
class Wire:
    """The ``$batch`` builders, handed to tests as a fixture (test modules cannot import each other)."""

    operation: Callable[..., str] = operation
    change_set: Callable[..., str] = change_set
    statuses: Callable[[requests.Response], list[int]] = part_statuses


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def api(stack: Stack) -> Iterator[DataverseApi]:
    client = DataverseApi(stack, stack.token())
    yield client
    client.session.close()


EmailFactory = Callable[..., dict[str, Any]]


def _received_email(**overrides: Any) -> dict[str, Any]:
    """A received email from María to Alice, as the pipeline would write it."""
    body: dict[str, Any] = {
        "activityid": str(uuid.uuid4()),
        "subject": "Re: quote for 40 units",
        "description": "<p>Thanks!</p>",
        "directioncode": False,
        "messageid": f"<{uuid.uuid4().hex}@mail.fabrikam.example>",
        "actualend": "2026-11-02T10:15:00Z",
        "regardingobjectid_contact_email@odata.bind": f"/contacts({MARIA})",
        "ownerid@odata.bind": f"/systemusers({ALICE})",
        "email_activity_parties": [
            {"partyid_contact@odata.bind": f"/contacts({MARIA})", "participationtypemask": 1},
            {"partyid_systemuser@odata.bind": f"/systemusers({ALICE})", "participationtypemask": 2},
            {"addressused": "unknown@example.org", "participationtypemask": 3},
        ],
    }
    body.update(overrides)
    return body


@pytest.fixture
def received_email() -> EmailFactory:
    """Builds the body of a received email from María to Alice; keyword arguments override columns."""
    return _received_email
