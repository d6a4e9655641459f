"""Staging retention: delete message bodies older than each grant's ``retention_days``, on any
``ObjectStoragePath`` (the rule of what is old is ``core/retention.py``).

What goes, once older than the retention:

- in every run folder of a grant (``<dag_id>/<day>/`` and ``<dag_id>/realtime-<batch>/``), the files
  holding message bodies: ``layout.BODY_FILES`` (``messages.jsonl.gz``, ``payloads.jsonl.gz``);
- in the webhook inbox, the stored notifications (full message objects) of finished batches
  (``_realtime/batches/<batch>/notifications/``), by the shortest retention any grant sets.

Everything else stays: manifests, ledgers, reports, load parts, ``failure.json``, the quarantine, the
health summaries, unfinished inbox batches and pending notifications. A grant without ``retention_days``
is not touched. Folders of DAG ids the grants file no longer names are listed, never deleted (nobody
says how long to keep them).

Files are found by listing (there is no other way to find old days), but nothing depends on the order a
store lists in: candidates are sorted before they are logged or deleted, and a file that vanished in the
meantime counts as deleted. Deletes go in chunks (one multi-object delete per chunk on S3) with a
progress line after each chunk that ends more than ``PROGRESS_EVERY_S`` after the last one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core import retention
from nylas_dataverse.core.config import DAG_ID_PREFIX, REALTIME_DAG_ID, GrantConfig
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.settings import RETENTION_DRY_RUN_ENV
from nylas_dataverse.realtime.inbox import Batch, Inbox

log = logging.getLogger(__name__)

DELETE_CHUNK = 200
PROGRESS_EVERY_S = 10.0
INBOX = "(webhook inbox)"


@dataclass(frozen=True)
class Candidate:
    """One file the cleanup deletes (or would): where, whose, which day, how big."""

    path: str  # the store's own path (``fs.rm`` takes it), e.g. ``bucket/prefix/<dag_id>/<day>/messages...``
    owner: str  # the grant key, or INBOX
    day: dt.date
    size: int


@dataclass
class RetentionPlan:
    today: dt.date
    candidates: list[Candidate] = field(default_factory=list)
    kept_grants: list[str] = field(default_factory=list)  # grants without retention_days
    unknown_folders: list[str] = field(default_factory=list)  # DAG folders no grant names

    def tally(self) -> dict[str, retention.Tally]:
        totals: dict[str, retention.Tally] = {}
        for candidate in self.candidates:
            totals.setdefault(candidate.owner, retention.Tally()).add(candidate.size)
        return dict(sorted(totals.items()))

    def total(self) -> retention.Tally:
        total = retention.Tally()
        for candidate in self.candidates:
            total.add(candidate.size)
        return total


def _size(info: Any) -> int:
    size = info.get("size") if isinstance(info, dict) else None
    return int(size) if isinstance(size, int | float) else 0


def _relative(path: str, folder: str) -> list[str] | None:
    prefix = folder.rstrip("/") + "/"
    return path[len(prefix) :].split("/") if path.startswith(prefix) else None


def _files_under(folder: ObjectStoragePath) -> dict[str, Any]:
    """Every file below ``folder`` with its details, in one recursive listing (one paginated LIST on S3)."""
    try:
        found = folder.fs.find(folder.path, detail=True)
    except FileNotFoundError:
        return {}
    return dict(found) if isinstance(found, dict) else {}


def _grant_candidates(root: ObjectStoragePath, grant: GrantConfig, today: dt.date) -> list[Candidate]:
    assert grant.retention_days is not None
    folder = root / grant.dag_id
    found: list[Candidate] = []
    for path, info in _files_under(folder).items():
        parts = _relative(str(path), folder.path)
        if parts is None or len(parts) != 2 or parts[1] not in layout.BODY_FILES:
            continue
        label = parts[0]
        day = retention.label_day(label)
        if day is not None and retention.expired(label, today, grant.retention_days):
            found.append(Candidate(str(path), grant.key, day, _size(info)))
    return found


def _inbox_candidates(root: ObjectStoragePath, days: int, today: dt.date) -> list[Candidate]:
    inbox = Inbox(root)
    batches = inbox.batches
    found: list[Candidate] = []
    done: dict[str, bool] = {}
    for path, info in _files_under(batches).items():
        parts = _relative(str(path), batches.path)
        if parts is None or len(parts) != 3 or parts[1] != "notifications":
            continue
        batch_id = parts[0]
        day = retention.label_day(batch_id)
        if day is None or not retention.expired(batch_id, today, days):
            continue
        if batch_id not in done:  # an unfinished batch still has work to do: its notifications stay
            done[batch_id] = Batch(batch_id, batches / batch_id).done
        if done[batch_id]:
            found.append(Candidate(str(path), INBOX, day, _size(info)))
    return found


def _unknown_folders(root: ObjectStoragePath, grants: Sequence[GrantConfig]) -> list[str]:
    known = {grant.dag_id for grant in grants} | {REALTIME_DAG_ID}
    try:
        entries = root.fs.ls(root.path, detail=True)
    except FileNotFoundError:
        return []
    names = {
        str(entry["name"]).rstrip("/").rsplit("/", 1)[-1] for entry in entries if isinstance(entry, dict)
    }
    return sorted(name for name in names if name.startswith(DAG_ID_PREFIX) and name not in known)


def plan(root: ObjectStoragePath, grants: Sequence[GrantConfig], today: dt.date) -> RetentionPlan:
    """What the cleanup deletes on ``today``; reads listings only."""
    result = RetentionPlan(today)
    with contextlib.suppress(AttributeError, TypeError):
        root.fs.invalidate_cache(root.path)  # listings must show the store as it is now, not as cached
    for grant in sorted(grants, key=lambda g: g.key):
        if grant.retention_days is None:
            result.kept_grants.append(grant.key)
            continue
        result.candidates += _grant_candidates(root, grant, today)
    inbox_days = retention.shortest(grant.retention_days for grant in grants)
    if inbox_days is not None:
        result.candidates += _inbox_candidates(root, inbox_days, today)
    result.candidates.sort(key=lambda c: (c.owner, c.day, c.path))
    result.unknown_folders = _unknown_folders(root, grants)
    return result


def _chunks(items: Sequence[Candidate], size: int) -> Iterable[Sequence[Candidate]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def delete(
    root: ObjectStoragePath,
    candidates: Sequence[Candidate],
    *,
    chunk: int = DELETE_CHUNK,
    clock: Callable[[], float] = time.monotonic,
) -> retention.Tally:
    """Delete ``candidates`` in chunks, logging progress; returns what was deleted."""
    done = retention.Tally()
    total = len(candidates)
    started = last = clock()
    for part in _chunks(candidates, chunk):
        paths = [candidate.path for candidate in part]
        with contextlib.suppress(FileNotFoundError):  # deleted meanwhile: the goal is reached anyway
            root.fs.rm(paths)
        for candidate in part:
            done.add(candidate.size)
        now = clock()
        if now - last >= PROGRESS_EVERY_S and done.files < total:
            last = now
            log.info(
                "Deleted %d of %d files (%s) in %.0f s",
                done.files,
                total,
                retention.human_bytes(done.bytes),
                now - started,
            )
    return done


def run(
    root: ObjectStoragePath, grants: Sequence[GrantConfig], today: dt.date, *, dry_run: bool
) -> dict[str, Any]:
    """Plan, log the plan, and delete unless ``dry_run``; the result is small (counts and bytes)."""
    found = plan(root, grants, today)
    verb = "Would delete" if dry_run else "Deleting"
    for candidate in found.candidates:
        log.info("%s %s (%s, %s)", verb, candidate.path, candidate.day, retention.human_bytes(candidate.size))
    for owner, tally in found.tally().items():
        log.info("%s %s: %d files, %s", verb, owner, tally.files, retention.human_bytes(tally.bytes))
    if found.kept_grants:
        log.info(
            "No retention_days, kept in full: %s (%d grants)",
            ", ".join(found.kept_grants),
            len(found.kept_grants),
        )
    for name in found.unknown_folders:
        log.warning(
            "%s is in staging but no grant of the grants file names it: kept; delete it by hand or with "
            "a bucket lifecycle rule once it is no longer needed",
            root / name,
        )
    total = found.total()
    if dry_run:
        log.info(
            "Dry run: would delete %d files, %s. Trigger with dry_run=false (or set %s=false) to delete.",
            total.files,
            retention.human_bytes(total.bytes),
            RETENTION_DRY_RUN_ENV,
        )
        deleted = retention.Tally()
    else:
        deleted = delete(root, found.candidates)
        log.info("Deleted %d files, %s", deleted.files, retention.human_bytes(deleted.bytes))
    return {
        "today": today.isoformat(),
        "dry_run": dry_run,
        "candidates": total.as_dict(),
        "deleted": deleted.as_dict(),
        "by_owner": {owner: tally.as_dict() for owner, tally in found.tally().items()},
        "kept_grants": len(found.kept_grants),
        "unknown_folders": found.unknown_folders,
    }
