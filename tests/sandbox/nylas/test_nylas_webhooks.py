"""Webhook notifications as Nylas sends them, delivered to a small receiver on 127.0.0.1."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas import seed
from nylas_dataverse_sandbox.nylas.backend import NylasBackend
from nylas_dataverse_sandbox.nylas.webhooks import WebhookSender

if TYPE_CHECKING:
    from conftest import NylasApi

START_DAY, DAYS = seed.DEFAULT_START_DAY, seed.DEFAULT_DAYS
SECRET = "receiver-secret"


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        raw = gzip.decompress(self.body) if self.headers.get("content-encoding") == "gzip" else self.body
        return json.loads(raw)


@dataclass
class Receiver:
    """Answers POSTs with the queued statuses (then 200) and echoes ``challenge`` (optionally wrongly)."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    echo_suffix: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.deliveries.append(Delivery({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(state.statuses.pop(0) if state.statuses else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            challenge = parse_qs(urlsplit(self.path).query).get("challenge", [""])[0]
            answer = (challenge + state.echo_suffix).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/nylas"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def sender() -> WebhookSender:
    return WebhookSender(SECRET, retry_delays_s=(0, 0))


def _signed_by(secret: str, delivery: Delivery) -> bool:
    expected = hmac.new(secret.encode(), delivery.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, delivery.headers["x-nylas-signature"])


def _message(grant_key: str, index: int = 0) -> dict[str, Any]:
    return seed.messages_for(START_DAY, DAYS, grant_key, START_DAY)[index]


def test_signature_matches_the_published_test_vector() -> None:
    body = b'{"specversion":"1.0","type":"message.created","id":"evt-1"}'

    signature = WebhookSender("mock-webhook-secret").sign(body)

    assert signature == "95726496ea58cdd2d8b0d0e3c650c40a0f0a97ad9e43adc4b4dc8d610de1d21c"


@pytest.mark.parametrize(
    ("grant_key", "source"), [("alice", "/google/emails/realtime"), ("bob", "/microsoft/emails/realtime")]
)
def test_a_message_created_notification_carries_the_api_object(
    sender: WebhookSender, grant_key: str, source: str
) -> None:
    message = _message(grant_key)

    notification = sender.build_notification(message, notification_id="evt-42")

    assert notification["specversion"] == "1.0"
    assert notification["type"] == "message.created"
    assert notification["source"] == source
    assert notification["id"] == "evt-42"
    assert isinstance(notification["time"], int)
    assert notification["webhook_delivery_attempt"] == 1
    assert notification["data"]["application_id"] == personas.APPLICATION_ID
    assert notification["data"]["object"] == {k: v for k, v in message.items() if k != "headers"}


def test_truncated_notifications_drop_the_body(sender: WebhookSender) -> None:
    asked = sender.build_notification(_message("carol"), truncated=True)
    large = next(
        m
        for m in seed.messages_for(START_DAY, DAYS, "alice", START_DAY + datetime.timedelta(days=1))
        if len(m["body"]) > 2_000_000
    )
    oversized = sender.build_notification(large, type="message.updated")

    assert asked["type"] == "message.created.truncated"
    assert "body" not in asked["data"]["object"]
    assert asked["data"]["object"]["snippet"]
    assert oversized["type"] == "message.updated.truncated"
    assert "body" not in oversized["data"]["object"]
    assert len(json.dumps(oversized)) < 1_000_000


def test_delivery_posts_raw_json_signed_with_the_secret(sender: WebhookSender, receiver: Receiver) -> None:
    notification = sender.build_notification(_message("alice"))

    result = sender.deliver(receiver.url, notification)

    assert (result.status, result.attempts) == (200, 1)
    [delivery] = receiver.deliveries
    assert delivery.headers["content-type"] == "application/json"
    assert _signed_by(SECRET, delivery)
    assert delivery.json() == notification


def test_retryable_statuses_are_retried_with_the_same_id(sender: WebhookSender, receiver: Receiver) -> None:
    receiver.statuses = [503, 429]
    notification = sender.build_notification(_message("bob"))

    result = sender.deliver(receiver.url, notification)

    assert (result.status, result.attempts, result.statuses) == (200, 3, (503, 429, 200))
    bodies = [d.json() for d in receiver.deliveries]
    assert {b["id"] for b in bodies} == {notification["id"]}
    assert [b["webhook_delivery_attempt"] for b in bodies] == [1, 2, 3]
    assert all(_signed_by(SECRET, d) for d in receiver.deliveries)


