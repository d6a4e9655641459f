"""``nylas-dataverse doctor`` and ``plan`` when the grants file, the pools or the metadata database are not
what the DAGs need: every problem is counted, named, and says what to do."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nylas_dataverse.cli import main
from nylas_dataverse.core.config import parse_config
from nylas_dataverse.pipeline import dag_factory, pools
from nylas_dataverse.realtime.dag import build_realtime_dag

from .conftest import DAY

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, config: object) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def _summary(out: str) -> str:
    return out.rstrip().splitlines()[-1]


# --- doctor: the summary counts everything ---------------------------------------------------------------


def test_doctor_with_an_unreadable_grants_file_does_not_say_all_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(tmp_path / "missing.yaml"))

    assert main(["doctor"]) == 1

    out = capsys.readouterr().out
    assert "FAIL grants file: " in out
    assert "cannot read the grants file (No such file or directory)" in out
    assert "passed" not in out
    assert _summary(out) == "NOT OK: 1 problem(s) with the grants file or --grant, nothing checked."


def test_doctor_counts_every_grants_file_error_with_the_failed_checks(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = sandbox.grants_config()
    config["grants"] += [
        {"key": "bad1", "grant_id": "g-bad1", "start_date": "2026-11-02", "page_size": 0},
        {"key": "bad2", "grant_id": "g-bad2", "start_date": "nope"},
        {"key": "bad3", "grant_id": "g-bad3", "start_date": "2026-11-02", "batch_size": 0},
    ]
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(_write(tmp_path / "grants.yaml", config)))
    sandbox.dataverse.set_behaviour(missing_privileges=("prvReadLead",))  # one check fails

    assert main(["doctor"]) == 1

    out = capsys.readouterr().out
    assert out.count("FAIL grants file: ") == 3
    assert "passed" not in out
    # 3 grants-file errors and the failed Dataverse check (plus the pools, when this process's metadata
    # database is migrated and lacks them: then they fail too, which the pool tests below cover)
    assert _summary(out).startswith("NOT OK: 3 problem(s) with the grants file or --grant, ")
    assert " check(s) failed." in _summary(out)


def test_doctor_with_no_grants_says_there_is_nothing_to_check_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "grants.yaml", {"grants": []})
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(path))

    assert main(["doctor"]) == 1

    out = capsys.readouterr().out
    assert f"FAIL no grants to check: {path} lists no grants; add one under grants:" in out
    assert _summary(out) == "NOT OK: nothing checked."

    _write(path, {"grants": [{"key": "a", "grant_id": "g-a", "start_date": "2026-11-02", "enabled": False}]})
    assert main(["doctor"]) == 1
    assert "every grant in" in capsys.readouterr().out


# --- doctor: the pools the tasks need ----------------------------------------------------------------------


def test_the_pools_doctor_requires_are_those_the_dags_use() -> None:
    text = yaml.safe_dump(
        {
            "grants": [
                {"key": "a", "grant_id": "g-a", "start_date": "2026-11-02"},
                {"key": "b", "grant_id": "g-b", "start_date": "2026-11-02", "dataverse_conn_id": "emea"},
            ]
        }
    )
    grants = parse_config(text, "test").grants
    dags = [dag_factory.build_dag(grant, PROJECT_ROOT) for grant in grants]
    dags.append(build_realtime_dag(PROJECT_ROOT))
    used = {task.pool for dag in dags for task in dag.tasks} - {"default_pool"}

    assert (
        {pool.name for pool in pools.required_pools(grants)}
        == used
        == {
            "nylas_api",
            "dataverse_api",
            "dataverse_api__emea",
        }
    )
    # Every grant on another user: the real-time task still needs dataverse_api.
    emea_only = [grant for grant in grants if grant.dataverse_conn_id == "emea"]
    assert {pool.name for pool in pools.required_pools(emea_only)} == {
        "nylas_api",
        "dataverse_api__emea",
        "dataverse_api",
    }


def _drop(names: list[str]) -> None:
    from airflow.exceptions import PoolNotFound
    from airflow.models import Pool

    for name in names:
        with contextlib.suppress(PoolNotFound):
            Pool.delete_pool(name)


@pytest.fixture
def emea_grant(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """alice of the sandbox, writing as application user ``dataverse_emea`` (the sandbox's user 1)."""
    config = sandbox.grants_config()
    config["grants"] = [dict(config["grants"][0], dataverse_conn_id="dataverse_emea")]
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(_write(tmp_path / "grants.yaml", config)))
    monkeypatch.setenv("AIRFLOW_CONN_DATAVERSE_EMEA", os.environ["AIRFLOW_CONN_DATAVERSE_DEFAULT"])
    # dataverse_api too: the real-time DAG's task runs in it whichever user the grants name.
    names = ["nylas_api", "dataverse_api__dataverse_emea", "dataverse_api"]
    _drop(names)  # the metadata database as a fresh one has it: default_pool only
    yield names
    _drop(names)


