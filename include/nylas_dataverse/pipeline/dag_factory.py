"""Builds the daily DAG of one grant. The DAG files in ``dags/`` only call this.

Nothing here does network I/O or reads the clock at parse time, so every parse produces the same DAG.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.window import WindowError, resolve_window
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.errors import ServiceError
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.pipeline.extract import extract_window
from nylas_dataverse.pipeline.load import load_window
from nylas_dataverse.pipeline.report import TooManyFailuresError, report_window
from nylas_dataverse.pipeline.staging import RunStaging, StagingError, staging_root
from nylas_dataverse.pipeline.transform import transform_window

log = logging.getLogger(__name__)

NYLAS_POOL = "nylas_api"
DATAVERSE_POOL = "dataverse_api"

_DOC = """
### Nylas → Dataverse: {name}

Tracks the mail of Nylas grant `{grant_id}` as Dataverse `email` activities, one UTC day per run.

* **extract** stages the window's messages (gzip JSON lines) under `{staging}/{dag_id}/<day>/`
* **transform** resolves addresses in bulk and decides each message (payload, skip or failure)
* **load** creates the emails exactly once (Message-ID lookup, deterministic ids, atomic change sets)
* **report** writes `report.json` and `ledger.jsonl`, and fails the run if failures exceed {max_failures}

Manual runs without a data interval take `window_start`/`window_end` from the params, or the previous UTC day.
Backfill any date range from the UI; rerunning a day is safe.
"""


def _fail_fast(exc: Exception) -> Exception:
    """Errors a retry cannot fix (bad credentials, expired grant, corrupt staging) fail the task at once."""
    if isinstance(exc, (StagingError, WindowError, TooManyFailuresError)):
        return AirflowFailException(str(exc))
    if isinstance(exc, ServiceError) and not exc.transient:
        return AirflowFailException(str(exc))
    return exc


def build_dag(grant: GrantConfig, project_root: Path) -> DAG:
    root = staging_root(project_root)
    name = grant.display_name or grant.email or grant.key

    @dag(
        dag_id=grant.dag_id,
        dag_display_name=f"Nylas → Dataverse: {name}",
        description=f"Daily sync of Nylas grant {grant.key} into Dataverse email activities",
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=pendulum.datetime(
            grant.start_date.year, grant.start_date.month, grant.start_date.day, tz="UTC"
        ),
        catchup=False,
        max_active_runs=2,
        dagrun_timeout=dt.timedelta(hours=12),
        tags=["nylas", "dataverse", f"grant:{grant.key}"],
        doc_md=_DOC.format(
            name=name,
            grant_id=grant.grant_id,
            staging=root,
            dag_id=grant.dag_id,
            max_failures=grant.max_failures,
        ),
        params={
            "window_start": Param(
                None, type=["null", "string"], description="Manual runs: window start (ISO date)"
            ),
            "window_end": Param(
                None, type=["null", "string"], description="Manual runs: window end, exclusive"
            ),
        },
        default_args={
            "owner": "data-platform",
            "retries": 3,
            "retry_delay": dt.timedelta(minutes=1),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": dt.timedelta(minutes=30),
        },
    )
    def pipeline() -> None:
        @task(pool=NYLAS_POOL, execution_timeout=dt.timedelta(hours=2))
        def extract() -> str:
            context = get_current_context()
            dag_run = context["dag_run"]
            try:
                window = resolve_window(
                    context.get("data_interval_start"),
                    context.get("data_interval_end"),
                    context["params"],
                    getattr(dag_run, "run_after", None),
                )
                staging = RunStaging(root, grant.dag_id, window.label)
                return extract_window(grant, window, staging, NylasHook(grant.nylas_conn_id)).path
            except Exception as exc:
                raise _fail_fast(exc) from exc

        @task(pool=DATAVERSE_POOL, execution_timeout=dt.timedelta(hours=2))
        def transform(path: str) -> str:
            try:
                return transform_window(
                    grant, RunStaging.from_path(path), DataverseHook(grant.dataverse_conn_id)
                )
            except Exception as exc:
                raise _fail_fast(exc) from exc

        @task(pool=DATAVERSE_POOL, execution_timeout=dt.timedelta(hours=4))
        def load(path: str) -> str:
            try:
                return load_window(grant, RunStaging.from_path(path), DataverseHook(grant.dataverse_conn_id))
            except Exception as exc:
                raise _fail_fast(exc) from exc

        @task(retries=0)
        def report(path: str) -> dict[str, Any]:
            try:
                return report_window(grant, RunStaging.from_path(path))
            except Exception as exc:
                raise _fail_fast(exc) from exc

        report(load(transform(extract())))

    return pipeline()
