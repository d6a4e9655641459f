"""Sync health, as pure values: one entry per run of a grant, the per-grant summary built from them, and
the overview row, calendar strip and grant status the health page shows.

The report task turns each finished run (and the failure path each failed task attempt) into a
``RunEntry``; ``pipeline/summary.py`` stores entries and keeps a compact ``GrantSummary`` per grant that
``build_summary`` derives from them. The health page reads only summaries for its overview, so it costs
one small file per grant, however many days each has.

Words used here:

- a **daily** entry is the run of one UTC day (label ``2026-11-03``); a **realtime** entry is one grant's
  part of a webhook batch (label ``realtime-<batch id>``), counted under the UTC day it was processed.
- the **strip** is the last ``STRIP_DAYS`` complete UTC days (ending yesterday), one ``DayState`` each;
  counts of the "last 7 days" add the daily and real-time entries of the ``WEEK_DAYS`` days ending today
  (today has real-time entries only); the unresolved addresses are those of the week ending on the newest
  daily run's day.
- **grant status**: ``expired`` when the newest evidence about the grant is that it expired or was
  revoked (a run that failed with ``grant_expired``, or a ``grant.expired`` notification) and no run
  succeeded after it; ``failing`` when its newest daily run failed for another reason and gave up;
  ``no_runs`` when nothing was recorded; else ``ok``.

Entries hold counts, reasons, Dataverse error codes, and for failed messages only their sender and
subject; never bodies, tokens or secrets.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

FORMAT_VERSION = 1
STRIP_DAYS = 30
WEEK_DAYS = 7
KEEP_DAYS = 90  # days of run entries kept in staging (a grant's page reads the last STRIP_DAYS of them)
SUMMARY_DAYS = 31  # days a summary keeps (what the overview and the chart show), and the newest-written run
REALTIME_LABEL_PREFIX = "realtime-"
MAX_FAILED_DETAILS = 100  # failed messages described per run (sender, subject, reason)
MAX_UNRESOLVED_PER_RUN = 200  # unresolved addresses kept per run, most frequent first
MAX_MESSAGE_CHARS = 300  # a run failure's message, as the overview shows it
_DATAVERSE_CODE = re.compile(r"0x[0-9a-fA-F]{8}")

OUTCOMES = ("created", "already_present", "skipped", "failed")


class EntryKind(StrEnum):
    DAILY = "daily"
    REALTIME = "realtime"


class DayState(StrEnum):
    """One cell of the calendar strip."""

    SYNCED = "synced"  # the day's run finished, no message failed
    MESSAGES_FAILED = "messages_failed"  # the run finished, some messages failed (see the grant page)
    RUN_FAILED = "run_failed"  # a task failed and gave up (or the report judged too many failures)
    RETRYING = "retrying"  # a task attempt failed and Airflow will try again
    MISSING = "missing"  # no run recorded for a day the grant should have synced
    NOT_STARTED = "not_started"  # before the grant's start_date


PROBLEM_STATES = frozenset(
    {DayState.MESSAGES_FAILED, DayState.RUN_FAILED, DayState.RETRYING, DayState.MISSING}
)


class GrantStatus(StrEnum):
    OK = "ok"
    EXPIRED = "expired"
    FAILING = "failing"
    NO_RUNS = "no_runs"


GRANT_EXPIRED_KIND = "grant_expired"


def kind_of_label(label: str) -> EntryKind:
    return EntryKind.REALTIME if label.startswith(REALTIME_LABEL_PREFIX) else EntryKind.DAILY


def dataverse_code(reason: str | None) -> str | None:
    """Dataverse's error code in a ledger reason such as ``dataverse_400: 0x80040203 ...``."""
    if not reason:
        return None
    match = _DATAVERSE_CODE.search(reason)
    return match.group(0).lower() if match else None


