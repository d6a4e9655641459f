"""Builds the daily DAG of one grant. The DAG files in ``dags/`` only call this.

Nothing here does network I/O or reads the clock at parse time, so every parse produces the same DAG.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from pathlib import Path, PurePosixPath
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, dag, get_current_context, task

from nylas_dataverse.core.assignment import DEFAULT_POOL, pool_name
from nylas_dataverse.core.config import AlertsConfig, GrantConfig
from nylas_dataverse.core.errors import Failure
from nylas_dataverse.core.window import run_window as run_day_window
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.alerts import EXCEPTION_ATTRIBUTE, AlertCallback
from nylas_dataverse.pipeline.failures import RetryWhenRetryable, announce, classify
from nylas_dataverse.pipeline.staging import RunStaging, staging_root
from nylas_dataverse.pipeline.timetable import UtcDayTimetable

# The task bodies import the stages (and through them the hooks, msal, requests) when they run: parsing
# builds DAGs only, and with thousands of grants every DAG file's parse time counts (docs/configuration.md).

log = logging.getLogger(__name__)

NYLAS_POOL = "nylas_api"
DATAVERSE_POOL = DEFAULT_POOL  # of dataverse_default; every other application user has its own (pool_name)

_DOC = """
### Nylas → Dataverse: {name}

Tracks the mail of Nylas grant `{grant_id}` as Dataverse `email` activities, **one UTC day per run**.

**Which day a run syncs.** Every run is identified by the UTC day it syncs, however it was started:

* *scheduled*: shortly after 00:00 UTC, the day that just ended (run id `scheduled__<day>`);
* *Trigger*: the day of the logical date you pick in the trigger form; the proposed "now" means the last
  complete day (run id `manual__<day>__at_<time>`). To sync a day again, clear its run, or trigger with any
  time on that day;
* *Backfill*: every day from the first to the last date you pick, each once (run ids `backfill__<day>...`).
  Days that already have a run are skipped unless you choose to rerun them.

A run for a day that has not ended yet, or with a data interval that is not one whole UTC day, fails at once
and says why.

* **extract** stages the day's messages (gzip JSON lines) under `{staging}/{dag_id}/<day>/`
* **transform** resolves addresses in bulk and decides each message (email to create, skip or failure)
* **load** creates the emails exactly once (Message-ID lookup, deterministic ids, atomic change sets)
* **report** writes `report.json` and `ledger.jsonl`, and fails the run if more than {max_failures}
  message(s) failed

A failed task writes `failure.json` next to the day's data (its kind: `grant_expired`, `credentials`,
`config`,
... and what to do); errors a retry cannot fix are not retried. Rerunning a day is always safe.
**Dry run.** Trigger with `dry_run` on to preview a policy change: extract and transform run as usual,
load only looks up which emails Dataverse already holds, and `plan.json` + `plan.csv` (each message's
decision, parties, regarding record) are written under `{staging}/{dag_id}/plan-<day>/`. Nothing is
written to Dataverse and the day's real ledger and report are left as they are.

Every run also updates the grant's row on the **Sync health** page (Airflow's navigation), and a task that
gives up sends the notifiers of the grants file's `alerts` section.
"""


def _staging_for(root: Any, grant: GrantConfig, path: str) -> RunStaging:
    """The run's staging folder from the path extract returned (only its last part, the day, is read)."""
    return RunStaging(root, grant.dag_id, PurePosixPath(str(path)).name)


def _is_dry_run(path: str) -> bool:
    return layout.is_plan_label(PurePosixPath(str(path)).name)


def _final_attempt(failure: Failure, ti: Any) -> bool:
    """Whether Airflow gives up after this attempt: the kind is not retryable, or no try is left."""
    if not failure.retryable:
        return True
    try_number, max_tries = getattr(ti, "try_number", None), getattr(ti, "max_tries", None)
    return isinstance(try_number, int) and isinstance(max_tries, int) and try_number > max_tries


