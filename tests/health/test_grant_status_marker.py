"""The webhook receiver's grant.expired marker, as the health page reads it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from airflow.sdk import ObjectStoragePath
from fastapi.testclient import TestClient

from nylas_dataverse.core.health import GrantStatus, grant_status
from nylas_dataverse.pipeline.summary import SummaryStore
from nylas_dataverse.realtime.inbox import Inbox
from nylas_dataverse.realtime.receiver import URL_PREFIX, WebhookSecret, create_standalone_app
from nylas_dataverse.realtime.signature import SIGNATURE_HEADER
from nylas_dataverse_sandbox.nylas.webhooks import WebhookSender

SECRET = "marker-test-secret"


def test_a_grant_expired_notification_marks_the_grant_expired_for_the_health_page(tmp_path: Path) -> None:
    root = ObjectStoragePath(tmp_path.as_uri())
    app = create_standalone_app(inbox=Inbox(root), secret=WebhookSecret(lambda: SECRET))
    sender = WebhookSender(SECRET, retry_delays_s=(0.0,))
    notification = sender.grant_expired_notification("dave")
    body = json.dumps(notification).encode()

    with TestClient(app) as client:
        answer = client.post(
            f"{URL_PREFIX}/webhook", content=body, headers={SIGNATURE_HEADER: sender.sign(body)}
        )

    assert answer.status_code == 200
    grant_id = notification["data"]["object"]["grant_id"]
    marker = SummaryStore(root).read_grant_status(grant_id)
    assert marker is not None
    assert marker.notification_type == "grant.expired"
    assert marker.at == dt.datetime.fromtimestamp(notification["time"], tz=dt.UTC)
    status, reason = grant_status(None, marker)
    assert status is GrantStatus.EXPIRED
    assert "grant.expired" in reason
    # Only ids and times: nothing else of the notification is kept.
    assert (
        notification["data"]["object"]["email"]
        not in next((tmp_path / "_realtime" / "grant_status").iterdir()).read_text()
    )