def reason_code(reason: str | None) -> str | None:
    """The text before the first ':' of a ledger reason (``dataverse_400``, ``invalid_message``)."""
    return None if not reason else reason.split(":", 1)[0].strip()


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _float(value: object, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _when(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _day(value: object) -> dt.date | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- one run ---------------------------------------------------------------------------------------------


# Not frozen, for speed: the overview of 1,000 grants builds ~40,000 of these, and a frozen dataclass's
# __init__ is about six times slower. Nothing changes them after construction.
@dataclass(slots=True)
class Counts:
    extracted: int = 0
    created: int = 0
    already_present: int = 0
    skipped: int = 0
    failed: int = 0

    @classmethod
    def from_json(cls, data: object) -> Counts:
        if not isinstance(data, Mapping):
            return cls()
        return cls(**{name: _int(data.get(name)) for name in ("extracted", *OUTCOMES)})

    def to_json(self) -> dict[str, int]:
        return {
            "extracted": self.extracted,
            "created": self.created,
            "already_present": self.already_present,
            "skipped": self.skipped,
            "failed": self.failed,
        }

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.extracted + other.extracted,
            self.created + other.created,
            self.already_present + other.already_present,
            self.skipped + other.skipped,
            self.failed + other.failed,
        )


@dataclass(frozen=True)
class RunFailure:
    """A failed task attempt of a run: what ``failure.json`` says, and whether Airflow gave up."""

    kind: str
    message: str
    task: str | None = None
    remedy: str | None = None
    final: bool = True
    at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "task": self.task,
            "remedy": self.remedy,
            "final": self.final,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, data: object) -> RunFailure | None:
        if not isinstance(data, Mapping) or not _text(data.get("kind")):
            return None
        return cls(
            kind=str(data["kind"]),
            message=_text(data.get("message")) or "",
            task=_text(data.get("task")),
            remedy=_text(data.get("remedy")),
            final=data.get("final") is not False,
            at=_text(data.get("at")),
        )


@dataclass(frozen=True)
class FailedMessage:
    """A message that failed: its ids, the reason, and (no body) its sender and subject."""

    nylas_id: str
    reason: str
    internet_message_id: str | None = None
    sender: str | None = None
    subject: str | None = None

    @property
    def code(self) -> str | None:
        return reason_code(self.reason)

    @property
    def dataverse_code(self) -> str | None:
        return dataverse_code(self.reason)

    def to_json(self) -> dict[str, Any]:
        return {
            "nylas_id": self.nylas_id,
            "reason": self.reason,
            "internet_message_id": self.internet_message_id,
            "sender": self.sender,
            "subject": self.subject,
        }

    @classmethod
    def from_json(cls, data: object) -> FailedMessage | None:
        if not isinstance(data, Mapping) or not _text(data.get("nylas_id")):
            return None
        return cls(
            nylas_id=str(data["nylas_id"]),
            reason=_text(data.get("reason")) or "unknown",
            internet_message_id=_text(data.get("internet_message_id")),
            sender=_text(data.get("sender")),
            subject=_text(data.get("subject")),
        )


@dataclass(frozen=True)
class RunRef:
    """The Airflow task instance that wrote an entry (for links to the run)."""

    dag_id: str
    run_id: str
    try_number: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"dag_id": self.dag_id, "run_id": self.run_id, "try_number": self.try_number}

    @classmethod
    def from_json(cls, data: object) -> RunRef | None:
        if not isinstance(data, Mapping) or not _text(data.get("dag_id")) or not _text(data.get("run_id")):
            return None
        try_number = data.get("try_number")
        return cls(
            str(data["dag_id"]), str(data["run_id"]), try_number if isinstance(try_number, int) else None
        )


@dataclass(frozen=True)
class RunEntry:
    """What one run of one grant left for monitors: counts when it got as far as the report, and the failure
    that stopped it, if any."""

    grant_key: str
    label: str
    day: dt.date
    written_at: dt.datetime
    counts: Counts | None = None
    failure: RunFailure | None = None
    failed_by_reason: Mapping[str, int] = field(default_factory=dict)
    unresolved_addresses: int = 0
    unresolved_top: tuple[tuple[str, int], ...] = ()
    throttled: int = 0
    throttle_wait_s: float = 0.0
    mailbox: str | None = None
    provider: str | None = None
    run: RunRef | None = None
    failed_messages: tuple[FailedMessage, ...] = ()

    @property
    def kind(self) -> EntryKind:
        return kind_of_label(self.label)

    @property
    def succeeded(self) -> bool:
        """The run reached its report and nothing stopped it (messages may still have failed)."""
        return self.counts is not None and self.failure is None

    def state(self) -> DayState:
        if self.failure is not None:
            return DayState.RUN_FAILED if self.failure.final else DayState.RETRYING
        if self.counts is None:
            return DayState.MISSING
        return DayState.MESSAGES_FAILED if self.counts.failed else DayState.SYNCED

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "grant_key": self.grant_key,
            "label": self.label,
            "kind": self.kind.value,
            "day": self.day.isoformat(),
            "written_at": self.written_at.isoformat(timespec="seconds"),
            "counts": None if self.counts is None else self.counts.to_json(),
            "failure": None if self.failure is None else self.failure.to_json(),
            "failed_by_reason": dict(sorted(self.failed_by_reason.items())),
            "unresolved_addresses": self.unresolved_addresses,
            "unresolved_top": [[address, count] for address, count in self.unresolved_top],
            "throttled": self.throttled,
            "throttle_wait_s": round(self.throttle_wait_s, 3),
            "mailbox": self.mailbox,
            "provider": self.provider,
            "run": None if self.run is None else self.run.to_json(),
            "failed_messages": [message.to_json() for message in self.failed_messages],
        }

    @classmethod
    def from_json(cls, data: object) -> RunEntry | None:
        """An entry from its file, or None when it is not one (a reader skips it, never fails on it)."""
        if not isinstance(data, Mapping) or data.get("format_version") != FORMAT_VERSION:
            return None
        key, label = _text(data.get("grant_key")), _text(data.get("label"))
        day, written_at = _day(data.get("day")), _when(data.get("written_at"))
        if key is None or label is None or day is None or written_at is None:
            return None
        counts = data.get("counts")
        top = data.get("unresolved_top")
        failed = data.get("failed_messages")
        by_reason = data.get("failed_by_reason")
        return cls(
            grant_key=key,
            label=label,
            day=day,
            written_at=written_at,
            counts=Counts.from_json(counts) if isinstance(counts, Mapping) else None,
            failure=RunFailure.from_json(data.get("failure")),
            failed_by_reason=(
                {str(k): _int(v) for k, v in by_reason.items()} if isinstance(by_reason, Mapping) else {}
            ),
            unresolved_addresses=_int(data.get("unresolved_addresses")),
            unresolved_top=tuple(
                (str(item[0]), _int(item[1]))
                for item in (top if isinstance(top, list) else [])
                if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
            ),
            throttled=_int(data.get("throttled")),
            throttle_wait_s=_float(data.get("throttle_wait_s")),
            mailbox=_text(data.get("mailbox")),
            provider=_text(data.get("provider")),
            run=RunRef.from_json(data.get("run")),
            failed_messages=tuple(
                message
                for message in (
                    FailedMessage.from_json(item) for item in (failed if isinstance(failed, list) else [])
                )
                if message is not None
            ),
        )


