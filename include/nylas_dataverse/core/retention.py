"""When staged message bodies have been kept long enough (pure; ``pipeline/retention.py`` lists and deletes).

A run folder is named by its label: the UTC day it synced (``2026-11-04``) or, for the real-time path,
``realtime-<batch id>`` whose batch id starts with the UTC time the batch was claimed
(``20261104T101502123456Z-…``). Webhook inbox batches are named by the batch id alone. The day a label
names is the day its data belongs to; a folder whose label names no day is never deleted.

``retention_days = N`` keeps the bodies of the last ``N`` whole days before today: on 2026-12-02 with
``N = 30`` the bodies of 2026-11-01 and earlier go, those of 2026-11-02 stay.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

_DAY_LABEL = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
# An optional lowercase prefix ("realtime-"), then a UTC stamp like 20261104T101502123456Z.
_STAMP_LABEL = re.compile(r"(?:[a-z]+-)?([0-9]{4})([0-9]{2})([0-9]{2})T[0-9]{6}[0-9]*Z(?:-.*)?")

MIN_DAYS = 1
MAX_DAYS = 3650


def label_day(label: str) -> dt.date | None:
    """The UTC day a run folder's or inbox batch's label names, or None when it names none."""
    match = _DAY_LABEL.fullmatch(label) or _STAMP_LABEL.fullmatch(label)
    if match is None:
        return None
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def oldest_kept_day(today: dt.date, retention_days: int) -> dt.date:
    """The first day whose bodies are still kept (see the module docstring)."""
    if not MIN_DAYS <= retention_days <= MAX_DAYS:
        raise ValueError(f"retention_days must be from {MIN_DAYS} to {MAX_DAYS} (got {retention_days})")
    return today - dt.timedelta(days=retention_days)


def expired(label: str, today: dt.date, retention_days: int) -> bool:
    """Whether the bodies under ``label`` are older than ``retention_days`` (never for an unknown label)."""
    day = label_day(label)
    return day is not None and day < oldest_kept_day(today, retention_days)


def shortest(retentions: Iterable[int | None]) -> int | None:
    """What applies to data shared by several grants (the webhook inbox): the shortest retention set."""
    chosen = [days for days in retentions if days is not None]
    return min(chosen) if chosen else None


@dataclass
class Tally:
    """Files and bytes, for the cleanup's log and result."""

    files: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += max(size, 0)

    def as_dict(self) -> dict[str, int]:
        return {"files": self.files, "bytes": self.bytes}


def human_bytes(count: int) -> str:
    """``1536`` -> ``1.5 KiB``, for log lines."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover - the loop always returns
