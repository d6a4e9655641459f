"""The note that names the day a run syncs (backfill run ids name the next day; the note does not)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from nylas_dataverse.pipeline.day_note import day_note, on_dag_run_running

NOV3 = dt.datetime(2026, 11, 3, tzinfo=dt.UTC)
NOV4 = dt.datetime(2026, 11, 4, tzinfo=dt.UTC)


def test_a_grant_run_is_noted_with_its_day() -> None:
    assert day_note("nylas_to_dataverse__alice", NOV3, NOV4) == "Syncs the UTC day 2026-11-03"


@pytest.mark.parametrize(
    ("dag_id", "start", "end"),
    [
        ("some_other_dag", NOV3, NOV4),
        ("nylas_to_dataverse__realtime", NOV3, NOV4),
        ("nylas_to_dataverse__alice", None, None),
        ("nylas_to_dataverse__alice", NOV3, NOV3),
        ("nylas_to_dataverse__alice", NOV3, NOV4 + dt.timedelta(days=1)),
    ],
)
def test_other_runs_get_no_note(dag_id: str, start: dt.datetime | None, end: dt.datetime | None) -> None:
    assert day_note(dag_id, start, end) is None


def test_the_listener_never_overwrites_a_note_someone_wrote() -> None:
    run = SimpleNamespace(
        dag_id="nylas_to_dataverse__bob", data_interval_start=NOV3, data_interval_end=NOV4, note=None
    )
    on_dag_run_running(run, "started")
    assert run.note == "Syncs the UTC day 2026-11-03"
    written = SimpleNamespace(**{**vars(run), "note": "rerun after the outage"})
    on_dag_run_running(written, "started")
    assert written.note == "rerun after the outage"