def processing_day(label: str, written_at: dt.datetime) -> dt.date:
    """The day an entry counts under: the daily run's own day, or the day a real-time batch was processed."""
    if kind_of_label(label) is EntryKind.DAILY:
        day = _day(label)
        if day is not None:
            return day
    return written_at.astimezone(dt.UTC).date()


def entry_from_report(
    report: Mapping[str, Any],
    *,
    grant_key: str,
    label: str,
    written_at: dt.datetime,
    throttle_wait_s: float = 0.0,
    mailbox: str | None = None,
    provider: str | None = None,
    unresolved_top: Iterable[tuple[str, int]] = (),
    failed_messages: Iterable[FailedMessage] = (),
    failure: RunFailure | None = None,
    run: RunRef | None = None,
) -> RunEntry:
    """The entry for a run whose report was written (``report`` is ``report.json``'s content)."""
    requests = report.get("requests")
    by_reason = report.get("failed_by_reason")
    return RunEntry(
        grant_key=grant_key,
        label=label,
        day=processing_day(label, written_at),
        written_at=written_at,
        counts=Counts.from_json(report.get("counts")),
        failure=failure,
        failed_by_reason=(
            {str(k): _int(v) for k, v in by_reason.items()} if isinstance(by_reason, Mapping) else {}
        ),
        unresolved_addresses=_int(report.get("unresolved_addresses")),
        unresolved_top=top_addresses(unresolved_top, MAX_UNRESOLVED_PER_RUN),
        throttled=_int(requests.get("dataverse_throttled")) if isinstance(requests, Mapping) else 0,
        throttle_wait_s=throttle_wait_s,
        mailbox=mailbox,
        provider=provider,
        run=run,
        failed_messages=tuple(failed_messages)[:MAX_FAILED_DETAILS],
    )


def entry_with_failure(
    previous: RunEntry | None,
    failure: RunFailure,
    *,
    grant_key: str,
    label: str,
    written_at: dt.datetime,
    run: RunRef | None = None,
) -> RunEntry:
    """The entry after a failed task attempt: the failure recorded, earlier counts of the day kept."""
    if previous is not None and previous.label == label:
        return replace(previous, failure=failure, written_at=written_at, run=run or previous.run)
    return RunEntry(
        grant_key=grant_key,
        label=label,
        day=processing_day(label, written_at),
        written_at=written_at,
        failure=failure,
        run=run,
    )


def top_addresses(pairs: Iterable[tuple[str, int]], limit: int) -> tuple[tuple[str, int], ...]:
    """Addresses by descending count (then alphabetically), casefolded and merged, at most ``limit``."""
    counter: Counter[str] = Counter()
    for address, count in pairs:
        counter[address.casefold()] += count
    return tuple(sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:limit])


# --- the per-grant summary -------------------------------------------------------------------------------

