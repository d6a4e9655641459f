"""Fixtures for the hook tests: fake time, env-var connections, a mocked Entra ID authority.

Connections come from ``AIRFLOW_CONN_*`` environment variables (no metadata database). HTTP is faked
with ``responses``; hosts end in ``.test`` so nothing could reach a real service.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import responses

from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.nylas import NylasHook


class FakeTime:
    """A wall clock that only moves when the code under test sleeps."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass(frozen=True)
class NylasEnv:
    url: str = "https://nylas.sandbox.test"
    api_key: str = "nyk_v0_test_api_key_never_shown_9f8e7d"


@dataclass
class DataverseEnv:
    """The Dataverse connection under test and its mocked authority."""

    rsps: responses.RequestsMock
    url: str = "https://contoso.crm.sandbox.test"
    authority_host: str = "https://login.sandbox.test"
    tenant_id: str = "11111111-2222-3333-4444-555555555555"
    client_id: str = "00000000-aaaa-bbbb-cccc-000000000001"
    client_secret: str = field(default="client~secret~value~never~shown~42", repr=False)

    @property
    def api(self) -> str:
        return f"{self.url}/api/data/v9.2/"

    @property
    def token_url(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}/oauth2/v2.0/token"

    def connection(self, **extra: Any) -> dict[str, Any]:
        return {
            "conn_type": "dataverse",
            "host": self.url,
            "login": self.client_id,
            "password": self.client_secret,
            "extra": {"tenant_id": self.tenant_id, "authority_host": self.authority_host, **extra},
        }

    def issue_token(self, token: str) -> None:
        """Queue one successful token answer (the last one queued repeats)."""
        body = {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        self.rsps.post(self.token_url, json=body)

    def token_calls(self) -> list[Any]:
        return [call for call in self.rsps.calls if call.request.url == self.token_url]

    def api_calls(self) -> list[Any]:
        return [call for call in self.rsps.calls if call.request.url.startswith(self.url)]


@dataclass(frozen=True)
class SampleBatchAnswer:
    """A ``$batch`` answer shaped like Dataverse's: a change set that succeeded (Content-IDs 1, 2), one
    that failed and returns only its failing part (Content-ID 4), then a GET."""

    api: str = "https://contoso.crm.dynamics.com/api/data/v9.2/"
    contact_id: str = "7d3f1a52-0000-4000-8000-000000000002"
    email_id: str = "7d3f1a52-0000-4000-8000-000000000001"
    boundary: str = "batchresponse_1f6a3c42-1111-4d5e-9a65-2b6cd1d1a001"
    error_code: str = "0x80044331"
    error_message: str = (
        "A validation error occurred.  The length of the 'subject' attribute of the 'email' entity "
        "exceeded the maximum allowed length of '800'."
    )

    @property
    def content_type(self) -> str:
        return f"multipart/mixed; boundary={self.boundary}"

    def body(self, newline: str = "\r\n") -> bytes:
        whoami = {
            "@odata.context": f"{self.api}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
            "UserId": "u-1",
        }
        lines = [
            f"--{self.boundary}",
            "Content-Type: multipart/mixed; boundary=changesetresponse_aaa",
            "",
            "--changesetresponse_aaa",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "Content-ID: 1",
            "",
            "HTTP/1.1 204 No Content",
            "OData-Version: 4.0",
            f"Location: {self.api}contacts({self.contact_id})",
            f"OData-EntityId: {self.api}contacts({self.contact_id})",
            "",
            "",
            "--changesetresponse_aaa",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "Content-ID: 2",
            "",
            "HTTP/1.1 204 No Content",
            "OData-Version: 4.0",
            f"odata-entityid: {self.api}emails({self.email_id})",
            "",
            "",
            "--changesetresponse_aaa--",
            f"--{self.boundary}",
            "Content-Type: multipart/mixed; boundary=changesetresponse_bbb",
            "",
            "--changesetresponse_bbb",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "Content-ID: 4",
            "",
            "HTTP/1.1 400 Bad Request",
            "REQ_ID: 5ecd1cb3-1730-4ffc-909c-d44c22270026",
            "Content-Type: application/json; odata.metadata=minimal",
            "OData-Version: 4.0",
            "",
            json.dumps({"error": {"code": self.error_code, "message": self.error_message}}),
            "--changesetresponse_bbb--",
            f"--{self.boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "",
            "HTTP/1.1 200 OK",
            "Content-Type: application/json; odata.metadata=minimal; odata.streaming=true",
            "OData-Version: 4.0",
            "",
            json.dumps(whoami),
            f"--{self.boundary}--",
            "",
        ]
        return newline.join(lines).encode("utf-8")


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def nylas(monkeypatch: pytest.MonkeyPatch) -> NylasEnv:
    """A ``nylas_default`` connection (timeout 30, page size 50)."""
    env = NylasEnv()
    connection = {
        "conn_type": "nylas",
        "host": env.url,
        "password": env.api_key,
        "extra": {"timeout": 30, "page_size": 50},
    }
    monkeypatch.setenv("AIRFLOW_CONN_NYLAS_DEFAULT", json.dumps(connection))
    return env


@pytest.fixture
def make_nylas_hook(fake_time: FakeTime) -> Callable[..., NylasHook]:
    def make(**kwargs: Any) -> NylasHook:
        kwargs.setdefault("sleep", fake_time.sleep)
        kwargs.setdefault("clock", fake_time.clock)
        kwargs.setdefault("rng", random.Random(7))
        return NylasHook(**kwargs)

    return make


@pytest.fixture
def dataverse(monkeypatch: pytest.MonkeyPatch, rsps: responses.RequestsMock) -> DataverseEnv:
    """A ``dataverse_default`` connection whose authority (a non-Microsoft host) is mocked."""
    env = DataverseEnv(rsps)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_DATAVERSE_DEFAULT", json.dumps(env.connection(max_concurrency=4)))
    authority = f"{env.authority_host}/{env.tenant_id}"
    rsps.get(
        f"{authority}/v2.0/.well-known/openid-configuration",
        json={
            "issuer": f"{authority}/v2.0",
            "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
            "token_endpoint": env.token_url,
        },
    )
    return env


@pytest.fixture
def make_dataverse_hook(fake_time: FakeTime) -> Callable[..., DataverseHook]:
    def make(**kwargs: Any) -> DataverseHook:
        kwargs.setdefault("sleep", fake_time.sleep)
        kwargs.setdefault("clock", fake_time.clock)
        kwargs.setdefault("rng", random.Random(7))
        return DataverseHook(**kwargs)

    return make


@pytest.fixture
def batch_answer() -> SampleBatchAnswer:
    return SampleBatchAnswer()
