"""The day model: which UTC day a run syncs, and the Nylas query that covers it.

One rule everywhere: **the run that syncs UTC day D is identified by D**, however it was started.

- Scheduled and backfill runs: their data interval is ``[D 00:00, D+1 00:00)`` and their logical date is D
  (the project's timetable, ``pipeline/timetable.py``, schedules whole UTC days).
- Manual runs with a logical date L (the trigger form's date picker, ``airflow dags trigger -l``, REST):
  D is the UTC day that contains L; when that day has not ended yet at trigger time (the trigger form
  proposes "now"), D is the day before, the last complete day (``manual_run_day``). The timetable turns D
  into the run's data interval and names the run after it.
- Manual runs without a logical date (REST ``"logical_date": null``): the last complete UTC day before the
  run was created.

``run_window`` checks what a run received and refuses, with an explanation, anything that is not exactly one
whole UTC day that has already ended: a zero-length interval (Airflow 3.3's ``"@daily"``), an interval
of another length typed into the trigger form's "Specify Manually" option, a day that is not over yet, and
the run parameters ``window_start``/``window_end`` of earlier versions (they let a backfill sync one window
for every day it covered).

A window is the half-open UTC interval ``[start, end)``. Nylas does not document whether ``received_after``
and ``received_before`` are inclusive, nor exactly which timestamp they filter on, so the query asks for a
margin on both sides (``query_bounds``) and the pipeline then keeps exactly the messages whose ``date`` lies
in
``[start, end)`` (``Window.contains``). A message the query returns for a neighbouring day belongs to that
day's run; adjacent windows never share a message and neither bound's inclusivity can lose one.

``WindowError`` says what was wrong and what to do.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass

from nylas_dataverse.core.errors import FailureKind, PipelineError

UTC = datetime.UTC
ONE_DAY = datetime.timedelta(days=1)
# Run parameters of earlier versions; a run that still carries them is refused rather than misread.
RETIRED_PARAMS = ("window_start", "window_end")
DEFAULT_QUERY_OVERLAP = datetime.timedelta(minutes=60)


class WindowError(PipelineError, ValueError):
    """The run's day cannot be determined, is not a whole UTC day, or has not ended yet."""

    KIND = FailureKind.INVALID_DAY


@dataclass(frozen=True)
class Window:
    start: datetime.datetime
    end: datetime.datetime

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, datetime.datetime) or value.tzinfo is None:
                raise WindowError(f"window {name} must be a timezone-aware datetime, got {value!r}")
            object.__setattr__(self, name, value.astimezone(UTC))
        if self.end <= self.start:
            raise WindowError(
                f"window end {self.end.isoformat()} must be after window start {self.start.isoformat()}"
            )

    @classmethod
    def for_day(cls, day: datetime.date) -> Window:
        start = datetime.datetime.combine(day, datetime.time(), tzinfo=UTC)
        return cls(start, start + ONE_DAY)

    @property
    def label(self) -> str:
        """The start's UTC date, ``YYYY-MM-DD`` (names the run's staging folder)."""
        return self.start.date().isoformat()

    @property
    def is_one_day(self) -> bool:
        return self.start == _midnight(self.start) and self.end - self.start == ONE_DAY

    def query_bounds(self, overlap: datetime.timedelta = DEFAULT_QUERY_OVERLAP) -> tuple[int, int]:
        """``(received_after, received_before)`` in Unix seconds, widened by ``overlap`` on both sides."""
        if overlap < datetime.timedelta(0):
            raise WindowError(f"the query overlap must not be negative, got {overlap}")
        after = math.floor((self.start - overlap).timestamp())
        return max(0, after), math.ceil((self.end + overlap).timestamp())

    def contains(self, unix_seconds: int) -> bool:
        return self.start.timestamp() <= unix_seconds < self.end.timestamp()


def _midnight(value: datetime.datetime) -> datetime.datetime:
    return datetime.datetime.combine(value.astimezone(UTC).date(), datetime.time(), tzinfo=UTC)


def _as_utc(value: object, name: str) -> datetime.datetime:
    if not isinstance(value, datetime.datetime):
        raise WindowError(f"{name} must be a datetime, got {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def last_complete_day(now: datetime.datetime) -> datetime.date:
    """The latest UTC day that had ended at ``now``."""
    return _as_utc(now, "now").date() - ONE_DAY


def manual_run_day(logical_date: datetime.datetime, now: datetime.datetime) -> datetime.date:
    """The day a manual run with ``logical_date`` syncs: the UTC day containing it, or, when that day has
    not ended at ``now``, the day before it."""
    day = _as_utc(logical_date, "logical_date").date()
    if Window.for_day(day).end > _as_utc(now, "now"):
        return day - ONE_DAY
    return day


def run_window(
    *,
    data_interval_start: datetime.datetime | None,
    data_interval_end: datetime.datetime | None,
    run_conf: Mapping[str, object] | None,
    run_after: datetime.datetime | None,
    now: datetime.datetime,
) -> Window:
    """The one UTC day a run syncs (see the module docstring); ``WindowError`` when it has none."""
    retired = [name for name in RETIRED_PARAMS if (run_conf or {}).get(name) not in (None, "")]
    if retired:
        raise WindowError(
            f"run parameter(s) {', '.join(retired)} are no longer accepted: every run syncs the one UTC"
            " day it is identified by. To sync one day, trigger the DAG with a logical date in that day;"
            " to sync a range, create a backfill from its first to its last day (UI: Trigger > Backfill)."
        )
    if data_interval_start is not None or data_interval_end is not None:
        window = _interval_window(data_interval_start, data_interval_end)
    else:
        if run_after is None:
            raise WindowError(
                "the run has neither a data interval nor a run_after time; cannot choose its day"
            )
        window = Window.for_day(last_complete_day(_as_utc(run_after, "run_after")))
    if window.end > _as_utc(now, "now"):
        raise WindowError(
            f"the day {window.label} has not ended yet (it ends at {window.end.isoformat()}); a run now would"
            f" miss the rest of its mail. The last complete day is {last_complete_day(now).isoformat()}."
        )
    return window


def _interval_window(start: object, end: object) -> Window:
    if start is None or end is None:
        raise WindowError("the data interval has only one end; Airflow gives both or neither")
    start, end = _as_utc(start, "data_interval_start"), _as_utc(end, "data_interval_end")
    if start == end:
        raise WindowError(
            f"the data interval is zero-length (start = end = {start.isoformat()}). Airflow 3.3's '@daily'"
            " schedule gives every run a zero-length interval; schedule the DAG with the project's UTC-day"
            " timetable (nylas_dataverse.pipeline.timetable.UtcDayTimetable) instead of '@daily'"
        )
    if end < start:
        raise WindowError(
            f"data_interval_end {end.isoformat()} is before data_interval_start {start.isoformat()}"
        )
    window = Window(start, end)
    if not window.is_one_day:
        raise WindowError(
            f"the run's data interval [{start.isoformat()}, {end.isoformat()}) is not one whole UTC day. Each"
            " run syncs exactly one day and is identified by it: trigger with a logical date in the day (and"
            " leave the data interval on 'Inferred'), or create a backfill for a range of days."
        )
    return window
