"""Shared pieces of the fault drills: grants and a task runner against the sandbox, and the secret watch.

Every drill runs with logging at DEBUG into a buffer. After each drill its log text, the staging files it
wrote and the logs of the processes it started are scanned for the sandbox's secrets (Nylas API key,
client secret, webhook secret, and every access token Entra issued during the session): a drill that
leaks one fails in its teardown. ``test_secret_scan.py`` scans everything the drills left once more.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.config import GrantConfig, parse_config
from nylas_dataverse.core.window import Window
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.pipeline.report import report_window
from nylas_dataverse.pipeline.run import Services, run_stage
from nylas_dataverse.pipeline.staging import RunStaging
from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.dataverse.backend import DataverseFaults
from nylas_dataverse_sandbox.dataverse.throttle import ServiceProtectionLimits

# Bulk days lie after the seeded week, so a drill's day holds only the mail it registered.
BULK_DAY = dt.date(2026, 11, 20)
SEEDED_DAY = dt.date(2026, 11, 3)


def grants(sandbox: Any, **overrides: Any) -> dict[str, GrantConfig]:
    config = sandbox.grants_config()
    config["defaults"].update(overrides)
    result = parse_config(yaml.safe_dump(config), "drill grants")
    assert not result.errors, result.errors
    return {grant.key: grant for grant in result.grants}


def day_window(day: dt.date) -> Window:
    return Window.for_day(day)


@dataclass
class DrillRunner:
    """The four stages for one grant and day, run through ``pipeline.run.run_stage`` as the DAG runs them."""

    root: ObjectStoragePath

    def staging(self, grant: GrantConfig, day: dt.date) -> RunStaging:
        return RunStaging(self.root, grant.dag_id, day.isoformat())

    def _stage(
        self,
        stage: str,
        grant: GrantConfig,
        day: dt.date,
        nylas: NylasHook | None = None,
        dataverse: DataverseHook | None = None,
    ) -> RunStaging:
        staging = self.staging(grant, day)
        services = Services(
            nylas or NylasHook(grant.nylas_conn_id), dataverse or DataverseHook(grant.dataverse_conn_id)
        )
        run_stage(stage, grant, staging, services, window=Window.for_day(day))
        return staging

    def extract(self, grant: GrantConfig, day: dt.date, nylas: NylasHook | None = None) -> RunStaging:
        return self._stage("extract", grant, day, nylas=nylas)

    def transform(
        self, grant: GrantConfig, day: dt.date, dataverse: DataverseHook | None = None
    ) -> RunStaging:
        return self._stage("transform", grant, day, dataverse=dataverse)

    def load(self, grant: GrantConfig, day: dt.date, dataverse: DataverseHook | None = None) -> RunStaging:
        return self._stage("load", grant, day, dataverse=dataverse)

    def report(self, grant: GrantConfig, day: dt.date) -> dict[str, Any]:
        return report_window(grant, self.staging(grant, day))


# --- the secret watch ------------------------------------------------------------------------------------


@dataclass
class SecretWatch:
    """What must never be written anywhere, and everything the drills wrote."""

    fixed: dict[str, str]
    tokens: list[str] = field(default_factory=list)
    log_texts: list[tuple[str, str]] = field(default_factory=list)  # (drill, captured log text)
    paths: list[Path] = field(default_factory=list)  # staging roots and log files, scanned recursively

    def secrets(self) -> dict[str, str]:
        found = dict(self.fixed)
        for number, token in enumerate(self.tokens):
            found[f"access token #{number}"] = token
            # The signature segment alone is what makes a token usable; a partial leak counts.
            found[f"access token #{number} (signature)"] = token.rsplit(".", 1)[-1]
        return found

    def leaks_in_text(self, where: str, text: str) -> list[str]:
        return [f"{name} in {where}" for name, value in self.secrets().items() if value and value in text]

    def leaks_in_files(self, paths: list[Path]) -> list[str]:
        leaks: list[str] = []
        needles = {name: value.encode() for name, value in self.secrets().items() if value}
        for root in paths:
            files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
            for path in files:
                data = path.read_bytes()
                if path.suffix == ".gz":
                    data += _readable_part_of_gzip(data)
                leaks.extend(f"{name} in {path}" for name, needle in needles.items() if needle in data)
        return leaks


def _readable_part_of_gzip(data: bytes) -> bytes:
    """As much of a gzip file as decompresses (a drill may have cut or replaced it on purpose)."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    except zlib.error:
        return b""


@pytest.fixture(scope="session")
def secret_watch(sandbox_session: Any) -> Iterator[SecretWatch]:
    watch = SecretWatch(
        fixed={
            "Nylas API key": personas.NYLAS_API_KEY,
            "Entra client secret": personas.CLIENT_SECRET,
            "Nylas webhook secret": personas.WEBHOOK_SECRET,
        }
    )
    entra = sandbox_session.entra
    issue_token = entra.issue_token

    def recording_issue_token(*args: Any, **kwargs: Any) -> Any:
        # Entra's backend forgets tokens on expire_all; the watch keeps every one it ever issued.
        issued = issue_token(*args, **kwargs)
        watch.tokens.append(issued.access_token)
        return issued

    entra.issue_token = recording_issue_token
    yield watch
    entra.issue_token = issue_token
    # Once more at the end, now that every token of the session is known.
    leaks = [leak for drill, text in watch.log_texts for leak in watch.leaks_in_text(drill, text)]
    leaks += watch.leaks_in_files([path for path in watch.paths if path.exists()])
    assert not leaks, f"secrets written during the drills: {leaks}"


@pytest.fixture(autouse=True)
def debug_logs_without_secrets(
    request: pytest.FixtureRequest, secret_watch: SecretWatch, tmp_path: Path
) -> Iterator[None]:
    """DEBUG logging for the drill; afterwards its logs and files must hold no secret."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
    text = buffer.getvalue()
    watch = secret_watch
    watch.log_texts.append((request.node.nodeid, text))
    watch.paths.append(tmp_path)
    leaks = watch.leaks_in_text(f"the DEBUG log of {request.node.nodeid}", text)
    leaks += watch.leaks_in_files([tmp_path])
    assert not leaks, f"secrets written by a drill: {leaks}"


@pytest.fixture
def drill_sandbox(sandbox: Any) -> Iterator[Any]:
    """The session sandbox with the real service-protection limits compressed 1000-fold in time.

    At real time every $batch of ten emails would really take 0.75 s of modelled server time. The
    sandbox is shared by the whole test session and its reset keeps limits and Dataverse faults, so
    both are put back afterwards, whatever the drill did or however it ended.
    """
    previous = sandbox.dataverse.limits
    sandbox.dataverse.set_limits(ServiceProtectionLimits(time_scale=0.001))
    try:
        yield sandbox
    finally:
        sandbox.dataverse.set_limits(previous)
        sandbox.dataverse.set_faults(**dataclasses.asdict(DataverseFaults()))
        sandbox.nylas.reset()


@pytest.fixture
def drill_runner(tmp_path: Path) -> DrillRunner:
    return DrillRunner(ObjectStoragePath(tmp_path.as_uri()) / "staging")