def build_dag(grant: GrantConfig, project_root: Path, alerts: AlertsConfig | None = None) -> DAG:
    root = staging_root(project_root)
    name = grant.display_name or grant.email or grant.key

    def attempt(stage: str, staging: RunStaging | None, body: Any) -> Any:
        """Run a task body; on failure classify it once, record it, announce it, re-raise."""
        from nylas_dataverse.pipeline.report import TooManyFailuresError
        from nylas_dataverse.pipeline.summary import record_failure

        context = get_current_context()
        try:
            result = body()
        except Exception as exc:
            failure = classify(exc)
            announce(grant, staging.label if staging else None, failure)
            # For the alert callback, which Airflow calls with this exception once the task gave up.
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc, EXCEPTION_ATTRIBUTE, (staging.label if staging else None, failure))
            if staging is not None:
                ti = context.get("ti")
                try:
                    staging.write_failure(stage, failure, attempt=getattr(ti, "try_number", None))
                except Exception:  # the record is for monitors; the task's own error matters more
                    log.warning("Could not record the failure in %s", staging, exc_info=True)
                # The report recorded its own verdict; a dry run is a preview, not a run of the day.
                if not isinstance(exc, TooManyFailuresError) and not layout.is_plan_label(staging.label):
                    try:
                        record_failure(grant, staging, stage, failure, final=_final_attempt(failure, ti))
                    except Exception:
                        log.warning("Could not update the health summary of %s", grant.key, exc_info=True)
            raise
        if staging is not None:
            staging.clear_failure()
        return result

    @dag(
        dag_id=grant.dag_id,
        dag_display_name=f"Nylas → Dataverse: {name}",
        description=(
            f"Daily sync of Nylas grant {grant.key} into Dataverse email activities (one UTC day per run)"
        ),
        schedule=UtcDayTimetable(),
        start_date=pendulum.datetime(
            grant.start_date.year, grant.start_date.month, grant.start_date.day, tz="UTC"
        ),
        catchup=False,
        params={
            "dry_run": Param(
                False,
                type="boolean",
                title="Dry run (preview only)",
                description=(
                    "Write plan.json and plan.csv (what would be created, found, skipped and why) under"
                    " plan-<day>/ in staging instead of loading: nothing is written to Dataverse."
                ),
            )
        },
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
        default_args={
            "owner": "data-platform",
            "retries": 3,
            "retry_delay": dt.timedelta(minutes=1),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": dt.timedelta(minutes=30),
            "retry_policy": RetryWhenRetryable(),
            **(
                {"on_failure_callback": [AlertCallback(grant, alerts)]}
                if alerts is not None and alerts.configured
                else {}
            ),
        },
    )
    def pipeline() -> None:
        @task(pool=NYLAS_POOL, execution_timeout=dt.timedelta(hours=2))
        def extract() -> str:
            from nylas_dataverse.pipeline.run import Services, run_stage

            context = get_current_context()
            dag_run = context["dag_run"]

            def day_window() -> Any:
                return run_day_window(
                    data_interval_start=context.get("data_interval_start"),
                    data_interval_end=context.get("data_interval_end"),
                    run_conf=getattr(dag_run, "conf", None) or {},
                    run_after=getattr(dag_run, "run_after", None),
                    now=dt.datetime.now(dt.UTC),
                )

            window = attempt("extract", None, day_window)
            dry_run = bool((context.get("params") or {}).get("dry_run"))
            staging = RunStaging(
                root, grant.dag_id, layout.plan_label(window.label) if dry_run else window.label
            )
            log.info("This run syncs the UTC day %s (%s .. %s)", window.label, window.start, window.end)
            services = Services.for_grant(grant)
            attempt("extract", staging, lambda: run_stage("extract", grant, staging, services, window=window))
            return str(staging.folder)

        def later_stage(stage: str, path: str) -> Any:
            from nylas_dataverse.pipeline.run import Services, run_stage

            staging = _staging_for(root, grant, path)
            services = Services.for_grant(grant)
            return attempt(stage, staging, lambda: run_stage(stage, grant, staging, services))

        @task(pool=pool_name(grant.dataverse_conn_id), execution_timeout=dt.timedelta(hours=2))
        def transform(path: str) -> str:
            later_stage("transform", path)
            return path

        @task(pool=pool_name(grant.dataverse_conn_id), execution_timeout=dt.timedelta(hours=4))
        def load(path: str) -> str:
            # A dry run's folder (plan-<day>) gets the plan instead: read-only lookups, no writes.
            later_stage("plan" if _is_dry_run(path) else "load", path)
            return path

        @task(retries=0)
        def report(path: str) -> dict[str, Any]:
            if _is_dry_run(path):
                plan = _staging_for(root, grant, path).read_json(layout.PLAN) or {}
                planned: dict[str, Any] = plan.get("counts", {})
                return planned
            counts: dict[str, Any] = later_stage("report", path)
            return counts

        # TaskFlow calls return XComArgs at parse time; their values are the paths at run time.
        report(load(transform(extract())))  # type: ignore[arg-type]

    return pipeline()
