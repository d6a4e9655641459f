"""Helpers to run the pipeline's task bodies against the sandbox, without the scheduler."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.config import GrantConfig, parse_config
from nylas_dataverse.core.window import Window
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.pipeline.report import report_window
from nylas_dataverse.pipeline.run import Services, plan_day, run_stage, run_window
from nylas_dataverse.pipeline.staging import RunStaging

DAY = dt.date(2026, 11, 3)


def grants(sandbox: Any, **overrides: Any) -> dict[str, GrantConfig]:
    config = sandbox.grants_config()
    for grant in config["grants"]:
        grant.update(overrides)
    result = parse_config(yaml.safe_dump(config), "sandbox grants")
    assert not result.errors
    return {grant.key: grant for grant in result.grants}


def window(day: dt.date) -> Window:
    return Window.for_day(day)


class Runner:
    """Runs extract -> transform -> load -> report for one grant and day through ``pipeline.run``."""

    def __init__(self, root: ObjectStoragePath) -> None:
        self.root = root

    def staging(self, grant: GrantConfig, day: dt.date = DAY, label: str | None = None) -> RunStaging:
        return RunStaging(self.root, grant.dag_id, label or day.isoformat())

    def _stage(
        self, stage: str, grant: GrantConfig, day: dt.date, hook: DataverseHook | None = None
    ) -> RunStaging:
        staging = self.staging(grant, day)
        services = Services.for_grant(grant)
        if hook is not None:
            services = Services(services.nylas, hook)
        run_stage(stage, grant, staging, services, window=window(day))
        return staging

    def extract(self, grant: GrantConfig, day: dt.date = DAY) -> RunStaging:
        return self._stage("extract", grant, day)

    def transform(self, grant: GrantConfig, day: dt.date = DAY) -> RunStaging:
        return self._stage("transform", grant, day)

    def load(self, grant: GrantConfig, day: dt.date = DAY, hook: DataverseHook | None = None) -> RunStaging:
        return self._stage("load", grant, day, hook)

    def report(self, grant: GrantConfig, day: dt.date = DAY) -> dict[str, Any]:
        return report_window(grant, self.staging(grant, day))

    def plan(self, grant: GrantConfig, day: dt.date = DAY) -> dict[str, Any]:
        """A dry run of ``day`` (plan-<day>/); returns the plan's counts."""
        staging = plan_day(grant, self.root, window(day))
        counts: dict[str, Any] = json.loads(staging.file("plan.json").read_bytes())["counts"]
        return counts

    def day(self, grant: GrantConfig, day: dt.date = DAY) -> dict[str, Any]:
        counts = run_window(grant, self.staging(grant, day), window=window(day))
        assert counts is not None
        return counts


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    return Runner(ObjectStoragePath(tmp_path.as_uri()) / "staging")


@pytest.fixture
def make_runner(tmp_path: Path) -> Callable[[str], Runner]:
    return lambda name: Runner(ObjectStoragePath(tmp_path.as_uri()) / name)
