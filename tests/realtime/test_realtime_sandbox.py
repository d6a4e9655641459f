"""From a signed webhook to a Dataverse row, against the sandbox, through the real-time DAG's task."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.identity import activity_id, dataverse_message_id
from nylas_dataverse.core.messages import parse_message
from nylas_dataverse.pipeline.staging import RunStaging
from nylas_dataverse.realtime.inbox import Batch, Inbox
from nylas_dataverse.realtime.notifications import notification_from_envelope
from nylas_dataverse.realtime.processor import RealtimeFailuresError, process_open_batches
from nylas_dataverse.realtime.trigger import InboxTrigger
from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas.webhooks import WebhookSender

from .conftest import DAY, grants, run_daily

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MESSAGE_ROUTE = "GET /v3/grants/{grant}/messages/{message_id}"


def _expected_message_id(message: dict[str, Any]) -> str:
    """What the daily run keys the message by: its Message-ID header, or the synthetic stand-in."""
    return dataverse_message_id(parse_message(message))[0]


def _ledger(staging: RunStaging) -> list[dict[str, Any]]:
    return [json.loads(line) for line in staging.file("ledger.jsonl").read_bytes().splitlines()]


def _claim_with_trigger(staging_url: str) -> str:
    async def first_event() -> Any:
        events = InboxTrigger(staging_url=staging_url, poll_interval=0.05).run()
        try:
            return await asyncio.wait_for(events.__anext__(), timeout=30)
        finally:
            await events.aclose()

    return str(asyncio.run(first_event()).payload["batch_id"])


def test_signed_webhooks_become_rows_and_the_daily_run_finds_them_present(
    sandbox: Any,
    staging: ObjectStoragePath,
    served_url: str,
    sender: WebhookSender,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NYLAS_DATAVERSE_STAGING", str(staging))
    alice = grants(sandbox)["alice"]
    messages = sandbox.nylas.messages_for("alice", DAY)

    # As Nylas would: payloads without headers, some compressed, one truncated, one redelivered.
    for index, message in enumerate(messages):
        notification = sender.build_notification(message, truncated=index == 0)
        assert sender.deliver(served_url, notification, gzip=index % 2 == 1).status == 200
    assert sender.deliver(served_url, sender.build_notification(messages[1])).status == 200

    batch_id = _claim_with_trigger(str(staging))
    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "nylas_realtime.py"))
    assert bag.import_errors == {}
    totals = bag.dags["nylas_to_dataverse__realtime"].get_task("process").python_callable()

    realtime = RunStaging(staging, alice.dag_id, f"realtime-{batch_id}")
    ledger = _ledger(realtime)
    assert totals["extracted"] == len(ledger) == len(messages)
    assert totals["created"] > 0
    assert totals["failed"] == 0
    # Webhook payloads carry no headers, so every message was fetched by id for its Message-ID.
    assert sandbox.nylas.stats.by_route[MESSAGE_ROUTE] == len(messages)
    by_nylas_id = {message["id"]: message for message in messages}
    rows = {row["activityid"]: row for row in sandbox.dataverse.emails_with_parties()}
    created = [entry for entry in ledger if entry["outcome"] == "created"]
    for entry in created:
        message_id = _expected_message_id(by_nylas_id[entry["nylas_id"]])
        assert entry["activity_id"] == str(activity_id(message_id))
        assert rows[entry["activity_id"]]["messageid"] == message_id
    assert len(rows) == len(created)

    daily = run_daily(staging, alice)

    assert daily["created"] == 0
    assert daily["already_present"] == totals["created"] + totals["already_present"]
    assert daily["skipped"] == totals["skipped"]
    assert len(sandbox.dataverse.emails_with_parties()) == len(rows)
    # The real-time manifest has the same shape as the daily extract's.
    daily_manifest = json.loads(
        RunStaging(staging, alice.dag_id, DAY.isoformat()).file("extract.json").read_text()
    )
    realtime_manifest = json.loads(realtime.file("extract.json").read_text())
    assert set(realtime_manifest) == set(daily_manifest)
    assert realtime_manifest["folder_roles"] == daily_manifest["folder_roles"]
    assert Inbox(staging).open_batches() == []


def _batch_of(inbox: Inbox, notifications: list[dict[str, Any]]) -> Batch:
    for notification in notifications:
        inbox.store(notification_from_envelope(notification))
    batch = inbox.claim_batch()
    assert batch is not None
    return batch


def test_only_truncated_or_headerless_payloads_are_fetched(
    sandbox: Any, inbox: Inbox, staging: ObjectStoragePath, sender: WebhookSender
) -> None:
    alice = grants(sandbox)["alice"]
    complete, truncated = sandbox.nylas.messages_for("alice", DAY)[:2]
    with_headers = sender.build_notification(complete)
    with_headers["data"]["object"]["headers"] = complete["headers"]
    cut = sender.build_notification(truncated, truncated=True)
    cut["data"]["object"]["headers"] = truncated["headers"]
    assert "body" not in cut["data"]["object"]
    batch = _batch_of(inbox, [with_headers, cut])

    totals = process_open_batches(inbox, [alice], staging)

    assert sandbox.nylas.stats.by_route[MESSAGE_ROUTE] == 1
    staged = RunStaging(staging, alice.dag_id, f"realtime-{batch.id}")
    ledger = {entry["nylas_id"]: entry for entry in _ledger(staged)}
    assert set(ledger) == {complete["id"], truncated["id"]}
    assert ledger[truncated["id"]]["activity_id"] == str(activity_id(_expected_message_id(truncated)))
    assert totals["extracted"] == 2
    assert totals["failed"] == 0


def test_unknown_grants_expired_grants_and_deleted_messages_are_recorded_without_blocking(
    sandbox: Any,
    inbox: Inbox,
    staging: ObjectStoragePath,
    sender: WebhookSender,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dave = personas.grant_by_key("dave")
    configured = grants(
        sandbox, extra=[{"key": "dave", "grant_id": dave.grant_id, "start_date": "2026-11-02"}]
    )
    bob_message = sandbox.nylas.messages_for("bob", DAY)[0]
    stranger = sender.build_notification({**bob_message, "grant_id": "grant-nobody-configured", "id": "m-x"})
    expired = sender.build_notification({**bob_message, "grant_id": dave.grant_id, "id": "m-d"})
    deleted_since = sender.build_notification({**bob_message, "id": "m-deleted-before-processing"})
    _batch_of(inbox, [sender.build_notification(bob_message), deleted_since, stranger, expired])
    caplog.set_level(logging.INFO, logger="nylas_dataverse")

    with pytest.raises(RealtimeFailuresError, match="grant dave"):
        process_open_batches(inbox, list(configured.values()), staging)

    [done] = [b for b in inbox.batches.iterdir()]
    summary = json.loads((done / "done.json").read_text())
    assert summary["unknown_grants"] == {"grant-nobody-configured": 1}
    assert summary["grants"]["bob"]["counts"]["extracted"] == 1
    assert summary["grants"]["bob"]["gone"] == 1
    assert summary["grants"]["bob"]["error"] is None
    assert "NylasGrantAuthError" in summary["grants"]["dave"]["error"]
    assert any("grant-nobody-configured" in r.getMessage() for r in caplog.records)
    assert inbox.open_batches() == []
