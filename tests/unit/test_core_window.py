from __future__ import annotations

import datetime

import pytest

from nylas_dataverse.core.window import Window, WindowError, resolve_window

UTC = datetime.UTC
NOV2 = datetime.datetime(2026, 11, 2, tzinfo=UTC)
NOV3 = datetime.datetime(2026, 11, 3, tzinfo=UTC)
PLUS2 = datetime.timezone(datetime.timedelta(hours=2))


def test_a_window_knows_its_label_and_nylas_bounds() -> None:
    window = Window(NOV2, NOV3)
    assert window.label == "2026-11-02"
    assert window.received_after == 1_793_577_600
    assert window.received_before == 1_793_664_000


def test_fractional_bounds_round_outwards_so_nylas_returns_everything() -> None:
    window = Window(NOV2 + datetime.timedelta(seconds=0.5), NOV3 + datetime.timedelta(seconds=0.5))
    assert window.received_after == 1_793_577_600
    assert window.received_before == 1_793_664_001


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
    first, second = Window(NOV2, NOV3), Window(NOV3, NOV3 + datetime.timedelta(days=1))
    boundary = second.received_after
    assert [first.contains(boundary), second.contains(boundary)] == [False, True]


def test_windows_are_normalised_to_utc() -> None:
    window = Window(
        datetime.datetime(2026, 11, 2, 2, tzinfo=PLUS2), datetime.datetime(2026, 11, 3, 2, tzinfo=PLUS2)
    )
    assert window.start == NOV2
    assert window.start.tzinfo is UTC
    assert window.label == "2026-11-02"


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
# resolve_window: data interval


def test_the_data_interval_is_used_when_given() -> None:
    assert resolve_window(NOV2, NOV3, {}, None) == Window(NOV2, NOV3)


def test_the_data_interval_wins_over_run_after() -> None:
    assert resolve_window(NOV2, NOV3, {}, NOV3 + datetime.timedelta(days=9)) == Window(NOV2, NOV3)


def test_params_typed_by_the_user_win_over_an_inferred_data_interval() -> None:
    params = {"window_start": "2025-01-01", "window_end": "2025-01-02"}
    expected = Window(
        datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC), datetime.datetime(2025, 1, 2, tzinfo=datetime.UTC)
    )
    assert resolve_window(NOV2, NOV3, params, NOV3) == expected


def test_empty_params_fall_back_to_the_data_interval() -> None:
    assert resolve_window(NOV2, NOV3, {"window_start": None, "window_end": ""}, NOV3) == Window(NOV2, NOV3)


def test_a_naive_data_interval_is_utc() -> None:
    assert resolve_window(NOV2.replace(tzinfo=None), NOV3.replace(tzinfo=None), {}, None) == Window(
        NOV2, NOV3
    )


def test_a_zero_length_interval_explains_the_daily_schedule_trap() -> None:
    with pytest.raises(WindowError) as caught:
        resolve_window(NOV2, NOV2, {}, NOV3)
    text = str(caught.value)
    assert "zero-length" in text
    assert "@daily" in text
    assert "timetable" in text


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (NOV3, NOV2, "before data_interval_start"),
        (NOV2, None, "only one end"),
        (None, NOV3, "only one end"),
        ("2026-11-02", NOV3, "data_interval_start must be a datetime, got '2026-11-02'"),
    ],
)
def test_broken_intervals_are_errors(
    start: datetime.datetime | None, end: datetime.datetime | None, message: str
) -> None:
    with pytest.raises(WindowError, match=message):
        resolve_window(start, end, {}, NOV3)


