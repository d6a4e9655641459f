"""Builds ``nylas_dataverse_staging_retention``: deletes staged message bodies older than each grant's
``retention_days`` (``pipeline/retention.py``). The DAG file in ``dags/`` only calls this."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, dag, get_current_context, task

from nylas_dataverse.pipeline import retention
from nylas_dataverse.pipeline.settings import RETENTION_DRY_RUN_ENV, load_grants, retention_dry_run_default
from nylas_dataverse.pipeline.staging import staging_root

log = logging.getLogger(__name__)

RETENTION_DAG_ID = "nylas_dataverse_staging_retention"

_DOC = """
### Nylas → Dataverse: staging retention

Deletes the staged message bodies (`messages.jsonl.gz`, `payloads.jsonl.gz`, and the webhook inbox's
stored notifications) of days older than each grant's `retention_days` in the grants file, under
`{staging}`. Reports, ledgers, manifests, `failure.json`, the quarantine and the health summaries stay.
Grants without `retention_days` are not touched.

**Dry run first.** With `dry_run` on (the default unless `{env}=false`), a run only logs every file it
would delete, with counts and bytes per grant. Trigger with `dry_run` off to delete. A day whose bodies
were deleted can still be synced again: clear its run from `extract`.
"""


def build_retention_dag(project_root: Path) -> DAG:
    root = staging_root(project_root)

    @dag(
        dag_id=RETENTION_DAG_ID,
        dag_display_name="Nylas → Dataverse: staging retention",
        description="Deletes staged message bodies older than each grant's retention_days",
        schedule="@daily",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=dt.timedelta(hours=6),
        tags=["nylas", "dataverse", "maintenance"],
        doc_md=_DOC.format(staging=root, env=RETENTION_DRY_RUN_ENV),
        params={
            "dry_run": Param(
                retention_dry_run_default(),
                type="boolean",
                description="Only list what would be deleted (counts and bytes in the log)",
            )
        },
        default_args={"owner": "data-platform", "retries": 1, "retry_delay": dt.timedelta(minutes=5)},
    )
    def staging_retention() -> None:
        @task(execution_timeout=dt.timedelta(hours=4))
        def clean_staging() -> dict[str, Any]:
            context = get_current_context()
            config = load_grants(project_root)
            for error in config.errors:
                log.warning("Grants file problem (that grant's staging is left alone): %s", error)
            dry_run = bool(context["params"].get("dry_run", True))
            today = dt.datetime.now(dt.UTC).date()
            return retention.run(root, config.grants, today, dry_run=dry_run)

        clean_staging()

    return staging_retention()
