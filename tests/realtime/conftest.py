"""Helpers for the real-time tests: an inbox in a temporary staging root, the receiver served on a free
port, signed deliveries from the sandbox's webhook sender, and the daily pipeline for comparison."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk import ObjectStoragePath
from fastapi import FastAPI
from fastapi.testclient import TestClient

from nylas_dataverse.core.config import GrantConfig, parse_config
from nylas_dataverse.core.window import Window
from nylas_dataverse.pipeline.run import run_window
from nylas_dataverse.pipeline.staging import RunStaging
from nylas_dataverse.realtime.inbox import Inbox
from nylas_dataverse.realtime.receiver import create_standalone_app
from nylas_dataverse_sandbox.nylas.webhooks import WebhookSender
from nylas_dataverse_sandbox.server import serve_in_thread

SECRET = "realtime-test-webhook-secret"
WEBHOOK_URL_PATH = "/nylas/webhook"
DAY = dt.date(2026, 11, 3)


def grants(sandbox: Any, extra: list[dict[str, Any]] | None = None) -> dict[str, GrantConfig]:
    config = sandbox.grants_config()
    config["grants"].extend(extra or [])
    result = parse_config(yaml.safe_dump(config), "sandbox grants")
    assert not result.errors
    return {grant.key: grant for grant in result.grants}


def run_daily(root: ObjectStoragePath, grant: GrantConfig, day: dt.date = DAY) -> dict[str, Any]:
    """extract -> transform -> load -> report for one grant and day, as the daily DAG runs them."""
    counts = run_window(grant, RunStaging(root, grant.dag_id, day.isoformat()), window=Window.for_day(day))
    assert counts is not None
    return counts


def envelope(
    notification_id: str,
    *,
    type: str = "message.created",
    grant_id: str = "grant-1",
    message_id: str = "msg-1",
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": type,
        "source": "/google/emails/realtime",
        "id": notification_id,
        "time": 1793750400,
        "webhook_delivery_attempt": 1,
        "data": {
            "application_id": "app-1",
            "object": {"id": message_id, "grant_id": grant_id, "object": "message", "body": "<p>hi</p>"},
        },
    }


def body_of(notification: dict[str, Any]) -> bytes:
    return json.dumps(notification, separators=(",", ":")).encode()


def stored_ids(inbox: Inbox) -> list[str]:
    """Notification ids waiting in the inbox (claims them, batch after batch, so call once at the end)."""
    ids: list[str] = []
    while (batch := inbox.claim_batch()) is not None:
        ids += [record["notification"]["id"] for record in batch.records()]
    return ids


@pytest.fixture
def staging(tmp_path: Path) -> ObjectStoragePath:
    return ObjectStoragePath(tmp_path.as_uri()) / "staging"


@pytest.fixture
def inbox(staging: ObjectStoragePath) -> Inbox:
    return Inbox(staging)


@pytest.fixture
def webhook_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """The secret as an operator sets it: an Airflow variable (here through the environment)."""
    monkeypatch.delenv("AIRFLOW_CONN_NYLAS_WEBHOOK", raising=False)
    monkeypatch.setenv("AIRFLOW_VAR_NYLAS_WEBHOOK_SECRET", SECRET)
    return SECRET


@pytest.fixture
def receiver_app(inbox: Inbox) -> FastAPI:
    return create_standalone_app(inbox=inbox)


@pytest.fixture
def client(receiver_app: FastAPI, webhook_secret: str) -> TestClient:
    return TestClient(receiver_app)


@pytest.fixture
def served_url(receiver_app: FastAPI) -> Iterator[str]:
    """The receiver on a free port of 127.0.0.1 (plain HTTP), as uvicorn serves it standalone."""
    server = serve_in_thread("webhook-receiver", receiver_app, "127.0.0.1", 0)
    yield server.url + WEBHOOK_URL_PATH
    server.stop()


@pytest.fixture
def sender(webhook_secret: str) -> WebhookSender:
    return WebhookSender(webhook_secret, retry_delays_s=(0.0, 0.0))
