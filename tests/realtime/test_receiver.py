"""The webhook endpoint: challenge, signature first, dedupe, durable storage, alerts, bursts."""

from __future__ import annotations

import gzip
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nylas_dataverse.realtime.inbox import Inbox
from nylas_dataverse.realtime.receiver import WebhookSecret, create_standalone_app
from nylas_dataverse.realtime.signature import compute_signature
from nylas_dataverse_sandbox.nylas.webhooks import WebhookSender
from nylas_dataverse_sandbox.server import serve_in_thread

from .conftest import SECRET, WEBHOOK_URL_PATH, body_of, envelope, stored_ids


def post(
    client: TestClient, body: bytes, *, signature: str | None = "sign", gzip_encoded: bool = False
) -> Any:
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        signature = compute_signature(SECRET, body)
    if signature is not None:
        headers["X-Nylas-Signature"] = signature
    if gzip_encoded:
        headers["Content-Encoding"] = "gzip"
    return client.post(WEBHOOK_URL_PATH, content=body, headers=headers)


def test_the_challenge_is_echoed_exactly_as_plain_text(client: TestClient) -> None:
    value = "bc609b38-c81f-47fb-a275-1d9bd61a968b"
    response = client.get(WEBHOOK_URL_PATH, params={"challenge": value})
    assert response.status_code == 200
    assert response.content == value.encode()
    assert response.headers["content-type"].startswith("text/plain")
    assert client.get(WEBHOOK_URL_PATH).status_code == 400


def test_the_sandbox_sender_completes_the_activation_handshake(
    served_url: str, sender: WebhookSender
) -> None:
    assert sender.challenge(served_url)


def test_a_signed_notification_is_stored(client: TestClient, inbox: Inbox) -> None:
    response = post(client, body_of(envelope("n-1")))
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    assert stored_ids(inbox) == ["n-1"]


@pytest.mark.parametrize("signature", [None, "", "0" * 64, "not hex at all"])
def test_a_missing_or_wrong_signature_gets_401_and_nothing_is_stored(
    client: TestClient, inbox: Inbox, signature: str | None
) -> None:
    response = post(client, body_of(envelope("n-1")), signature=signature)
    assert response.status_code == 401
    assert inbox.pending_count() == 0
    assert not inbox.root.exists()  # not even a marker


def test_a_body_changed_by_one_byte_after_signing_gets_401(client: TestClient, inbox: Inbox) -> None:
    body = body_of(envelope("n-1", message_id="msg-1"))
    tampered = body.replace(b"msg-1", b"msg-2")
    response = post(client, tampered, signature=compute_signature(SECRET, body))
    assert response.status_code == 401
    assert inbox.pending_count() == 0


def test_the_signature_is_checked_before_the_body_is_parsed(client: TestClient) -> None:
    # Garbage with a bad signature is a 401, not a 400: nothing is parsed before verification.
    assert post(client, b"{not json", signature="0" * 64).status_code == 401
    assert post(client, b"{not json").status_code == 400


def test_gzip_delivery_is_verified_over_the_compressed_bytes(client: TestClient, inbox: Inbox) -> None:
    raw = body_of(envelope("n-gz"))
    compressed = gzip.compress(raw)

    signed_over_json = post(client, compressed, signature=compute_signature(SECRET, raw), gzip_encoded=True)
    assert signed_over_json.status_code == 401

    accepted = post(client, compressed, gzip_encoded=True)
    assert accepted.status_code == 200
    assert stored_ids(inbox) == ["n-gz"]


