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


def test_a_run_for_a_day_a_rerun_of_it_and_retired_parameters(
    airflow_db: Path, sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NYLAS_DATAVERSE_STAGING", tmp_path.as_uri())
    dag = _dag("nylas_to_dataverse__alice")

    # The run with logical date Nov 3 syncs Nov 3, however it is started (here: airflow dags test).
    run = dag.test(logical_date=dt.datetime(2026, 11, 3, tzinfo=dt.UTC))

    assert run.state == "success"
    first = _report(tmp_path, dag.dag_id, "2026-11-03")
    assert first["counts"]["created"] > 0
    assert first["counts"]["failed"] == 0
    rows = len(sandbox.dataverse.emails_with_parties())
    assert rows == first["counts"]["created"]

    assert not (tmp_path / dag.dag_id / "2026-11-02").exists()
    assert not (tmp_path / dag.dag_id / "2026-11-04").exists()

    # The window parameters of earlier versions would sync another window under this day: refused.
    refused = dag.test(
        logical_date=dt.datetime(2026, 11, 3, 12, tzinfo=dt.UTC),
        run_conf={"window_start": "2026-11-05", "window_end": "2026-11-06"},
    )
    assert refused.state == "failed"
    assert not (tmp_path / dag.dag_id / "2026-11-05").exists()

    # Any time on Nov 3 names the same day: a rerun, which finds everything already there.
    rerun = dag.test(logical_date=dt.datetime(2026, 11, 3, 18, tzinfo=dt.UTC))

    assert rerun.state == "success"
    second = _report(tmp_path, dag.dag_id, "2026-11-03")
    assert second["counts"]["created"] == 0
    assert second["counts"]["already_present"] == first["counts"]["created"]
    assert len(sandbox.dataverse.emails_with_parties()) == rows


def test_the_retention_dag_deletes_old_bodies_when_told_to(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import ObjectStoragePath

    from nylas_dataverse.pipeline.staging import RunStaging

    staging = tmp_path / "staging"
    monkeypatch.setenv("NYLAS_DATAVERSE_STAGING", staging.as_uri())
    grants = tmp_path / "grants.yaml"
    grants.write_text("grants: [{key: alice, grant_id: g-1, start_date: 2026-01-01, retention_days: 1}]\n")
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(grants))
    old = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=5)).isoformat()
    run = RunStaging(ObjectStoragePath(staging.as_uri()), "nylas_to_dataverse__alice", old)
    with run.writer("messages.jsonl.gz") as writer:
        writer.write({"id": "m-1", "body": "a body"})
    run.write_json("report.json", {"counts": {}})
    body = staging / "nylas_to_dataverse__alice" / old / "messages.jsonl.gz"
    dag = _dag("nylas_dataverse_staging_retention")

    # The default is a dry run (test_dag_integrity checks the param; test_retention what a dry run does).
    assert dag.test(run_conf={"dry_run": False}).state == "success"
    assert not body.exists()
    assert (staging / "nylas_to_dataverse__alice" / old / "report.json").exists()


def test_a_dry_run_from_the_trigger_form_writes_the_plan_and_nothing_to_dataverse(
    airflow_db: Path, sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NYLAS_DATAVERSE_STAGING", tmp_path.as_uri())
    dag = _dag("nylas_to_dataverse__alice")

    run = dag.test(logical_date=dt.datetime(2026, 11, 3, tzinfo=dt.UTC), run_conf={"dry_run": True})

    assert run.state == "success"
    plan = json.loads((tmp_path / dag.dag_id / "plan-2026-11-03" / "plan.json").read_text())
    assert plan["counts"]["create"] > 0
    assert (tmp_path / dag.dag_id / "plan-2026-11-03" / "plan.csv").exists()
    assert not (tmp_path / dag.dag_id / "2026-11-03").exists()
    assert sandbox.dataverse.emails_with_parties() == []
    assert not any(name.startswith("writes.") for name in sandbox.dataverse.counters())
