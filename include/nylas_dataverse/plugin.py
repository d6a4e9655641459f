"""The provider's Airflow plugin: registers the project's timetable wherever the distribution is installed.

Registered through the ``airflow.plugins`` entry point (pyproject.toml), so the scheduler, API server, DAG
processor and workers load it without a file in anyone's plugins folder.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from nylas_dataverse.pipeline.timetable import UtcDayTimetable


class NylasDataversePlugin(AirflowPlugin):
    name = "nylas_dataverse"
    timetables = [UtcDayTimetable]  # noqa: RUF012 - the attribute Airflow reads
