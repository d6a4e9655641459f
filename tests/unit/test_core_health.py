"""core/health.py: entries, the per-grant summary, the overview row, strip, status, sorting and filtering."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from nylas_dataverse.core import health
from nylas_dataverse.core.health import (
    Counts,
    DailyRow,
    DayState,
    FailedMessage,
    GrantInfo,
    GrantStatus,
    RealtimeDay,
    RunEntry,
    RunFailure,
    RunRef,
    StatusMarker,
)

NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)  # yesterday, the last complete day, is Nov 30
GRANT = GrantInfo(
    key="alice",
    grant_id="g-alice",
    dag_id="nylas_to_dataverse__alice",
    start_date=dt.date(2026, 11, 2),
    display_name="Alice (google)",
    email="alice@contoso.example",
)


def at(day: dt.date, hour: int = 1) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(hour), tzinfo=dt.UTC)


def daily(
    day: dt.date, *, created: int = 5, failed: int = 0, failure: RunFailure | None = None, **kw: object
) -> RunEntry:
    counts = None if kw.pop("no_counts", False) else Counts(created + failed + 2, created, 1, 1, failed)
    return RunEntry(
        grant_key="alice",
        label=day.isoformat(),
        day=day,
        written_at=kw.pop("written_at", at(day)),  # type: ignore[arg-type]
        counts=counts,
        failure=failure,
        **kw,  # type: ignore[arg-type]
    )


def rows(*entries: RunEntry) -> list[DailyRow]:
    return [DailyRow.of(entry, f"{entry.label}~{index}.json") for index, entry in enumerate(entries)]


def summary(
    *entries: RunEntry, previous: health.GrantSummary | None = None, **kw: object
) -> health.GrantSummary:
    return health.build_summary(
        "alice", rows(*entries), week_entries=entries, read_entries=entries, previous=previous, now=NOW, **kw
    )


FAILED = RunFailure("grant_expired", "grant_expired: the grant expired", task="extract", final=True)


# --- entries ----------------------------------------------------------------------------------------------


def test_an_entry_round_trips_through_its_file_format() -> None:
    entry = RunEntry(
        grant_key="alice",
        label="2026-11-03",
        day=dt.date(2026, 11, 3),
        written_at=dt.datetime(2026, 11, 4, 0, 5, 7, tzinfo=dt.UTC),
        counts=Counts(10, 4, 2, 3, 1),
        failure=RunFailure("too_many_failures", "too_many_failures: 1 failed", task="report", final=True),
        failed_by_reason={"dataverse_400": 1},
        unresolved_addresses=2,
        unresolved_top=(("x@unknown.example", 3), ("y@unknown.example", 1)),
        throttled=4,
        throttle_wait_s=12.5,
        mailbox="alice@contoso.example",
        provider="google",
        run=RunRef("nylas_to_dataverse__alice", "scheduled__2026-11-03", 1),
        failed_messages=(FailedMessage("m1", "dataverse_400: 0x80040203 bad", "<a@b>", "x@y", "Hello"),),
    )

    assert RunEntry.from_json(json.loads(json.dumps(entry.to_json()))) == entry


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {},
        {"format_version": 99},
        {"format_version": 1, "grant_key": "a", "label": "x", "day": "no"},
    ],
)
def test_anything_that_is_not_an_entry_is_skipped_not_raised(data: object) -> None:
    assert RunEntry.from_json(data) is None


def test_dataverse_code_and_reason_code_come_from_the_ledger_reason() -> None:
    message = FailedMessage("m", "dataverse_400: 0x80040203 Invalid argument")
    assert (message.code, message.dataverse_code) == ("dataverse_400", "0x80040203")
    assert FailedMessage("m", "invalid_message: no id").dataverse_code is None
    assert health.dataverse_code(None) is None


def test_an_entry_from_a_report_takes_counts_throttling_and_the_top_addresses() -> None:
    report = {
        "counts": {"extracted": 9, "created": 5, "already_present": 1, "skipped": 2, "failed": 1},
        "failed_by_reason": {"dataverse_400": 1},
        "unresolved_addresses": 3,
        "requests": {"dataverse": 12, "dataverse_throttled": 2},
    }
    entry = health.entry_from_report(
        report,
        grant_key="alice",
        label="2026-11-03",
        written_at=at(dt.date(2026, 11, 3)),
        throttle_wait_s=3.5,
        unresolved_top=[("A@x.example", 2), ("a@x.example", 1), ("b@x.example", 1)],
    )

    assert entry.counts == Counts(9, 5, 1, 2, 1)
    assert (entry.throttled, entry.throttle_wait_s) == (2, 3.5)
    assert entry.unresolved_top == (("a@x.example", 3), ("b@x.example", 1))  # casefolded and merged
    assert entry.day == dt.date(2026, 11, 3)
    assert entry.state() is DayState.MESSAGES_FAILED


def test_a_realtime_entry_counts_under_the_day_it_was_processed() -> None:
    written = dt.datetime(2026, 11, 20, 23, 59, tzinfo=dt.UTC)
    entry = health.entry_from_report(
        {"counts": {"created": 1}}, grant_key="alice", label="realtime-20261120T2359Z-abc", written_at=written
    )
    assert entry.kind is health.EntryKind.REALTIME
    assert entry.day == dt.date(2026, 11, 20)


def test_a_failed_attempt_keeps_the_days_earlier_counts_and_a_success_clears_it() -> None:
    day = dt.date(2026, 11, 3)
    earlier = daily(day, created=7)
    failed = health.entry_with_failure(
        earlier, FAILED, grant_key="alice", label=day.isoformat(), written_at=NOW
    )

    assert failed.counts == earlier.counts
    assert failed.state() is DayState.RUN_FAILED
    retrying = health.entry_with_failure(
        None,
        RunFailure("service_unavailable", "x", final=False),
        grant_key="alice",
        label="2026-11-04",
        written_at=NOW,
    )
    assert (retrying.counts, retrying.state()) == (None, DayState.RETRYING)


# --- the summary ------------------------------------------------------------------------------------------


def test_the_summary_keeps_the_newest_version_of_each_day_and_its_json_round_trips() -> None:
    day = dt.date(2026, 11, 28)
    first = daily(day, created=1, written_at=at(day, 1))
    rerun = daily(day, created=9, written_at=at(day, 5))
    built = summary(rerun, first, daily(dt.date(2026, 11, 29)))

    assert [row.day for row in built.daily] == [dt.date(2026, 11, 29), day]  # newest first
    assert built.daily_by_day()[day].counts == rerun.counts
    assert health.GrantSummary.from_json(json.loads(json.dumps(built.to_json()))) == built


def test_the_summary_knows_the_last_synced_day_even_when_the_newest_day_failed() -> None:
    built = summary(
        daily(dt.date(2026, 11, 27)), daily(dt.date(2026, 11, 28), failure=FAILED, no_counts=True)
    )
    assert built.last_synced_day == dt.date(2026, 11, 27)
    assert built.last_failure is not None
    assert built.last_failure.kind == "grant_expired"
    assert built.last_expired_at == at(dt.date(2026, 11, 28))


def test_days_older_than_the_kept_range_are_dropped_unless_written_last_and_are_remembered() -> None:
    old, recent = dt.date(2026, 8, 1), dt.date(2026, 11, 30)
    first = summary(daily(old))
    assert [row.day for row in first.daily] == [old]  # the grant's only run: its news
    assert health.grant_status(first, None)[0] is GrantStatus.OK
    later = summary(daily(old), daily(recent), previous=first)
    assert [row.day for row in later.daily] == [recent]
    assert later.last_synced_day == recent
    # A backfill of the old day, run after the recent one, failed because the grant expired.
    backfill = summary(
        daily(recent), daily(old, written_at=NOW, failure=FAILED, no_counts=True), previous=later
    )
    assert [row.day for row in backfill.daily] == [recent, old]
    assert health.grant_status(backfill, None)[0] is GrantStatus.EXPIRED
    assert backfill.last_failure is not None
    assert backfill.last_synced_day == recent


def test_realtime_days_no_longer_held_as_entries_are_carried_over() -> None:
    past = RealtimeDay(dt.date(2026, 11, 10), batches=3, counts=Counts(6, 6, 0, 0, 0))
    previous = health.build_summary("alice", [], realtime_days=[past], previous=None, now=NOW)
    today = RealtimeDay(dt.date(2026, 11, 30), batches=1, counts=Counts(1, 1, 0, 0, 0))

    built = health.build_summary("alice", [], realtime_days=[today], previous=previous, now=NOW)

    assert [(row.day, row.batches) for row in built.realtime] == [(today.day, 1), (past.day, 3)]


def test_unresolved_addresses_of_the_week_are_counted_once_each() -> None:
    entries = [
        daily(dt.date(2026, 11, 30), unresolved_top=(("a@x.example", 2), ("b@x.example", 1))),
        daily(dt.date(2026, 11, 25), unresolved_top=(("a@x.example", 1), ("c@x.example", 1))),
        daily(dt.date(2026, 11, 20), unresolved_top=(("old@x.example", 9),)),  # outside the week
    ]
    assert summary(*entries).unresolved_week == 3


def test_a_realtime_day_adds_up_its_batches() -> None:
    day = RealtimeDay(dt.date(2026, 11, 30))
    one = daily(dt.date(2026, 11, 30), created=2, throttled=1, throttle_wait_s=1.5)
    two = daily(dt.date(2026, 11, 30), created=3, throttled=2, throttle_wait_s=0.5)
    total = day.add(one).add(two)
    assert (total.batches, total.counts.created, total.throttled, total.throttle_wait_s) == (2, 5, 3, 2.0)


# --- status ---------------------------------------------------------------------------------------------


def test_a_grant_is_expired_until_a_run_succeeds_after_the_expiry() -> None:
    expired = summary(daily(dt.date(2026, 11, 29), failure=FAILED, no_counts=True))
    assert health.grant_status(expired, None)[0] is GrantStatus.EXPIRED

    fixed = summary(
        daily(dt.date(2026, 11, 29), failure=FAILED, no_counts=True),
        daily(dt.date(2026, 11, 30), written_at=at(dt.date(2026, 11, 30), 3)),
    )
    assert health.grant_status(fixed, None)[0] is GrantStatus.OK


def test_a_grant_expired_notification_newer_than_the_last_success_marks_it_expired() -> None:
    ok = summary(daily(dt.date(2026, 11, 29)))
    marker = StatusMarker("expired", at(dt.date(2026, 11, 29), 6), "grant.expired")

    status, reason = health.grant_status(ok, marker)

    assert status is GrantStatus.EXPIRED
    assert "grant.expired" in reason
    assert "re-authenticate" in reason
    older = StatusMarker("expired", at(dt.date(2026, 11, 28)), "grant.expired")
    assert health.grant_status(ok, older)[0] is GrantStatus.OK


def test_failing_retrying_and_no_runs() -> None:
    other = RunFailure("credentials", "credentials: refused", final=True)
    assert (
        health.grant_status(summary(daily(dt.date(2026, 11, 30), failure=other)), None)[0]
        is GrantStatus.FAILING
    )
    retrying = RunFailure("service_unavailable", "503", final=False)
    assert (
        health.grant_status(summary(daily(dt.date(2026, 11, 30), failure=retrying)), None)[0]
        is GrantStatus.OK
    )
    assert health.grant_status(None, None)[0] is GrantStatus.NO_RUNS


# --- the overview row ---------------------------------------------------------------------------------------


def test_the_strip_covers_thirty_complete_days_with_one_state_each() -> None:
    built = summary(
        daily(dt.date(2026, 11, 30)),
        daily(dt.date(2026, 11, 29), failed=2),
        daily(dt.date(2026, 11, 28), failure=FAILED, no_counts=True),
        daily(
            dt.date(2026, 11, 27), failure=RunFailure("service_unavailable", "x", final=False), no_counts=True
        ),
    )
    row = health.overview_row(GRANT, built, None, now=NOW)

    assert len(row.strip) == 30
    assert row.strip[0].day == dt.date(2026, 11, 1)
    assert row.strip[-1].day == dt.date(2026, 11, 30)
    states = {cell.day: cell.state for cell in row.strip}
    assert states[dt.date(2026, 11, 1)] is DayState.NOT_STARTED  # before start_date
    assert states[dt.date(2026, 11, 2)] is DayState.MISSING
    assert states[dt.date(2026, 11, 27)] is DayState.RETRYING
    assert states[dt.date(2026, 11, 28)] is DayState.RUN_FAILED
    assert states[dt.date(2026, 11, 29)] is DayState.MESSAGES_FAILED
    assert states[dt.date(2026, 11, 30)] is DayState.SYNCED
    # Nov 2..26 missing (25), 27 retrying, 28 failed, 29 with failed messages.
    assert row.problem_days == 28


def test_the_week_adds_daily_and_realtime_counts_and_throttling_up_to_today() -> None:
    daily_rows = rows(
        daily(dt.date(2026, 11, 30), created=5, throttled=2, throttle_wait_s=4.0),
        daily(dt.date(2026, 11, 25), created=1),
        daily(dt.date(2026, 11, 24), created=100),  # seven days before today: outside
    )
    realtime = [
        RealtimeDay(
            dt.date(2026, 12, 1), 2, Counts(3, 3, 0, 0, 0), throttled=1, throttle_wait_s=1.0
        ),  # today
        RealtimeDay(dt.date(2026, 11, 20), 1, Counts(7, 7, 0, 0, 0)),
    ]
    built = health.build_summary("alice", daily_rows, realtime_days=realtime, previous=None, now=NOW)

    row = health.overview_row(GRANT, built, None, now=NOW)

    assert row.counts.created == 5 + 1 + 3
    assert (row.throttled, row.throttle_wait_s) == (3, 5.0)
    month = health.overview_row(GRANT, built, None, now=NOW, window_days=30)
    assert month.counts.created == 5 + 1 + 100 + 3 + 7


def test_a_grant_without_any_summary_is_listed_with_no_runs() -> None:
    row = health.overview_row(GRANT, None, None, now=NOW)
    assert row.status is GrantStatus.NO_RUNS
    assert row.mailbox == "alice@contoso.example"
    assert row.name == "Alice (google)"
    assert row.to_json()["strip"][-1] == {
        "day": "2026-11-30",
        "state": "missing",
        "created": 0,
        "failed": 0,
        "failure_kind": None,
    }


def _row(key: str, status: GrantStatus, created: int, problems: int = 0) -> health.OverviewRow:
    return health.OverviewRow(
        key=key,
        dag_id=f"d_{key}",
        name=key.title(),
        mailbox=f"{key}@contoso.example",
        provider="google" if key != "bob" else "microsoft",
        status=status,
        status_reason="",
        last_synced_day=None,
        strip=(),
        problem_days=problems,
        counts=Counts(created, created, 0, 0, 0),
        unresolved=0,
        throttled=0,
        throttle_wait_s=0.0,
    )


def test_sorting_by_any_column_and_filtering_by_text_status_and_problems() -> None:
    table = [
        _row("carol", GrantStatus.OK, 3),
        _row("alice", GrantStatus.OK, 9, problems=2),
        _row("bob", GrantStatus.EXPIRED, 1),
    ]

    assert [r.key for r in health.sort_rows(table)] == ["bob", "alice", "carol"]  # problems first
    assert [r.key for r in health.sort_rows(table, "created", descending=True)] == ["alice", "carol", "bob"]
    assert [r.key for r in health.sort_rows(table, "name")] == ["alice", "bob", "carol"]
    assert [r.key for r in health.sort_rows(table, "no-such-column")] == ["bob", "alice", "carol"]
    assert [r.key for r in health.filter_rows(table, text="MICROSOFT")] == ["bob"]
    assert [r.key for r in health.filter_rows(table, status="ok")] == ["carol", "alice"]
    assert [r.key for r in health.filter_rows(table, problems_only=True)] == ["alice", "bob"]


# --- a grant's page ----------------------------------------------------------------------------------------


def test_unresolved_addresses_add_up_over_days_most_messages_first() -> None:
    entries = [
        daily(dt.date(2026, 11, 30), unresolved_top=(("a@x.example", 2), ("b@x.example", 5))),
        daily(dt.date(2026, 11, 29), unresolved_top=(("a@x.example", 4),)),
        daily(dt.date(2026, 10, 1), unresolved_top=(("a@x.example", 100),)),  # before since
    ]
    table = health.unresolved_addresses(entries, since=dt.date(2026, 11, 1))
    assert [(a.address, a.messages, a.days, a.last_seen) for a in table] == [
        ("a@x.example", 6, 2, dt.date(2026, 11, 30)),
        ("b@x.example", 5, 1, dt.date(2026, 11, 30)),
    ]


@pytest.mark.parametrize(
    ("value", "cell"), [("=cmd()", "'=cmd()"), ("+1", "'+1"), ("a@b", "a@b"), (None, "")]
)
def test_csv_cells_are_never_formulas(value: object, cell: str) -> None:
    assert health.csv_cell(value) == cell


def test_the_chart_adds_realtime_runs_to_the_days_outcomes() -> None:
    built = health.build_summary(
        "alice",
        rows(daily(dt.date(2026, 11, 30), created=4)),
        realtime_days=[RealtimeDay(dt.date(2026, 11, 30), 1, Counts(2, 2, 0, 0, 0))],
        previous=None,
        now=NOW,
    )
    chart = health.chart_days(built, GRANT, now=NOW)
    assert chart[-1].created == 6
    assert chart[-1].state is DayState.SYNCED
    assert chart[0].state is DayState.NOT_STARTED