DAILY_FIELDS = (
    "day",
    "label",
    "written_at",
    "run_id",
    "extracted",
    "created",
    "already_present",
    "skipped",
    "failed",
    "unresolved",
    "throttled",
    "throttle_wait_s",
    "failure_kind",
    "failure_final",
    "failure_message",
    "source",
)
REALTIME_FIELDS = (
    "day",
    "batches",
    "extracted",
    "created",
    "already_present",
    "skipped",
    "failed",
    "throttled",
    "throttle_wait_s",
)


@dataclass(slots=True)
class DailyRow:
    """A daily entry as the summary keeps it: no failed-message details, no address lists."""

    day: dt.date
    label: str
    written_at: dt.datetime
    run_id: str | None
    counts: Counts | None
    unresolved: int
    throttled: int
    throttle_wait_s: float
    failure_kind: str | None
    failure_final: bool
    failure_message: str | None
    source: str | None = None  # the entry file this row was made from

    @classmethod
    def of(cls, entry: RunEntry, source: str | None = None) -> DailyRow:
        failure = entry.failure
        return cls(
            day=entry.day,
            label=entry.label,
            written_at=entry.written_at,
            run_id=entry.run.run_id if entry.run else None,
            counts=entry.counts,
            unresolved=entry.unresolved_addresses,
            throttled=entry.throttled,
            throttle_wait_s=entry.throttle_wait_s,
            failure_kind=failure.kind if failure else None,
            failure_final=failure.final if failure else False,
            failure_message=clip(failure.message) if failure else None,
            source=source,
        )

    def state(self) -> DayState:
        if self.failure_kind is not None:
            return DayState.RUN_FAILED if self.failure_final else DayState.RETRYING
        if self.counts is None:
            return DayState.MISSING
        return DayState.MESSAGES_FAILED if self.counts.failed else DayState.SYNCED

    @property
    def succeeded(self) -> bool:
        return self.counts is not None and self.failure_kind is None

    def to_row(self) -> list[Any]:
        c = self.counts
        return [
            self.day.isoformat(),
            self.label,
            self.written_at.isoformat(timespec="seconds"),
            self.run_id,
            *(
                [c.extracted, c.created, c.already_present, c.skipped, c.failed]
                if c is not None
                else [None] * 5
            ),
            self.unresolved,
            self.throttled,
            round(self.throttle_wait_s, 3),
            self.failure_kind,
            self.failure_final,
            self.failure_message,
            self.source,
        ]

    @classmethod
    def from_row(cls, row: object) -> DailyRow | None:
        """A row of the summary file, or None when it is not one (the overview reads 90,000 of these)."""
        if not isinstance(row, list) or len(row) != len(DAILY_FIELDS):
            return None
        (day_text, label, written, run_id, extracted, created, present, skipped, failed) = row[:9]
        (unresolved, throttled, waited, failure_kind, failure_final, failure_message, source) = row[9:]
        try:
            day = dt.date.fromisoformat(day_text)
            written_at = dt.datetime.fromisoformat(written)
        except (TypeError, ValueError):
            return None
        if not isinstance(label, str):
            return None
        counts = None
        if type(created) is int:
            counts = Counts(_int(extracted), created, _int(present), _int(skipped), _int(failed))
        return cls(
            day,
            label,
            written_at if written_at.tzinfo else written_at.replace(tzinfo=dt.UTC),
            run_id if type(run_id) is str else None,
            counts,
            unresolved if type(unresolved) is int else 0,
            throttled if type(throttled) is int else 0,
            _float(waited),
            failure_kind if type(failure_kind) is str and failure_kind else None,
            failure_final is True,
            failure_message if type(failure_message) is str else None,
            source if type(source) is str else None,
        )


@dataclass(slots=True)
class RealtimeDay:
    """The real-time batches of one processing day, added up."""

    day: dt.date
    batches: int = 0
    counts: Counts = field(default_factory=Counts)
    throttled: int = 0
    throttle_wait_s: float = 0.0

    def add(self, entry: RunEntry) -> RealtimeDay:
        return RealtimeDay(
            self.day,
            self.batches + 1,
            self.counts + (entry.counts or Counts()),
            self.throttled + entry.throttled,
            self.throttle_wait_s + entry.throttle_wait_s,
        )

    def to_row(self) -> list[Any]:
        c = self.counts
        return [
            self.day.isoformat(),
            self.batches,
            c.extracted,
            c.created,
            c.already_present,
            c.skipped,
            c.failed,
            self.throttled,
            round(self.throttle_wait_s, 3),
        ]

    @classmethod
    def from_row(cls, row: object) -> RealtimeDay | None:
        if not isinstance(row, list) or len(row) != len(REALTIME_FIELDS):
            return None
        day_text, batches, extracted, created, present, skipped, failed, throttled, waited = row
        day = _day(day_text)
        if day is None:
            return None
        return cls(
            day,
            _int(batches),
            Counts(_int(extracted), _int(created), _int(present), _int(skipped), _int(failed)),
            _int(throttled),
            _float(waited),
        )


