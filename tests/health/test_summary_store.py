"""pipeline/summary.py on a real filesystem: entries, the rebuilt summary, concurrent writers, pruning."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core import health
from nylas_dataverse.core.health import Counts, RunEntry, RunFailure
from nylas_dataverse.pipeline.summary import REALTIME_KEEP_DAYS, SummaryStore

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


def entry(day: dt.date, *, created: int = 3, written_at: dt.datetime | None = None, **kw: object) -> RunEntry:
    return RunEntry(
        grant_key=str(kw.pop("grant_key", "alice")),
        label=str(kw.pop("label", day.isoformat())),
        day=day,
        written_at=written_at or dt.datetime.combine(day + dt.timedelta(days=1), dt.time(1), tzinfo=dt.UTC),
        counts=Counts(created, created, 0, 0, 0),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def store(tmp_path: Path) -> SummaryStore:
    return SummaryStore(ObjectStoragePath(tmp_path.as_uri()), clock=lambda: NOW)


def test_a_recorded_entry_is_in_the_summary_the_overview_reads(store: SummaryStore, tmp_path: Path) -> None:
    store.record(entry(dt.date(2026, 11, 29), mailbox="alice@contoso.example", provider="google"))

    summary = store.read_summary("alice")

    assert summary is not None
    assert [row.day for row in summary.daily] == [dt.date(2026, 11, 29)]
    assert (summary.mailbox, summary.provider) == ("alice@contoso.example", "google")
    assert (tmp_path / "_summary" / "alice.json").exists()
    assert len(list((tmp_path / "_summary" / "alice" / "daily").iterdir())) == 1


def test_a_rerun_of_a_day_supersedes_it_and_the_old_version_is_pruned(
    store: SummaryStore, tmp_path: Path
) -> None:
    day = dt.date(2026, 11, 29)
    store.record(entry(day, created=1))
    store.record(entry(day, created=8, written_at=NOW))

    summary = store.read_summary("alice")

    assert summary is not None
    assert summary.daily_by_day()[day].counts == Counts(8, 8, 0, 0, 0)
    assert len(list((tmp_path / "_summary" / "alice" / "daily").iterdir())) == 1
    latest = store.latest_entry("alice", day.isoformat())
    assert latest is not None
    assert latest.counts == Counts(8, 8, 0, 0, 0)


def test_an_entry_whose_writer_died_before_the_summary_is_picked_up_by_the_next_write(
    store: SummaryStore,
) -> None:
    orphan = entry(dt.date(2026, 11, 27))
    folder = store.daily_folder("alice")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "2026-11-27~20261128T010000000000Z-dead00.json").write_bytes(
        json.dumps(orphan.to_json()).encode()
    )

    store.record(entry(dt.date(2026, 11, 28)))

    summary = store.read_summary("alice")
    assert summary is not None
    assert {row.day for row in summary.daily} == {dt.date(2026, 11, 27), dt.date(2026, 11, 28)}


def test_a_summary_overwritten_by_a_stale_writer_is_repaired_by_the_next_refresh(store: SummaryStore) -> None:
    store.record(entry(dt.date(2026, 11, 27)))
    stale = store.summary_path("alice").read_bytes()  # what a writer that read before the next entry wrote
    store.record(entry(dt.date(2026, 11, 28)))
    store.summary_path("alice").write_bytes(stale)

    store.refresh("alice")

    summary = store.read_summary("alice")
    assert summary is not None
    assert {row.day for row in summary.daily} == {dt.date(2026, 11, 27), dt.date(2026, 11, 28)}


def test_many_writers_of_one_grant_at_once_lose_no_day(tmp_path: Path) -> None:
    """Eight threads, each writing three days of one grant; every one of the 24 days ends in the summary."""
    root = ObjectStoragePath(tmp_path.as_uri())
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        store = SummaryStore(root, clock=lambda: NOW)
        start.wait()
        try:
            for index in range(3):
                store.record(entry(dt.date(2026, 11, 5) + dt.timedelta(days=offset * 3 + index)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    summary = SummaryStore(root, clock=lambda: NOW).read_summary("alice")
    assert summary is not None
    assert len(summary.daily) == 24


def test_realtime_entries_add_up_per_processing_day_and_old_ones_are_pruned_but_their_totals_kept(
    tmp_path: Path,
) -> None:
    root = ObjectStoragePath(tmp_path.as_uri())
    clock = {"now": dt.datetime(2026, 11, 10, 12, tzinfo=dt.UTC)}
    store = SummaryStore(root, clock=lambda: clock["now"])
    for batch, created in (("a", 2), ("b", 3)):
        store.record(
            entry(
                dt.date(2026, 11, 10),
                created=created,
                label=f"realtime-2026111012-{batch}",
                written_at=clock["now"],
            )
        )
    summary = store.read_summary("alice")
    assert summary is not None
    assert [(row.day, row.batches, row.counts.created) for row in summary.realtime] == [
        (dt.date(2026, 11, 10), 2, 5)
    ]

    clock["now"] = dt.datetime(2026, 11, 10, 12, tzinfo=dt.UTC) + dt.timedelta(days=REALTIME_KEEP_DAYS + 2)
    store.record(entry(dt.date(2026, 11, 19)))

    assert not (tmp_path / "_summary" / "alice" / "realtime" / "2026-11-10").exists()
    summary = store.read_summary("alice")
    assert summary is not None
    assert [(row.day, row.counts.created) for row in summary.realtime] == [(dt.date(2026, 11, 10), 5)]


def test_the_grant_page_reads_every_entry_with_its_failed_messages(store: SummaryStore) -> None:
    failed = health.FailedMessage(
        "m1", "dataverse_400: 0x80040203 bad", "<a@b>", "x@unknown.example", "Quote"
    )
    store.record(entry(dt.date(2026, 11, 29), failed_messages=(failed,)))
    store.record(entry(dt.date(2026, 11, 1)))

    entries = store.entries("alice", since=dt.date(2026, 11, 15))

    assert [e.day for e in entries] == [dt.date(2026, 11, 29)]
    assert entries[0].failed_messages == (failed,)


def test_grant_status_markers_round_trip_and_odd_ids_get_a_safe_file_name(
    store: SummaryStore, tmp_path: Path
) -> None:
    store.write_grant_status(
        "../../etc/passwd", status="expired", notification_type="grant.expired", notification_id="n1", at=NOW
    )
    marker = store.read_grant_status("../../etc/passwd")

    assert marker == health.StatusMarker("expired", NOW, "grant.expired")
    written = list((tmp_path / "_realtime" / "grant_status").iterdir())
    assert len(written) == 1
    assert ".." not in written[0].name
    assert store.read_grant_status("another-grant") is None


def test_a_failure_recorded_after_the_report_keeps_the_counts(store: SummaryStore) -> None:
    day = dt.date(2026, 11, 29)
    store.record(entry(day, created=4))
    previous = store.latest_entry("alice", day.isoformat())
    failure = RunFailure("grant_expired", "grant_expired: expired", task="extract")

    store.record(
        health.entry_with_failure(previous, failure, grant_key="alice", label=day.isoformat(), written_at=NOW)
    )

    summary = store.read_summary("alice")
    assert summary is not None
    row = summary.daily_by_day()[day]
    assert row.counts == Counts(4, 4, 0, 0, 0)
    assert row.failure_kind == "grant_expired"
    assert summary.last_expired_at == NOW


def test_a_backfill_of_an_old_day_is_the_grants_latest_news_until_a_newer_run_is_written(
    store: SummaryStore, tmp_path: Path
) -> None:
    """A run of a day older than the summary's days still decides status and last synced day."""
    old = NOW.date() - dt.timedelta(days=health.SUMMARY_DAYS + 20)
    expired = RunFailure("grant_expired", "grant_expired: the grant expired", task="extract")
    store.record(entry(old, created=0, written_at=NOW - dt.timedelta(hours=2), failure=expired))

    summary = store.read_summary("alice")
    assert summary is not None
    assert [row.day for row in summary.daily] == [old]
    status, reason = health.grant_status(summary, None)
    assert status is health.GrantStatus.EXPIRED, reason  # not "no run recorded yet"

    # The owner re-authenticates; the operator backfills the day again and it succeeds.
    store.record(entry(old, created=5, written_at=NOW - dt.timedelta(hours=1)))
    summary = store.read_summary("alice")
    assert summary is not None
    assert health.grant_status(summary, None)[0] is health.GrantStatus.OK
    assert summary.last_synced_day == old

    # A scheduled run of yesterday is now the newest: the old day leaves the summary, its news stays.
    yesterday = NOW.date() - dt.timedelta(days=1)
    store.record(entry(yesterday, written_at=NOW))
    summary = store.read_summary("alice")
    assert summary is not None
    assert [row.day for row in summary.daily] == [yesterday]
    assert summary.last_synced_day == yesterday
    assert summary.last_success_at == NOW


def test_entries_older_than_the_kept_days_are_pruned_except_the_newest_written(
    tmp_path: Path,
) -> None:
    clock = {"now": NOW}
    store = SummaryStore(ObjectStoragePath(tmp_path.as_uri()), clock=lambda: clock["now"])
    too_old = NOW.date() - dt.timedelta(days=health.KEEP_DAYS + 5)
    store.record(entry(too_old, written_at=NOW))
    folder = tmp_path / "_summary" / "alice" / "daily"
    assert [path.name.split("~")[0] for path in folder.iterdir()] == [too_old.isoformat()]  # still the news

    store.record(entry(NOW.date() - dt.timedelta(days=1), written_at=NOW + dt.timedelta(minutes=5)))

    kept = sorted(path.name.split("~")[0] for path in folder.iterdir())
    assert kept == [(NOW.date() - dt.timedelta(days=1)).isoformat()]
