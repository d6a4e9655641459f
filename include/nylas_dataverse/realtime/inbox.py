"""The durable queue between the webhook receiver and the processor, under ``<staging>/_realtime/``.

Layout (any ``ObjectStoragePath``; the local filesystem in development)::

    _realtime/
        incoming/<received>-<hash>.json     being accepted: written, not yet deduplicated
        pending/<received>-<hash>.json      accepted, waiting for the processor
        seen/notifications/<sha256>         one marker per notification id
        seen/messages/<sha256>              one marker per grant id + message id
        batches/<batch id>/notifications/   notifications claimed together for one processing run
        batches/<batch id>/grants/<key>.json   a grant's part of the batch is finished
        batches/<batch id>/done.json        the whole batch is finished (its summary)

Accepting a notification (``store``): its envelope is written to ``incoming/``; the notification-id
marker and then the grant + message marker are created with exclusive-create semantics; only when
both are new is the file renamed into ``pending/``. A duplicate (Nylas redelivering the same
notification id, or a provider upsert producing a second notification for the same message) loses
the race for a marker and its file is deleted. If the process dies after the markers but before the
rename, the file stays in ``incoming/``; ``claim_batch`` adopts such orphans after
``ORPHAN_AFTER_S``, so an accepted notification is never lost.

Where the filesystem cannot create exclusively (some object stores), the markers fall back to
check-then-write and two simultaneous deliveries of one message can both get through. That is
harmless: loading is idempotent (deterministic ``activityid`` and a Message-ID lookup), so the second
copy is recorded as ``already_present``.

Markers and finished batches older than ``RETENTION`` are pruned; Nylas retries within about 20
minutes, so a week of markers is ample.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from airflow.sdk import ObjectStoragePath

from nylas_dataverse.pipeline.staging import open_binary
from nylas_dataverse.realtime.notifications import Notification

log = logging.getLogger(__name__)

INBOX_DIR = "_realtime"
FORMAT_VERSION = 1
ORPHAN_AFTER_S = 60.0
RETENTION = dt.timedelta(days=7)
PRUNE_EVERY = dt.timedelta(hours=1)
_MODIFIED_KEYS = ("mtime", "LastModified", "last_modified", "updated", "modified")


class StoreResult(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE_NOTIFICATION = "duplicate_notification"
    DUPLICATE_MESSAGE = "duplicate_message"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _utc(clock: Callable[[], float]) -> dt.datetime:
    return dt.datetime.fromtimestamp(clock(), tz=dt.UTC)


def _remove(path: ObjectStoragePath, *, recursive: bool = False) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.fs.rm(path.path, recursive=recursive)


def _children(folder: ObjectStoragePath) -> list[ObjectStoragePath]:
    try:
        return sorted(folder.iterdir(), key=lambda child: child.name)
    except (FileNotFoundError, NotADirectoryError):
        return []


def create_exclusive(path: ObjectStoragePath, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless it exists; True when this call created it."""
    try:
        with open_binary(path, "xb") as handle:
            handle.write(data)
        return True
    except FileExistsError:
        return False
    except (ValueError, NotImplementedError):
        # This filesystem has no exclusive create; see the module docstring for why that is safe.
        if path.exists():
            return False
        path.write_bytes(data)
        return True


@dataclass(frozen=True)
class Batch:
    """Notifications claimed together; processed by one run, then marked done."""

    id: str
    folder: ObjectStoragePath

    @property
    def notifications_folder(self) -> ObjectStoragePath:
        return self.folder / "notifications"

    def grant_marker(self, grant_key: str) -> ObjectStoragePath:
        return self.folder / "grants" / f"{grant_key}.json"

    def records(self) -> Iterator[dict[str, Any]]:
        """The stored records (``received_at`` + ``notification`` envelope), in arrival order."""
        for path in _children(self.notifications_folder):
            if path.name.endswith(".json"):
                yield json.loads(path.read_bytes())

    @property
    def done(self) -> bool:
        return (self.folder / "done.json").exists()


