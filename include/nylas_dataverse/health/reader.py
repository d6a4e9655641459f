"""What the health page shows, read from staging through ``ObjectStoragePath`` (so object storage works).

- the **overview** reads one summary per grant (``_summary/<key>.json``, concurrently on object stores)
  and the grant-status markers the webhook receiver wrote (one listing of ``_realtime/grant_status/``);
- a **grant's page** adds the grant's entries of the last ``STRIP_DAYS`` days (failed messages,
  unresolved addresses) and the newest run's ledger (links to the created rows);
- the **real-time inbox** is ``inbox.py``'s.

Only grants in the grants file are shown, and only those the caller passes as readable.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core import health
from nylas_dataverse.core.config import ConfigResult, GrantConfig
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.settings import config_path, load_grants
from nylas_dataverse.pipeline.summary import SummaryStore

log = logging.getLogger(__name__)

MAX_RECORD_LINKS = 50


def grant_info(grant: GrantConfig) -> health.GrantInfo:
    return health.GrantInfo(
        key=grant.key,
        grant_id=grant.grant_id,
        dag_id=grant.dag_id,
        start_date=grant.start_date,
        display_name=grant.display_name,
        email=grant.email,
    )


class GrantsFile:
    """The grants file, parsed again only when it changes (a thousand grants take a while to validate)."""

    def __init__(self, project_root: Path) -> None:
        self.project_root = project_root
        self._lock = threading.Lock()
        self._key: tuple[str, float, int] | None = None
        self._result: ConfigResult | None = None

    def grants(self) -> tuple[GrantConfig, ...]:
        path = config_path(self.project_root)
        try:
            stat = path.stat()
            key = (str(path), stat.st_mtime, stat.st_size)
        except OSError:
            key = (str(path), 0.0, -1)
        with self._lock:
            if self._result is None or key != self._key:
                self._result = load_grants(self.project_root)
                self._key = key
            return tuple(grant for grant in self._result.grants if grant.enabled)


@dataclass(frozen=True)
class Overview:
    rows: list[health.OverviewRow]
    total: int  # readable grants before filtering
    as_of: dt.date
    window_days: int
    status_counts: dict[str, int]


@dataclass(frozen=True)
class CreatedRecord:
    activity_id: str
    internet_message_id: str | None
    day: dt.date


@dataclass(frozen=True)
class GrantPage:
    grant: health.GrantInfo
    row: health.OverviewRow
    summary: health.GrantSummary | None
    chart: list[health.ChartDay]
    failures: list[tuple[health.RunEntry, health.FailedMessage]]
    run_failures: list[health.RunEntry]
    unresolved: list[health.UnresolvedAddress]
    records: list[CreatedRecord]
    marker: health.StatusMarker | None
    entries: list[health.RunEntry] = field(default_factory=list)


def _fingerprint(item: Mapping[str, Any]) -> tuple[Any, ...]:
    """What tells a changed summary from the one read before: the store's ETag, else size and mtime."""
    etag = item.get("ETag") or item.get("etag") or item.get("md5")
    modified = item.get("mtime") or item.get("LastModified") or item.get("last_modified")
    return (item.get("size"), str(etag) if etag else None, str(modified) if modified else None)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class SummaryCache:
    """Parsed summaries by file and fingerprint, shared by the requests of one API server process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], tuple[tuple[Any, ...], dt.date | None, health.GrantSummary]] = {}

    def get(
        self, folder: str, name: str, fingerprint: tuple[Any, ...], since: dt.date | None
    ) -> health.GrantSummary | None:
        with self._lock:
            item = self._items.get((folder, name))
        if item is None or item[0] != fingerprint or item[1] != since:
            return None
        return item[2]

    def put(
        self,
        folder: str,
        name: str,
        fingerprint: tuple[Any, ...],
        since: dt.date | None,
        summary: health.GrantSummary,
    ) -> None:
        with self._lock:
            self._items[(folder, name)] = (fingerprint, since, summary)


SHARED_CACHE = SummaryCache()


class HealthReader:
    """Reads the health page's data under one staging root. Creating one does no I/O."""

    def __init__(
        self,
        root: ObjectStoragePath,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        cache: SummaryCache = SHARED_CACHE,
    ) -> None:
        self.root = root
        self.store = SummaryStore(root, clock=clock)
        self.clock = clock
        self.cache = cache

    def _markers(self, grants: Sequence[GrantConfig]) -> dict[str, health.StatusMarker]:
        """Markers of these grants; one listing, and reads only of the markers that exist."""
        folder = self.root / layout.INBOX_DIR / layout.GRANT_STATUS_DIR
        try:
            present = {child.name for child in folder.iterdir()}
        except (FileNotFoundError, NotADirectoryError):
            return {}
        markers = {}
        for grant in grants:
            if layout.grant_status_marker(grant.grant_id).rsplit("/", 1)[-1] in present:
                marker = self.store.read_grant_status(grant.grant_id)
                if marker is not None:
                    markers[grant.key] = marker
        return markers

    def summaries(
        self, grants: Sequence[GrantConfig], *, since: dt.date | None = None
    ) -> dict[str, health.GrantSummary | None]:
        """Every grant's summary (the days on or after ``since``).

        One listing of ``_summary/`` says which summaries exist and whether they changed since this process
        last read them (size and modification time, or the object store's ETag); only the changed ones are
        fetched, in one ``cat`` call (object stores' filesystems fetch them concurrently).
        """
        fs = self.root.fs
        folder = f"{str(self.root.path).rstrip('/')}/{layout.SUMMARY_DIR}"
        found: dict[str, health.GrantSummary | None] = {grant.key: None for grant in grants}
        try:
            listing = {
                str(item["name"]).rsplit("/", 1)[-1]: _fingerprint(item)
                for item in fs.ls(folder, detail=True)
                if item.get("type") == "file"
            }
        except (FileNotFoundError, NotADirectoryError):
            return found
        wanted: dict[str, tuple[str, tuple[Any, ...]]] = {}
        for grant in grants:
            name = f"{grant.key}.json"
            if name not in listing:
                continue
            cached = self.cache.get(folder, name, listing[name], since)
            if cached is not None:
                found[grant.key] = cached
            else:
                wanted[f"{folder}/{name}"] = (grant.key, listing[name])
        if not wanted:
            return found
        try:
            blobs = fs.cat(list(wanted), on_error="omit")
        except FileNotFoundError:
            blobs = {}
        if isinstance(blobs, bytes):  # fsspec answers one path with its bytes
            blobs = {next(iter(wanted)): blobs}
        by_name = {str(path).rsplit("/", 1)[-1]: blob for path, blob in blobs.items()}
        with _collector_paused():  # tens of thousands of small objects: the cyclic GC would double the time
            for path, (key, fingerprint) in wanted.items():
                name = path.rsplit("/", 1)[-1]
                blob = by_name.get(name)
                if blob is None:
                    continue
                try:
                    summary = health.GrantSummary.from_json(json.loads(blob), since=since)
                except (ValueError, UnicodeDecodeError):
                    log.warning("The summary of %s is not readable; the grant's next run rewrites it", key)
                    continue
                found[key] = summary
                if summary is not None:
                    self.cache.put(folder, name, fingerprint, since, summary)
        return found

    def overview(
        self,
        grants: Iterable[GrantConfig],
        *,
        sort: str = "status",
        descending: bool = False,
        text: str = "",
        status: str = "",
        problems_only: bool = False,
        window_days: int = health.WEEK_DAYS,
    ) -> Overview:
        chosen = list(grants)
        now = self.clock()
        summaries = self.summaries(chosen, since=health.strip_days(health.last_complete_day(now))[0])
        markers = self._markers(chosen)
        rows = [
            health.overview_row(
                grant_info(grant),
                summaries.get(grant.key),
                markers.get(grant.key),
                now=now,
                window_days=window_days,
            )
            for grant in chosen
        ]
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.status.value] = counts.get(row.status.value, 0) + 1
        kept = health.filter_rows(rows, text=text, status=status, problems_only=problems_only)
        return Overview(
            rows=health.sort_rows(kept, sort, descending=descending),
            total=len(rows),
            as_of=health.last_complete_day(now),
            window_days=window_days,
            status_counts=counts,
        )

    def grant_page(self, grant: GrantConfig) -> GrantPage:
        now = self.clock()
        info = grant_info(grant)
        since = health.last_complete_day(now) - dt.timedelta(days=health.STRIP_DAYS - 1)
        summary = self.summaries([grant], since=since)[grant.key]
        marker = self._markers([grant]).get(grant.key)
        entries = self.store.entries(grant.key, since=since)
        failures = [(entry, message) for entry in entries for message in entry.failed_messages]
        run_failures = [entry for entry in entries if entry.failure is not None]
        return GrantPage(
            grant=info,
            row=health.overview_row(info, summary, marker, now=now),
            summary=summary,
            chart=health.chart_days(summary, info, now=now),
            failures=failures,
            run_failures=run_failures,
            unresolved=health.unresolved_addresses(entries, since),
            records=self._created_records(grant, summary),
            marker=marker,
            entries=entries,
        )

    def unresolved(self, grant: GrantConfig, days: int = health.STRIP_DAYS) -> list[health.UnresolvedAddress]:
        since = health.last_complete_day(self.clock()) - dt.timedelta(days=days - 1)
        return health.unresolved_addresses(self.store.entries(grant.key, since=since), since)

    def unresolved_rollup(self, grant: GrantConfig) -> bytes | None:
        """The grant's unresolved addresses over all its kept runs, as report wrote them (CSV), if any."""
        try:
            return (self.root / layout.unresolved_rollup(grant.key)).read_bytes()
        except FileNotFoundError:
            return None

    def _created_records(
        self, grant: GrantConfig, summary: health.GrantSummary | None
    ) -> list[CreatedRecord]:
        """The rows the newest daily run with creations made (from its ledger: ids only, no content)."""
        if summary is None:
            return []
        for row in summary.daily:
            if row.counts is None or not row.counts.created:
                continue
            ledger = self.root / grant.dag_id / row.label / layout.LEDGER
            records: list[CreatedRecord] = []
            try:
                for line in ledger.read_bytes().splitlines():
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if entry.get("outcome") == "created" and isinstance(entry.get("activity_id"), str):
                        records.append(
                            CreatedRecord(entry["activity_id"], entry.get("internet_message_id"), row.day)
                        )
                        if len(records) >= MAX_RECORD_LINKS:
                            break
            except (FileNotFoundError, OSError):
                return []
            return records
        return []


def visible(grants: Iterable[GrantConfig], readable_dag_ids: Collection[str] | None) -> list[GrantConfig]:
    """The grants whose DAG the caller may read (``None``: no restriction, for tools and benchmarks)."""
    return [grant for grant in grants if readable_dag_ids is None or grant.dag_id in readable_dag_ids]
