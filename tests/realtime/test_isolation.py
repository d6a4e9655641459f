"""One bad file, one bad notification or one broken grant never stops the others (issue 11)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.hooks._retry import RetryPolicy
from nylas_dataverse.pipeline.run import ServicePool
from nylas_dataverse.realtime.inbox import RETRY_FIRST_S, Inbox
from nylas_dataverse.realtime.notifications import notification_from_envelope
from nylas_dataverse.realtime.processor import RealtimeFailuresError, process_open_batches
from nylas_dataverse.realtime.settings import MAX_BYTES_ENV, MAX_NOTIFICATIONS_ENV, BatchLimits
from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas.webhooks import WebhookSender

from .conftest import DAY, grants


class Clock:
    def __init__(self, start: float = 1_796_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _store(inbox: Inbox, sender: WebhookSender, messages: list[dict[str, Any]]) -> None:
    for message in messages:
        inbox.store(notification_from_envelope(sender.build_notification(message)))


def _rows_by_nylas_id(sandbox: Any) -> dict[str, int]:
    """How many Dataverse rows each Nylas message has, by the ledger-independent Message-ID."""
    counts: dict[str, int] = {}
    for row in sandbox.dataverse.emails_with_parties():
        counts[row["messageid"]] = counts.get(row["messageid"], 0) + 1
    return counts


def _done(inbox: Inbox) -> list[dict[str, Any]]:
    return [
        json.loads((folder / "done.json").read_text())
        for folder in inbox.batches.iterdir()
        if (folder / "done.json").exists()
    ]


def _with(grant: GrantConfig, **changes: Any) -> GrantConfig:
    import dataclasses

    return dataclasses.replace(grant, **changes)


def test_an_empty_or_unparsable_record_is_quarantined_named_counted_and_the_batch_closes(
    sandbox: Any, staging: ObjectStoragePath, sender: WebhookSender, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = Inbox(staging)
    alice = grants(sandbox)["alice"]
    messages = sandbox.nylas.messages_for("alice", DAY)[:2]
    _store(inbox, sender, messages)
    # A receiver killed between open and write (an old orphan in incoming/), and a file cut short.
    (inbox.incoming / "00000000000000000001-0000000000000001.json").write_bytes(b"")
    (inbox.pending / "00000000000000000002-0000000000000002.json").write_bytes(b'{"format_version": 1, "no')
    caplog.set_level(logging.WARNING, logger="nylas_dataverse")

    assert inbox.claim_batch() is not None
    totals = process_open_batches(inbox, [alice], staging)

    assert totals["quarantined_records"] == 2
    assert totals["extracted"] == 2
    [summary] = _done(inbox)
    reasons = {entry["file"]: entry["reason"] for entry in summary["quarantined"]}
    assert "empty" in reasons["00000000000000000001-0000000000000001.json"]
    assert "not JSON" in reasons["00000000000000000002-0000000000000002.json"]
    assert sorted(path.name for path in inbox.quarantined()) == sorted(reasons)
    for name in reasons:
        assert any(
            name in record.getMessage() and "quarantined" in record.getMessage() for record in caplog.records
        )
    assert inbox.open_batches() == []
    assert len(sandbox.dataverse.emails_with_parties()) == totals["created"] > 0


def test_a_temporary_file_left_by_a_killed_receiver_is_never_adopted(staging: ObjectStoragePath) -> None:
    inbox = Inbox(staging)
    inbox.incoming.mkdir(parents=True, exist_ok=True)
    (inbox.incoming / ".00000000000000000001-0000000000000001.json.1a2b3c4d.tmp").write_bytes(b'{"form')

    assert inbox.claim_batch() is None


def test_a_grant_with_a_missing_connection_is_given_up_recorded_and_retried_while_others_land(
    sandbox: Any, staging: ObjectStoragePath, sender: WebhookSender
) -> None:
    clock = Clock()
    inbox = Inbox(staging, clock=clock)
    configured = grants(sandbox)
    alice, bob = configured["alice"], configured["bob"]
    typo = _with(bob, nylas_conn_id="nylas_defualt")
    alice_messages = sandbox.nylas.messages_for("alice", DAY)[:2]
    bob_messages = sandbox.nylas.messages_for("bob", DAY)[:2]
    _store(inbox, sender, alice_messages + bob_messages)
    assert inbox.claim_batch() is not None

    with pytest.raises(RealtimeFailuresError, match=r"grant\(s\) failed \(bob\)") as failed:
        process_open_batches(inbox, [alice, typo], staging)

    assert "nylas_defualt" in str(failed.value)
    [summary] = _done(inbox)
    assert summary["grants"]["alice"]["error"] is None
    part = summary["failed_grants"]["bob"]
    assert part["kind"] == "config"
    assert part["notifications"] == 2
    assert "nylas_defualt" in part["error"]
    assert inbox.open_batches() == []
    landed = len(sandbox.dataverse.emails_with_parties())
    assert landed > 0

    # Not before the backoff: a broken grant does not spin the DAG.
    assert inbox.claim_batch() is None
    clock.now += RETRY_FIRST_S
    retry = inbox.claim_batch()
    assert retry is not None
    assert len(retry.record_paths()) == 2

    # Once the grants file is fixed, the later run loads bob's part.
    totals = process_open_batches(inbox, [alice, bob], staging)

    assert totals["failed_grants"] == []
    assert totals["extracted"] == 2
    assert len(sandbox.dataverse.emails_with_parties()) > landed


def _fail_runs(inbox: Inbox, grant: GrantConfig, staging: ObjectStoragePath, clock: Clock, runs: int) -> None:
    """Claim and process ``runs`` times a grant that always fails, waiting out each backoff."""
    for _ in range(runs):
        assert inbox.claim_batch() is not None
        with pytest.raises(RealtimeFailuresError):
            process_open_batches(inbox, [grant], staging)
        clock.now += 10_000


def test_a_failing_grant_backs_off_longer_each_time(
    sandbox: Any, staging: ObjectStoragePath, sender: WebhookSender
) -> None:
    clock = Clock()
    inbox = Inbox(staging, clock=clock)
    broken = _with(grants(sandbox)["bob"], dataverse_conn_id="dataverse_missing")
    _store(inbox, sender, sandbox.nylas.messages_for("bob", DAY)[:1])
    _fail_runs(inbox, broken, staging, clock, 3)

    attempts = sorted(s["failed_grants"]["bob"]["attempt"] for s in _done(inbox))
    assert attempts == [1, 2, 3]
    assert len(inbox.quarantined()) == 0  # never dropped: still waiting in retry/
    assert sorted(s["failed_grants"]["bob"]["retry_in_s"] for s in _done(inbox)) == [
        RETRY_FIRST_S,
        RETRY_FIRST_S * 2,
        RETRY_FIRST_S * 4,
    ]


def test_a_rejected_api_key_is_reported_as_such_naming_the_connection_not_as_an_expired_grant(
    sandbox: Any,
    staging: ObjectStoragePath,
    sender: WebhookSender,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = {**sandbox.nylas_connection(), "password": "nyk_v0_not-the-key"}
    monkeypatch.setenv("AIRFLOW_CONN_NYLAS_WRONG_KEY", json.dumps(wrong))
    dave = personas.grant_by_key("dave")
    configured = grants(
        sandbox, extra=[{"key": "dave", "grant_id": dave.grant_id, "start_date": DAY.isoformat()}]
    )
    bob = _with(configured["bob"], nylas_conn_id="nylas_wrong_key")
    inbox = Inbox(staging)
    bob_message = sandbox.nylas.messages_for("bob", DAY)[0]
    _store(inbox, sender, [bob_message, {**bob_message, "grant_id": dave.grant_id, "id": "m-dave"}])
    assert inbox.claim_batch() is not None
    caplog.set_level(logging.INFO, logger="nylas_dataverse")

    with pytest.raises(RealtimeFailuresError, match=r"\(bob, dave\)"):
        process_open_batches(inbox, [bob, configured["dave"]], staging)

    [summary] = _done(inbox)
    key_part, expired_part = summary["failed_grants"]["bob"], summary["failed_grants"]["dave"]
    assert key_part["kind"] == "credentials"
    assert "API key" in key_part["error"]
    assert "nylas_wrong_key" in key_part["error"]
    assert expired_part["kind"] == "grant_expired"
    bob_alerts = [
        r.getMessage() for r in caplog.records if "ALERT" in r.getMessage() and "grant bob" in r.getMessage()
    ]
    assert bob_alerts
    assert all("re-authenticate" not in line for line in bob_alerts)
    assert all("nylas_wrong_key" in line for line in bob_alerts)


def test_unknown_grants_are_quarantined_with_the_reason_not_dropped(
    sandbox: Any, staging: ObjectStoragePath, sender: WebhookSender
) -> None:
    inbox = Inbox(staging)
    message = {**sandbox.nylas.messages_for("bob", DAY)[0], "grant_id": "grant-nobody-configured"}
    _store(inbox, sender, [message])
    assert inbox.claim_batch() is not None

    process_open_batches(inbox, [grants(sandbox)["alice"]], staging)

    [kept] = inbox.quarantined()
    reason = json.loads((kept.parent / f"{kept.name}.reason.json").read_text())["reason"]
    assert "grant-nobody-configured" in reason
    assert "grants file" in reason


def test_a_batch_takes_at_most_the_configured_notifications_and_bytes(
    staging: ObjectStoragePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import envelope

    inbox = Inbox(staging)
    for n in range(5):
        inbox.store(notification_from_envelope(envelope(f"n-{n}", message_id=f"m-{n}")))
    size = max(path.stat().st_size for path in inbox.pending.iterdir())

    assert [len(b.record_paths()) for b in iter(lambda: inbox.claim_batch(BatchLimits(2, 10**9)), None)] == [
        2,
        2,
        1,
    ]

    for n in range(5, 8):
        inbox.store(notification_from_envelope(envelope(f"n-{n}", message_id=f"m-{n}")))
    monkeypatch.setenv(MAX_NOTIFICATIONS_ENV, "100")
    monkeypatch.setenv(MAX_BYTES_ENV, str(size + size // 2))
    sizes = [len(b.record_paths()) for b in iter(inbox.claim_batch, None)]
    assert sizes == [1, 1, 1]  # oldest first, one notification over the byte limit still gets a batch

    monkeypatch.setenv(MAX_BYTES_ENV, "lots")
    with pytest.raises(ValueError, match=MAX_BYTES_ENV):
        BatchLimits.from_env()


def test_a_run_lists_only_open_batches_and_still_finds_one_an_earlier_version_left(
    staging: ObjectStoragePath, tmp_path: Path
) -> None:
    from .conftest import envelope

    inbox = Inbox(staging)
    # An unfinished batch from before the open/ index existed.
    legacy = inbox.batches / "20261101T000000000000Z-abcdef" / "notifications"
    legacy.mkdir(parents=True)
    (legacy / "00000000000000000001-0000000000000001.json").write_text(
        json.dumps({"format_version": 1, "notification": envelope("n-old")})
    )
    finished = inbox.batches / "20261101T000000000000Z-000000"
    finished.mkdir(parents=True)
    (finished / "done.json").write_text("{}")

    assert [batch.id for batch in inbox.open_batches()] == ["20261101T000000000000Z-abcdef"]

    inbox.store(notification_from_envelope(envelope("n-new", message_id="m-new")))
    claimed = inbox.claim_batch()
    assert claimed is not None
    assert [batch.id for batch in inbox.open_batches()] == ["20261101T000000000000Z-abcdef", claimed.id]
    for batch in inbox.open_batches():
        inbox.mark_done(batch, {})
    assert inbox.open_batches() == []
    assert list(inbox.open_index.iterdir()) == []


def test_a_run_takes_one_token_per_application_user_and_stays_within_its_concurrency(
    sandbox: Any, staging: ObjectStoragePath, sender: WebhookSender
) -> None:
    configured = grants(sandbox)
    inbox = Inbox(staging)
    for key in ("alice", "bob", "carol"):
        _store(inbox, sender, sandbox.nylas.messages_for(key, DAY)[:3])
    while inbox.claim_batch(BatchLimits(max_notifications=4)) is not None:
        pass
    assert len(inbox.open_batches()) == 3

    totals = process_open_batches(inbox, list(configured.values()), staging)

    assert totals["batches"] == 3
    assert totals["extracted"] == 9
    # Every grant uses the same Dataverse connection (one application user): one token for the run.
    assert sandbox.entra.token_requests == 1
    users = sandbox.dataverse.protection.snapshot()["users"]
    assert max(user["peak_in_flight"] for user in users.values()) <= 4  # the connection's max_concurrency


def test_while_the_grants_file_has_errors_notifications_of_grants_not_found_wait_for_the_fix(
    sandbox: Any, staging: ObjectStoragePath, sender: WebhookSender
) -> None:
    clock = Clock()
    inbox = Inbox(staging, clock=clock)
    configured = grants(sandbox)
    _store(
        inbox,
        sender,
        sandbox.nylas.messages_for("alice", DAY)[:1] + sandbox.nylas.messages_for("bob", DAY)[:1],
    )
    assert inbox.claim_batch() is not None
    problem = "grants.yaml: grant 'bob': start_date: not a date"

    with pytest.raises(RealtimeFailuresError, match=configured["bob"].grant_id):
        process_open_batches(inbox, [configured["alice"]], staging, grants_file_errors=[problem])

    [summary] = _done(inbox)
    assert summary["grants"]["alice"]["error"] is None
    part = summary["failed_grants"][configured["bob"].grant_id]
    assert problem in part["error"]
    assert inbox.quarantined() == []
    clock.now += RETRY_FIRST_S
    assert inbox.claim_batch() is not None
    totals = process_open_batches(inbox, list(configured.values()), staging)
    assert totals["extracted"] == 1


def test_the_realtime_task_fails_naming_the_failed_grant_after_the_others_landed(
    sandbox: Any,
    staging: ObjectStoragePath,
    sender: WebhookSender,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.exceptions import AirflowFailException

    config = sandbox.grants_config()
    for entry in config["grants"]:
        if entry["key"] == "bob":
            entry["nylas_conn_id"] = "nylas_typo"
    grants_file = tmp_path / "grants.yaml"
    grants_file.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(grants_file))
    monkeypatch.setenv("NYLAS_DATAVERSE_STAGING", str(staging))
    inbox = Inbox(staging)
    _store(
        inbox,
        sender,
        sandbox.nylas.messages_for("alice", DAY)[:1] + sandbox.nylas.messages_for("bob", DAY)[:1],
    )
    assert inbox.claim_batch() is not None
    project = Path(__file__).resolve().parents[2]
    bag = DagBag(dag_folder=str(project / "dags" / "nylas_realtime.py"))

    with pytest.raises(AirflowFailException, match=r"grant\(s\) failed \(bob\)") as failed:
        bag.dags["nylas_to_dataverse__realtime"].get_task("process").python_callable()

    assert "nylas_typo" in str(failed.value)
    assert len(sandbox.dataverse.emails_with_parties()) >= 1  # alice's mail landed


def test_a_given_up_part_waiting_for_its_retry_still_counts_on_the_health_page(
    sandbox: Any, staging: ObjectStoragePath, sender: WebhookSender
) -> None:
    from nylas_dataverse.health.inbox import read_inbox

    inbox = Inbox(staging)
    broken = _with(grants(sandbox)["bob"], nylas_conn_id="nylas_missing")
    message = sandbox.nylas.messages_for("bob", DAY)[0]
    _store(inbox, sender, [message])
    assert inbox.claim_batch() is not None
    with pytest.raises(RealtimeFailuresError):
        process_open_batches(inbox, [broken], staging)

    health = read_inbox(staging)

    assert health.depth == 1
    assert health.pending == 1
    assert health.oldest_pending_at is not None
    # Its arrival (past), not when its retry is due (30 s ahead).
    assert health.oldest_pending_at.timestamp() <= time.time()


def test_an_unreadable_finished_part_marker_is_processed_again_instead_of_stopping_every_batch(
    sandbox: Any, staging: ObjectStoragePath, sender: WebhookSender, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = Inbox(staging)
    configured = grants(sandbox)
    alice, bob = configured["alice"], configured["bob"]
    _store(inbox, sender, sandbox.nylas.messages_for("alice", DAY)[:2])
    first = inbox.claim_batch()
    assert first is not None
    # An older version wrote this marker in place; a worker killed mid-write left it empty.
    first.grant_marker("alice").parent.mkdir(parents=True, exist_ok=True)
    first.grant_marker("alice").write_bytes(b"")
    _store(inbox, sender, sandbox.nylas.messages_for("bob", DAY)[:2])
    assert inbox.claim_batch() is not None
    caplog.set_level(logging.WARNING, logger="nylas_dataverse")

    totals = process_open_batches(inbox, [alice, bob], staging)

    assert totals["batches"] == 2
    assert inbox.open_batches() == []
    assert any("unreadable" in r.getMessage() and "alice" in r.getMessage() for r in caplog.records)
    assert totals["extracted"] == 4
    assert len(sandbox.dataverse.emails_with_parties()) == totals["created"] > 0
    assert json.loads(first.grant_marker("alice").read_bytes())["grant_key"] == "alice"


def _fail_fast() -> ServicePool:
    """Hooks that give up a failing request at once (the default retries for minutes)."""
    return ServicePool(nylas_retry_policy=RetryPolicy(max_attempts=1))


def test_a_message_whose_fetch_fails_does_not_hold_up_the_grants_other_mail(
    sandbox: Any, staging: ObjectStoragePath, sender: WebhookSender, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    inbox = Inbox(staging, clock=clock)
    alice = grants(sandbox)["alice"]
    refused, timing_out, *fine = sandbox.nylas.messages_for("alice", DAY)[:4]
    sandbox.nylas.set_faults({"failing_messages": {refused["id"]: 400, timing_out["id"]: 504}})
    _store(inbox, sender, [refused, timing_out, *fine])  # webhook payloads: each is fetched by id
    assert inbox.claim_batch() is not None
    caplog.set_level(logging.WARNING, logger="nylas_dataverse")

    totals = process_open_batches(inbox, [alice], staging, pool=_fail_fast())

    assert totals["failed_grants"] == []
    assert totals["extracted"] == 2  # the two that could be read landed (or were skipped by policy)
    [summary] = _done(inbox)
    part = summary["grants"]["alice"]
    assert (part["refused"], part["deferred"]) == (1, 1)
    # Nylas refused the one: quarantined with why (a retry cannot change a 400).
    [quarantined] = inbox.quarantined()
    reason = json.loads((quarantined.parent / f"{quarantined.name}.reason.json").read_text())["reason"]
    assert reason.startswith("fetch_failed")
    assert json.loads(quarantined.read_text())["notification"]["data"]["object"]["id"] == refused["id"]
    assert any(refused["id"] in r.getMessage() for r in caplog.records)

    # The one that timed out is retried alone, after the first backoff, once Nylas serves it.
    sandbox.nylas.set_faults({"failing_messages": {}})
    clock.now += RETRY_FIRST_S
    retry = inbox.claim_batch()
    assert retry is not None
    assert [r["notification"]["data"]["object"]["id"] for r in retry.records()] == [timing_out["id"]]
    again = process_open_batches(inbox, [alice], staging, pool=_fail_fast())
    assert again["extracted"] == 1
    assert again["failed_grants"] == []


def test_when_no_fetch_of_a_part_succeeds_the_whole_part_is_given_up_as_an_outage(
    sandbox: Any, staging: ObjectStoragePath, sender: WebhookSender
) -> None:
    inbox = Inbox(staging, clock=Clock())
    alice = grants(sandbox)["alice"]
    messages = sandbox.nylas.messages_for("alice", DAY)[:2]
    sandbox.nylas.set_faults({"failing_messages": {message["id"]: 504 for message in messages}})
    _store(inbox, sender, messages)
    assert inbox.claim_batch() is not None

    with pytest.raises(RealtimeFailuresError, match=r"grant\(s\) failed \(alice\)"):
        process_open_batches(inbox, [alice], staging, pool=_fail_fast())

    [summary] = _done(inbox)
    assert summary["failed_grants"]["alice"]["notifications"] == 2
    assert summary["failed_grants"]["alice"]["kind"] == "service_unavailable"
    assert inbox.quarantined() == []


def test_each_deferred_notification_keeps_its_own_backoff(
    sandbox: Any, staging: ObjectStoragePath, sender: WebhookSender
) -> None:
    clock = Clock()
    inbox = Inbox(staging, clock=clock)
    broken = _with(grants(sandbox)["bob"], dataverse_conn_id="dataverse_missing")
    old, new = sandbox.nylas.messages_for("bob", DAY)[:2]
    _store(inbox, sender, [old])
    _fail_runs(inbox, broken, staging, clock, 3)  # the old one's next wait is 8 x the first
    _store(inbox, sender, [new])
    batch = inbox.claim_batch()
    assert batch is not None
    assert len(batch.record_paths()) == 2
    with pytest.raises(RealtimeFailuresError):
        process_open_batches(inbox, [broken], staging)

    # The newcomer is due after the first backoff; the old one only after its own, longer one.
    clock.now += RETRY_FIRST_S
    first = inbox.claim_batch()
    assert first is not None
    assert [r["notification"]["data"]["object"]["id"] for r in first.records()] == [new["id"]]