def test_without_a_configured_secret_posts_get_503_and_nothing_is_stored(
    receiver_app: Any, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_VAR_NYLAS_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_NYLAS_WEBHOOK", raising=False)
    client = TestClient(receiver_app)
    body = body_of(envelope("n-1"))

    response = client.post(
        WEBHOOK_URL_PATH, content=body, headers={"X-Nylas-Signature": compute_signature("anything", body)}
    )

    assert response.status_code == 503
    assert "nylas_webhook" in response.json()["detail"]
    assert inbox.pending_count() == 0


def test_the_secret_can_come_from_the_nylas_webhook_connection(
    receiver_app: Any, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_VAR_NYLAS_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_NYLAS_WEBHOOK", json.dumps({"conn_type": "generic", "password": "from-connection"})
    )
    client = TestClient(receiver_app)
    body = body_of(envelope("n-conn"))

    response = client.post(
        WEBHOOK_URL_PATH,
        content=body,
        headers={"X-Nylas-Signature": compute_signature("from-connection", body)},
    )

    assert response.status_code == 200
    assert stored_ids(inbox) == ["n-conn"]


def test_a_redelivered_notification_is_stored_once(client: TestClient, inbox: Inbox) -> None:
    first = post(client, body_of(envelope("n-1")))
    retry = envelope("n-1")
    retry["webhook_delivery_attempt"] = 2
    second = post(client, body_of(retry))

    assert (first.json()["status"], second.json()["status"]) == ("accepted", "duplicate_notification")
    assert stored_ids(inbox) == ["n-1"]


def test_a_second_notification_for_the_same_message_is_stored_once(client: TestClient, inbox: Inbox) -> None:
    post(client, body_of(envelope("n-1", grant_id="g", message_id="m")))
    upsert = post(
        client, body_of(envelope("n-2", grant_id="g", message_id="m", type="message.created.truncated"))
    )
    other_grant = post(client, body_of(envelope("n-3", grant_id="other", message_id="m")))

    assert upsert.status_code == 200
    assert upsert.json()["status"] == "duplicate_message"
    assert other_grant.json()["status"] == "accepted"
    assert sorted(stored_ids(inbox)) == ["n-1", "n-3"]


def test_unknown_types_are_acknowledged_and_ignored(client: TestClient, inbox: Inbox) -> None:
    for notification_type in ("message.updated", "grant.created", "folder.created", "something.new"):
        response = post(client, body_of(envelope(f"n-{notification_type}", type=notification_type)))
        assert response.status_code == 200
        assert response.json()["status"] == "ignored"
    assert inbox.pending_count() == 0


def test_grant_expired_is_an_alert_naming_the_grant_once(
    client: TestClient, inbox: Inbox, sender: WebhookSender, caplog: pytest.LogCaptureFixture
) -> None:
    notification = sender.grant_expired_notification("dave")
    grant_id = notification["data"]["object"]["grant_id"]
    caplog.set_level(logging.INFO, logger="nylas_dataverse")

    first = post(client, body_of(notification))
    again = post(client, body_of(notification))

    assert (first.status_code, again.status_code) == (200, 200)
    alerts = [r for r in caplog.records if r.levelno >= logging.WARNING and grant_id in r.getMessage()]
    assert len(alerts) == 1
    assert alerts[0].levelno == logging.ERROR
    assert "re-authenticate" in alerts[0].getMessage()
    assert inbox.pending_count() == 0
    assert SECRET not in caplog.text


def test_logs_carry_neither_the_secret_nor_message_content(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    notification = envelope("n-1")
    notification["data"]["object"].update(subject="Quarterly numbers", body="<p>very private</p>")
    post(client, body_of(notification))
    post(client, body_of(notification), signature="0" * 64)
    post(client, body_of(envelope("n-2", type="message.updated")))

    assert caplog.records
    assert SECRET not in caplog.text
    assert "very private" not in caplog.text
    assert "Quarterly numbers" not in caplog.text


def test_a_burst_of_500_is_accepted_and_stored_exactly_once(
    served_url: str, sender: WebhookSender, inbox: Inbox
) -> None:
    notifications = [
        envelope(f"burst-{n}", grant_id=f"grant-{n % 7}", message_id=f"message-{n}") for n in range(500)
    ]
    # Nylas' retries (same id) and provider upserts (new id, same message) mixed into the burst.
    redeliveries = notifications[::10]
    upserts = [
        envelope(f"upsert-{n}", grant_id=f"grant-{n % 7}", message_id=f"message-{n}")
        for n in range(0, 500, 25)
    ]

    def deliver(item: tuple[int, dict[str, Any]]) -> int:
        index, notification = item
        return sender.deliver(served_url, notification, gzip=index % 3 == 0).status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(deliver, enumerate(notifications + redeliveries + upserts)))

    assert statuses == [200] * len(statuses)
    stored = []
    while (batch := inbox.claim_batch()) is not None:  # a batch holds at most 200: three of them
        stored += [record["notification"] for record in batch.records()]
    messages = [(n["data"]["object"]["grant_id"], n["data"]["object"]["id"]) for n in stored]
    assert len(stored) == len(set(messages)) == 500
    assert set(messages) == {(f"grant-{n % 7}", f"message-{n}") for n in range(500)}


def test_a_rotated_secret_works_from_the_first_delivery_signed_with_it(inbox: Inbox) -> None:
    now = [1000.0]
    current = ["old-secret"]
    lookups: list[float] = []

    def lookup() -> str:
        lookups.append(now[0])
        return current[0]

    secret = WebhookSecret(lookup, clock=lambda: now[0])
    client = TestClient(create_standalone_app(inbox=inbox, secret=secret))

    def deliver(notification_id: str, key: str) -> int:
        body = body_of(envelope(notification_id, message_id=notification_id))
        headers = {"X-Nylas-Signature": compute_signature(key, body)}
        return client.post(WEBHOOK_URL_PATH, content=body, headers=headers).status_code

    assert deliver("n-old", "old-secret") == 200
    # The operator rotates the secret in Nylas and stores the new one; the cache still holds the old.
    current[0] = "new-secret"
    now[0] += 5
    assert deliver("n-new", "new-secret") == 200  # Nylas would not retry a 401: this one would be lost
    # Forged signatures still get 401, and looking the secret up again is rate-limited.
    looked_up = len(lookups)
    assert [deliver(f"n-forged-{n}", "guess") for n in range(5)] == [401] * 5
    assert len(lookups) == looked_up
    assert sorted(stored_ids(inbox)) == ["n-new", "n-old"]


def test_a_slow_secrets_backend_does_not_hold_deliveries_while_the_known_secret_is_refreshed(
    inbox: Inbox, sender: WebhookSender
) -> None:
    now = [1000.0]
    asked, answer = threading.Event(), threading.Event()
    lookups: list[float] = []

    def lookup() -> str:
        lookups.append(now[0])
        if len(lookups) > 1:  # the refresh: the backend takes its time
            asked.set()
            assert answer.wait(30)
        return SECRET

    secret = WebhookSecret(lookup, clock=lambda: now[0])
    server = serve_in_thread("slow-secret", create_standalone_app(inbox=inbox, secret=secret), "127.0.0.1", 0)
    url = server.url + WEBHOOK_URL_PATH
    try:
        assert sender.deliver(url, envelope("n-first", message_id="n-first")).status == 200
        now[0] += 31  # the cached secret has expired
        with ThreadPoolExecutor(max_workers=1) as refresher:
            refreshing = refresher.submit(
                lambda: sender.deliver(url, envelope("n-refreshing", message_id="n-refreshing")).status
            )
            assert asked.wait(30)  # that delivery is now waiting for the backend
            # Others go on with the secret they know, without a lookup of their own.
            assert [
                sender.deliver(url, envelope(f"n-meanwhile-{n}", message_id=f"n-meanwhile-{n}")).status
                for n in range(3)
            ] == [200] * 3
            assert not refreshing.done()
            answer.set()
            assert refreshing.result(timeout=30) == 200
    finally:
        answer.set()
        server.stop()
    assert len(lookups) == 2
    assert sorted(stored_ids(inbox)) == sorted(
        ["n-first", "n-refreshing", "n-meanwhile-0", "n-meanwhile-1", "n-meanwhile-2"]
    )


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param(None, id="found-nothing"),  # how Airflow reports an unreachable secrets backend
        pytest.param(ConnectionError("vault unreachable, token s.hunter2"), id="lookup-raised"),
    ],
)
def test_a_lookup_outage_keeps_the_known_secret_asks_again_soon_and_gives_up_after_five_minutes(
    inbox: Inbox, caplog: pytest.LogCaptureFixture, outage: Exception | None
) -> None:
    now = [1000.0]
    backend = {"up": True}
    lookups: list[float] = []

    def lookup() -> str | None:
        lookups.append(now[0])
        if backend["up"]:
            return SECRET
        if outage is not None:
            raise outage
        return None

    client = TestClient(
        create_standalone_app(inbox=inbox, secret=WebhookSecret(lookup, clock=lambda: now[0]))
    )

    def deliver(notification_id: str) -> int:
        body = body_of(envelope(notification_id, message_id=notification_id))
        return int(post(client, body).status_code)

    assert deliver("n-1") == 200
    backend["up"] = False
    now[0] += 31
    with caplog.at_level(logging.WARNING, logger="nylas_dataverse.realtime.receiver"):
        assert deliver("n-2") == 200  # not 503s for the next 30 s
    assert "going on with that one" in caplog.text
    assert "hunter2" not in caplog.text
    assert SECRET not in caplog.text
    now[0] += 1
    assert deliver("n-3") == 200
    assert len(lookups) == 2  # the outage is not asked about on every request...
    now[0] += 2
    assert deliver("n-4") == 200
    assert len(lookups) == 3  # ...but every 2 s, not after the 30 s cache
    # Five minutes after the secret was last found, it is no longer trusted: 503, which Nylas retries.
    now[0] = 1000.0 + 301
    response = post(client, body_of(envelope("n-5", message_id="n-5")))
    assert response.status_code == 503
    assert ("could not read the webhook secret" if outage else "not configured") in response.json()["detail"]
    backend["up"] = True
    now[0] += 2
    assert deliver("n-6") == 200
    assert sorted(stored_ids(inbox)) == ["n-1", "n-2", "n-3", "n-4", "n-6"]


def test_a_failed_lookup_with_no_known_secret_gets_503_naming_what_failed(
    inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    def lookup() -> str:
        raise ConnectionError("vault unreachable, token s.hunter2")

    client = TestClient(create_standalone_app(inbox=inbox, secret=WebhookSecret(lookup)))
    with caplog.at_level(logging.WARNING, logger="nylas_dataverse.realtime.receiver"):
        response = post(client, body_of(envelope("n-1")))
    assert response.status_code == 503  # Nylas retries 503
    assert (
        response.json()["detail"] == "could not read the webhook secret: the lookup failed (ConnectionError)"
    )
    assert "hunter2" not in caplog.text + response.text
    assert inbox.pending_count() == 0
