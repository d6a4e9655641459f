"""A small soak: healthy notifications mixed with every kind of bad one, across several grants, through
the served receiver and two processing runs. Every healthy message lands exactly once (issue 11)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from nylas_dataverse.realtime.inbox import Inbox
from nylas_dataverse.realtime.processor import RealtimeFailuresError, process_open_batches
from nylas_dataverse.realtime.settings import BatchLimits
from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas.webhooks import WebhookSender

from .conftest import DAY, grants

PER_GRANT = 6


def _ledger_entries(staging: ObjectStoragePath, dag_id: str) -> list[dict[str, Any]]:
    entries = []
    for folder in (staging / dag_id).iterdir():
        ledger = folder / "ledger.jsonl"
        if folder.name.startswith("realtime-") and ledger.exists():
            entries += [json.loads(line) for line in ledger.read_bytes().splitlines()]
    return entries


def test_soak_every_healthy_message_lands_exactly_once_whatever_else_arrives(
    sandbox: Any,
    staging: ObjectStoragePath,
    inbox: Inbox,
    served_url: str,
    sender: WebhookSender,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong_key = {**sandbox.nylas_connection(), "password": "nyk_v0_revoked"}
    monkeypatch.setenv("AIRFLOW_CONN_NYLAS_REVOKED", json.dumps(wrong_key))
    dave = personas.grant_by_key("dave")
    configured = grants(
        sandbox, extra=[{"key": "dave", "grant_id": dave.grant_id, "start_date": DAY.isoformat()}]
    )
    healthy = {key: sandbox.nylas.messages_for(key, DAY)[:PER_GRANT] for key in ("alice", "bob", "carol")}
    statuses: Counter[int] = Counter()

    for messages in healthy.values():
        for index, message in enumerate(messages):
            if index == 1:
                body = sender.malformed_body("lone_surrogate", message)
                statuses[sender.deliver_raw(served_url, body).status] += 1
            elif index == 2:
                body = sender.malformed_body("invalid_utf8", message)
                statuses[sender.deliver_raw(served_url, body, gzip=True).status] += 1
            else:
                notification = sender.build_notification(message, truncated=index == 3)
                statuses[sender.deliver(served_url, notification, gzip=index % 2 == 0).status] += 1
                statuses[sender.deliver(served_url, notification).status] += 1  # Nylas redelivers
        upsert = sender.build_notification(messages[0])  # a second notification for one message
        statuses[sender.deliver(served_url, upsert).status] += 1
        for kind in ("deep_nesting", "cut_off"):
            assert sender.deliver_raw(served_url, sender.malformed_body(kind, messages[0])).status == 400
        forged = sender.build_notification(messages[4])
        assert sender.deliver(served_url, forged, bad_signature=True).status == 401
    stranger = {**healthy["bob"][0], "grant_id": "grant-nobody-configured", "id": "m-stranger"}
    expired = {**healthy["bob"][0], "grant_id": dave.grant_id, "id": "m-expired"}
    for message in (stranger, expired):
        statuses[sender.deliver(served_url, sender.build_notification(message)).status] += 1
    # What a crash or a bad disk leaves behind.
    inbox.incoming.mkdir(parents=True, exist_ok=True)
    (inbox.incoming / "00000000000000000001-00000000000000aa.json").write_bytes(b"")
    (inbox.pending / "00000000000000000002-00000000000000bb.json").write_bytes(b'{"notification": {"id"')
    assert statuses == {200: 3 * (2 * (PER_GRANT - 2) + 2 + 1) + 2}

    # First run: bob's API key was revoked, carol's grant names a connection that does not exist.
    first = [
        configured["alice"],
        dataclasses.replace(configured["bob"], nylas_conn_id="nylas_revoked"),
        dataclasses.replace(configured["carol"], nylas_conn_id="nylas_missing"),
        configured["dave"],
    ]
    while inbox.claim_batch(BatchLimits(max_notifications=7)) is not None:
        pass
    with pytest.raises(RealtimeFailuresError) as failed:
        process_open_batches(inbox, first, staging)
    assert "(bob, carol, dave)" in str(failed.value)

    # Fixed; a later run (after the backoff) retries exactly the parts that were given up.
    later = Inbox(staging, clock=lambda: time.time() + 3600)
    while later.claim_batch() is not None:
        pass
    with pytest.raises(RealtimeFailuresError) as still:
        process_open_batches(later, list(configured.values()), staging)
    assert "(dave)" in str(still.value)

    assert later.open_batches() == []
    assert len(later.quarantined()) == 3  # the empty file, the cut-off file, the stranger's notification
    rows = {row["activityid"]: row for row in sandbox.dataverse.emails_with_parties()}
    assert max(Counter(row["messageid"] for row in rows.values()).values()) == 1
    created = []
    for key, messages in healthy.items():
        entries = _ledger_entries(staging, configured[key].dag_id)
        # One outcome per healthy message, in exactly one batch, whatever else shared its batches.
        assert Counter(entry["nylas_id"] for entry in entries) == Counter(m["id"] for m in messages), key
        assert all(entry["outcome"] in ("created", "already_present", "skipped") for entry in entries), key
        created += [entry["activity_id"] for entry in entries if entry["outcome"] == "created"]
    assert sorted(created) == sorted(rows)
