"""The Airflow DAG ``nylas_dataverse_staging_retention`` (see ``pipeline/retention.py``): deletes staged
message bodies older than the grants' retention_days; the grants file is read when it runs, not here."""

from __future__ import annotations

from pathlib import Path

from nylas_dataverse.pipeline.retention_dag import build_retention_dag

build_retention_dag(Path(__file__).resolve().parents[1])
