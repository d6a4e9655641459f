"""The provider's Airflow plugin: the UTC-day timetable and the listener that notes each run's day.

Registered through the ``airflow.plugins`` entry point (pyproject.toml), so the scheduler, API server, DAG
processor and workers load it without a file in anyone's plugins folder.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from nylas_dataverse.pipeline import day_note
from nylas_dataverse.pipeline.timetable import UtcDayTimetable


class NylasDataversePlugin(AirflowPlugin):
    name = "nylas_dataverse"
    timetables = [UtcDayTimetable]  # noqa: RUF012 - the attributes Airflow reads
    listeners = [day_note]  # noqa: RUF012
