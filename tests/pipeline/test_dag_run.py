"""``dag.test()`` of a grant's DAG against the sandbox: the real task wiring, XCom paths and windows."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag

PROJECT_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.airflow


def _dag(dag_id: str) -> Any:
    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def _report(staging: Path, dag_id: str, day: str) -> dict[str, Any]:
    return json.loads((staging / dag_id / day / "report.json").read_text())


def test_a_scheduled_day_and_a_manual_rerun_without_interval(
    airflow_db: Path, sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NYLAS_DATAVERSE_STAGING", tmp_path.as_uri())
    dag = _dag("nylas_to_dataverse__alice")

    # Under the data-interval timetable, logical date Nov 4 covers [Nov 3, Nov 4).
    run = dag.test(logical_date=dt.datetime(2026, 11, 4, tzinfo=dt.UTC))

    assert run.state == "success"
    first = _report(tmp_path, dag.dag_id, "2026-11-03")
    assert first["counts"]["created"] > 0
    assert first["counts"]["failed"] == 0
    rows = len(sandbox.dataverse.emails_with_parties())
    assert rows == first["counts"]["created"]

    # A manual run with no logical date has no data interval: the window comes from the params.
    rerun = dag.test(logical_date=None, run_conf={"window_start": "2026-11-03", "window_end": "2026-11-04"})

    assert rerun.state == "success"
    second = _report(tmp_path, dag.dag_id, "2026-11-03")
    assert second["counts"]["created"] == 0
    assert second["counts"]["already_present"] == first["counts"]["created"]
    assert len(sandbox.dataverse.emails_with_parties()) == rows
