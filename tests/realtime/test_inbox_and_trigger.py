"""The inbox as a queue (claim, recover, prune) and the asset-watcher trigger that drains it."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from airflow.sdk import ObjectStoragePath
from airflow.triggers.base import BaseEventTrigger

from nylas_dataverse.realtime.inbox import ORPHAN_AFTER_S, Batch, Inbox, StoreResult
from nylas_dataverse.realtime.notifications import notification_from_envelope
from nylas_dataverse.realtime.processor import process_open_batches
from nylas_dataverse.realtime.trigger import InboxTrigger

from .conftest import envelope


def _store(inbox: Inbox, notification_id: str, message_id: str | None = None) -> StoreResult:
    return inbox.store(
        notification_from_envelope(envelope(notification_id, message_id=message_id or notification_id))
    )


def test_claiming_moves_everything_pending_into_one_batch(inbox: Inbox) -> None:
    for n in range(3):
        _store(inbox, f"n-{n}")

    batch = inbox.claim_batch()

    assert batch is not None
    assert [r["notification"]["id"] for r in batch.records()] == ["n-0", "n-1", "n-2"]
    assert inbox.pending_count() == 0
    assert inbox.claim_batch() is None
    assert [b.id for b in inbox.open_batches()] == [batch.id]
    inbox.mark_done(batch, {"batch_id": batch.id})
    assert inbox.open_batches() == []


def test_a_notification_left_behind_by_a_crashed_receiver_is_adopted(staging: ObjectStoragePath) -> None:
    now = [time.time()]
    inbox = Inbox(staging, clock=lambda: now[0])
    _store(inbox, "n-1")
    # Simulate a crash after dedupe but before the move into pending/.
    [pending] = list(inbox.pending.iterdir())
    pending.rename(inbox.incoming / pending.name)

    assert inbox.claim_batch() is None  # it may still be in flight
    now[0] += ORPHAN_AFTER_S + 1
    batch = inbox.claim_batch()

    assert batch is not None
    assert [r["notification"]["id"] for r in batch.records()] == ["n-1"]
    assert _store(inbox, "n-1") is StoreResult.DUPLICATE_NOTIFICATION


def _mid_claim(inbox: Inbox, moved: int) -> Batch:
    """The state a claimer leaves while it is moving files in: the ``open/`` entry and ``moved`` files in the
    batch, the rest still pending, no ``claimed.json`` yet."""
    batch = inbox.claim_batch()
    assert batch is not None
    batch.claimed_marker.unlink()
    for path in batch.record_paths()[moved:]:
        path.rename(inbox.pending / path.name)
    return batch


def test_a_batch_still_being_claimed_is_not_processed_and_nothing_is_stranded(
    staging: ObjectStoragePath,
) -> None:
    now = [time.time()]
    inbox = Inbox(staging, clock=lambda: now[0])
    for n in range(3):
        _store(inbox, f"n-{n}")
    claiming = _mid_claim(inbox, moved=1)

    # A run listing open/ now leaves the batch alone: closing it would strand the files still moving in.
    assert process_open_batches(inbox, [], staging)["batches"] == 0
    assert not claiming.done
    assert inbox.pending_count() == 2

    # A claimer that died mid-claim: after ORPHAN_AFTER_S its batch is processed with what it holds,
    # and the files it never moved go into the next batch.
    now[0] += ORPHAN_AFTER_S + 1
    assert [b.id for b in inbox.open_batches()] == [claiming.id]
    later = inbox.claim_batch()
    assert later is not None
    held = [r["notification"]["id"] for r in claiming.records()]
    assert len(held) == 1
    assert sorted(held + [r["notification"]["id"] for r in later.records()]) == ["n-0", "n-1", "n-2"]


def test_a_restarted_trigger_completes_the_claim_its_predecessor_left_half_done(
    inbox: Inbox, staging: ObjectStoragePath
) -> None:
    _store(inbox, "n-1")
    _store(inbox, "n-2")
    half = _mid_claim(inbox, moved=1)
    assert inbox.open_batches() == []

    event = _first_event(InboxTrigger(staging_url=str(staging), poll_interval=0.05))

    assert event.payload == {"batch_id": half.id, "recovered": 1}
    assert [b.id for b in inbox.open_batches()] == [half.id]


def test_closing_a_batch_sends_a_file_that_arrived_after_it_was_read_back_to_pending(inbox: Inbox) -> None:
    _store(inbox, "n-1")
    batch = inbox.claim_batch()
    assert batch is not None
    read = {path.name for path in batch.record_paths()}
    _store(inbox, "n-2")
    [late] = list(inbox.pending.iterdir())
    late.rename(batch.notifications_folder / late.name)

    inbox.mark_done(batch, {"batch_id": batch.id}, read=read)

    assert batch.done
    assert [path.name for path in batch.record_paths()] == sorted(read)
    again = inbox.claim_batch()
    assert again is not None
    assert [r["notification"]["id"] for r in again.records()] == ["n-2"]


def test_a_notification_whose_final_move_failed_after_its_markers_is_kept_not_undone(
    staging: ObjectStoragePath,
) -> None:
    now = [time.time()]
    inbox = Inbox(staging, clock=lambda: now[0])
    assert _store(inbox, "n-0") is StoreResult.ACCEPTED
    assert inbox.claim_batch() is not None
    # pending/ becomes unusable (here: a file where the folder was), so the move into it fails.
    inbox.pending.rmdir()
    inbox.pending.write_bytes(b"")

    assert _store(inbox, "n-1") is StoreResult.ACCEPTED
    # Nylas' concurrent redelivery is answered as a duplicate; undoing the first would lose it.
    assert _store(inbox, "n-1") is StoreResult.DUPLICATE_NOTIFICATION

    inbox.pending.unlink()
    inbox.pending.mkdir()
    now[0] += ORPHAN_AFTER_S + 1
    adopted = inbox.claim_batch()
    assert adopted is not None
    assert [r["notification"]["id"] for r in adopted.records()] == ["n-1"]


def test_pruning_forgets_old_markers_and_finished_batches(inbox: Inbox) -> None:
    _store(inbox, "n-1")
    batch = inbox.claim_batch()
    assert batch is not None
    inbox.mark_done(batch, {})
    time.sleep(0.01)

    removed = inbox.prune(retention=dt.timedelta(0), force=True)

    assert removed >= 3  # two markers and the batch
    assert not batch.folder.exists()
    assert _store(inbox, "n-1") is StoreResult.ACCEPTED


def test_pruning_removes_old_temporary_files_a_killed_receiver_left_and_nothing_accepted(
    inbox: Inbox,
) -> None:
    _store(inbox, "n-1")
    inbox.incoming.mkdir(parents=True, exist_ok=True)
    leftover = inbox.incoming / ".00000000000000000001-0000000000000001.json.1a2b3c4d.tmp"
    leftover.write_bytes(b'{"form')
    time.sleep(0.01)

    inbox.prune(retention=dt.timedelta(0), force=True)

    assert not leftover.exists()
    assert inbox.pending_count() == 1


def _first_event(trigger: InboxTrigger) -> Any:
    async def first() -> Any:
        events = trigger.run()
        try:
            return await asyncio.wait_for(events.__anext__(), timeout=30)
        finally:
            await events.aclose()

    return asyncio.run(first())


def test_the_trigger_fires_with_a_claimed_batch_when_notifications_are_pending(
    inbox: Inbox, staging: ObjectStoragePath
) -> None:
    trigger = InboxTrigger(staging_url=str(staging), poll_interval=0.05)
    assert isinstance(trigger, BaseEventTrigger)
    _store(inbox, "n-1")
    _store(inbox, "n-2")

    event = _first_event(trigger)

    [batch] = inbox.open_batches()
    assert event.payload == {"batch_id": batch.id}
    assert sorted(r["notification"]["id"] for r in batch.records()) == ["n-1", "n-2"]
    assert inbox.pending_count() == 0


def test_a_restarted_trigger_announces_batches_claimed_but_never_processed(
    inbox: Inbox, staging: ObjectStoragePath
) -> None:
    _store(inbox, "n-1")
    stranded = inbox.claim_batch()
    assert stranded is not None

    event = _first_event(InboxTrigger(staging_url=str(staging), poll_interval=0.05))

    assert event.payload == {"batch_id": stranded.id, "recovered": 1}


def test_the_trigger_serializes_to_what_recreates_it(staging: ObjectStoragePath) -> None:
    classpath, kwargs = InboxTrigger(staging_url=str(staging)).serialize()
    module, _, name = classpath.rpartition(".")
    recreated = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
    assert recreated.serialize() == (classpath, kwargs)
