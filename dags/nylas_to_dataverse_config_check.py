"""Surfaces grants-file errors as a DAG import error (file, grant and key named) in the Airflow UI,
while the valid grants' DAGs still load from ``nylas_to_dataverse_shard_*.py``; also alert notifiers that
cannot be imported or do not accept their arguments."""

from __future__ import annotations

from pathlib import Path

from nylas_dataverse.pipeline.alerts import check_alerts
from nylas_dataverse.pipeline.grants_index import load_all
from nylas_dataverse.pipeline.settings import InvalidGrantsFileError, config_path

_root = Path(__file__).resolve().parents[1]
_config = load_all(_root)
# A notifier that cannot be imported or does not take its arguments would stay silent when it matters.
_errors = (*_config.errors, *check_alerts(_config.alerts, str(config_path(_root))))
if _errors:
    raise InvalidGrantsFileError(_errors)
