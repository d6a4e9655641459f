"""The real-time Airflow DAG ``nylas_to_dataverse__realtime``: runs when the webhook receiver has stored
notifications (see ``docs/realtime.md``); the grants file is read when it runs, not here."""

from __future__ import annotations

from pathlib import Path

from nylas_dataverse.realtime.dag import build_realtime_dag

build_realtime_dag(Path(__file__).resolve().parents[1])
