"""One daily DAG per Nylas grant listed in the grants file (``include/grants.yaml`` or
``$NYLAS_DATAVERSE_CONFIG``). Invalid grants are reported by ``nylas_to_dataverse_config_check.py``;
the valid ones load here regardless."""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import get_parsing_context

from nylas_dataverse.pipeline.dag_factory import build_dag
from nylas_dataverse.pipeline.settings import load_grants

PROJECT_ROOT = Path(__file__).resolve().parents[1]

_wanted = get_parsing_context().dag_id
_config = load_grants(PROJECT_ROOT)
for _grant in _config.grants:
    if _grant.enabled and _wanted in (None, _grant.dag_id):
        build_dag(_grant, PROJECT_ROOT, alerts=_config.alerts)
