"""Helpers to run the pipeline's task bodies against the sandbox, without the scheduler."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.config import GrantConfig, parse_config
from nylas_dataverse.core.window import Window
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.pipeline.extract import extract_window
from nylas_dataverse.pipeline.load import load_window
from nylas_dataverse.pipeline.report import report_window
from nylas_dataverse.pipeline.staging import RunStaging
from nylas_dataverse.pipeline.transform import transform_window

DAY = dt.date(2026, 11, 3)


def grants(sandbox: Any, **overrides: Any) -> dict[str, GrantConfig]:
    config = sandbox.grants_config()
    for grant in config["grants"]:
        grant.update(overrides)
    result = parse_config(yaml.safe_dump(config), "sandbox grants")
    assert not result.errors
    return {grant.key: grant for grant in result.grants}


def window(day: dt.date) -> Window:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return Window(start, start + dt.timedelta(days=1))


class Runner:
    """Runs extract -> transform -> load -> report for one grant and day, like the DAG does."""

    def __init__(self, root: ObjectStoragePath) -> None:
        self.root = root

    def staging(self, grant: GrantConfig, day: dt.date = DAY) -> RunStaging:
        return RunStaging(self.root, grant.dag_id, day.isoformat())

    def extract(self, grant: GrantConfig, day: dt.date = DAY) -> RunStaging:
        staging = self.staging(grant, day)
        extract_window(grant, window(day), staging, NylasHook(grant.nylas_conn_id))
        return staging

    def transform(self, grant: GrantConfig, day: dt.date = DAY) -> RunStaging:
        staging = self.staging(grant, day)
        transform_window(grant, staging, DataverseHook(grant.dataverse_conn_id))
        return staging

    def load(self, grant: GrantConfig, day: dt.date = DAY, hook: DataverseHook | None = None) -> RunStaging:
        staging = self.staging(grant, day)
        load_window(grant, staging, hook or DataverseHook(grant.dataverse_conn_id))
        return staging

    def report(self, grant: GrantConfig, day: dt.date = DAY) -> dict[str, Any]:
        return report_window(grant, self.staging(grant, day))

    def day(self, grant: GrantConfig, day: dt.date = DAY) -> dict[str, Any]:
        self.extract(grant, day)
        self.transform(grant, day)
        self.load(grant, day)
        return self.report(grant, day)


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    return Runner(ObjectStoragePath(tmp_path.as_uri()) / "staging")


@pytest.fixture
def make_runner(tmp_path: Path) -> Callable[[str], Runner]:
    return lambda name: Runner(ObjectStoragePath(tmp_path.as_uri()) / name)