# ------------------------------------------------------------------------------------------------
# resolve_window: params


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        pytest.param("2026-11-02", "2026-11-03", Window(NOV2, NOV3), id="iso-dates"),
        pytest.param(
            " 2026-11-02 ", "2026-11-04", Window(NOV2, NOV3 + datetime.timedelta(days=1)), id="two-days"
        ),
        pytest.param("2026-11-02T00:00:00", "2026-11-03T00:00:00", Window(NOV2, NOV3), id="naive-is-utc"),
        pytest.param(
            "2026-11-02T00:00:00Z", "2026-11-03T00:00:00+00:00", Window(NOV2, NOV3), id="zulu-and-offset"
        ),
        pytest.param("2026-11-02T02:00:00+02:00", "2026-11-03", Window(NOV2, NOV3), id="offset-converted"),
        pytest.param(
            "2026-11-02T06:00:00Z",
            "2026-11-02T18:00:00Z",
            Window(NOV2 + datetime.timedelta(hours=6), NOV2 + datetime.timedelta(hours=18)),
            id="part-of-a-day",
        ),
        pytest.param(
            datetime.date(2026, 11, 2), datetime.date(2026, 11, 3), Window(NOV2, NOV3), id="date-objects"
        ),
        pytest.param(NOV2.replace(tzinfo=None), NOV3, Window(NOV2, NOV3), id="datetime-objects"),
    ],
)
def test_params_give_the_window_of_a_manual_run(start: object, end: object, expected: Window) -> None:
    assert resolve_window(None, None, {"window_start": start, "window_end": end}, NOV3) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param(
            {"window_start": "2026-11-02"}, "window_start was given without window_end", id="only-start"
        ),
        pytest.param(
            {"window_end": "2026-11-03", "window_start": ""},
            "window_end was given without window_start",
            id="only-end",
        ),
        pytest.param(
            {"window_start": "2026-11-03", "window_end": "2026-11-02"}, "must be after", id="reversed"
        ),
        pytest.param({"window_start": "2026-11-02", "window_end": "2026-11-02"}, "must be after", id="empty"),
        pytest.param(
            {"window_start": "yesterday", "window_end": "2026-11-03"},
            "window_start must be an ISO date",
            id="word",
        ),
        pytest.param(
            {"window_start": "2026-11-02", "window_end": "2026-13-01"},
            "window_end must be an ISO date",
            id="month-13",
        ),
        pytest.param({"window_start": 20261102, "window_end": "2026-11-03"}, "got 20261102", id="number"),
    ],
)
def test_bad_params_are_explained(params: dict[str, object], message: str) -> None:
    with pytest.raises(WindowError, match=message):
        resolve_window(None, None, params, NOV3)


# ------------------------------------------------------------------------------------------------
# resolve_window: previous UTC day


@pytest.mark.parametrize(
    ("run_after", "expected_start"),
    [
        pytest.param(datetime.datetime(2026, 11, 3, 5, 0, tzinfo=UTC), NOV2, id="morning"),
        pytest.param(NOV3, NOV2, id="exactly-midnight"),
        pytest.param(datetime.datetime(2026, 11, 3, 23, 59, 59, tzinfo=UTC), NOV2, id="late-evening"),
        pytest.param(
            datetime.datetime(2026, 11, 3, 1, 0, tzinfo=PLUS2),
            datetime.datetime(2026, 11, 1, tzinfo=UTC),
            id="local-time-converted",
        ),
        pytest.param(datetime.datetime(2026, 11, 3, 5, 0), NOV2, id="naive-is-utc"),
        pytest.param(
            datetime.datetime(2027, 1, 1, 0, 30, tzinfo=UTC),
            datetime.datetime(2026, 12, 31, tzinfo=UTC),
            id="new-year",
        ),
    ],
)
def test_without_interval_or_params_the_previous_utc_day(
    run_after: datetime.datetime, expected_start: datetime.datetime
) -> None:
    for params in ({}, {"window_start": None, "window_end": None}, {"window_start": "", "window_end": " "}):
        window = resolve_window(None, None, params, run_after)
        assert window == Window(expected_start, expected_start + datetime.timedelta(days=1))


def test_the_fallback_needs_run_after() -> None:
    with pytest.raises(WindowError, match="pass window_start and window_end"):
        resolve_window(None, None, {}, None)
