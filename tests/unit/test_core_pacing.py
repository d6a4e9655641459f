"""The pacing rule: burst while the window's budget lasts, then the refill rate; 429s pause and cool down."""

from __future__ import annotations

import pytest

from nylas_dataverse.core.pacing import (
    CONCURRENCY_LIMIT_CODE,
    EXECUTION_LIMIT_CODE,
    REQUEST_LIMIT_CODE,
    Answer,
    Pacer,
    burst_batch_size,
    observed_seconds_per_email,
    planned_batch_size,
    read_number,
)


def ok(elapsed_s: float = 1.0, **headers: str) -> Answer:
    return Answer(
        elapsed_s=elapsed_s, status=200, headers={k.replace("_", "-"): v for k, v in headers.items()}
    )


def throttled(code: str | None, retry_after_s: float | None = 5.0) -> Answer:
    return Answer(elapsed_s=0.01, status=429, headers={}, throttle_code=code, retry_after_s=retry_after_s)


def run(pacer: Pacer, now: float, answer: Answer) -> None:
    pacer.started(now)
    pacer.finished(now, answer)


def test_a_fresh_window_bursts_up_to_the_ceiling() -> None:
    pacer = Pacer(burst=52)
    assert pacer.limit(0.0) == 52
    for _ in range(51):
        pacer.started(0.0)
    assert pacer.may_send(0.0)
    pacer.started(0.0)
    assert not pacer.may_send(0.0)


def test_the_burst_ends_before_the_execution_budget_is_spent_and_pacing_falls_to_four() -> None:
    pacer = Pacer()
    for tenth in range(1_000):  # 1,000 s of execution time within 100 s: under 85 % of 1,200 s
        run(pacer, tenth / 10, ok(1.0))
    assert pacer.limit(100.0) == 52
    for tenth in range(1_000, 1_030):  # 1,030 s: over it
        run(pacer, tenth / 10, ok(1.0))
    assert pacer.limit(103.0) == 4
    assert pacer.limit(500.0) == 52  # the window slid past all of it  # the window slid past all of it


def test_requests_in_flight_count_against_the_burst() -> None:
    pacer = Pacer()
    for _ in range(10):
        run(pacer, 0.0, ok(20.0))  # 200 s spent, 20 s per request
    for _ in range(40):
        pacer.started(1.0)  # 40 x 20 s expected: 200 + 800 still under 1,020
    assert pacer.limit(1.0) == 52
    pacer.started(1.0)
    pacer.started(1.0)  # 42 x 20 s: 200 + 840 over it
    assert pacer.limit(1.0) == 4


def test_the_request_count_ends_the_burst_too() -> None:
    pacer = Pacer()
    for index in range(5_200):
        run(pacer, index * 0.01, ok(0.001))
    assert pacer.limit(60.0) == 4


def test_the_dop_hint_sets_the_sustained_level() -> None:
    pacer = Pacer()
    run(pacer, 0.0, ok(**{"x_ms_dop_hint": "6"}))
    assert pacer.sustained == 6
    run(pacer, 0.0, ok(**{"x_ms_dop_hint": "not a number"}))
    assert pacer.sustained == 6
    assert Pacer(burst=3).sustained == 3  # never above the burst ceiling


@pytest.mark.parametrize("code", [EXECUTION_LIMIT_CODE, REQUEST_LIMIT_CODE, None])
def test_a_budget_429_pauses_everyone_then_paces_for_a_window(code: str | None) -> None:
    pacer = Pacer()
    run(pacer, 10.0, throttled(code, retry_after_s=30.0))
    assert pacer.limit(39.9) == 0
    assert pacer.limit(40.1) == 4
    assert pacer.limit(309.0) == 4
    assert pacer.limit(311.0) == 52


def test_a_429_without_retry_after_does_not_pause_but_still_cools_down() -> None:
    pacer = Pacer()
    run(pacer, 0.0, throttled(EXECUTION_LIMIT_CODE, retry_after_s=None))
    assert pacer.limit(0.0) == 4


