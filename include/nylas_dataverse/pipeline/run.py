"""One way to run a grant's window: extract -> transform -> load -> report, as stages or end to end.

``run_stage`` runs one stage on a run's staging folder; the daily DAG runs each stage as its own task
(separately
retried and resumable: every stage reads only what the previous one wrote). ``run_window`` runs them one after
another in this process: the real-time processor, the tests and the benchmarks use it. The real-time path
replaces the first stage (``source``): it stages the messages its notifications name instead of listing a day.

``Services`` are the hooks a run uses; a ``ServicePool`` shares them among the grants one run processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.window import Window
from nylas_dataverse.hooks._retry import RetryPolicy
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.extract import extract_window
from nylas_dataverse.pipeline.load import load_window
from nylas_dataverse.pipeline.plan import plan_window
from nylas_dataverse.pipeline.report import report_window
from nylas_dataverse.pipeline.staging import RunStaging
from nylas_dataverse.pipeline.transform import transform_window

STAGES = layout.STAGES
# A dry run: extract and transform as usual, then the plan instead of load and report (pipeline/plan.py).
DRY_RUN_STAGES = ("extract", "transform", "plan")
Source = Callable[[RunStaging, "Services"], None]


@dataclass(frozen=True)
class Services:
    nylas: NylasHook
    dataverse: DataverseHook

    @classmethod
    def for_grant(cls, grant: GrantConfig) -> Services:
        """Fresh hooks for ``grant``; the connections are looked up on the first request."""
        return cls(NylasHook(grant.nylas_conn_id), DataverseHook(grant.dataverse_conn_id))


class ServicePool:
    """Hooks shared by the grants one run processes: one per connection, so every grant of one application
    user shares its token and its ``max_concurrency`` cap (service protection counts per user)."""

    def __init__(self, *, nylas_retry_policy: RetryPolicy | None = None) -> None:
        self._lock = threading.Lock()
        self._nylas_retry_policy = nylas_retry_policy  # None: the hook's default
        self._nylas: dict[str, NylasHook] = {}
        self._dataverse: dict[str, DataverseHook] = {}

    def for_grant(self, grant: GrantConfig) -> Services:
        with self._lock:
            nylas = self._nylas.get(grant.nylas_conn_id)
            if nylas is None:
                nylas = NylasHook(grant.nylas_conn_id, retry_policy=self._nylas_retry_policy)
                self._nylas[grant.nylas_conn_id] = nylas
            dataverse = self._dataverse.setdefault(
                grant.dataverse_conn_id, DataverseHook(grant.dataverse_conn_id)
            )
        return Services(nylas, dataverse)

    @property
    def dataverse_hooks(self) -> list[DataverseHook]:
        with self._lock:
            return list(self._dataverse.values())


def run_staging(root: ObjectStoragePath, grant: GrantConfig, label: str) -> RunStaging:
    return RunStaging(root, grant.dag_id, label)


def run_stage(
    stage: str,
    grant: GrantConfig,
    staging: RunStaging,
    services: Services,
    *,
    window: Window | None = None,
) -> dict[str, Any] | None:
    """Run one stage; extract needs the ``window``. Report returns the run's counts, plan the plan's."""
    if stage == "extract":
        if window is None:
            raise ValueError("extract needs the run's window")
        extract_window(grant, window, staging, services.nylas)
    elif stage == "transform":
        transform_window(grant, staging, services.dataverse)
    elif stage == "load":
        load_window(grant, staging, services.dataverse, services.nylas)
    elif stage == "report":
        return report_window(grant, staging)
    elif stage == "plan":
        return plan_window(grant, staging, services.dataverse)
    else:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)} and plan")
    return None


def plan_day(
    grant: GrantConfig, root: ObjectStoragePath, window: Window, services: Services | None = None
) -> RunStaging:
    """A dry run of ``window``: staged under ``plan-<day>``; writes ``plan.json`` and ``plan.csv`` there."""
    staging = run_staging(root, grant, layout.plan_label(window.label))
    run_window(grant, staging, window=window, services=services, stages=DRY_RUN_STAGES)
    return staging


def run_window(
    grant: GrantConfig,
    staging: RunStaging,
    *,
    window: Window | None = None,
    services: Services | None = None,
    source: Source | None = None,
    stages: tuple[str, ...] = STAGES,
) -> dict[str, Any] | None:
    """Run ``stages`` in order on one staging folder; returns the counts of report (or plan) when it ran.

    ``source`` replaces extract (it must write what extract writes); ``stages`` can start later to resume.
    """
    services = services or Services.for_grant(grant)
    counts: dict[str, Any] | None = None
    for stage in stages:
        if stage == "extract" and source is not None:
            source(staging, services)
            continue
        counts = run_stage(stage, grant, staging, services, window=window)
    return counts
