"""What the runs leave for the health page, from real runs against the sandbox."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.health import DayState, GrantInfo, GrantStatus, grant_status, overview_row
from nylas_dataverse.core.window import Window
from nylas_dataverse.hooks.errors import NylasGrantAuthError
from nylas_dataverse.pipeline.failures import classify
from nylas_dataverse.pipeline.report import TooManyFailuresError
from nylas_dataverse.pipeline.run import Services, run_stage, run_window
from nylas_dataverse.pipeline.staging import RunStaging
from nylas_dataverse.pipeline.summary import SummaryStore, record_failure

from .conftest import SEEDED_DAY, broken_message, restage_with, run_day, sandbox_grants


@pytest.fixture(autouse=True)
def _the_morning_after_the_seeded_day(morning_after: Any) -> None:
    """These runs are the scheduled ones for the seeded day: the summary keeps days counted from today."""
    morning_after(SEEDED_DAY)


def _all_text(folder: Path) -> str:
    return "\n".join(path.read_text() for path in folder.rglob("*.json"))


def test_a_daily_run_leaves_its_counts_addresses_and_mailbox_in_the_grants_summary(
    sandbox: Any, staging_root: ObjectStoragePath, tmp_path: Path
) -> None:
    alice = sandbox_grants(sandbox)["alice"]
    staging = run_day(staging_root, alice)
    report = json.loads(staging.file("report.json").read_bytes())
    transform = json.loads(staging.file("transform.json").read_bytes())

    store = SummaryStore(staging_root)
    summary = store.read_summary("alice")

    assert summary is not None
    row = summary.daily_by_day()[SEEDED_DAY]
    assert row.counts is not None
    assert row.counts.to_json() == report["counts"]
    assert row.state() is DayState.SYNCED
    assert (summary.mailbox, summary.provider) == ("alice@contoso.example", "google")
    assert summary.last_synced_day == SEEDED_DAY
    # Every unresolved address of the day, with how many messages named it.
    [entry] = store.entries("alice", since=SEEDED_DAY)
    assert len(entry.unresolved_top) == transform["unresolved_addresses"] > 0
    assert summary.unresolved_week == transform["unresolved_addresses"]
    assert all(count >= 1 for _address, count in entry.unresolved_top)
    assert entry.run is None  # run outside Airflow: no run to link to


def _extracted(grant: GrantConfig, root: ObjectStoragePath) -> tuple[RunStaging, Services, dict[str, Any]]:
    """The seeded day extracted for ``grant``: its staging, services and first staged message."""
    staging = RunStaging(root, grant.dag_id, SEEDED_DAY.isoformat())
    services = Services.for_grant(grant)
    run_stage("extract", grant, staging, services, window=Window.for_day(SEEDED_DAY))
    first = json.loads(gzip.decompress(staging.file("messages.jsonl.gz").read_bytes()).splitlines()[0])
    return staging, services, first


def test_a_failed_message_is_recorded_with_reason_sender_and_subject_but_never_its_body(
    sandbox: Any, staging_root: ObjectStoragePath, tmp_path: Path
) -> None:
    alice = sandbox_grants(sandbox)["alice"]
    staging, services, first = _extracted(alice, staging_root)
    restage_with(staging, [broken_message(first, 1)])

    with pytest.raises(TooManyFailuresError):
        run_window(alice, staging, services=services, stages=("transform", "load", "report"))

    store = SummaryStore(staging_root)
    [entry] = store.entries("alice", since=SEEDED_DAY)
    assert entry.counts is not None
    assert entry.counts.failed == 1
    assert entry.failure is not None
    assert entry.failure.kind == "too_many_failures"
    [failed] = entry.failed_messages
    assert failed.nylas_id == "broken-1"
    assert failed.code == "invalid_message"
    assert failed.sender == first["from"][0]["email"]
    assert failed.subject is None  # it was not text
    summary = store.read_summary("alice")
    assert summary is not None
    assert summary.daily_by_day()[SEEDED_DAY].state() is DayState.RUN_FAILED
    assert "SECRET-BODY-TEXT" not in _all_text(tmp_path / "staging" / "_summary")


def test_an_expired_grant_recorded_by_the_failure_path_shows_as_expired(
    sandbox: Any, staging_root: ObjectStoragePath
) -> None:
    alice = sandbox_grants(sandbox)["alice"]
    sandbox.nylas.set_faults({"expired_grants": ["alice"]})
    staging = RunStaging(staging_root, alice.dag_id, SEEDED_DAY.isoformat())

    with pytest.raises(NylasGrantAuthError) as raised:
        run_stage("extract", alice, staging, Services.for_grant(alice), window=Window.for_day(SEEDED_DAY))
    failure = classify(raised.value)
    record_failure(alice, staging, "extract", failure, final=True)

    assert failure.kind.value == "grant_expired"
    summary = SummaryStore(staging_root).read_summary("alice")
    assert summary is not None
    status, reason = grant_status(summary, None)
    assert status is GrantStatus.EXPIRED
    assert "re-authenticate" in reason
    info = GrantInfo(
        alice.key, alice.grant_id, alice.dag_id, alice.start_date, alice.display_name, alice.email
    )
    now = dt.datetime.combine(SEEDED_DAY + dt.timedelta(days=2), dt.time(8), tzinfo=dt.UTC)
    row = overview_row(info, summary, None, now=now)
    assert row.strip[-2].state is DayState.RUN_FAILED
    assert row.strip[-2].failure_kind == "grant_expired"


def test_a_failed_message_whose_subject_is_not_valid_unicode_still_reaches_the_health_page(
    sandbox: Any, staging_root: ObjectStoragePath
) -> None:
    alice = sandbox_grants(sandbox)["alice"]
    staging, services, first = _extracted(alice, staging_root)
    broken = broken_message(first, 2)
    broken["subject"] = "Quote \ud83d for Q1"  # a lone surrogate: valid JSON, not valid Unicode
    restage_with(staging, [broken])

    with pytest.raises(TooManyFailuresError):
        run_window(alice, staging, services=services, stages=("transform", "load", "report"))

    store = SummaryStore(staging_root)
    [entry] = store.entries("alice", since=SEEDED_DAY)
    [failed] = entry.failed_messages
    assert failed.code == "invalid_message"
    assert failed.subject == "Quote \ufffd for Q1"
    summary = store.read_summary("alice")
    assert summary is not None
    assert summary.daily_by_day()[SEEDED_DAY].state() is DayState.RUN_FAILED
