"""Surfaces grants-file errors as a DAG import error (file, grant and key named) in the Airflow UI,
while the valid grants' DAGs still load from ``nylas_to_dataverse.py``."""

from __future__ import annotations

from pathlib import Path

from nylas_dataverse.pipeline.settings import InvalidGrantsFileError, load_grants

_errors = load_grants(Path(__file__).resolve().parents[1]).errors
if _errors:
    raise InvalidGrantsFileError(_errors)
