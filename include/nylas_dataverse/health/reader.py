"""What the health page shows, read from staging through ``ObjectStoragePath`` (so object storage works).

- the **overview** reads one summary per grant (``_summary/<key>.json``, in parallel) and the grant-status
  markers the webhook receiver wrote (one listing of ``_realtime/grant_status/``);
- a **grant's page** adds the grant's entries of the last ``STRIP_DAYS`` days (failed messages,
  unresolved addresses) and the newest run's ledger (links to the created rows);
- the **real-time inbox** is ``inbox.py``'s.

Only grants in the grants file are shown, and only those the caller passes as readable.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core import health
from nylas_dataverse.core.config import ConfigResult, GrantConfig
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.settings import config_path, load_grants
from nylas_dataverse.pipeline.summary import SummaryStore

log = logging.getLogger(__name__)

READ_THREADS = 16  # object stores answer one small GET in tens of milliseconds: read many at once
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


class HealthReader:
    """Reads the health page's data under one staging root. Creating one does no I/O."""

    def __init__(
        self,
        root: ObjectStoragePath,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        threads: int = READ_THREADS,
    ) -> None:
        self.root = root
        self.store = SummaryStore(root, clock=clock)
        self.clock = clock
        self.threads = threads

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

    def summaries(self, grants: Sequence[GrantConfig]) -> dict[str, health.GrantSummary | None]:
        if len(grants) <= 1 or self.threads <= 1:
            return {grant.key: self.store.read_summary(grant.key) for grant in grants}
        with ThreadPoolExecutor(max_workers=min(self.threads, len(grants))) as pool:
            found = pool.map(lambda grant: (grant.key, self.store.read_summary(grant.key)), grants)
            return dict(found)

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
        summaries = self.summaries(chosen)
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
        summary = self.store.read_summary(grant.key)
        marker = self._markers([grant]).get(grant.key)
        since = health.last_complete_day(now) - dt.timedelta(days=health.STRIP_DAYS - 1)
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
