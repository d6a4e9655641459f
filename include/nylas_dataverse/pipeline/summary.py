"""Per-grant summaries for the health page, kept under ``<staging>/_summary/`` on any ``ObjectStoragePath``.

Each report task (daily or real-time) and each failed task attempt writes one **entry** for its run
(``core/health.RunEntry``), then rebuilds the grant's **summary** (``core/health.GrantSummary``, one
small file the overview reads). Layout (``layout.py``)::

    _summary/<grant key>.json                                  the summary
    _summary/<grant key>/daily/<day>~<stamp>.json              daily entries, one file per version
    _summary/<grant key>/realtime/<day>/<label>~<stamp>.json   real-time entries, by processing day
    _realtime/grant_status/<grant id>.json                     the receiver's grant.expired marker

**Two runs of one grant at once.** Entries are never overwritten: every write is a new file whose name
sorts after the earlier versions of its run (``<label>~<UTC stamp>-<random>``), written whole (one PUT).
The summary is derived from the newest version of every label; a writer reuses the previous summary's
rows for the files it already names and reads only the new ones. Two writers may still overwrite each
other's summary (read, modify, write), so after writing, a writer lists the entries again and compares
them with the names the summary says it was built from; on any difference it rebuilds (a few rounds,
with jitter). The last writer therefore always leaves a summary that covers every entry written before
its check, and an entry written after it comes with its own writer and its own check. A writer that
dies between its entry and its summary leaves the entry, which the next write of that grant picks up.
Superseded versions and entries older than ``KEEP_DAYS`` are pruned by the writers; the summary itself
keeps the last ``SUMMARY_DAYS`` days (what the pages show) and remembers the newest synced day. The
newest-written daily run is kept whatever day it synced, and never pruned: a backfill of an old day is
the grant's latest news (it succeeded, it failed, the grant expired) even though no strip shows its day.

Nothing here is allowed to fail a run: the callers log and carry on if the staging store refuses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gzip
import json
import logging
import random
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core import health
from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.errors import Failure
from nylas_dataverse.core.ledger import Outcome
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.staging import RunStaging, open_binary, write_whole

log = logging.getLogger(__name__)

REALTIME_KEEP_DAYS = 8  # real-time entries are kept this long; their day totals stay in the summary
REBUILD_ROUNDS = 20
_STAMP = "%Y%m%dT%H%M%S%fZ"
_SEPARATOR = "~"


@dataclass(frozen=True)
class EntryName:
    """``<label>~<stamp>-<random>.json``: sorts by label, then by the time it was written."""

    name: str
    label: str
    stamp: str

    @classmethod
    def parse(cls, name: str) -> EntryName | None:
        if not name.endswith(".json") or _SEPARATOR not in name:
            return None
        label, stamp = name.removesuffix(".json").rsplit(_SEPARATOR, 1)
        return cls(name, label, stamp) if label and stamp else None

    @classmethod
    def new(cls, label: str, written_at: dt.datetime) -> EntryName:
        stamp = f"{written_at.astimezone(dt.UTC):{_STAMP}}-{secrets.token_hex(3)}"
        return cls(f"{label}{_SEPARATOR}{stamp}.json", label, stamp)


def _newest(names: Iterable[EntryName]) -> dict[str, EntryName]:
    newest: dict[str, EntryName] = {}
    for name in names:
        if name.label not in newest or name.stamp > newest[name.label].stamp:
            newest[name.label] = name
    return newest


def _latest(names: Iterable[EntryName]) -> EntryName | None:
    """The entry written last, whatever its run (stamps sort by time)."""
    return max(names, key=lambda name: (name.stamp, name.label), default=None)


def _children(folder: ObjectStoragePath) -> list[ObjectStoragePath]:
    try:
        return list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _read_json(path: ObjectStoragePath) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return None


def _remove(path: ObjectStoragePath, *, recursive: bool = False) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.fs.rm(path.path, recursive=recursive)


def _dumps(data: object) -> bytes:
    # "replace": a lone surrogate (JSON can carry one; UTF-8 cannot) must not cost the grant its summary.
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")


class SummaryStore:
    """The summaries under one staging root. Creating one does no I/O."""

    def __init__(
        self,
        root: ObjectStoragePath,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.root = root
        self.clock = clock
        self._sleep = sleep

    def summary_path(self, grant_key: str) -> ObjectStoragePath:
        return self.root / layout.summary_file(grant_key)

    def daily_folder(self, grant_key: str) -> ObjectStoragePath:
        return self.root / layout.summary_entries(grant_key) / layout.SUMMARY_DAILY

    def realtime_folder(self, grant_key: str) -> ObjectStoragePath:
        return self.root / layout.summary_entries(grant_key) / layout.SUMMARY_REALTIME

    # --- reading ------------------------------------------------------------------------------------

    def read_summary(self, grant_key: str) -> health.GrantSummary | None:
        return health.GrantSummary.from_json(_read_json(self.summary_path(grant_key)))

    def _daily_names(self, grant_key: str) -> list[EntryName]:
        names = (EntryName.parse(child.name) for child in _children(self.daily_folder(grant_key)))
        return [name for name in names if name is not None]

    def _realtime_names(self, grant_key: str, day: dt.date) -> list[EntryName]:
        folder = self.realtime_folder(grant_key) / day.isoformat()
        names = (EntryName.parse(child.name) for child in _children(folder))
        return [name for name in names if name is not None]

    def _realtime_days(self, grant_key: str) -> list[dt.date]:
        days = []
        for child in _children(self.realtime_folder(grant_key)):
            with contextlib.suppress(ValueError):
                days.append(dt.date.fromisoformat(child.name))
        return sorted(days)

    def _read_entry(self, path: ObjectStoragePath) -> health.RunEntry | None:
        return health.RunEntry.from_json(_read_json(path))

    def latest_entry(self, grant_key: str, label: str) -> health.RunEntry | None:
        """The newest version of one run's entry (daily labels only)."""
        name = _newest(self._daily_names(grant_key)).get(label)
        return self._read_entry(self.daily_folder(grant_key) / name.name) if name else None

    def entries(self, grant_key: str, since: dt.date) -> list[health.RunEntry]:
        """The newest version of every entry (daily and real-time) on or after ``since``, newest first."""
        found: list[health.RunEntry] = []
        for name in _newest(self._daily_names(grant_key)).values():
            day = _label_day(name.label)
            if day is not None and day >= since:
                entry = self._read_entry(self.daily_folder(grant_key) / name.name)
                if entry is not None:
                    found.append(entry)
        for day in self._realtime_days(grant_key):
            if day < since:
                continue
            folder = self.realtime_folder(grant_key) / day.isoformat()
            for name in _newest(self._realtime_names(grant_key, day)).values():
                entry = self._read_entry(folder / name.name)
                if entry is not None:
                    found.append(entry)
        return sorted(found, key=lambda entry: (entry.day, entry.written_at), reverse=True)

    # --- writing ------------------------------------------------------------------------------------

    def record(self, entry: health.RunEntry) -> None:
        """Write ``entry`` as a new version of its run, then bring the grant's summary up to date."""
        name = EntryName.new(entry.label, entry.written_at)
        if entry.kind is health.EntryKind.REALTIME:
            folder = self.realtime_folder(entry.grant_key) / entry.day.isoformat()
        else:
            folder = self.daily_folder(entry.grant_key)
        folder.mkdir(parents=True, exist_ok=True)
        write_whole(folder / name.name, _dumps(entry.to_json()))
        self.refresh(entry.grant_key)

    def refresh(self, grant_key: str) -> health.GrantSummary:
        """Rebuild the summary until it covers every entry listed after writing it (module docstring)."""
        summary: health.GrantSummary | None = None
        for round_number in range(REBUILD_ROUNDS):
            if round_number:
                self._sleep(random.uniform(0.0, 0.02) * min(round_number, 5))  # out of step with the others
            summary = self._rebuild(grant_key)
            self.summary_path(grant_key).parent.mkdir(parents=True, exist_ok=True)
            write_whole(self.summary_path(grant_key), _dumps(summary.to_json()))
            # Whoever wrote the summary now, it must cover every entry there is now.
            written = self.read_summary(grant_key)
            if written is not None and self._current_sources(grant_key) <= written.sources:
                break
            log.info("The summary of %s changed while it was written; rebuilding it", grant_key)
        else:
            log.warning(
                "The summary of %s was still changing after %d rounds; the next write brings it up to date",
                grant_key,
                REBUILD_ROUNDS,
            )
        self._prune(grant_key)
        assert summary is not None
        return summary

    def _kept_daily(self, grant_key: str, now: dt.datetime) -> dict[str, EntryName]:
        """The newest entry of every daily run the summary shows: its last ``SUMMARY_DAYS`` days, and the
        newest-written run whatever its day."""
        oldest = now.date() - dt.timedelta(days=health.SUMMARY_DAYS)
        newest = _newest(self._daily_names(grant_key))
        kept = {label: name for label, name in newest.items() if (_label_day(label) or dt.date.min) >= oldest}
        latest = _latest(newest.values())
        if latest is not None:
            kept.setdefault(latest.label, latest)
        return kept

    def _kept_realtime_days(self, grant_key: str, now: dt.datetime) -> list[dt.date]:
        oldest = now.date() - dt.timedelta(days=REALTIME_KEEP_DAYS)
        return [day for day in self._realtime_days(grant_key) if day >= oldest]

    def _current_sources(self, grant_key: str) -> frozenset[str]:
        now = self.clock()
        names = {name.name for name in self._kept_daily(grant_key, now).values()}
        for day in self._kept_realtime_days(grant_key, now):
            names.update(name.name for name in _newest(self._realtime_names(grant_key, day)).values())
        return frozenset(names)

    def _rebuild(self, grant_key: str) -> health.GrantSummary:
        now = self.clock()
        previous = self.read_summary(grant_key)
        reusable = {row.source: row for row in previous.daily if row.source} if previous else {}
        daily = self._kept_daily(grant_key, now)
        newest_day = max((d for d in (_label_day(label) for label in daily) if d is not None), default=None)
        week_start = newest_day - dt.timedelta(days=health.WEEK_DAYS - 1) if newest_day else None
        rows: list[health.DailyRow] = []
        week: list[health.RunEntry] = []
        read: list[health.RunEntry] = []
        unreadable: list[str] = []
        for label, name in daily.items():
            day = _label_day(label)
            in_week = day is not None and week_start is not None and day >= week_start
            if name.name in reusable and not in_week:
                rows.append(reusable[name.name])
                continue
            entry = self._read_entry(self.daily_folder(grant_key) / name.name)
            if entry is None:  # not an entry, or pruned meanwhile (then the next listing lacks it too)
                unreadable.append(name.name)
                continue
            rows.append(health.DailyRow.of(entry, name.name))
            read.append(entry)
            if in_week:
                week.append(entry)

        realtime_days: list[health.RealtimeDay] = []
        realtime_sources: dict[str, tuple[str, ...]] = {}
        previous_realtime = {row.day: row for row in previous.realtime} if previous else {}
        for day in self._kept_realtime_days(grant_key, now):
            newest = _newest(self._realtime_names(grant_key, day))
            names = {name.name for name in newest.values()}
            before = set(previous.realtime_sources.get(day.isoformat(), ())) if previous else set()
            folder = self.realtime_folder(grant_key) / day.isoformat()
            if before and before <= names and day in previous_realtime:
                total = previous_realtime[day]  # additions only: add the new entries to the day's total
                to_read = sorted(names - before)
            else:
                total = health.RealtimeDay(day)
                to_read = sorted(names)
            used = set(names) - set(to_read)
            for file_name in to_read:
                entry = self._read_entry(folder / file_name)
                used.add(file_name)
                if entry is None:
                    continue
                total = total.add(entry)
                read.append(entry)
            realtime_days.append(total)
            realtime_sources[day.isoformat()] = tuple(sorted(used))

        return health.build_summary(
            grant_key,
            rows,
            week_entries=week,
            realtime_days=realtime_days,
            realtime_sources=realtime_sources,
            read_entries=read,
            unreadable=unreadable,
            previous=previous,
            now=now,
        )

    def _prune(self, grant_key: str) -> None:
        """Remove superseded versions and entries too old to be shown (best effort).

        Each folder is listed once and only what that listing shows to be superseded or too old is
        removed: an entry another writer adds meanwhile is never touched.
        """
        now = self.clock()
        try:
            oldest = now.date() - dt.timedelta(days=health.KEEP_DAYS)
            names = self._daily_names(grant_key)
            newest = {name.name for name in _newest(names).values()}
            latest = _latest(names)
            for name in names:
                too_old = (_label_day(name.label) or dt.date.max) < oldest and name != latest
                if name.name not in newest or too_old:
                    _remove(self.daily_folder(grant_key) / name.name)
            oldest_realtime = now.date() - dt.timedelta(days=REALTIME_KEEP_DAYS)
            for day in self._realtime_days(grant_key):
                folder = self.realtime_folder(grant_key) / day.isoformat()
                if day < oldest_realtime:
                    _remove(folder, recursive=True)
                    continue
                day_names = self._realtime_names(grant_key, day)
                day_newest = {name.name for name in _newest(day_names).values()}
                for name in day_names:
                    if name.name not in day_newest:
                        _remove(folder / name.name)
        except OSError:
            log.warning("Could not prune the summary entries of %s", grant_key, exc_info=True)

    # --- grant status markers (written by the webhook receiver) ---------------------------------------

    def write_grant_status(
        self, grant_id: str, *, status: str, notification_type: str, notification_id: str, at: dt.datetime
    ) -> None:
        path = self.root / layout.grant_status_marker(grant_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(
            path,
            _dumps(
                {
                    "format_version": health.FORMAT_VERSION,
                    "grant_id": grant_id,
                    "status": status,
                    "type": notification_type,
                    "notification_id": notification_id,
                    "at": at.astimezone(dt.UTC).isoformat(timespec="seconds"),
                }
            ),
        )

    def read_grant_status(self, grant_id: str) -> health.StatusMarker | None:
        data = _read_json(self.root / layout.grant_status_marker(grant_id))
        if not isinstance(data, dict) or data.get("grant_id") != grant_id:
            return None
        try:
            at = dt.datetime.fromisoformat(str(data["at"]))
        except (KeyError, ValueError):
            return None
        status = data.get("status")
        kind = data.get("type")
        return health.StatusMarker(
            str(status) if status else "expired",
            at if at.tzinfo else at.replace(tzinfo=dt.UTC),
            str(kind) if kind else None,
        )


def _label_day(label: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(label)
    except ValueError:
        return None


# --- what the report task and the failure path record ----------------------------------------------------


def current_run() -> health.RunRef | None:
    """The Airflow task instance running this code, if any (a run outside Airflow has none)."""
    try:
        from airflow.sdk import get_current_context

        context = get_current_context()
    except Exception:  # not inside a task: tests, drills, the command line
        return None
    ti = context.get("ti")
    run_id = context.get("run_id") or getattr(ti, "run_id", None)
    dag_id = getattr(ti, "dag_id", None)
    if not run_id or not dag_id:
        return None
    try_number = getattr(ti, "try_number", None)
    return health.RunRef(str(dag_id), str(run_id), try_number if isinstance(try_number, int) else None)


def _jsonl(path: ObjectStoragePath) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else None
    with open_binary(path, "rb") as raw:
        stream: Any = opener(raw) if opener else raw
        with stream:
            for line in stream:
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if isinstance(record, dict):
                        yield record


def failed_messages(
    staging: RunStaging, limit: int = health.MAX_FAILED_DETAILS
) -> list[health.FailedMessage]:
    """The run's failed messages with their sender and subject (never their bodies), at most ``limit``.

    The ledger names them; transform's decisions give the subject and sender of those that reached load;
    the staged messages those of messages that could not be parsed or mapped. Only read when the report
    counted failures.
    """
    failed: dict[str, dict[str, Any]] = {}
    for record in _jsonl(staging.file(layout.LEDGER)):
        if record.get("outcome") == Outcome.FAILED.value and isinstance(record.get("nylas_id"), str):
            failed[record["nylas_id"]] = record
            if len(failed) >= limit:
                break
    if not failed:
        return []
    found: dict[str, tuple[str | None, str | None]] = {}
    with contextlib.suppress(OSError, EOFError):
        for record in _jsonl(staging.file(layout.DECISIONS)):
            email = record.get("email")
            if record.get("nylas_id") in failed and isinstance(email, dict):
                found[record["nylas_id"]] = (_opt(email.get("sender")), _opt(email.get("subject")))
    if len(found) < len(failed):
        with contextlib.suppress(OSError, EOFError):
            for record in _jsonl(staging.file(layout.MESSAGES)):
                nylas_id = record.get("id")
                if nylas_id in failed and nylas_id not in found:
                    found[nylas_id] = (_first_address(record.get("from")), _opt(record.get("subject")))
    messages = []
    for nylas_id, record in failed.items():
        sender, subject = found.get(nylas_id, (None, None))
        messages.append(
            health.FailedMessage(
                nylas_id=nylas_id,
                reason=str(record.get("reason") or "unknown"),
                internet_message_id=_opt(record.get("internet_message_id")),
                sender=sender,
                subject=health.clip(subject, 400) if subject else None,
            )
        )
    return messages


def _opt(value: object) -> str | None:
    """Text as the health page can show it: a lone surrogate (staged as Nylas sent it) becomes U+FFFD."""
    if not isinstance(value, str) or not value:
        return None
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _first_address(value: object) -> str | None:
    if isinstance(value, list):
        for participant in value:
            if isinstance(participant, dict) and isinstance(participant.get("email"), str):
                return _opt(participant["email"])
    return None


def record_report(
    grant: GrantConfig, staging: RunStaging, report: dict[str, Any], *, failure: Failure | None
) -> None:
    """After report.json: the run's entry, with ``failure`` when the report itself fails the run."""
    now = dt.datetime.now(dt.UTC)
    extract = staging.read_json(layout.EXTRACT_MANIFEST) or {}
    transform = staging.read_json(layout.TRANSFORM_MANIFEST) or {}
    load = staging.read_json(layout.LOAD_MANIFEST) or {}
    counts = report.get("counts") or {}
    top = transform.get("unresolved_top")
    entry = health.entry_from_report(
        report,
        grant_key=grant.key,
        label=staging.label,
        written_at=now,
        throttle_wait_s=float(load.get("throttle_wait_s") or 0.0),
        mailbox=extract.get("grant_email") or grant.email,
        provider=extract.get("provider"),
        unresolved_top=[(str(a), int(n)) for a, n in top] if isinstance(top, list) else [],
        failed_messages=failed_messages(staging) if counts.get("failed") else [],
        failure=_run_failure("report", failure, final=True, at=now) if failure else None,
        run=current_run(),
    )
    SummaryStore(staging.root).record(entry)


def record_failure(
    grant: GrantConfig, staging: RunStaging, task: str, failure: Failure, *, final: bool
) -> None:
    """After a failed task attempt (failure.json): the run's entry says so; its earlier counts stay."""
    now = dt.datetime.now(dt.UTC)
    store = SummaryStore(staging.root)
    daily = not staging.label.startswith(layout.REALTIME_LABEL_PREFIX)
    previous = store.latest_entry(grant.key, staging.label) if daily else None
    entry = health.entry_with_failure(
        previous,
        _run_failure(task, failure, final=final, at=now),
        grant_key=grant.key,
        label=staging.label,
        written_at=now,
        run=current_run(),
    )
    if entry.mailbox is None and grant.email:
        entry = dataclasses.replace(entry, mailbox=grant.email)
    store.record(entry)


def _run_failure(task: str, failure: Failure, *, final: bool, at: dt.datetime) -> health.RunFailure:
    return health.RunFailure(
        kind=failure.kind.value,
        message=failure.one_line(),
        task=task,
        remedy=failure.remedy,
        final=final,
        at=at.isoformat(timespec="seconds"),
    )
