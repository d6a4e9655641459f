"""Synthetic mailboxes (``NylasBackend(extra_grants=N)``): opt-in load-test grants, mail from bulk days."""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.cli import build_parser, serve_config
from nylas_dataverse_sandbox.nylas import seed
from nylas_dataverse_sandbox.nylas.app import create_app
from nylas_dataverse_sandbox.nylas.backend import NylasBackend
from nylas_dataverse_sandbox.sandbox import Sandbox
from nylas_dataverse_sandbox.server import serve_in_thread
from nylas_dataverse_sandbox.tls import TlsFiles

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import NylasApi

START_DAY, DAYS = seed.DEFAULT_START_DAY, seed.DEFAULT_DAYS
BULK_DAY = START_DAY + dt.timedelta(days=2)
EXTRA = 3


@pytest.fixture(scope="module")
def extra_backend() -> NylasBackend:
    return NylasBackend(api_key=personas.NYLAS_API_KEY, start_day=START_DAY, days=DAYS, extra_grants=EXTRA)


@pytest.fixture
def extra_api(
    extra_backend: NylasBackend, nylas_tls: TlsFiles, make_api: Callable[[str], NylasApi]
) -> Iterator[NylasApi]:
    server = serve_in_thread("nylas-extra", create_app(extra_backend), port=0, tls=nylas_tls)
    yield make_api(server.url)
    extra_backend.reset()
    gc.collect()
    server.stop()


def test_the_default_backend_serves_only_the_seeded_grants(api: NylasApi) -> None:
    listed = api.get("/v3/grants", {"limit": 200}).json()["data"]

    assert [grant["email"] for grant in listed] == [grant.email for grant in personas.GRANTS]
    assert api.get(f"/v3/grants/{personas.extra_grant(1).grant_id}").status_code == 404


def test_extra_grants_are_listed_with_their_own_ids_and_addresses(extra_api: NylasApi) -> None:
    listed = extra_api.get("/v3/grants", {"limit": 200}).json()["data"]

    extras = listed[len(personas.GRANTS) :]
    assert [grant["email"] for grant in extras] == [
        "mbx-001@contoso.example",
        "mbx-002@contoso.example",
        "mbx-003@contoso.example",
    ]
    assert len({grant["id"] for grant in listed}) == len(listed)
    assert all(grant["grant_status"] == "valid" for grant in extras)
    assert {grant["provider"] for grant in extras} == {"microsoft", "imap"}
    one = extra_api.get(f"/v3/grants/{extras[0]['id']}").json()["data"]
    assert (one["email"], one["name"]) == ("mbx-001@contoso.example", "Mailbox 001")
    beyond = personas.extra_grant(EXTRA + 1)
    assert extra_api.get(f"/v3/grants/{beyond.grant_id}/messages").status_code == 404


def test_an_extra_grant_has_mail_only_from_bulk_days_and_serves_it_by_id(
    extra_api: NylasApi, extra_backend: NylasBackend
) -> None:
    first, second = personas.extra_grant(1), personas.extra_grant(3)  # both IMAP: ids must still differ
    start, end = seed.day_bounds(BULK_DAY)
    window = {"received_after": start, "received_before": end, "limit": 200}
    assert extra_api.walk(first.grant_id, window) == []

    for grant in (first, second):
        added = extra_api.admin(
            "POST", "/_sandbox/bulk", {"grant": grant.key, "day": BULK_DAY.isoformat(), "count": 250}
        )
        assert added.status_code == 200, added.text
    listed = {grant.key: extra_api.walk(grant.grant_id, window) for grant in (first, second)}

    assert [len(messages) for messages in listed.values()] == [250, 250]
    assert not {m["id"] for m in listed[first.key]} & {m["id"] for m in listed[second.key]}
    message = listed[first.key][7]
    fetched = extra_api.get(f"/v3/grants/{first.grant_id}/messages/{message['id']}").json()["data"]
    assert fetched["id"] == message["id"]
    assert fetched["grant_id"] == first.grant_id
    parties = {p["email"] for field in ("from", "to") for p in fetched[field]}
    assert first.email in parties
    assert extra_backend.message_count(first.key, BULK_DAY) == 250


def test_an_extra_grant_s_bulk_message_is_delivered_as_a_signed_webhook(extra_api: NylasApi) -> None:
    grant = personas.extra_grant(2)
    extra_api.admin("POST", "/_sandbox/bulk", {"grant": grant.key, "day": BULK_DAY.isoformat(), "count": 10})
    start, end = seed.day_bounds(BULK_DAY)
    message = extra_api.walk(grant.grant_id, {"received_after": start, "received_before": end})[3]
    received: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append((self.headers.get("X-Nylas-Signature", ""), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        response = extra_api.admin(
            "POST",
            "/_sandbox/webhooks/deliver",
            {
                "url": f"http://127.0.0.1:{server.server_address[1]}/webhook",
                "grant": grant.key,
                "message_id": message["id"],
            },
        )
    finally:
        server.shutdown()
        server.server_close()

    assert response.status_code == 200, response.text
    [(signature, body)] = received
    expected = hmac.new(personas.WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    notification = json.loads(body)
    assert notification["type"] == "message.created"
    assert notification["source"] == "/microsoft/emails/realtime"
    assert notification["data"]["object"]["id"] == message["id"]
    assert notification["data"]["object"]["grant_id"] == grant.grant_id


def test_serve_flag_puts_the_extra_grants_in_the_sandbox_s_grants_file(tmp_path: Path) -> None:
    ports = ["--nylas-port", "0", "--entra-port", "0", "--dataverse-port", "0"]
    args = build_parser().parse_args(
        ["serve", "--state-dir", str(tmp_path), "--nylas-extra-grants", "2", *ports]
    )
    config = serve_config(args)
    assert serve_config(build_parser().parse_args(["serve"])).nylas_extra_grants == 0

    sandbox = Sandbox.start(config)
    try:
        written = yaml.safe_load((tmp_path / "grants.yaml").read_text())
    finally:
        sandbox.stop()

    keys = [grant["key"] for grant in written["grants"]]
    assert keys == ["alice", "bob", "carol", "mbx-001", "mbx-002"]
    assert written["grants"][3]["grant_id"] == personas.extra_grant(1).grant_id
    assert written["grants"][4]["email"] == "mbx-002@contoso.example"
