"""The day model: which UTC day a run syncs, and the Nylas query that covers it."""

from __future__ import annotations

import datetime

import pytest

from nylas_dataverse.core.window import (
    DEFAULT_QUERY_OVERLAP,
    Window,
    WindowError,
    last_complete_day,
    manual_run_day,
    run_window,
)

UTC = datetime.UTC
NOV2 = datetime.datetime(2026, 11, 2, tzinfo=UTC)
NOV3 = datetime.datetime(2026, 11, 3, tzinfo=UTC)
NOV4 = datetime.datetime(2026, 11, 4, tzinfo=UTC)
PLUS2 = datetime.timezone(datetime.timedelta(hours=2))
LATER = datetime.datetime(2026, 12, 1, 20, 53, tzinfo=UTC)  # "now" in these tests
HOUR = datetime.timedelta(hours=1)


def day(value: str) -> datetime.date:
    return datetime.date.fromisoformat(value)


# ------------------------------------------------------------------------------------------------
# windows


def test_a_window_knows_its_label() -> None:
    assert Window(NOV2, NOV3).label == "2026-11-02"
    assert Window.for_day(day("2026-11-02")) == Window(NOV2, NOV3)


def test_the_query_reaches_into_both_neighbouring_days() -> None:
    after, before = Window(NOV2, NOV3).query_bounds()
    assert DEFAULT_QUERY_OVERLAP == HOUR
    assert after == 1_793_577_600 - 3600
    assert before == 1_793_664_000 + 3600


def test_without_overlap_the_query_is_the_day_itself() -> None:
    assert Window(NOV2, NOV3).query_bounds(datetime.timedelta(0)) == (1_793_577_600, 1_793_664_000)


def test_fractional_bounds_round_outwards_so_nylas_returns_everything() -> None:
    window = Window(NOV2 + datetime.timedelta(seconds=0.5), NOV3 + datetime.timedelta(seconds=0.5))
    assert window.query_bounds(datetime.timedelta(0)) == (1_793_577_600, 1_793_664_001)


def test_a_negative_overlap_is_refused() -> None:
    with pytest.raises(WindowError, match="negative"):
        Window(NOV2, NOV3).query_bounds(-HOUR)


def test_the_query_never_asks_for_negative_seconds() -> None:
    epoch = datetime.datetime(1970, 1, 1, tzinfo=UTC)
    assert Window(epoch, epoch + datetime.timedelta(days=1)).query_bounds()[0] == 0


@pytest.mark.parametrize(
    ("seconds", "inside"),
    [
        (1_793_577_599, False),
        (1_793_577_600, True),
        (1_793_620_000, True),
        (1_793_663_999, True),
        (1_793_664_000, False),
    ],
)
def test_a_window_is_half_open(seconds: int, inside: bool) -> None:
    assert Window(NOV2, NOV3).contains(seconds) is inside


def test_adjacent_windows_never_share_a_second() -> None:
    first, second = Window(NOV2, NOV3), Window(NOV3, NOV4)
    boundary = int(NOV3.timestamp())
    assert [first.contains(boundary), second.contains(boundary)] == [False, True]


def test_overlapping_queries_still_keep_each_message_on_one_day_only() -> None:
    first, second = Window(NOV2, NOV3), Window(NOV3, NOV4)
    shared = range(second.query_bounds()[0], first.query_bounds()[1] + 1)
    assert len(shared) > 2 * 3600  # both queries return these seconds ...
    assert all(first.contains(s) != second.contains(s) for s in shared)  # ... and exactly one day keeps each


def test_windows_are_normalised_to_utc() -> None:
    window = Window(
        datetime.datetime(2026, 11, 2, 2, tzinfo=PLUS2), datetime.datetime(2026, 11, 3, 2, tzinfo=PLUS2)
    )
    assert window.start == NOV2
    assert window.start.tzinfo is UTC
    assert window.label == "2026-11-02"
    assert window.is_one_day


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (datetime.datetime(2026, 11, 2), NOV3, "timezone-aware"),
        (NOV2, NOV2, "must be after"),
        (NOV3, NOV2, "must be after"),
    ],
)
def test_invalid_windows_are_rejected(start: datetime.datetime, end: datetime.datetime, message: str) -> None:
    with pytest.raises(WindowError, match=message):
        Window(start, end)


# ------------------------------------------------------------------------------------------------
# the day of a manual run


@pytest.mark.parametrize(
    ("logical_date", "expected"),
    [
        pytest.param(NOV4, "2026-11-04", id="midnight-of-a-past-day"),
        pytest.param(
            NOV4 + datetime.timedelta(hours=15, minutes=30), "2026-11-04", id="afternoon-of-a-past-day"
        ),
        pytest.param(
            NOV4 + datetime.timedelta(hours=23, minutes=59, seconds=59), "2026-11-04", id="last-second"
        ),
        pytest.param(LATER, "2026-11-30", id="now-means-the-last-complete-day"),
        pytest.param(datetime.datetime(2026, 12, 1, tzinfo=UTC), "2026-11-30", id="midnight-today"),
        pytest.param(datetime.datetime(2026, 11, 30, 23, 0, tzinfo=UTC), "2026-11-30", id="yesterday"),
        pytest.param(datetime.datetime(2026, 11, 5, 1, 0, tzinfo=PLUS2), "2026-11-04", id="offset-converted"),
        pytest.param(datetime.datetime(2026, 11, 4, 12, 0), "2026-11-04", id="naive-is-utc"),
    ],
)
def test_a_manual_run_syncs_the_day_of_its_logical_date(
    logical_date: datetime.datetime, expected: str
) -> None:
    assert manual_run_day(logical_date, LATER) == day(expected)


