"""`make run`: the whole pipeline, end to end, on the sandbox.

Starts the sandbox, runs every sandbox grant's DAG for one day with `airflow dags test`, prints what
happened per grant, and stops the sandbox. Dataverse state persists in .sandbox/, so a second run
finds everything already present and creates nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from airflow_env import AIRFLOW_HOME, BIN, PROJECT_ROOT, airflow_environment, ensure_database

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.sandbox import DEFAULT_START_DAY, Sandbox, SandboxConfig

STATE_DIR = PROJECT_ROOT / ".sandbox"
STAGING = PROJECT_ROOT / ".staging"


def _start_sandbox() -> Sandbox:
    try:
        return Sandbox.start(SandboxConfig(state_dir=STATE_DIR))
    except OSError as exc:
        print(f"{exc}; is `make sandbox` running? Using free ports for this run instead.")
        return Sandbox.start(SandboxConfig(state_dir=STATE_DIR, nylas_port=0, entra_port=0, dataverse_port=0))


def _run_dag(dag_id: str, day: dt.date, env: dict[str, str], log_dir: Path) -> tuple[str, int, Path]:
    # A manual run with logical date D covers [D - 1 day, D) under the data-interval timetable.
    logical_date = (day + dt.timedelta(days=1)).isoformat()
    log_file = log_dir / f"{dag_id}.log"
    with log_file.open("w") as out:
        result = subprocess.run(
            [str(BIN / "airflow"), "dags", "test", dag_id, logical_date],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    return dag_id, result.returncode, log_file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--day", default=(DEFAULT_START_DAY + dt.timedelta(days=1)).isoformat())
    args = parser.parse_args()
    day = dt.date.fromisoformat(args.day)

    started = time.monotonic()
    sandbox = _start_sandbox()
    try:
        env = airflow_environment(
            {**sandbox.environment(), "NYLAS_DATAVERSE_STAGING": STAGING.resolve().as_uri()}
        )
        ensure_database(env)
        grants = [grant for grant in personas.GRANTS if grant.in_grants_file]
        log_dir = AIRFLOW_HOME / "demo-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        print(f"Syncing {day} for {len(grants)} sandbox grants with `airflow dags test` ...", flush=True)
        with ThreadPoolExecutor(max_workers=len(grants)) as pool:
            results = list(
                pool.map(lambda g: _run_dag(f"nylas_to_dataverse__{g.key}", day, env, log_dir), grants)
            )
        print()
        columns = ("extracted", "created", "present", "skipped", "failed")
        header = f"{'grant':<8} " + " ".join(f"{name:>9}" for name in columns) + "  status"
        print(header)
        print("-" * len(header))
        failures = 0
        for dag_id, returncode, log_file in results:
            key = dag_id.split("__", 1)[1]
            report_file = STAGING / dag_id / day.isoformat() / "report.json"
            if report_file.exists():
                report = json.loads(report_file.read_text())
                outcomes = report["counts"]
                values = (
                    outcomes[name]
                    for name in ("extracted", "created", "already_present", "skipped", "failed")
                )
                status = "ok" if returncode == 0 else f"FAILED (see {log_file})"
                print(f"{key:<8} " + " ".join(f"{value:>9}" for value in values) + f"  {status}")
            else:
                print(f"{key:<8} " + " ".join(f"{'-':>9}" for _ in columns) + f"  FAILED (see {log_file})")
            failures += returncode != 0
        print()
        print(f"Reports and ledgers:   {STAGING}/<dag_id>/{day}/report.json, ledger.jsonl")
        print(f"Task logs:             {log_dir}/")
        print(f"Rows in Dataverse:     {BIN / 'nylas-dataverse-sandbox'} inspect emails")
        print(f"Request counters:      {BIN / 'nylas-dataverse-sandbox'} inspect counters")
        print(f"Done in {time.monotonic() - started:.0f} s. Run `make run` again: nothing new is created.")
        return 1 if failures else 0
    finally:
        sandbox.stop()


if __name__ == "__main__":
    sys.exit(main())