class Inbox:
    """The inbox under a staging root. Creating one does no I/O."""

    def __init__(self, staging_root: ObjectStoragePath, *, clock: Callable[[], float] = time.time) -> None:
        self.root = staging_root / INBOX_DIR
        self.clock = clock
        self._folders_ready = False

    def __repr__(self) -> str:
        return f"Inbox({self.root})"

    @property
    def incoming(self) -> ObjectStoragePath:
        return self.root / "incoming"

    @property
    def pending(self) -> ObjectStoragePath:
        return self.root / "pending"

    @property
    def batches(self) -> ObjectStoragePath:
        return self.root / "batches"

    def notification_marker(self, notification_id: str) -> ObjectStoragePath:
        return self.root / "seen" / "notifications" / _digest(notification_id)

    def message_marker(self, grant_id: str, message_id: str) -> ObjectStoragePath:
        return self.root / "seen" / "messages" / _digest(grant_id, message_id)

    def _ensure_folders(self) -> None:
        if not self._folders_ready:
            for folder in (self.incoming, self.pending, self.batches, self.root / "seen" / "notifications"):
                folder.mkdir(parents=True, exist_ok=True)
            (self.root / "seen" / "messages").mkdir(parents=True, exist_ok=True)
            self._folders_ready = True

    # Accepting ------------------------------------------------------------------------------------------

    def first_sighting(self, notification: Notification) -> bool:
        """Record the notification id; False when it was seen before (a redelivery)."""
        self._ensure_folders()
        return create_exclusive(self.notification_marker(notification.id), self._marker(notification))

    def store(self, notification: Notification) -> StoreResult:
        """Accept a ``message.created`` notification durably, exactly once per id and per message."""
        if notification.grant_id is None or notification.object_id is None:
            raise ValueError(f"notification {notification.id!r} names no grant and message to store")
        self._ensure_folders()
        received = self.clock()
        name = f"{int(received * 1_000_000):020d}-{_digest(notification.id)[:16]}.json"
        record = {
            "format_version": FORMAT_VERSION,
            "received_at": _utc(lambda: received).isoformat(),
            "notification": dict(notification.envelope),
        }
        staged = self.incoming / name
        staged.write_bytes(json.dumps(record, ensure_ascii=False).encode())
        created: list[ObjectStoragePath] = []
        try:
            if not create_exclusive(self.notification_marker(notification.id), self._marker(notification)):
                _remove(staged)
                return StoreResult.DUPLICATE_NOTIFICATION
            created.append(self.notification_marker(notification.id))
            message_marker = self.message_marker(notification.grant_id, notification.object_id)
            if not create_exclusive(message_marker, self._marker(notification)):
                _remove(staged)
                return StoreResult.DUPLICATE_MESSAGE
            created.append(message_marker)
            staged.rename(self.pending / name)
        except Exception:
            # Undo, so that Nylas' retry of this notification is not mistaken for a duplicate.
            for marker in created:
                _remove(marker)
            _remove(staged)
            raise
        return StoreResult.ACCEPTED

    def _marker(self, notification: Notification) -> bytes:
        # No message content: ids and times only.
        return json.dumps(
            {"notification_id": notification.id, "type": notification.type, "seen_at": self.clock()}
        ).encode()

    # Claiming ---------------------------------------------------------------------------------------------

    def pending_count(self) -> int:
        return sum(1 for path in _children(self.pending) if path.name.endswith(".json"))

    def _orphans(self) -> list[ObjectStoragePath]:
        """Files left in ``incoming/`` by a receiver that died between dedupe and rename."""
        cutoff = (self.clock() - ORPHAN_AFTER_S) * 1_000_000
        orphans = []
        for path in _children(self.incoming):
            stamp = path.name.split("-", 1)[0]
            if stamp.isdigit() and int(stamp) < cutoff:
                orphans.append(path)
        return orphans

    def claim_batch(self) -> Batch | None:
        """Move every pending notification into a new batch; None when nothing is pending.

        A rename that fails because the file is gone means another claimer took it first.
        """
        candidates = [path for path in _children(self.pending) if path.name.endswith(".json")]
        candidates += self._orphans()
        if not candidates:
            return None
        batch_id = f"{_utc(self.clock):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"
        batch = Batch(batch_id, self.batches / batch_id)
        batch.notifications_folder.mkdir(parents=True, exist_ok=True)
        moved = 0
        for path in candidates:
            try:
                path.rename(batch.notifications_folder / path.name)
                moved += 1
            except FileNotFoundError:
                continue
        if moved == 0:
            _remove(batch.folder, recursive=True)
            return None
        log.info("Claimed %d notification(s) as batch %s", moved, batch_id)
        return batch

    def open_batches(self) -> list[Batch]:
        """Claimed batches not yet marked done, oldest first."""
        batches = [Batch(folder.name, folder) for folder in _children(self.batches)]
        return [batch for batch in batches if not batch.done]

    def mark_done(self, batch: Batch, summary: dict[str, Any]) -> None:
        (batch.folder / "done.json").write_bytes(json.dumps(summary, indent=2, sort_keys=True).encode())

    # Housekeeping -----------------------------------------------------------------------------------------

    def prune(self, retention: dt.timedelta = RETENTION, *, force: bool = False) -> int:
        """Delete markers and finished batches older than ``retention``; at most once per hour."""
        now = self.clock()
        stamp = self.root / "pruned_at"
        if not force and stamp.exists():
            try:
                if now - float(stamp.read_text()) < PRUNE_EVERY.total_seconds():
                    return 0
            except ValueError:
                pass
        cutoff = now - retention.total_seconds()
        removed = 0
        for kind in ("notifications", "messages"):
            folder = self.root / "seen" / kind
            try:
                entries = folder.fs.ls(folder.path, detail=True)
            except FileNotFoundError:
                continue
            for entry in entries:
                modified = _modified(entry)
                if modified is not None and modified < cutoff:
                    _remove(folder / str(entry["name"]).rsplit("/", 1)[-1])
                    removed += 1
        for batch in [Batch(folder.name, folder) for folder in _children(self.batches)]:
            claimed = _batch_time(batch.id)
            if batch.done and claimed is not None and claimed < cutoff:
                _remove(batch.folder, recursive=True)
                removed += 1
        self.root.mkdir(parents=True, exist_ok=True)
        stamp.write_text(str(now))
        if removed:
            log.info("Pruned %d markers and finished batches older than %s", removed, retention)
        return removed


def _modified(entry: dict[str, Any]) -> float | None:
    for key in _MODIFIED_KEYS:
        value = entry.get(key)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, dt.datetime):
            return value.timestamp()
    return None


def _batch_time(batch_id: str) -> float | None:
    try:
        claimed = dt.datetime.strptime(batch_id.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ")
        return claimed.replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return None
