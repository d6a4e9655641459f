"""A run note naming the UTC day a run syncs, so the UI shows it wherever the run is shown.

Scheduled and manual run ids already name the day (``pipeline/timetable.py``), but Airflow names backfill runs
after the moment they may start, which for a data-interval timetable is the *next* day
(``backfill__2026-11-04T00:00:00+00:00`` syncs 2026-11-03). This Airflow listener, registered by the
project's plugin, runs in the scheduler when a run of a grant's DAG starts and gives it the note
"Syncs the UTC day 2026-11-03" unless someone already wrote one. A failure here is logged by Airflow and
never stops the run.
"""

from __future__ import annotations

from typing import Any

from airflow.listeners import hookimpl

from nylas_dataverse.core.config import DAG_ID_PREFIX, REALTIME_DAG_ID
from nylas_dataverse.core.window import Window, WindowError


def day_note(dag_id: str, start: Any, end: Any) -> str | None:
    """The note for a run of ``dag_id`` with this data interval; None when it is not one of ours."""
    if not dag_id.startswith(DAG_ID_PREFIX) or dag_id == REALTIME_DAG_ID or start is None or end is None:
        return None
    try:
        window = Window(start, end)
    except WindowError:
        return None
    if not window.is_one_day:
        return None
    return f"Syncs the UTC day {window.label}"


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    note = day_note(str(dag_run.dag_id), dag_run.data_interval_start, dag_run.data_interval_end)
    if note is not None and not dag_run.note:
        dag_run.note = note
