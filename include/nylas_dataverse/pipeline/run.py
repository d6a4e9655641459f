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
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.extract import extract_window
from nylas_dataverse.pipeline.load import load_window
from nylas_dataverse.pipeline.report import report_window
from nylas_dataverse.pipeline.staging import RunStaging
from nylas_dataverse.pipeline.transform import transform_window

STAGES = layout.STAGES
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

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nylas: dict[str, NylasHook] = {}
        self._dataverse: dict[str, DataverseHook] = {}

    def for_grant(self, grant: GrantConfig) -> Services:
        with self._lock:
            nylas = self._nylas.setdefault(grant.nylas_conn_id, NylasHook(grant.nylas_conn_id))
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
    """Run one stage; extract needs the ``window``. Only report returns something: the run's counts."""
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
    else:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    return None


def run_window(
    grant: GrantConfig,
    staging: RunStaging,
    *,
    window: Window | None = None,
    services: Services | None = None,
    source: Source | None = None,
    stages: tuple[str, ...] = STAGES,
) -> dict[str, Any] | None:
    """Run ``stages`` in order on one staging folder; returns the report's counts when report ran.

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
