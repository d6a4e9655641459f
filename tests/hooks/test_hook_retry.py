"""The retry loop on its own: Retry-After parsing, backoff bounds, attempt and time budgets."""

from __future__ import annotations

import email.utils
import io
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import requests

from nylas_dataverse.hooks._retry import GiveUp, RetryPolicy, RetryStats, parse_retry_after, send_with_retry

if TYPE_CHECKING:
    from conftest import FakeTime

NOW = 1_750_000_000.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-3", 0.0),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
        ("Wed, 21 Oct 2015 07:28:00", None),  # no zone: not an HTTP-date
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize("retry_number", [1, 2, 3, 4, 5, 10, 80])
def test_full_jitter_backoff_stays_within_the_exponential_ceiling(retry_number: int) -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=20.0)
    rng = random.Random(retry_number)
    ceiling = min(20.0, 0.5 * 2 ** (retry_number - 1))
    delays = [policy.backoff_s(retry_number, rng) for _ in range(200)]
    assert all(0.0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling / 2  # jitter spreads over the whole range


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"max_total_wait_s": -1}, {"base_delay_s": -1}, {"max_delay_s": -0.5}]
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"max_attempts|must not be negative"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def answer(status: int, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    response._content = b""
    response.raw = io.BytesIO(b"")
    return response


class GaveUpError(Exception):
    def __init__(self, outcome: GiveUp) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


def run(
    answers: Iterator[requests.Response | Exception], policy: RetryPolicy, fake_time: FakeTime
) -> tuple[requests.Response, RetryStats]:
    stats = RetryStats()

    def send() -> requests.Response:
        item = next(answers)
        if isinstance(item, Exception):
            raise item
        return item

    response = send_with_retry(
        send,
        policy=policy,
        describe="GET /thing",
        give_up=GaveUpError,
        stats=stats,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        rng=random.Random(1),
    )
    return response, stats


def test_non_retryable_answers_are_returned_at_once(fake_time: FakeTime) -> None:
    for status in (200, 204, 304, 400, 401, 403, 404, 409, 412):
        response, stats = run(iter([answer(status)]), RetryPolicy(), fake_time)
        assert response.status_code == status
        assert (stats.requests, stats.retries) == (1, 0)
    assert fake_time.sleeps == []


def test_every_retryable_status_and_network_error_is_retried(fake_time: FakeTime) -> None:
    answers: list[requests.Response | Exception] = [
        answer(429),
        answer(500),
        answer(502),
        answer(503),
        answer(504),
        requests.ConnectionError("reset"),
        requests.ReadTimeout("slow"),
        requests.exceptions.ChunkedEncodingError("cut"),
        answer(200),
    ]
    response, stats = run(iter(answers), RetryPolicy(max_attempts=20, max_total_wait_s=1e6), fake_time)

    assert response.status_code == 200
    assert (stats.requests, stats.retries, stats.throttled) == (9, 8, 1)


def test_a_tls_failure_is_not_retried(fake_time: FakeTime) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        run(iter([requests.exceptions.SSLError("certificate verify failed")]), RetryPolicy(), fake_time)
    assert fake_time.sleeps == []


def test_attempts_are_bounded(fake_time: FakeTime) -> None:
    with pytest.raises(GaveUpError) as caught:
        run(iter([answer(503)] * 10), RetryPolicy(max_attempts=3, max_total_wait_s=1e6), fake_time)

    outcome = caught.value.outcome
    assert (outcome.attempts, outcome.status, outcome.reason) == (3, 503, "attempts")
    assert len(fake_time.sleeps) == 2


def test_total_time_is_bounded_even_with_many_attempts_left(fake_time: FakeTime) -> None:
    policy = RetryPolicy(max_attempts=1000, max_total_wait_s=60.0, base_delay_s=8.0, max_delay_s=8.0)
    with pytest.raises(GaveUpError) as caught:
        run(iter([answer(502)] * 1000), policy, fake_time)

    assert caught.value.outcome.reason == "time budget"
    assert sum(fake_time.sleeps) <= 60.0
    assert caught.value.outcome.elapsed_s <= 60.0
    assert len(fake_time.sleeps) >= 8  # waits averaging 4 s fill most of the minute


def test_the_last_network_error_is_handed_to_give_up(fake_time: FakeTime) -> None:
    error = requests.ConnectionError("refused")
    with pytest.raises(GaveUpError) as caught:
        run(iter([error, error]), RetryPolicy(max_attempts=2), fake_time)

    assert caught.value.outcome.exception is error
    assert caught.value.outcome.status is None


def test_throttle_wait_is_counted_only_for_429(fake_time: FakeTime) -> None:
    answers = iter([answer(429, {"Retry-After": "5"}), answer(503, {"Retry-After": "2"}), answer(200)])
    _, stats = run(answers, RetryPolicy(), fake_time)

    assert fake_time.sleeps == [5.0, 2.0]
    assert stats.throttle_wait_s == 5.0
    assert stats.throttled == 1
