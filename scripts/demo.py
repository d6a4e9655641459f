"""`make run`: the whole pipeline, end to end, on the sandbox, the way production runs it.

Starts the sandbox and a local Airflow (API server, scheduler, DAG processor, triggerer; the same one
`make airflow` starts, without staying in the foreground), activates the DAGs, and asks the scheduler for a
backfill of one day for every sandbox grant. It waits for the runs, prints what happened per grant (a failed
grant names its cause in one line), and stops what it started. When `make airflow` is already running on this
project, its Airflow is used instead of starting a second one.

The runs stay in Airflow's history: `make airflow` afterwards shows them, noted with the day they synced
("Syncs the UTC day 2026-11-03"; Airflow names a backfill run after the next day, `backfill__2026-11-04...`).
Dataverse state persists in .sandbox/, so a second `make run` syncs the day again and creates nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import requests
from airflow_env import AIRFLOW_HOME, PROJECT_ROOT
from local_airflow import (
    USERNAME,
    AirflowApi,
    LocalAirflow,
    StartupError,
    StartupInterruptedError,
    ensure_password,
    expected_dag_ids,
    free_port,
    parse_args,
    running_instance,
)

from nylas_dataverse_sandbox.sandbox import DEFAULT_START_DAY

STAGING = PROJECT_ROOT / ".staging"
RUN_TIMEOUT_S = 600.0
FINISHED = {"success", "failed"}
COLUMNS = ("extracted", "created", "already_present", "skipped", "failed")


def create_backfill(api: AirflowApi, dag_id: str, day: dt.date) -> int:
    """One backfill run for ``day``; a day that already ran is run again (that is the point of make run)."""
    body = {
        "dag_id": dag_id,
        "from_date": f"{day.isoformat()}T00:00:00Z",
        "to_date": f"{day.isoformat()}T00:00:00Z",
        "reprocess_behavior": "completed",
        "max_active_runs": 1,
    }
    for attempt in range(1, 11):
        response = api.post("/backfills", body)
        if response.ok:
            return int(response.json()["id"])
        # SQLite: Airflow 3.3.2 refuses while another write holds the database; it succeeds a moment later.
        if response.status_code in (409, 500, 503) and attempt < 10:
            time.sleep(1.0 + attempt)
            continue
        raise StartupError(
            f"creating the backfill of {dag_id} failed: {response.status_code} {response.text}"
        )
    raise AssertionError("unreachable")


def active_runs(api: AirflowApi, dag_ids: list[str]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for dag_id in dag_ids:
        runs += [
            r for r in api.get(f"/dags/{dag_id}/dagRuns", limit=50)["dag_runs"] if r["state"] not in FINISHED
        ]
    return runs


def day_run(api: AirflowApi, dag_id: str, day: dt.date) -> dict[str, Any] | None:
    """The run identified by ``day`` (the backfill created it, or cleared and requeued an earlier one)."""
    stamp = f"{day.isoformat()}T00:00:00Z"
    runs = api.get(f"/dags/{dag_id}/dagRuns", logical_date_gte=stamp, logical_date_lte=stamp)["dag_runs"]
    return runs[0] if runs else None


def _ended_after(run: dict[str, Any], since: dt.datetime) -> bool:
    end = run.get("end_date")
    return bool(end) and dt.datetime.fromisoformat(str(end).replace("Z", "+00:00")) >= since


def wait_for_runs(
    api: AirflowApi, dag_ids: list[str], day: dt.date, since: dt.datetime
) -> dict[str, dict[str, Any]]:
    """Wait for every grant's run of ``day`` and whatever else the scheduler started, printing progress."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    seen: dict[tuple[str, str], str] = {}
    results: dict[str, dict[str, Any]] = {}
    while True:
        for dag_id in dag_ids:
            run = day_run(api, dag_id, day)
            if run is None:
                continue
            results[dag_id] = run
            tis = api.get(f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances")["task_instances"]
            for ti in tis:
                state = ti.get("state") or "none"
                key = (dag_id, ti["task_id"])
                if seen.get(key) != state and state in ("running", "success", "failed", "up_for_retry"):
                    seen[key] = state
                    print(f"  {dag_id.split('__', 1)[1]:<8} {ti['task_id']:<9} {state}", flush=True)
        # A run counts once it ended after this make run asked for it (a cleared run restarts from queued).
        done = len(results) == len(dag_ids) and all(
            r["state"] in FINISHED and _ended_after(r, since) for r in results.values()
        )
        if done and not active_runs(api, dag_ids):
            return results
        if time.monotonic() > deadline:
            raise StartupError(f"the runs did not finish within {RUN_TIMEOUT_S:.0f} s; see the task logs")
        time.sleep(2.0)


def grant_line(dag_id: str, day: dt.date, run: dict[str, Any] | None) -> tuple[str, bool]:
    key = dag_id.split("__", 1)[1]
    folder = STAGING / dag_id / day.isoformat()
    report = folder / "report.json"
    failure = folder / "failure.json"
    ok = run is not None and run["state"] == "success" and report.exists()
    if report.exists():
        counts = json.loads(report.read_text())["counts"]
        values = " ".join(f"{counts[name]:>9}" for name in COLUMNS)
    else:
        values = " ".join(f"{'-':>9}" for _ in COLUMNS)
    if ok:
        return f"{key:<8} {values}  ok", True
    if failure.exists():
        recorded = json.loads(failure.read_text())
        cause = f"{recorded['task']}: {recorded['message']} -> {recorded['remedy']}"
    elif run is None:
        cause = "no run was created"
    else:
        cause = f"run {run['state']}; see the task logs"
    return f"{key:<8} {values}  FAILED {cause}", False


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--day", default=(DEFAULT_START_DAY + dt.timedelta(days=1)).isoformat())
    options, rest = parser.parse_known_args()
    day = dt.date.fromisoformat(options.day)
    started = time.monotonic()

    airflow: LocalAirflow | None = None
    port = running_instance(AIRFLOW_HOME)
    try:
        if port is not None:
            print(f"Using the local Airflow already running on http://127.0.0.1:{port} (make airflow).")
            api = AirflowApi(f"http://127.0.0.1:{port}", USERNAME, ensure_password(AIRFLOW_HOME))
            api.login()
        else:
            airflow = LocalAirflow(parse_args(["--port", str(free_port()), *rest]))
            api, _ = airflow.start()
        dag_ids = sorted(expected_dag_ids())
        print(f"Syncing {day} for {len(dag_ids)} sandbox grants: one backfill run each ...", flush=True)
        since = dt.datetime.now(dt.UTC)
        for dag_id in dag_ids:
            create_backfill(api, dag_id, day)
        runs = wait_for_runs(api, dag_ids, day, since)
    except StartupInterruptedError:
        return 130
    except (StartupError, requests.RequestException) as exc:
        print(f"\nmake run could not finish: {exc}", file=sys.stderr)
        return 1
    finally:
        if airflow is not None:
            airflow.stop()

    print()
    header = (
        f"{'grant':<8} " + " ".join(f"{name.replace('already_', ''):>9}" for name in COLUMNS) + "  status"
    )
    print(header)
    print("-" * len(header))
    failures = 0
    for dag_id in dag_ids:
        line, ok = grant_line(dag_id, day, runs.get(dag_id))
        print(line)
        failures += not ok
    print()
    print(f"Reports and ledgers:   {STAGING}/<dag_id>/{day}/report.json, ledger.jsonl")
    print(f"Task logs:             {Path(AIRFLOW_HOME) / 'logs'}/dag_id=<dag_id>/")
    print("In the UI:             make airflow (the runs are there, named after the day they synced)")
    print("Rows in Dataverse:     .venv/bin/nylas-dataverse-sandbox inspect emails")
    elapsed = time.monotonic() - started
    if failures:
        print(
            f"{failures} of {len(dag_ids)} grants FAILED ({elapsed:.0f} s); the lines above name the cause."
        )
        return 1
    print(
        f"Done in {elapsed:.0f} s: every grant synced {day}."
        " `make run` again syncs it again and creates nothing."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
