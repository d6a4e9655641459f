"""The DAG files parse cleanly (no metadata DB needed) and produce the DAGs a user expects."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pendulum
import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
from airflow.timetables.base import TimeRestriction
from airflow.utils.types import DagRunType

from nylas_dataverse.pipeline.timetable import UtcDayTimetable

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAGS = PROJECT_ROOT / "dags"


REALTIME = "nylas_to_dataverse__realtime"
RETENTION = "nylas_dataverse_staging_retention"
# DAGs that exist whatever the grants file says (they read it when they run).
ALWAYS = {REALTIME, RETENTION}


def _bag() -> DagBag:
    # No include_examples: the argument raises TypeError in Airflow 3.3.0-3.3.2.
    return DagBag(dag_folder=str(DAGS))


def _daily(bag: DagBag) -> dict[str, object]:
    return {dag_id: dag for dag_id, dag in bag.dags.items() if dag_id not in ALWAYS}


def _grant_keys(path: Path) -> list[str]:
    return [grant["key"] for grant in yaml.safe_load(path.read_text())["grants"]]


def test_every_grant_gets_one_dag_and_nothing_fails_to_import() -> None:
    bag = _bag()
    assert bag.import_errors == {}
    expected = {f"nylas_to_dataverse__{key}" for key in _grant_keys(PROJECT_ROOT / "include" / "grants.yaml")}
    assert set(bag.dag_ids) == expected | ALWAYS


def test_dags_schedule_whole_utc_days_identified_by_the_day_they_sync() -> None:
    for dag in _daily(_bag()).values():
        timetable = dag.timetable  # type: ignore[attr-defined]
        assert isinstance(timetable, UtcDayTimetable), "'@daily' would give a zero-length window"
        # What the scheduler computes for the first scheduled run: the day after start_date's midnight ...
        first = timetable.next_dagrun_info(
            last_automated_data_interval=None,
            restriction=TimeRestriction(pendulum.datetime(2026, 11, 2, tz="UTC"), None, catchup=True),
        )
        assert first is not None
        assert (first.logical_date, first.data_interval.start, first.data_interval.end) == (
            dt.datetime(2026, 11, 2, tzinfo=dt.UTC),
            dt.datetime(2026, 11, 2, tzinfo=dt.UTC),
            dt.datetime(2026, 11, 3, tzinfo=dt.UTC),
        )
        # ... and a manual run with a logical date on Nov 3 syncs Nov 3, not the day before.
        interval = timetable.infer_manual_data_interval(run_after=pendulum.datetime(2026, 11, 3, 5, tz="UTC"))
        assert (interval.start, interval.end) == (
            dt.datetime(2026, 11, 3, tzinfo=dt.UTC),
            dt.datetime(2026, 11, 4, tzinfo=dt.UTC),
        )
        run_id = timetable.generate_run_id(
            run_type=DagRunType.MANUAL,
            run_after=pendulum.datetime(2026, 12, 1, 20, 53, tz="UTC"),
            data_interval=interval,
        )
        assert run_id == "manual__2026-11-03__at_20261201T205300"
        assert dag.catchup is False


def test_the_timetable_survives_serialization_so_the_scheduler_can_read_it() -> None:
    dag = _bag().dags["nylas_to_dataverse__alice"]
    restored = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    assert isinstance(restored.timetable, UtcDayTimetable)
    assert restored.timetable.summary == "UTC day"


def test_tasks_are_wired_with_pools_retries_and_timeouts() -> None:
    dag = _bag().dags["nylas_to_dataverse__alice"]
    assert [task.task_id for task in dag.topological_sort()] == ["extract", "transform", "load", "report"]
    tasks = {task.task_id: task for task in dag.tasks}
    assert tasks["extract"].pool == "nylas_api"
    assert tasks["transform"].pool == "dataverse_api"
    assert tasks["load"].pool == "dataverse_api"
    for task_id in ("extract", "transform", "load"):
        assert tasks[task_id].retries >= 2
        assert tasks[task_id].execution_timeout is not None
    assert "grant:alice" in dag.tags
    assert dag.dag_display_name.startswith("Nylas → Dataverse")


def test_pools_used_by_the_dags_are_declared_in_airflow_settings() -> None:
    settings = yaml.safe_load((PROJECT_ROOT / "airflow_settings.yaml").read_text())
    declared = {pool["pool_name"] for pool in settings["airflow"]["pools"]}
    used = {task.pool for dag in _bag().dags.values() for task in dag.tasks if task.pool != "default_pool"}
    assert used <= declared


def test_parsing_is_stable_across_parses() -> None:
    first, second = _bag(), _bag()
    for dag_id, dag in first.dags.items():
        other = second.dags[dag_id]
        assert dag.start_date == other.start_date
        assert dag.doc_md == other.doc_md
        assert [t.task_id for t in dag.tasks] == [t.task_id for t in other.tasks]


def test_an_invalid_grant_is_reported_by_name_and_the_others_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = yaml.safe_load((PROJECT_ROOT / "include" / "grants.yaml").read_text())
    config["grants"][1]["policy"] = {"internal_only": "sometimes"}
    bad = tmp_path / "grants.yaml"
    bad.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(bad))

    bag = _bag()

    assert set(bag.dag_ids) == {"nylas_to_dataverse__alice", "nylas_to_dataverse__carol", *ALWAYS}
    [(path, error)] = bag.import_errors.items()
    assert path.endswith("nylas_to_dataverse_config_check.py")
    assert str(bad) in error
    assert "'bob'" in error
    assert "policy.internal_only" in error


def test_a_key_given_twice_in_one_grant_removes_only_that_grants_dag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (PROJECT_ROOT / "include" / "grants.yaml").read_text()
    lines = text.splitlines()
    at = lines.index("  - key: bob") + 1  # 0-based index of the line after bob's key
    lines.insert(at + 1, "    page_size: 50")
    lines.insert(at + 2, "    page_size: 100")
    bad = tmp_path / "grants.yaml"
    bad.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(bad))

    bag = _bag()

    assert set(bag.dag_ids) == {"nylas_to_dataverse__alice", "nylas_to_dataverse__carol", *ALWAYS}
    [(path, error)] = bag.import_errors.items()
    assert path.endswith("nylas_to_dataverse_config_check.py")
    assert f"grant 'bob': key 'page_size': given twice, at lines {at + 2} and {at + 3}" in error


def test_two_grants_sharing_a_grant_id_both_stay_out_and_are_named_with_their_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = yaml.safe_load((PROJECT_ROOT / "include" / "grants.yaml").read_text())
    config["grants"][2]["grant_id"] = config["grants"][0]["grant_id"]
    bad = tmp_path / "grants.yaml"
    bad.write_text(yaml.safe_dump(config, sort_keys=False))
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(bad))

    bag = _bag()

    assert set(bag.dag_ids) == {"nylas_to_dataverse__bob", *ALWAYS}
    [error] = bag.import_errors.values()
    assert "grant 'alice': key 'grant_id': this entry (line " in error
    assert "the same Nylas grant id as grant 'carol' (line " in error
    assert "the same Nylas grant id as grant 'alice' (line " in error


def test_a_missing_grants_file_is_a_clear_import_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(tmp_path / "nope.yaml"))
    bag = _bag()
    assert set(bag.dag_ids) == ALWAYS  # they read the grants file only when it runs
    [error] = bag.import_errors.values()
    assert "nope.yaml" in error
    assert "NYLAS_DATAVERSE_CONFIG" in error


def test_the_retention_dag_is_a_dry_run_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    dag = _bag().dags[RETENTION]
    assert [task.task_id for task in dag.tasks] == ["clean_staging"]
    assert dag.params["dry_run"] is True
    monkeypatch.setenv("NYLAS_DATAVERSE_RETENTION_DRY_RUN", "false")
    assert _bag().dags[RETENTION].params["dry_run"] is False


def test_each_application_user_gets_its_own_dataverse_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = yaml.safe_load((PROJECT_ROOT / "include" / "grants.yaml").read_text())
    config["grants"][1]["dataverse_conn_id"] = "dataverse_app_2"
    path = tmp_path / "grants.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(path))
    key = config["grants"][1]["key"]

    dags = _bag().dags
    pools = {
        dag_id: {task.task_id: task.pool for task in dag.tasks if task.task_id in {"transform", "load"}}
        for dag_id, dag in dags.items()
        if dag_id not in ALWAYS
    }

    assert pools[f"nylas_to_dataverse__{key}"] == {
        "transform": "dataverse_api__dataverse_app_2",
        "load": "dataverse_api__dataverse_app_2",
    }
    others = [p for dag_id, p in pools.items() if dag_id != f"nylas_to_dataverse__{key}"]
    assert others
    assert all(p == {"transform": "dataverse_api", "load": "dataverse_api"} for p in others)


def test_the_trigger_form_offers_a_dry_run_off_by_default_with_a_description() -> None:
    for dag in _daily(_bag()).values():
        param = dag.params.get_param("dry_run")  # type: ignore[attr-defined]
        assert param.value is False
        assert param.schema["type"] == "boolean"
        assert "nothing is written to Dataverse" in param.description