def test_delivery_gives_up_after_three_attempts(sender: WebhookSender, receiver: Receiver) -> None:
    receiver.statuses = [503, 502, 504, 200]

    result = sender.deliver(receiver.url, sender.build_notification(_message("bob")))

    assert (result.status, result.attempts) == (504, 3)
    assert not result.delivered


@pytest.mark.parametrize("status", [500, 401, 400])
def test_other_failures_are_not_retried(sender: WebhookSender, receiver: Receiver, status: int) -> None:
    receiver.statuses = [status]

    result = sender.deliver(receiver.url, sender.build_notification(_message("carol")))

    assert (result.status, result.attempts) == (status, 1)


def test_no_answer_is_retried(sender: WebhookSender) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    result = sender.deliver(
        f"http://127.0.0.1:{closed_port}/hook", sender.build_notification(_message("alice"))
    )

    assert (result.status, result.attempts) == (0, 3)


def test_gzip_delivery_signs_the_compressed_bytes(sender: WebhookSender, receiver: Receiver) -> None:
    notification = sender.build_notification(_message("alice"))

    sender.deliver(receiver.url, notification, gzip=True)

    [delivery] = receiver.deliveries
    assert delivery.headers["content-encoding"] == "gzip"
    assert delivery.body[:2] == b"\x1f\x8b"
    assert _signed_by(SECRET, delivery)
    assert delivery.json() == notification


def test_a_bad_signature_does_not_verify(sender: WebhookSender, receiver: Receiver) -> None:
    sender.deliver(receiver.url, sender.build_notification(_message("alice")), bad_signature=True)

    [delivery] = receiver.deliveries
    assert not _signed_by(SECRET, delivery)
    assert len(delivery.headers["x-nylas-signature"]) == 64


def test_the_challenge_must_be_echoed_exactly(sender: WebhookSender, receiver: Receiver) -> None:
    assert sender.challenge(receiver.url) is True
    receiver.echo_suffix = "\n"
    assert sender.challenge(receiver.url) is False


def test_grant_expired_notification(sender: WebhookSender) -> None:
    dave = personas.grant_by_key("dave")

    notification = sender.grant_expired_notification(dave)

    assert notification["type"] == "grant.expired"
    assert notification["source"] == "/nylas/system"
    assert notification["data"]["object"]["grant_id"] == dave.grant_id
    assert notification["data"]["object"]["code"] == 25009
    assert notification["data"]["object"]["provider"] == "google"


def test_the_admin_route_delivers_a_seeded_message_twice_as_a_duplicate(
    api: NylasApi, nylas_backend: NylasBackend, receiver: Receiver
) -> None:
    receiver.statuses = [503]
    expected = nylas_backend.messages_for("carol", START_DAY)[4]

    response = api.admin(
        "POST",
        "/_sandbox/webhooks/deliver",
        {
            "url": receiver.url,
            "grant": "carol",
            "day": START_DAY.isoformat(),
            "index": 4,
            "duplicate": True,
            "retry_delays_s": [0, 0],
        },
    )

    data = response.json()["data"]
    assert [d["statuses"] for d in data["deliveries"]] == [[503, 200], [200]]
    bodies = [d.json() for d in receiver.deliveries]
    assert {b["id"] for b in bodies} == {data["notification_id"]}
    assert all(b["data"]["object"]["id"] == expected["id"] for b in bodies)
    assert all(_signed_by(personas.WEBHOOK_SECRET, d) for d in receiver.deliveries)


def test_the_admin_route_delivers_by_message_id_truncated_gzipped_and_badly_signed(
    api: NylasApi, receiver: Receiver
) -> None:
    message = next(m for m in seed.messages_for(START_DAY, DAYS, "bob", START_DAY) if "/" in m["id"])

    response = api.admin(
        "POST",
        "/_sandbox/webhooks/deliver",
        {
            "url": receiver.url,
            "grant": personas.grant_by_key("bob").grant_id,
            "message_id": message["id"],
            "truncated": True,
            "gzip": True,
            "bad_signature": True,
            "secret": SECRET,
        },
    )

    assert response.json()["data"]["type"] == "message.created.truncated"
    [delivery] = receiver.deliveries
    assert delivery.json()["data"]["object"]["id"] == message["id"]
    assert "body" not in delivery.json()["data"]["object"]
    assert not _signed_by(SECRET, delivery)


def test_the_admin_route_runs_the_challenge(api: NylasApi, receiver: Receiver) -> None:
    response = api.admin("POST", "/_sandbox/webhooks/challenge", {"url": receiver.url})

    assert response.json()["data"] == {"verified": True}


# Bodies a receiver must survive -------------------------------------------------------------------------


