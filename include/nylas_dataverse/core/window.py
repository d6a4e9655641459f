"""The extraction window of a run: which received messages it covers.

A window is the half-open UTC interval [start, end). Nylas' `received_after`/`received_before` take Unix
seconds and their inclusivity is not documented, so the pipeline asks for `received_after = start`
(rounded down) and `received_before = end` (rounded up) and then keeps exactly the messages whose
`date` lies in [start, end) itself (`Window.contains`). Adjacent windows therefore never share a message.

`resolve_window` picks the window of a run, first rule that applies:

1. the params `window_start` and `window_end` (both or neither; ISO dates, ISO date-times or date
   objects; a date means midnight UTC, a naive date-time is UTC, an offset is converted to UTC). What a
   user typed into the trigger form wins: Airflow infers a data interval for manual runs that have a
   logical date, and silently ignoring the user's window would be worse than surprising.
2. the run's data interval, when Airflow gives one. A zero-length interval is an error: Airflow 3.3's
   `"@daily"` (a cron trigger timetable) gives every run start == end; use the project's daily
   data-interval timetable instead.
3. the previous full UTC day before `run_after` (a run at 2026-11-03T05:00Z covers 2026-11-02).

`WindowError` explains what was wrong and what to do.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass

UTC = datetime.UTC
ONE_DAY = datetime.timedelta(days=1)


class WindowError(ValueError):
    """The run's window cannot be determined or is empty."""


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

    @property
    def label(self) -> str:
        """The start's UTC date, `YYYY-MM-DD` (names the run's staging folder)."""
        return self.start.date().isoformat()

    @property
    def received_after(self) -> int:
        return math.floor(self.start.timestamp())

    @property
    def received_before(self) -> int:
        return math.ceil(self.end.timestamp())

    def contains(self, unix_seconds: int) -> bool:
        return self.start.timestamp() <= unix_seconds < self.end.timestamp()


def resolve_window(
    data_interval_start: datetime.datetime | None,
    data_interval_end: datetime.datetime | None,
    params: Mapping[str, object],
    run_after: datetime.datetime | None,
) -> Window:
    start_param, end_param = _param(params, "window_start"), _param(params, "window_end")
    if start_param is not None or end_param is not None:
        if start_param is None or end_param is None:
            given, missing = (
                ("window_start", "window_end") if end_param is None else ("window_end", "window_start")
            )
            raise WindowError(f"param {given} was given without {missing}; give both (or neither)")
        start, end = _parse_param("window_start", start_param), _parse_param("window_end", end_param)
        if end <= start:
            raise WindowError(
                f"param window_end ({end.isoformat()}) must be after window_start ({start.isoformat()})"
            )
        return Window(start, end)
    if data_interval_start is not None or data_interval_end is not None:
        return _from_interval(data_interval_start, data_interval_end)
    if run_after is None:
        raise WindowError(
            "no data interval, no window_start/window_end params and no run_after: cannot choose a window;"
            " pass window_start and window_end"
        )
    end = datetime.datetime.combine(_as_utc(run_after, "run_after").date(), datetime.time(), tzinfo=UTC)
    return Window(end - ONE_DAY, end)


def _from_interval(start: datetime.datetime | None, end: datetime.datetime | None) -> Window:
    if start is None or end is None:
        raise WindowError("the data interval has only one end; Airflow gives both or neither")
    start, end = _as_utc(start, "data_interval_start"), _as_utc(end, "data_interval_end")
    if start == end:
        raise WindowError(
            f"the data interval is zero-length (start = end = {start.isoformat()}). Airflow 3.3's '@daily'"
            " schedule gives every run a zero-length interval; schedule the DAG with the project's daily"
            " data-interval timetable instead of '@daily'"
        )
    if end < start:
        raise WindowError(
            f"data_interval_end {end.isoformat()} is before data_interval_start {start.isoformat()}"
        )
    return Window(start, end)


def _param(params: Mapping[str, object], name: str) -> object | None:
    value = params.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value


def _as_utc(value: datetime.datetime, name: str) -> datetime.datetime:
    if not isinstance(value, datetime.datetime):
        raise WindowError(f"{name} must be a datetime, got {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _parse_param(name: str, value: object) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return _as_utc(value, name)
    if isinstance(value, datetime.date):
        return datetime.datetime.combine(value, datetime.time(), tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return datetime.datetime.combine(
                    datetime.date.fromisoformat(text), datetime.time(), tzinfo=UTC
                )
            return _as_utc(datetime.datetime.fromisoformat(text), name)
        except ValueError:
            pass
    raise WindowError(
        f"param {name} must be an ISO date (2026-11-02) or date-time (2026-11-02T06:00:00Z), got {value!r}"
    )
