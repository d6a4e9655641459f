"""The real-time DAG and the webhook plugin load the way Airflow loads them (no metadata DB needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import ObjectStoragePath
from airflow.serialization.serialized_objects import DagSerialization
from fastapi import FastAPI
from fastapi.testclient import TestClient

from nylas_dataverse.realtime.trigger import InboxTrigger

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = PROJECT_ROOT / "dags" / "nylas_realtime.py"


def test_the_realtime_dag_is_scheduled_on_the_inbox_asset_watched_by_the_inbox_trigger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging = ObjectStoragePath(tmp_path.as_uri())
    monkeypatch.setenv("NYLAS_DATAVERSE_STAGING", str(staging))

    # No include_examples: the argument raises TypeError in Airflow 3.3.0-3.3.2.
    bag = DagBag(dag_folder=str(DAG_FILE))

    assert bag.import_errors == {}
    dag = bag.dags["nylas_to_dataverse__realtime"]
    assert [task.task_id for task in dag.tasks] == ["process"]
    # Real-time loads count against the same Dataverse pool as the daily loads, and go first.
    [process] = dag.tasks
    daily_load_pool = (
        DagBag(dag_folder=str(DAG_FILE.parent)).dags["nylas_to_dataverse__alice"].get_task("load").pool
    )
    assert (process.pool, process.priority_weight) == (daily_load_pool, 10)
    assert dag.max_active_runs == 1
    [asset] = dag.timetable.asset_condition.objects
    [watcher] = asset.watchers
    assert isinstance(watcher.trigger, InboxTrigger)
    assert watcher.trigger.staging_url == str(staging)
    # What the DAG processor stores and the triggerer re-creates the trigger from.
    serialized = str(DagSerialization.to_dict(dag))
    assert "nylas_dataverse.realtime.trigger.InboxTrigger" in serialized


def test_the_plugin_mounts_the_receiver_at_nylas_webhook_on_the_api_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow import plugins_manager
    from airflow.api_fastapi.app import init_plugins

    monkeypatch.setenv("AIRFLOW_VAR_NYLAS_WEBHOOK_SECRET", "plugin-test-secret")
    api_server = FastAPI()
    init_plugins(api_server)  # what the API server does with plugins' fastapi_apps

    assert not any("nylas_webhook_plugin" in path for path in plugins_manager.get_import_errors())
    client = TestClient(api_server)
    challenge = client.get("/nylas/webhook", params={"challenge": "abc-123"})
    assert (challenge.status_code, challenge.text) == (200, "abc-123")
    unsigned = client.post("/nylas/webhook", content=b'{"id": "n", "type": "message.created"}')
    assert unsigned.status_code == 401
