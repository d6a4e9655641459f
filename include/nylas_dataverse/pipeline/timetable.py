"""The schedule of every daily DAG: whole UTC days, each run identified by the day it syncs.

``UtcDayTimetable`` schedules like ``CronDataIntervalTimetable("0 0 * * *", timezone="UTC")``: the run for
day D has the data interval ``[D, D+1)``, logical date D, and starts once D has ended; backfills create the
same runs. What it changes is the manual run: Airflow's cron timetable gives a run triggered with logical
date D the interval of the day *before* D, so the trigger form, the CLI and ``airflow dags test`` all synced
a different day than the one the run was shown under. Here a manual run syncs the day that contains its
logical date, or the last complete day when that day is not over yet (the rule is
``core.window.manual_run_day``). Run ids name the day: ``scheduled__2026-11-04``,
``manual__2026-11-04__at_20261201T205300``; backfills keep Airflow's
id, named after the moment the run may start: ``backfill__2026-11-05T00:00:00+00:00`` syncs 2026-11-04.

Airflow deserializes custom timetables only when a plugin registers them: the distribution does so through the
``airflow.plugins`` entry point (``plugin.NylasDataversePlugin``), so every component that has the package
installed (scheduler, API server, DAG processor, workers) knows it.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.timetables.base import DataInterval
from airflow.timetables.interval import CronDataIntervalTimetable
from airflow.utils.types import DagRunType
from pendulum import UTC, DateTime

from nylas_dataverse.core.window import Window, manual_run_day


def _pendulum(value: Any) -> DateTime:
    return DateTime.instance(value).in_timezone(UTC)


class UtcDayTimetable(CronDataIntervalTimetable):
    """Every UTC day at 00:00, for the day that just ended; manual runs sync the day of their logical date."""

    def __init__(self) -> None:
        super().__init__("0 0 * * *", timezone="UTC")
        self.description = "Every UTC day at 00:00, syncing the day that just ended"

    @property
    def summary(self) -> str:
        return "UTC day"

    def serialize(self) -> dict[str, Any]:
        return {}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> UtcDayTimetable:
        return cls()

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        # Airflow passes the logical date the user chose as ``run_after`` here.
        window = Window.for_day(manual_run_day(run_after, pendulum.now("UTC")))
        return DataInterval(start=_pendulum(window.start), end=_pendulum(window.end))

    def generate_run_id(
        self,
        *,
        run_type: DagRunType,
        run_after: DateTime,
        data_interval: DataInterval | None,
        **extra: Any,
    ) -> str:
        if data_interval is None:
            return super().generate_run_id(
                run_type=run_type, run_after=run_after, data_interval=data_interval, **extra
            )
        day = _pendulum(data_interval.start).date().isoformat()
        if run_type == DagRunType.SCHEDULED:
            return run_type.generate_run_id(suffix=day)
        return run_type.generate_run_id(suffix=f"{day}__at_{_pendulum(run_after).format('YYYYMMDDTHHmmss')}")