def test_a_concurrency_429_lowers_the_ceiling_to_three_quarters_of_what_was_in_flight() -> None:
    pacer = Pacer()
    for _ in range(40):
        pacer.started(0.0)
    pacer.finished(0.0, throttled(CONCURRENCY_LIMIT_CODE, retry_after_s=1.0))
    assert pacer.burst_ceiling == 30
    assert pacer.limit(2.0) == 30  # no cooldown: the budgets are untouched
    assert pacer.throttled == {CONCURRENCY_LIMIT_CODE: 1}
    assert pacer.limit(301.0) == 52  # a window later the burst may try the full ceiling again


def test_a_concurrency_429_met_with_one_request_in_flight_keeps_the_sustained_level() -> None:
    """Other processes writing as the same user held the 52 slots: this one keeps its dop-hint share (a
    ceiling of 1 for the rest of the load once ran one at a quarter of the refill rate)."""
    pacer = Pacer()
    run(pacer, 0.0, ok(**{"x_ms_dop_hint": "4"}))
    pacer.started(1.0)
    pacer.finished(1.0, throttled(CONCURRENCY_LIMIT_CODE, retry_after_s=1.0))
    assert pacer.burst_ceiling == 4
    assert pacer.sustained == 4
    run(pacer, 3.0, throttled(EXECUTION_LIMIT_CODE, retry_after_s=1.0))  # now pacing at the refill rate
    assert pacer.limit(5.0) == 4
    assert pacer.limit(400.0) == 52


def test_a_low_time_remaining_header_ends_the_burst_and_a_high_one_never_extends_it() -> None:
    pacer = Pacer()
    run(pacer, 0.0, ok(**{"x_ms_ratelimit_time_remaining_xrm_requests": "95.50"}))
    assert pacer.limit(1.0) == 4
    assert pacer.limit(301.0) == 52  # an old hint is forgotten
    high = Pacer()
    for index in range(1_100):
        run(high, index * 0.01, ok(1.0, **{"x_ms_ratelimit_time_remaining_xrm_requests": "1,200.00"}))
    assert high.limit(12.0) == 4  # the client's own account still binds


def test_a_low_requests_remaining_header_ends_the_burst() -> None:
    pacer = Pacer()
    run(pacer, 0.0, ok(**{"x_ms_ratelimit_burst_remaining_xrm_requests": "12"}))
    assert pacer.limit(0.5) == 4


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("1,200.00", 1200.0),
        ("5999", 5999.0),
        (" 7 ", 7.0),
        ("", None),
        ("-3", None),
        ("1e3", None),
        (None, None),
    ],
)
def test_header_numbers(text: str | None, number: float | None) -> None:
    assert read_number(text) == number


def test_the_burst_ceiling_is_bounded_by_dataverse() -> None:
    with pytest.raises(ValueError, match="between 1 and 52"):
        Pacer(burst=53)


def test_the_batch_size_shrinks_so_one_batch_stays_within_half_the_timeout() -> None:
    assert planned_batch_size(50, timeout_s=120.0, seconds_per_email=0.0) == 50  # nothing observed yet
    assert planned_batch_size(50, timeout_s=120.0, seconds_per_email=0.2) == 50  # typical: 10 s per batch
    assert planned_batch_size(50, timeout_s=120.0, seconds_per_email=2.0) == 30  # 60 s per batch
    assert planned_batch_size(50, timeout_s=10.0, seconds_per_email=30.0) == 1


def test_the_cost_estimate_follows_a_slower_batch_at_once_and_a_faster_one_slowly() -> None:
    slower = observed_seconds_per_email(0.2, 60.0, 50)
    assert slower == pytest.approx(1.2)
    assert observed_seconds_per_email(slower, 10.0, 50) == pytest.approx(1.2 - 1.0 / 4)
    assert observed_seconds_per_email(0.2, 5.0, 0) == 0.2


@pytest.mark.parametrize(
    ("total", "size"),
    [(20, 50), (100, 50), (101, 25), (1_000, 25), (1_700, 25), (1_701, 50), (20_000, 50)],
)
def test_a_load_that_fits_in_one_window_goes_out_in_half_size_batches(total: int, size: int) -> None:
    assert burst_batch_size(50, total) == size


def test_half_of_an_odd_batch_size_rounds_up() -> None:
    assert burst_batch_size(1, 1_000) == 1
    assert burst_batch_size(3, 1_000) == 2
