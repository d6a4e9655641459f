"""Builds the real-time DAG: scheduled on the webhook inbox asset, whose watcher is ``InboxTrigger``.

Why an asset watcher rather than the receiver calling the REST API: the receiver then needs no Airflow
credentials and no network path to the API, it keeps working (queueing) while Airflow is down, and a
burst of notifications becomes a few runs instead of one API call each. Airflow folds asset events
that arrive during a run into the next run; ``max_active_runs=1`` keeps batches processed in order.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, dag, task
from airflow.sdk.exceptions import AirflowFailException

from nylas_dataverse.core.assignment import DEFAULT_POOL
from nylas_dataverse.core.config import REALTIME_DAG_ID
from nylas_dataverse.pipeline.grants_index import load_all
from nylas_dataverse.pipeline.staging import staging_root
from nylas_dataverse.realtime.inbox import Inbox
from nylas_dataverse.realtime.processor import RealtimeFailuresError, process_open_batches
from nylas_dataverse.realtime.trigger import InboxTrigger

log = logging.getLogger(__name__)

INBOX_ASSET_NAME = "nylas_webhook_inbox"

_DOC = """
### Nylas → Dataverse: real time

Runs when Nylas webhook notifications are waiting in `{inbox}` (the receiver at `/nylas/webhook`
stores them; an asset watcher polls every {poll}s). Each grant's messages go through the daily
pipeline's transform, load and report, staged under `{staging}/<grant dag_id>/realtime-<batch>/`.
The daily DAGs later find these emails already present. See `docs/realtime.md`.
"""


def inbox_asset(staging_url: str, poll_interval: float = 0.5) -> Asset:
    return Asset(
        name=INBOX_ASSET_NAME,
        group="nylas_dataverse",
        watchers=[
            AssetWatcher(
                name="nylas_webhook_inbox_poll",
                trigger=InboxTrigger(staging_url=staging_url, poll_interval=poll_interval),
            )
        ],
    )


def build_realtime_dag(project_root: Path) -> DAG:
    root = staging_root(project_root)

    @dag(
        dag_id=REALTIME_DAG_ID,
        dag_display_name="Nylas → Dataverse: real time",
        description="Webhook notifications to Dataverse email activities within seconds",
        schedule=[inbox_asset(str(root))],
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=dt.timedelta(hours=1),
        tags=["nylas", "dataverse", "realtime"],
        doc_md=_DOC.format(inbox=Inbox(root).root, poll=0.5, staging=root),
        default_args={
            "owner": "data-platform",
            "retries": 3,
            "retry_delay": dt.timedelta(seconds=15),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": dt.timedelta(minutes=10),
        },
    )
    def realtime() -> None:
        # In the default application user's Dataverse pool, like the daily transform and load tasks, so a
        # backfill plus webhooks never exceed the pool's budget; the high priority makes it the next task
        # to get a slot when one frees.
        @task(pool=DEFAULT_POOL, execution_timeout=dt.timedelta(minutes=30), priority_weight=10)
        def process() -> dict[str, Any]:
            config = load_all(project_root)  # every grant: the validated index, not a new parse
            for error in config.errors:
                log.warning(
                    "Grants file problem (notifications of grants not found wait for a fix): %s", error
                )
            try:
                return process_open_batches(
                    Inbox(root), config.grants, root, grants_file_errors=[str(e) for e in config.errors]
                )
            except RealtimeFailuresError as exc:
                raise AirflowFailException(str(exc)) from exc

        process()

    return realtime()
