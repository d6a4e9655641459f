"""Airflow daily DAGs, one per enabled grant (dag_id ``nylas_to_dataverse__<key>``), for the grants in shard
1 of 32 of the grants file; see docs/configuration.md#thousands-of-grants. The config-check DAG file reports
grants-file errors."""

from __future__ import annotations

from pathlib import Path

from nylas_dataverse.pipeline.shard_dags import build_shard

build_shard(1, Path(__file__).resolve().parents[1])
