"""Whatever a signed notification's text holds, it is stored (200) or refused for its shape (400); 503
is kept for what a retry can fix. A blank secret is refused naming the setting (issue 11)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath
from fastapi.testclient import TestClient

from nylas_dataverse.realtime.inbox import Inbox
from nylas_dataverse.realtime.processor import process_open_batches
from nylas_dataverse.realtime.receiver import create_standalone_app, main
from nylas_dataverse.realtime.signature import compute_signature
from nylas_dataverse_sandbox.nylas.webhooks import WebhookSender

from .conftest import DAY, SECRET, WEBHOOK_URL_PATH, body_of, envelope, grants


def _post(client: TestClient, body: bytes, secret: str = SECRET) -> Any:
    return client.post(
        WEBHOOK_URL_PATH, content=body, headers={"X-Nylas-Signature": compute_signature(secret, body)}
    )


def test_lone_surrogates_and_invalid_utf8_are_stored_and_their_messages_land(
    sandbox: Any, client: TestClient, inbox: Inbox, staging: ObjectStoragePath, sender: WebhookSender
) -> None:
    alice = grants(sandbox)["alice"]
    surrogate, invalid = sandbox.nylas.messages_for("alice", DAY)[:2]

    answers = [
        _post(client, sender.malformed_body("lone_surrogate", surrogate)),
        _post(client, sender.malformed_body("invalid_utf8", invalid)),
    ]

    assert [(a.status_code, a.json()["status"]) for a in answers] == [(200, "accepted")] * 2
    assert inbox.claim_batch() is not None
    totals = process_open_batches(inbox, [alice], staging)
    assert totals["extracted"] == 2
    assert totals["quarantined_records"] == 0
    assert totals["created"] + totals["skipped"] == 2


@pytest.mark.parametrize(("kind", "detail"), [("deep_nesting", "nested too deeply"), ("cut_off", "not JSON")])
def test_a_signed_body_that_is_not_a_notification_gets_400_not_500(
    sandbox: Any, client: TestClient, inbox: Inbox, sender: WebhookSender, kind: str, detail: str
) -> None:
    message = sandbox.nylas.messages_for("alice", DAY)[0]

    answer = _post(client, sender.malformed_body(kind, message))

    assert answer.status_code == 400
    assert detail in answer.json()["detail"]
    assert inbox.pending_count() == 0


def test_storage_that_is_unavailable_gets_503_so_nylas_retries(
    tmp_path: Path, webhook_secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the staging folder should be")
    client = TestClient(create_standalone_app(inbox=Inbox(ObjectStoragePath(blocker.as_uri()) / "staging")))

    answer = _post(client, body_of(envelope("n-1")))

    assert answer.status_code == 503
    assert answer.json()["status"] == "unavailable"


@pytest.mark.parametrize(
    ("variable", "value", "setting"),
    [
        ("AIRFLOW_VAR_NYLAS_WEBHOOK_SECRET", "   ", "variable 'nylas_webhook_secret'"),
        (
            "AIRFLOW_CONN_NYLAS_WEBHOOK",
            json.dumps({"conn_type": "generic", "password": " \t "}),
            "connection 'nylas_webhook'",
        ),
    ],
)
def test_a_blank_secret_is_refused_naming_the_setting(
    inbox: Inbox,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    variable: str,
    value: str,
    setting: str,
) -> None:
    monkeypatch.delenv("AIRFLOW_VAR_NYLAS_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_NYLAS_WEBHOOK", raising=False)
    monkeypatch.setenv(variable, value)
    client = TestClient(create_standalone_app(inbox=inbox))
    body = body_of(envelope("n-1"))

    # Signed with the blank key itself, HMAC would accept it; it must not.
    answer = client.post(WEBHOOK_URL_PATH, content=body, headers={"X-Nylas-Signature": "0" * 64})

    assert answer.status_code == 503
    assert setting in answer.json()["detail"]
    assert "blank" in answer.json()["detail"]
    assert inbox.pending_count() == 0

    caplog.set_level(logging.ERROR, logger="nylas_dataverse")
    assert main(["--port", "1"]) == 2  # the standalone server refuses to start
    assert any(setting in record.getMessage() for record in caplog.records)