@pytest.mark.airflow
def test_doctor_names_each_missing_pool_and_the_command_that_creates_it(
    airflow_db: Path, emea_grant: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor"]) == 1

    out = capsys.readouterr().out
    missing = [line for line in out.splitlines() if line.startswith("FAIL pools")]
    assert len(missing) == 3
    commands = []
    for name, line in zip(emea_grant, missing, strict=True):
        assert f"pool {name} does not exist" in line
        assert "wait for it forever" in line
        commands.append(line.split(" -> ", 1)[1])
    assert commands[0].startswith("airflow pools set nylas_api 8 ")
    assert commands[1].startswith("airflow pools set dataverse_api__dataverse_emea 2 ")
    assert commands[2].startswith("airflow pools set dataverse_api 2 ")
    assert "nylas_to_dataverse__realtime" in missing[2]
    assert _summary(out) == "NOT OK: 3 of 5 check(s) failed."

    for command in commands:  # the printed commands, as an operator would run them
        argv = shlex.split(command)
        subprocess.run(
            [sys.executable, "-m", *argv], check=True, capture_output=True, env=os.environ.copy(), timeout=120
        )

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "ok   pools            nylas_api, dataverse_api__dataverse_emea, dataverse_api exist" in out
    assert _summary(out) == "All 5 checks passed."


def test_doctor_without_a_metadata_database_warns_about_the_pools_instead_of_crashing(
    sandbox: Any, tmp_path: Path
) -> None:
    config = sandbox.grants_config()
    config["grants"] = config["grants"][:1]
    env = {
        **os.environ,
        "NYLAS_DATAVERSE_CONFIG": str(_write(tmp_path / "grants.yaml", config)),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'no-such-dir' / 'airflow.db'}",
    }

    done = subprocess.run(
        [sys.executable, "-m", "nylas_dataverse.cli", "doctor"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )

    assert "Traceback" not in done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    warning = next(line for line in done.stdout.splitlines() if line.startswith("WARN pools"))
    assert "metadata database cannot be read here" in warning
    assert "nylas_api, dataverse_api" in warning
    assert _summary(done.stdout) == "All 2 checks passed (1 warning(s) above)."


# --- plan: the grants file's problems -----------------------------------------------------------------


def test_plan_with_a_missing_grants_file_is_a_clean_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.yaml"

    assert main(["plan", "--grant", "alice", "--day", DAY.isoformat(), "--grants-file", str(missing)]) == 1

    out = capsys.readouterr().out
    assert f"FAIL grants file: {missing}: cannot read the grants file (No such file or directory)" in out
    assert "FAIL grant alice not planned" in out


def test_plan_of_an_invalid_entry_says_it_is_invalid_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path / "grants.yaml",
        {"grants": [{"key": "alice", "grant_id": "g-alice", "start_date": "2026-11-02", "page_size": 0}]},
    )

    assert main(["plan", "--grant", "alice", "--day", DAY.isoformat(), "--grants-file", str(path)]) == 1

    out = capsys.readouterr().out
    assert "no grant named" not in out
    assert (
        "FAIL grant alice is in the file but invalid: key 'page_size': must be a whole number from 1 to 200"
        in out
    )


def test_plan_of_a_valid_entry_is_made_when_another_entry_is_invalid(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NYLAS_DATAVERSE_STAGING", (tmp_path / "staging").as_uri())
    config = sandbox.grants_config()
    config["grants"].append(
        {"key": "broken", "grant_id": "g-broken", "start_date": "2026-11-02", "page_size": 0}
    )
    path = _write(tmp_path / "grants.yaml", config)

    assert main(["plan", "--grant", "alice", "--day", DAY.isoformat(), "--grants-file", str(path)]) == 0

    out = capsys.readouterr().out
    assert "WARN grants file (another entry; alice is still planned): " in out
    assert "grant 'broken': key 'page_size'" in out
    assert f"Dry run of alice for {DAY} (nothing written to Dataverse)" in out
    assert "plan.csv" in out