@dataclass(frozen=True)
class GrantSummary:
    """Everything the overview needs about one grant, in one small file (``_summary/<grant key>.json``)."""

    grant_key: str
    updated_at: dt.datetime
    daily: tuple[DailyRow, ...] = ()  # newest day first, at most one per day
    realtime: tuple[RealtimeDay, ...] = ()  # newest day first
    realtime_sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # day -> entry files
    mailbox: str | None = None
    provider: str | None = None
    last_synced_day: dt.date | None = None
    last_success_at: dt.datetime | None = None
    last_failure: RunFailure | None = None  # of the newest daily entry, when it failed
    last_expired_at: dt.datetime | None = None  # newest run that failed with grant_expired
    unresolved_week: int = 0  # distinct unresolved addresses of the week ending on the newest day
    unresolved_week_through: dt.date | None = None
    unreadable: tuple[str, ...] = ()  # entry files seen but not usable (counted as covered)

    def daily_by_day(self) -> dict[dt.date, DailyRow]:
        return {row.day: row for row in self.daily}

    @property
    def sources(self) -> frozenset[str]:
        """The entry files this summary was built from (what a writer compares with the listing)."""
        names = {row.source for row in self.daily if row.source}
        for day_sources in self.realtime_sources.values():
            names.update(day_sources)
        names.update(self.unreadable)
        return frozenset(names)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "grant_key": self.grant_key,
            "updated_at": self.updated_at.isoformat(timespec="seconds"),
            "mailbox": self.mailbox,
            "provider": self.provider,
            "last_synced_day": self.last_synced_day.isoformat() if self.last_synced_day else None,
            "last_success_at": self.last_success_at.isoformat(timespec="seconds")
            if self.last_success_at
            else None,
            "last_failure": self.last_failure.to_json() if self.last_failure else None,
            "last_expired_at": self.last_expired_at.isoformat(timespec="seconds")
            if self.last_expired_at
            else None,
            "unresolved_week": self.unresolved_week,
            "unresolved_week_through": self.unresolved_week_through.isoformat()
            if self.unresolved_week_through
            else None,
            "daily_fields": list(DAILY_FIELDS),
            "daily": [row.to_row() for row in self.daily],
            "realtime_fields": list(REALTIME_FIELDS),
            "realtime": [row.to_row() for row in self.realtime],
            "realtime_sources": {day: list(names) for day, names in sorted(self.realtime_sources.items())},
            "unreadable": list(self.unreadable),
        }

    @classmethod
    def from_json(cls, data: object, *, since: dt.date | None = None) -> GrantSummary | None:
        """The summary in ``data``; with ``since``, only the days on or after it (what a page shows: a
        partial summary, never written back)."""
        if not isinstance(data, Mapping) or data.get("format_version") != FORMAT_VERSION:
            return None
        key, updated_at = _text(data.get("grant_key")), _when(data.get("updated_at"))
        if key is None or updated_at is None:
            return None
        if data.get("daily_fields") != list(DAILY_FIELDS) or data.get("realtime_fields") != list(
            REALTIME_FIELDS
        ):
            return None  # written by another version: the next write rebuilds it from the entries
        first = since.isoformat() if since else ""
        daily = [
            row
            for row in (DailyRow.from_row(r) for r in _list(data.get("daily")) if _row_day(r) >= first)
            if row
        ]
        realtime = [
            row
            for row in (RealtimeDay.from_row(r) for r in _list(data.get("realtime")) if _row_day(r) >= first)
            if row
        ]
        sources = data.get("realtime_sources")
        return cls(
            grant_key=key,
            updated_at=updated_at,
            daily=tuple(daily),
            realtime=tuple(realtime),
            realtime_sources={
                str(day): tuple(str(name) for name in names)
                for day, names in (sources.items() if isinstance(sources, Mapping) else [])
                if isinstance(names, list) and str(day) >= first
            },
            mailbox=_text(data.get("mailbox")),
            provider=_text(data.get("provider")),
            last_synced_day=_day(data.get("last_synced_day")),
            last_success_at=_when(data.get("last_success_at")),
            last_failure=RunFailure.from_json(data.get("last_failure")),
            last_expired_at=_when(data.get("last_expired_at")),
            unresolved_week=_int(data.get("unresolved_week")),
            unresolved_week_through=_day(data.get("unresolved_week_through")),
            unreadable=tuple(str(name) for name in _list(data.get("unreadable"))),
        )