def test_a_manual_run_for_the_future_names_a_day_that_has_not_ended() -> None:
    chosen = manual_run_day(datetime.datetime(2026, 12, 5, tzinfo=UTC), LATER)
    with pytest.raises(WindowError, match="has not ended yet"):
        run_window(
            data_interval_start=datetime.datetime.combine(chosen, datetime.time(), tzinfo=UTC),
            data_interval_end=datetime.datetime.combine(chosen, datetime.time(), tzinfo=UTC)
            + datetime.timedelta(days=1),
            run_conf={},
            run_after=LATER,
            now=LATER,
        )


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime.datetime(2026, 11, 3, 5, 0, tzinfo=UTC), "2026-11-02"),
        (NOV3, "2026-11-02"),
        (datetime.datetime(2026, 11, 3, 23, 59, 59, tzinfo=UTC), "2026-11-02"),
        (datetime.datetime(2026, 11, 3, 1, 0, tzinfo=PLUS2), "2026-11-01"),
        (datetime.datetime(2027, 1, 1, 0, 30, tzinfo=UTC), "2026-12-31"),
    ],
)
def test_the_last_complete_day(now: datetime.datetime, expected: str) -> None:
    assert last_complete_day(now) == day(expected)


# ------------------------------------------------------------------------------------------------
# run_window


def _run(
    start: object, end: object, conf: dict[str, object] | None = None, run_after: object = LATER
) -> Window:
    return run_window(
        data_interval_start=start,  # type: ignore[arg-type]
        data_interval_end=end,  # type: ignore[arg-type]
        run_conf=conf,
        run_after=run_after,  # type: ignore[arg-type]
        now=LATER,
    )


def test_a_one_day_data_interval_is_the_run_s_day() -> None:
    assert _run(NOV2, NOV3) == Window(NOV2, NOV3)


def test_a_naive_data_interval_is_utc() -> None:
    assert _run(NOV2.replace(tzinfo=None), NOV3.replace(tzinfo=None)) == Window(NOV2, NOV3)


def test_without_a_data_interval_the_run_syncs_the_last_complete_day_before_it_was_created() -> None:
    assert _run(None, None, run_after=datetime.datetime(2026, 11, 3, 5, tzinfo=UTC)) == Window(NOV2, NOV3)


def test_without_interval_or_run_after_the_day_is_unknown() -> None:
    with pytest.raises(WindowError, match="neither a data interval nor a run_after"):
        _run(None, None, run_after=None)


def test_a_zero_length_interval_explains_the_daily_schedule_trap() -> None:
    with pytest.raises(WindowError) as caught:
        _run(NOV2, NOV2)
    text = str(caught.value)
    assert "zero-length" in text
    assert "@daily" in text
    assert "UtcDayTimetable" in text


@pytest.mark.parametrize(
    ("start", "end"),
    [
        pytest.param(NOV2, NOV4, id="two-days"),
        pytest.param(NOV2 + 6 * HOUR, NOV3 + 6 * HOUR, id="a-day-not-starting-at-midnight"),
        pytest.param(NOV2 + 6 * HOUR, NOV2 + 18 * HOUR, id="part-of-a-day"),
    ],
)
def test_an_interval_that_is_not_one_whole_utc_day_is_refused(
    start: datetime.datetime, end: datetime.datetime
) -> None:
    with pytest.raises(WindowError, match="not one whole UTC day") as caught:
        _run(start, end)
    assert "backfill" in str(caught.value)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (NOV3, NOV2, "before data_interval_start"),
        (NOV2, None, "only one end"),
        (None, NOV3, "only one end"),
        ("2026-11-02", NOV3, "data_interval_start must be a datetime, got '2026-11-02'"),
    ],
)
def test_broken_intervals_are_errors(start: object, end: object, message: str) -> None:
    with pytest.raises(WindowError, match=message):
        _run(start, end)


def test_a_day_that_has_not_ended_is_refused_and_the_last_complete_day_named() -> None:
    today = datetime.datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(WindowError) as caught:
        _run(today, today + datetime.timedelta(days=1))
    assert "2026-12-01 has not ended yet" in str(caught.value)
    assert "The last complete day is 2026-11-30" in str(caught.value)


@pytest.mark.parametrize(
    "conf",
    [
        {"window_start": "2026-11-02", "window_end": "2026-11-03"},
        {"window_start": "2026-11-02"},
        {"window_end": "2026-11-03"},
    ],
)
def test_the_retired_window_parameters_are_refused_not_misread(conf: dict[str, object]) -> None:
    with pytest.raises(WindowError, match="no longer accepted") as caught:
        _run(NOV2, NOV3, conf)
    assert "backfill" in str(caught.value)


def test_empty_retired_parameters_are_ignored() -> None:
    assert _run(NOV2, NOV3, {"window_start": None, "window_end": ""}) == Window(NOV2, NOV3)


def test_a_window_error_is_an_invalid_day_failure_that_is_not_retried() -> None:
    with pytest.raises(WindowError) as caught:
        _run(NOV2, NOV2)
    assert caught.value.kind == "invalid_day"
    assert caught.value.retryable is False