def _has_lone_surrogate(body: bytes) -> bool:
    try:
        subject = json.loads(body)["data"]["object"]["subject"]
    except (ValueError, RecursionError):
        return False
    try:
        subject.encode("utf-8")
    except UnicodeEncodeError:
        return bool(subject.endswith("\ud83d"))
    return False


def _is_not_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _nests_too_deep(body: bytes) -> bool:
    try:
        json.loads(body)
    except RecursionError:
        return b"[" * WEBHOOK_DEPTH in body
    except ValueError:
        return False
    return False


def _cut_off_past_1_mb(body: bytes) -> bool:
    try:
        json.loads(body)
    except json.JSONDecodeError:
        return len(body) > 1_000_000 and body.startswith(b'{"specversion":"1.0"')
    except (ValueError, RecursionError):
        return False
    return False


WEBHOOK_DEPTH = 200_000
DEFECTS: dict[str, Callable[[bytes], bool]] = {
    "lone_surrogate": _has_lone_surrogate,
    "invalid_utf8": _is_not_utf8,
    "deep_nesting": _nests_too_deep,
    "cut_off": _cut_off_past_1_mb,
}


@pytest.mark.parametrize("kind", sorted(DEFECTS))
def test_malformed_bodies_are_signed_and_carry_their_defect(
    sender: WebhookSender, receiver: Receiver, kind: str
) -> None:
    receiver.statuses = [503]
    body = sender.malformed_body(kind, _message("alice"))

    result = sender.deliver_raw(receiver.url, body)

    assert (result.status, result.attempts) == (200, 2)
    assert [d.body for d in receiver.deliveries] == [body, body]
    assert all(_signed_by(SECRET, d) for d in receiver.deliveries)
    assert DEFECTS[kind](body)
    assert not any(check(body) for other, check in DEFECTS.items() if other != kind)


def test_malformed_bodies_can_be_gzipped_and_unknown_kinds_are_refused(
    sender: WebhookSender, receiver: Receiver
) -> None:
    body = sender.malformed_body("invalid_utf8", _message("bob"))

    sender.deliver_raw(receiver.url, body, gzip=True)

    [delivery] = receiver.deliveries
    assert delivery.headers["content-encoding"] == "gzip"
    assert gzip.decompress(delivery.body) == body
    assert _signed_by(SECRET, delivery)
    with pytest.raises(ValueError, match="lone_surrogate"):
        sender.malformed_body("broken", _message("bob"))


@pytest.mark.parametrize("kind", sorted(DEFECTS))
def test_the_admin_route_delivers_malformed_bodies(api: NylasApi, receiver: Receiver, kind: str) -> None:
    response = api.admin(
        "POST",
        "/_sandbox/webhooks/deliver",
        {"url": receiver.url, "grant": "carol", "day": START_DAY.isoformat(), "malformed": kind},
    )

    data = response.json()["data"]
    [delivery] = receiver.deliveries
    assert data["malformed"] == kind
    assert data["bytes"] == len(delivery.body)
    assert data["deliveries"][0]["status"] == 200
    assert DEFECTS[kind](delivery.body)
    assert _signed_by(personas.WEBHOOK_SECRET, delivery)


def test_the_admin_route_sends_grant_expired_and_truncates_mail_over_1_mb(
    api: NylasApi, receiver: Receiver
) -> None:
    large = next(s.message for s in seed.mailboxes(START_DAY, DAYS)["alice"] if s.kind == "large_body")
    bad_kind = api.admin(
        "POST", "/_sandbox/webhooks/deliver", {"url": receiver.url, "grant": "alice", "malformed": "odd"}
    )

    expired = api.admin(
        "POST", "/_sandbox/webhooks/deliver", {"url": receiver.url, "grant": "dave", "type": "grant.expired"}
    )
    truncated = api.admin(
        "POST",
        "/_sandbox/webhooks/deliver",
        {"url": receiver.url, "grant": "alice", "message_id": large["id"]},
    )

    assert bad_kind.status_code == 400
    assert expired.json()["data"]["type"] == "grant.expired"
    assert truncated.json()["data"]["type"] == "message.created.truncated"
    grant_note, message_note = (d.json() for d in receiver.deliveries)
    assert grant_note["data"]["object"]["grant_id"] == personas.grant_by_key("dave").grant_id
    assert grant_note["data"]["object"]["code"] == 25009
    assert message_note["data"]["object"]["id"] == large["id"]
    assert "body" not in message_note["data"]["object"]
    assert len(receiver.deliveries[1].body) < 1_000_000 < len(large["body"].encode())