def _row_day(row: object) -> str:
    """The ISO day a summary row starts with (ISO days sort as text), or '' when it has none."""
    return row[0] if isinstance(row, list) and row and isinstance(row[0], str) else ""


def build_summary(
    grant_key: str,
    daily_rows: Iterable[DailyRow],
    *,
    week_entries: Iterable[RunEntry] = (),
    realtime_days: Iterable[RealtimeDay] = (),
    realtime_sources: Mapping[str, tuple[str, ...]] | None = None,
    read_entries: Iterable[RunEntry] = (),
    unreadable: Iterable[str] = (),
    previous: GrantSummary | None,
    now: dt.datetime,
    keep_days: int = SUMMARY_DAYS,
) -> GrantSummary:
    """A grant's summary from its daily rows (any number per day: the newest written wins), the real-time
    days still held as entries, and ``previous`` for what entries no longer show.

    ``week_entries`` are the daily entries of the newest ``WEEK_DAYS`` days (their unresolved addresses);
    ``read_entries`` every entry read for this build (mailbox, provider, and the success or expiry of
    real-time runs). Real-time days of ``previous`` not in ``realtime_days`` are carried over unchanged:
    their entries were pruned, and nothing is added to a past processing day. Days older than
    ``keep_days`` before ``now`` are dropped, except the row written last (the grant's newest run, say a
    backfill of an old day: it decides the status); the newest synced day, success and expiry are
    remembered.
    """
    oldest = now.astimezone(dt.UTC).date() - dt.timedelta(days=keep_days)
    newest: dict[dt.date, DailyRow] = {}
    for row in daily_rows:
        kept = newest.get(row.day)
        if kept is None or (row.written_at, row.source or "") > (kept.written_at, kept.source or ""):
            newest[row.day] = row
    latest = max(newest.values(), key=lambda row: (row.written_at, row.source or ""), default=None)
    rows = sorted(
        (row for row in newest.values() if row.day >= oldest or row is latest),
        key=lambda r: r.day,
        reverse=True,
    )

    realtime = {day_row.day: day_row for day_row in realtime_days}
    if previous is not None:
        for day_row in previous.realtime:
            realtime.setdefault(day_row.day, day_row)
    realtime_rows = sorted((r for r in realtime.values() if r.day >= oldest), key=lambda r: r.day)
    realtime_rows.reverse()
    kept_sources = {
        day: names for day, names in (realtime_sources or {}).items() if (_day(day) or dt.date.min) >= oldest
    }

    read = list(read_entries)
    every_day = list(newest.values())  # old days still count for the newest success and expiry
    successes = [row.written_at for row in every_day if row.succeeded]
    successes += [entry.written_at for entry in read if entry.succeeded]
    expiries = [row.written_at for row in every_day if row.failure_kind == GRANT_EXPIRED_KIND]
    expiries += [
        entry.written_at for entry in read if entry.failure and entry.failure.kind == GRANT_EXPIRED_KIND
    ]
    synced = [row.day for row in every_day if row.succeeded]
    if previous is not None:
        successes += [previous.last_success_at] if previous.last_success_at else []
        expiries += [previous.last_expired_at] if previous.last_expired_at else []
        synced += [previous.last_synced_day] if previous.last_synced_day else []
    newest_written = max(rows, key=lambda row: (row.written_at, row.day), default=None)
    last_failure = None
    if newest_written is not None and newest_written.failure_kind is not None:
        last_failure = RunFailure(
            newest_written.failure_kind,
            newest_written.failure_message or "",
            final=newest_written.failure_final,
        )

    week_through = rows[0].day if rows else None
    unresolved: set[str] = set()
    if week_through is not None:
        week_start = week_through - dt.timedelta(days=WEEK_DAYS - 1)
        for entry in week_entries:
            if week_start <= entry.day <= week_through and newest.get(entry.day) is not None:
                unresolved.update(address for address, _count in entry.unresolved_top)

    return GrantSummary(
        grant_key=grant_key,
        updated_at=now,
        daily=tuple(rows),
        realtime=tuple(realtime_rows),
        realtime_sources=kept_sources,
        mailbox=_newest_known(read, "mailbox") or (previous.mailbox if previous else None),
        provider=_newest_known(read, "provider") or (previous.provider if previous else None),
        last_synced_day=max(synced, default=None),
        last_success_at=max(successes, default=None),
        last_failure=last_failure,
        last_expired_at=max(expiries, default=None),
        unresolved_week=len(unresolved),
        unresolved_week_through=week_through,
        unreadable=tuple(sorted(unreadable)),
    )


def _newest_known(entries: Sequence[RunEntry], name: str) -> str | None:
    for entry in sorted(entries, key=lambda entry: entry.written_at, reverse=True):
        value = getattr(entry, name)
        if value:
            return str(value)
    return None


