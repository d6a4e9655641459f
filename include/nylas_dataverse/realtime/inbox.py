"""The durable queue between the webhook receiver and the processor, under ``<staging>/_realtime/``.

Layout (any ``ObjectStoragePath``; the local filesystem in development)::

    _realtime/
        incoming/<received>-<hash>.json     being accepted: written whole, not yet deduplicated
        pending/<received>-<hash>.json      accepted, waiting for the processor
        seen/notifications/<sha256>         one marker per notification id
        seen/messages/<sha256>              one marker per grant id + Nylas id (``nylas_id``)
        batches/<batch id>/notifications/   notifications claimed together for one processing run
        batches/<batch id>/grants/<key>.json   a grant's part of the batch is finished
        batches/<batch id>/claimed.json     every claimed file has been moved in (safe to process)
        batches/<batch id>/done.json        the whole batch is finished (its summary)
        open/<batch id>                     index of the batches not yet done (what a run lists)
        retry/<due>--<name>                 a failed grant's notifications, claimed again once due
        quarantine/<batch id or "receiver">/<name>   records that cannot be used, each with
                                            ``<name>.reason.json`` saying why

Every file is written whole (``staging.write_whole``: a temporary name and a rename on a local disk,
one PUT on object storage), so a receiver killed mid-write never leaves a truncated notification under
a name a claimer adopts. A record that still cannot be read or parsed is moved to ``quarantine/`` by
the processor, which logs its name and counts it in the batch's summary; the batch closes anyway.

A batch takes at most ``BatchLimits.max_notifications`` notifications and ``max_bytes`` bytes of them
(oldest first, always at least one), so a backlog becomes several bounded batches instead of one that
holds everything. A run lists only ``open/``, so its cost does not grow with the finished batches kept
for ``RETENTION``.

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

from nylas_dataverse.pipeline.staging import open_binary, write_whole
from nylas_dataverse.realtime.notifications import Notification
from nylas_dataverse.realtime.settings import BatchLimits

log = logging.getLogger(__name__)

INBOX_DIR = "_realtime"
FORMAT_VERSION = 1
ORPHAN_AFTER_S = 60.0
RETENTION = dt.timedelta(days=7)
PRUNE_EVERY = dt.timedelta(hours=1)
RETRY_FIRST_S = 30.0
RETRY_MAX_S = 3600.0
INDEX_STAMP = "open_index_v1"
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

    def record_paths(self) -> list[ObjectStoragePath]:
        """The stored notification files, in arrival order (their names start with the receipt time)."""
        return [path for path in _children(self.notifications_folder) if path.name.endswith(".json")]

    def records(self) -> Iterator[dict[str, Any]]:
        """The stored records (``received_at`` + ``notification`` envelope), in arrival order."""
        for path in self.record_paths():
            yield json.loads(path.read_bytes())

    @property
    def done(self) -> bool:
        return (self.folder / "done.json").exists()

    @property
    def claimed_marker(self) -> ObjectStoragePath:
        return self.folder / "claimed.json"


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

    def message_marker(self, grant_id: str, nylas_id: str) -> ObjectStoragePath:
        return self.root / "seen" / "messages" / _digest(grant_id, nylas_id)

    @property
    def open_index(self) -> ObjectStoragePath:
        return self.root / "open"

    @property
    def retry(self) -> ObjectStoragePath:
        return self.root / "retry"

    @property
    def quarantine_root(self) -> ObjectStoragePath:
        return self.root / "quarantine"

    def _ensure_folders(self) -> None:
        if not self._folders_ready:
            for folder in (self.incoming, self.pending, self.batches, self.root / "seen" / "notifications"):
                folder.mkdir(parents=True, exist_ok=True)
            (self.root / "seen" / "messages").mkdir(parents=True, exist_ok=True)
            self._folders_ready = True

    # Quarantine ------------------------------------------------------------------------------------------

    def quarantine(self, path: ObjectStoragePath, reason: str, *, source: str) -> ObjectStoragePath:
        """Move a stored record aside with ``<name>.reason.json``; ``source`` is its batch id."""
        folder = self.quarantine_root / source
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / path.name
        write_whole(folder / f"{path.name}.reason.json", _reason(reason, self.clock()))
        with contextlib.suppress(FileNotFoundError):  # moved by an earlier attempt of this run
            path.rename(target)
        return target

    def quarantine_body(self, body: bytes, reason: str) -> ObjectStoragePath:
        """Keep a signed body the receiver could not store as a notification, with why."""
        folder = self.quarantine_root / "receiver"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{int(self.clock() * 1_000_000):020d}-{secrets.token_hex(4)}.body"
        write_whole(folder / f"{name}.reason.json", _reason(reason, self.clock()))
        write_whole(folder / name, body)
        return folder / name

    def quarantined(self) -> list[ObjectStoragePath]:
        """Every quarantined record (not the reasons)."""
        return [
            path
            for folder in _children(self.quarantine_root)
            for path in _children(folder)
            if not path.name.endswith(".reason.json")
        ]

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
        # Unique per delivery: a redelivery arriving in the same microsecond must not share (and, as a
        # duplicate, delete) the first delivery's file.
        name = f"{int(received * 1_000_000):020d}-{_digest(notification.id)[:12]}{secrets.token_hex(2)}.json"
        record = {
            "format_version": FORMAT_VERSION,
            "received_at": _utc(lambda: received).isoformat(),
            "notification": dict(notification.envelope),
        }
        staged = self.incoming / name
        # ASCII escapes keep any text JSON can hold (lone surrogates included) storable as it arrived.
        write_whole(staged, json.dumps(record, ensure_ascii=True).encode())
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
        except Exception as exc:
            if created and self._still_stored(staged, self.pending / name):
                # The markers stand and the file is durable: ``claim_batch`` adopts it from incoming/ after
                # ORPHAN_AFTER_S. Undoing instead would lose it when a concurrent redelivery was already
                # answered as a duplicate of this one.
                log.warning(
                    "Notification %s: storing hit %s; left in incoming/ to be adopted",
                    notification.id,
                    type(exc).__name__,
                )
                return StoreResult.ACCEPTED
            # Undo, so that Nylas' retry of this notification is not mistaken for a duplicate.
            for marker in created:
                _remove(marker)
            _remove(staged)
            raise
        return StoreResult.ACCEPTED

    @staticmethod
    def _still_stored(*paths: ObjectStoragePath) -> bool:
        try:
            return any(path.exists() for path in paths)
        except Exception:  # the store is unreachable: treat it as lost, and let Nylas retry
            return False

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
            if path.name.endswith(".json") and stamp.isdigit() and int(stamp) < cutoff:
                orphans.append(path)
        return orphans

    def _due_retries(self) -> list[ObjectStoragePath]:
        now = self.clock() * 1_000_000
        due = []
        for path in _children(self.retry):
            stamp = path.name.split("--", 1)[0]
            if stamp.isdigit() and int(stamp) <= now:
                due.append(path)
        return due

    def _sizes(self, folder: ObjectStoragePath) -> dict[str, int]:
        try:
            entries = folder.fs.ls(folder.path, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        return {str(entry["name"]).rsplit("/", 1)[-1]: int(entry.get("size") or 0) for entry in entries}

    def claim_batch(self, limits: BatchLimits | None = None) -> Batch | None:
        """Move the oldest pending notifications (within ``limits``) into a new batch; None when none wait.

        Due retries and orphans are claimed too. A rename that fails because the file is gone means
        another claimer took it first.
        """
        limits = limits or BatchLimits.from_env()
        candidates = [(path, path.name) for path in self._due_retries()]
        candidates = [(path, name.split("--", 1)[1]) for path, name in candidates]
        fresh = [path for path in _children(self.pending) if path.name.endswith(".json")]
        fresh += self._orphans()
        candidates += [(path, path.name) for path in fresh]
        if not candidates:
            return None
        candidates.sort(key=lambda item: item[1])
        sizes = {**self._sizes(self.retry), **self._sizes(self.incoming), **self._sizes(self.pending)}
        chosen: list[tuple[ObjectStoragePath, str]] = []
        total = 0
        for path, name in candidates:
            size = sizes.get(path.name, 0)
            if chosen and (len(chosen) >= limits.max_notifications or total + size > limits.max_bytes):
                break
            chosen.append((path, name))
            total += size
        batch_id = f"{_utc(self.clock):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"
        batch = Batch(batch_id, self.batches / batch_id)
        batch.notifications_folder.mkdir(parents=True, exist_ok=True)
        self._index_ready()
        write_whole(self.open_index / batch_id, b"")
        moved = 0
        for path, name in chosen:
            try:
                path.rename(batch.notifications_folder / name)
                moved += 1
            except FileNotFoundError:
                continue
        if moved == 0:
            _remove(self.open_index / batch_id)
            _remove(batch.folder, recursive=True)
            return None
        # Only now may a run process the batch: one listing ``open/`` while files were still moving in
        # would close it with the later files inside, never to be read.
        write_whole(batch.claimed_marker, json.dumps({"notifications": moved}).encode())
        left = len(candidates) - len(chosen)
        log.info(
            "Claimed %d notification(s) (%d bytes) as batch %s%s",
            moved,
            total,
            batch_id,
            f"; {left} more wait for the next batch" if left else "",
        )
        return batch

    def _index_ready(self) -> None:
        """Create ``open/``; once, index the unfinished batches an earlier version left without an entry."""
        stamp = self.root / INDEX_STAMP
        if stamp.exists():
            return
        self.open_index.mkdir(parents=True, exist_ok=True)
        for folder in _children(self.batches):
            if not (folder / "done.json").exists():
                write_whole(self.open_index / folder.name, b"")
        write_whole(stamp, b"")

    def open_batches(self) -> list[Batch]:
        """Claimed batches not yet marked done, oldest first; lists the ``open/`` index only."""
        self._index_ready()
        batches = []
        for entry in _children(self.open_index):
            batch = Batch(entry.name, self.batches / entry.name)
            if batch.done:  # done, but the run stopped before removing the entry
                _remove(entry)
                continue
            if not batch.claimed_marker.exists() and not self._claim_abandoned(batch):
                continue  # still being claimed: the claim's own event brings a run for it
            batches.append(batch)
        return batches

    def _claim_abandoned(self, batch: Batch) -> bool:
        """A batch without ``claimed.json`` whose claim started ``ORPHAN_AFTER_S`` ago: the claimer died
        while moving files in (or an earlier version claimed it). What it holds is processed; whatever it
        had not moved yet is still pending and goes into a later batch."""
        claimed = _batch_time(batch.id)
        return claimed is None or self.clock() - claimed >= ORPHAN_AFTER_S

    def mark_done(self, batch: Batch, summary: dict[str, Any], *, read: set[str] | None = None) -> None:
        """Close the batch. With ``read`` (the file names the run read), any other file still in it was
        moved in after the run listed it and goes back to ``pending/`` first, so closing never strands one."""
        if read is not None:
            for path in batch.record_paths():
                if path.name not in read:
                    log.warning("Batch %s: %s came in after it was read; to pending", batch.id, path.name)
                    with contextlib.suppress(FileNotFoundError):
                        path.rename(self.pending / path.name)
        write_whole(batch.folder / "done.json", json.dumps(summary, indent=2, sort_keys=True).encode())
        _remove(self.open_index / batch.id)

    def complete_claims(self) -> int:
        """Mark every open batch without ``claimed.json`` as claimed; the claimer calls this when it starts,
        since a claim it left unfinished before a restart will never finish. Returns how many."""
        self._index_ready()
        completed = 0
        for entry in _children(self.open_index):
            batch = Batch(entry.name, self.batches / entry.name)
            if not batch.done and not batch.claimed_marker.exists():
                write_whole(batch.claimed_marker, json.dumps({"completed_after_restart": True}).encode())
                completed += 1
        return completed

    def defer(self, batch: Batch, paths: list[ObjectStoragePath]) -> float:
        """Give notifications back for a later batch, each after its own backoff (30 s, doubling with its
        attempts, at most an hour); returns the longest (s).

        Each file keeps its own count, so mail that only shared a batch with a notification failing for
        the tenth time is retried in 30 s, not in an hour alongside it.
        """
        self.retry.mkdir(parents=True, exist_ok=True)
        longest = 0.0
        for path in paths:
            stem, attempt = _attempt(path.name)
            delay = min(RETRY_FIRST_S * 2**attempt, RETRY_MAX_S)
            due = int((self.clock() + delay) * 1_000_000)
            try:
                path.rename(self.retry / f"{due:020d}--{stem}.a{attempt + 1}.json")
            except FileNotFoundError:
                continue
            longest = max(longest, delay)
        return longest or RETRY_FIRST_S

    # Housekeeping -----------------------------------------------------------------------------------------

    def prune(self, retention: dt.timedelta = RETENTION, *, force: bool = False) -> int:
        """Delete markers, finished batches and temporary files older than ``retention``; at most hourly.

        A temporary file in ``incoming/`` is what a receiver killed mid-write leaves; it never held an
        accepted notification (the receiver answers only after the whole file is in place).
        """
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
        for folder, only_temporary in (
            (self.root / "seen" / "notifications", False),
            (self.root / "seen" / "messages", False),
            (self.incoming, True),
        ):
            try:
                entries = folder.fs.ls(folder.path, detail=True)
            except FileNotFoundError:
                continue
            for entry in entries:
                if only_temporary and not str(entry["name"]).endswith(".tmp"):
                    continue
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


def _reason(reason: str, at: float) -> bytes:
    return json.dumps({"reason": reason, "at": _utc(lambda: at).isoformat()}, ensure_ascii=True).encode()


def attempt_of(name: str) -> int:
    """How many times the notification in file ``name`` was deferred before."""
    return _attempt(name)[1]


def _attempt(name: str) -> tuple[str, int]:
    """``<stem>.a<n>.json`` -> (``<stem>``, n); a first-time name has n = 0."""
    stem = name.removesuffix(".json")
    base, dot, suffix = stem.rpartition(".a")
    if dot and suffix.isdigit():
        return base, int(suffix)
    return stem, 0


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
