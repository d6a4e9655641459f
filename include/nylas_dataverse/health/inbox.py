"""How the real-time inbox is doing, from its files under ``<staging>/_realtime/`` (``realtime/inbox.py``).

- **depth**: notifications accepted and not yet processed: in ``pending/`` (counting ``retry/``: a failed
  grant's part waiting for its backoff), in ``incoming/`` (a receiver died between accepting and filing
  them; the processor adopts them), and in claimed batches not marked done;
- **oldest pending**: when the oldest of those arrived (the receiver names files by their arrival time);
- **quarantined**: notification files the processor could not read or parse, set aside in ``quarantine/``;
- **receipt-to-row latency**: for the notifications of the newest finished batches, from arrival to the
  moment their grant's part of the batch was finished (its marker file written after the rows were
  created), so an upper bound of the time until the row was visible.

Counts only: nothing here opens a notification (no message content).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import statistics
from dataclasses import dataclass
from typing import Any

from airflow.sdk import ObjectStoragePath

from nylas_dataverse.pipeline import layout

LATENCY_BATCHES = 20  # the newest finished batches sampled for latency
QUARANTINE_DIR = "quarantine"
_MODIFIED_KEYS = ("mtime", "LastModified", "last_modified", "updated", "modified")


@dataclass(frozen=True)
class InboxHealth:
    present: bool  # the inbox exists (the real-time path has received something)
    pending: int
    orphaned: int
    claimed: int  # in open batches
    open_batches: int
    quarantined: int
    oldest_pending_at: dt.datetime | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_max_s: float | None
    latency_samples: int
    last_processed_at: dt.datetime | None

    @property
    def depth(self) -> int:
        return self.pending + self.orphaned + self.claimed

    def oldest_pending_age_s(self, now: dt.datetime) -> float | None:
        return (
            None
            if self.oldest_pending_at is None
            else max(0.0, (now - self.oldest_pending_at).total_seconds())
        )

    def to_json(self, now: dt.datetime) -> dict[str, Any]:
        return {
            "present": self.present,
            "depth": self.depth,
            "pending": self.pending,
            "orphaned": self.orphaned,
            "claimed": self.claimed,
            "open_batches": self.open_batches,
            "quarantined": self.quarantined,
            "oldest_pending_at": self.oldest_pending_at.isoformat(timespec="seconds")
            if self.oldest_pending_at
            else None,
            "oldest_pending_age_s": _round(self.oldest_pending_age_s(now)),
            "latency_s": {
                "p50": _round(self.latency_p50_s),
                "p95": _round(self.latency_p95_s),
                "max": _round(self.latency_max_s),
                "samples": self.latency_samples,
            },
            "last_processed_at": self.last_processed_at.isoformat(timespec="seconds")
            if self.last_processed_at
            else None,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _children(folder: ObjectStoragePath) -> list[ObjectStoragePath]:
    try:
        return sorted(folder.iterdir(), key=lambda child: child.name)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _arrival(name: str) -> dt.datetime | None:
    """The arrival time in a notification file's name: ``<microseconds since the epoch>-<hash>.json``
    (in ``retry/``, after the ``<due>--`` prefix)."""
    stamp = name.rsplit("--", 1)[-1].split("-", 1)[0]
    if not stamp.isdigit():
        return None
    with contextlib.suppress(OverflowError, OSError, ValueError):
        return dt.datetime.fromtimestamp(int(stamp) / 1_000_000, tz=dt.UTC)
    return None


def _modified(path: ObjectStoragePath) -> dt.datetime | None:
    try:
        info = path.fs.info(path.path)
    except (FileNotFoundError, OSError):
        return None
    for key in _MODIFIED_KEYS:
        value = info.get(key)
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None


def _count_files(folder: ObjectStoragePath) -> int:
    """Files under ``folder``, not counting the ``<name>.reason.json`` beside each quarantined record."""
    try:
        return sum(1 for name in folder.fs.find(folder.path) if not str(name).endswith(".reason.json"))
    except (FileNotFoundError, OSError):
        return 0


def _percentile(values: list[float], fraction: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def read_inbox(staging_root: ObjectStoragePath) -> InboxHealth:
    root = staging_root / layout.INBOX_DIR
    pending = [child for child in _children(root / "pending") if child.name.endswith(".json")]
    pending += [child for child in _children(root / "retry") if child.name.endswith(".json")]
    incoming = [child for child in _children(root / "incoming") if child.name.endswith(".json")]
    arrivals = [a for a in (_arrival(child.name) for child in pending + incoming) if a is not None]
    claimed = 0
    open_batches = 0
    finished: list[ObjectStoragePath] = []
    for batch in _children(root / "batches"):
        if (batch / "done.json").exists():
            finished.append(batch)
            continue
        open_batches += 1
        names = [child.name for child in _children(batch / "notifications") if child.name.endswith(".json")]
        claimed += len(names)
        arrivals += [a for a in (_arrival(name) for name in names) if a is not None]

    latencies: list[float] = []
    last_processed: dt.datetime | None = None
    for batch in finished[-LATENCY_BATCHES:]:
        done_at = _modified(batch / "done.json")
        if done_at is not None and (last_processed is None or done_at > last_processed):
            last_processed = done_at
        # Each grant's part is finished (its marker written) after its rows were created; the last of them
        # bounds every notification of the batch.
        finished_at = [
            m for m in (_modified(marker) for marker in _children(batch / "grants")) if m is not None
        ]
        end = max(finished_at) if finished_at else done_at
        if end is None:
            continue
        for child in _children(batch / "notifications"):
            arrived = _arrival(child.name)
            if arrived is not None:
                latencies.append(max(0.0, (end - arrived).total_seconds()))
    latencies.sort()
    return InboxHealth(
        present=root.exists(),
        pending=len(pending),
        orphaned=len(incoming),
        claimed=claimed,
        open_batches=open_batches,
        quarantined=_count_files(root / QUARANTINE_DIR),
        oldest_pending_at=min(arrivals, default=None),
        latency_p50_s=_percentile(latencies, 0.5) if latencies else None,
        latency_p95_s=_percentile(latencies, 0.95) if latencies else None,
        latency_max_s=latencies[-1] if latencies else None,
        latency_samples=len(latencies),
        last_processed_at=last_processed,
    )