# --- the overview ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantInfo:
    """What the grants file says about a grant (the health page shows only configured grants)."""

    key: str
    grant_id: str
    dag_id: str
    start_date: dt.date
    display_name: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class StatusMarker:
    """What a Nylas notification said about a grant (``grant.expired``), with when it arrived."""

    status: str  # "expired"
    at: dt.datetime
    notification_type: str | None = None


@dataclass(slots=True)
class StripDay:
    day: dt.date
    state: DayState
    created: int = 0
    failed: int = 0
    failure_kind: str | None = None


@dataclass(frozen=True)
class OverviewRow:
    key: str
    dag_id: str
    name: str
    mailbox: str | None
    provider: str | None
    status: GrantStatus
    status_reason: str
    last_synced_day: dt.date | None
    strip: tuple[StripDay, ...]
    problem_days: int  # days of the strip missing, failed, retrying or with failed messages
    counts: Counts  # the window's daily and real-time runs added up
    unresolved: int
    throttled: int
    throttle_wait_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "dag_id": self.dag_id,
            "name": self.name,
            "mailbox": self.mailbox,
            "provider": self.provider,
            "status": self.status.value,
            "status_reason": self.status_reason,
            "last_synced_day": self.last_synced_day.isoformat() if self.last_synced_day else None,
            "strip": [
                {
                    "day": cell.day.isoformat(),
                    "state": cell.state.value,
                    "created": cell.created,
                    "failed": cell.failed,
                    "failure_kind": cell.failure_kind,
                }
                for cell in self.strip
            ],
            "problem_days": self.problem_days,
            "counts": self.counts.to_json(),
            "unresolved": self.unresolved,
            "throttled": self.throttled,
            "throttle_wait_s": round(self.throttle_wait_s, 1),
        }


def last_complete_day(now: dt.datetime) -> dt.date:
    return now.astimezone(dt.UTC).date() - dt.timedelta(days=1)


def strip_days(as_of: dt.date, days: int = STRIP_DAYS) -> list[dt.date]:
    """The ``days`` days ending on ``as_of``, oldest first."""
    return [as_of - dt.timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def grant_status(summary: GrantSummary | None, marker: StatusMarker | None) -> tuple[GrantStatus, str]:
    """The grant's status and the sentence that explains it (see the module docstring for the rule)."""
    expired_at = summary.last_expired_at if summary else None
    reason = "a run failed because the grant expired or was revoked"
    if marker is not None and (expired_at is None or marker.at > expired_at):
        expired_at = marker.at
        reason = f"Nylas sent {marker.notification_type or 'grant.expired'}"
    success_at = summary.last_success_at if summary else None
    if expired_at is not None and (success_at is None or expired_at > success_at):
        when = expired_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        return GrantStatus.EXPIRED, f"{reason} ({when}); its owner must re-authenticate it"
    if summary is None or (not summary.daily and not summary.realtime):
        return GrantStatus.NO_RUNS, "no run recorded yet"
    failure = summary.last_failure
    if failure is not None and failure.final:
        return GrantStatus.FAILING, f"the newest run failed: {clip(failure.message, 160)}"
    return GrantStatus.OK, "the newest run succeeded" if failure is None else "the newest run is retrying"


def overview_row(
    grant: GrantInfo,
    summary: GrantSummary | None,
    marker: StatusMarker | None,
    *,
    now: dt.datetime,
    window_days: int = WEEK_DAYS,
) -> OverviewRow:
    as_of = last_complete_day(now)
    by_day = summary.daily_by_day() if summary else {}
    strip: list[StripDay] = []
    for day in strip_days(as_of):
        row = by_day.get(day)
        if row is not None:
            state = row.state()
            strip.append(
                StripDay(
                    day,
                    state,
                    created=row.counts.created if row.counts else 0,
                    failed=row.counts.failed if row.counts else 0,
                    failure_kind=row.failure_kind,
                )
            )
        elif day < grant.start_date:
            strip.append(StripDay(day, DayState.NOT_STARTED))
        else:
            strip.append(StripDay(day, DayState.MISSING))

    today = as_of + dt.timedelta(days=1)
    window_start = today - dt.timedelta(days=window_days - 1)
    counts = Counts()
    throttled, waited = 0, 0.0
    if summary is not None:
        for daily_row in summary.daily:
            if window_start <= daily_row.day <= today:
                counts += daily_row.counts or Counts()
                throttled += daily_row.throttled
                waited += daily_row.throttle_wait_s
        for realtime_row in summary.realtime:
            if window_start <= realtime_row.day <= today:
                counts += realtime_row.counts
                throttled += realtime_row.throttled
                waited += realtime_row.throttle_wait_s
    status, reason = grant_status(summary, marker)
    return OverviewRow(
        key=grant.key,
        dag_id=grant.dag_id,
        name=grant.display_name or grant.email or grant.key,
        mailbox=(summary.mailbox if summary and summary.mailbox else None) or grant.email,
        provider=summary.provider if summary else None,
        status=status,
        status_reason=reason,
        last_synced_day=summary.last_synced_day if summary else None,
        strip=tuple(strip),
        problem_days=sum(1 for cell in strip if cell.state in PROBLEM_STATES),
        counts=counts,
        unresolved=summary.unresolved_week if summary else 0,
        throttled=throttled,
        throttle_wait_s=waited,
    )


SORT_KEYS = (
    "name",
    "mailbox",
    "provider",
    "status",
    "last_synced_day",
    "problem_days",
    "created",
    "already_present",
    "skipped",
    "failed",
    "unresolved",
    "throttled",
    "throttle_wait_s",
)
_STATUS_ORDER = {GrantStatus.EXPIRED: 0, GrantStatus.FAILING: 1, GrantStatus.NO_RUNS: 2, GrantStatus.OK: 3}


def _sort_value(row: OverviewRow, key: str) -> Any:
    if key in OUTCOMES:
        return getattr(row.counts, key)
    if key == "status":
        return _STATUS_ORDER[row.status]
    if key == "last_synced_day":
        return row.last_synced_day or dt.date.min
    value = getattr(row, key)
    return (value or "").casefold() if isinstance(value, str) or value is None else value


def sort_rows(
    rows: Iterable[OverviewRow], key: str = "status", *, descending: bool = False
) -> list[OverviewRow]:
    """Rows ordered by ``key`` (one of ``SORT_KEYS``), ties broken by name; unknown keys sort by status."""
    key = key if key in SORT_KEYS else "status"
    ordered = sorted(rows, key=lambda row: (row.name.casefold(), row.key))
    return sorted(ordered, key=lambda row: _sort_value(row, key), reverse=descending)


def filter_rows(
    rows: Iterable[OverviewRow],
    *,
    text: str = "",
    status: str = "",
    problems_only: bool = False,
) -> list[OverviewRow]:
    """Rows whose key, name, mailbox or provider contain ``text`` (case-insensitive), with ``status`` (a
    ``GrantStatus`` value, or empty for any) and, with ``problems_only``, a problem day or a bad status."""
    needle = text.strip().casefold()
    kept = []
    for row in rows:
        haystack = " ".join(v for v in (row.key, row.name, row.mailbox, row.provider) if v).casefold()
        if needle and needle not in haystack:
            continue
        if status and row.status.value != status:
            continue
        if problems_only and not (
            row.problem_days or row.status in (GrantStatus.EXPIRED, GrantStatus.FAILING)
        ):
            continue
        kept.append(row)
    return kept


# --- a grant's page --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnresolvedAddress:
    address: str
    messages: int
    days: int
    last_seen: dt.date


def unresolved_addresses(entries: Iterable[RunEntry], since: dt.date) -> list[UnresolvedAddress]:
    """Unresolved addresses of the entries on or after ``since``, most messages first."""
    messages: Counter[str] = Counter()
    days: dict[str, set[dt.date]] = {}
    for entry in entries:
        if entry.day < since:
            continue
        for address, count in entry.unresolved_top:
            messages[address] += count
            days.setdefault(address, set()).add(entry.day)
    return [
        UnresolvedAddress(address, count, len(days[address]), max(days[address]))
        for address, count in sorted(messages.items(), key=lambda item: (-item[1], item[0]))
    ]


def csv_cell(value: object) -> str:
    """A value for a CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@dataclass(frozen=True)
class ChartDay:
    day: dt.date
    created: int
    already_present: int
    skipped: int
    failed: int
    state: DayState


def chart_days(
    summary: GrantSummary | None, grant: GrantInfo, *, now: dt.datetime, days: int = STRIP_DAYS
) -> list[ChartDay]:
    """Outcomes per day (daily and real-time runs added up) for the ``days`` days ending yesterday."""
    by_day = summary.daily_by_day() if summary else {}
    realtime = {row.day: row for row in summary.realtime} if summary else {}
    chart = []
    for day in strip_days(last_complete_day(now), days):
        row = by_day.get(day)
        counts = (row.counts if row and row.counts else Counts()) + (
            realtime[day].counts if day in realtime else Counts()
        )
        if row is not None:
            state = row.state()
        else:
            state = DayState.NOT_STARTED if day < grant.start_date else DayState.MISSING
        chart.append(
            ChartDay(day, counts.created, counts.already_present, counts.skipped, counts.failed, state)
        )
    return chart
