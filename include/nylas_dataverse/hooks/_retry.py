"""The one place where HTTP requests are retried.

A request is retried when the service answers 429, 500, 502, 503 or 504, or when the connection fails
or times out. The wait is the server's ``Retry-After`` when it sends one (seconds or an HTTP-date),
otherwise full-jitter exponential backoff. Retries stop at ``max_attempts`` or when the next wait would
end after ``max_total_wait_s`` from the first attempt, whichever comes first; the caller then gets the
exception built by its ``give_up`` callback (transient, carrying the last status).
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

import requests

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

# SSLError is a ConnectionError too, but a certificate problem does not heal by waiting.
_RETRYABLE_EXCEPTIONS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for retrying one logical request. ``max_attempts`` counts the first try."""

    max_attempts: int = 6
    max_total_wait_s: float = 300.0
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.max_total_wait_s < 0 or self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("max_total_wait_s, base_delay_s and max_delay_s must not be negative")

    def backoff_s(self, retry_number: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max_delay, base * 2**(retry_number - 1))]."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** min(retry_number - 1, 62))
        return rng.uniform(0.0, ceiling)


class RetryStats:
    """Counters shared by the threads using one hook."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        self.throttled = 0
        self.throttle_wait_s = 0.0

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def count_retry(self, delay_s: float, *, throttled: bool) -> None:
        with self._lock:
            self.retries += 1
            if throttled:
                self.throttle_wait_s += delay_s

    def count_throttled(self) -> None:
        with self._lock:
            self.throttled += 1


@dataclass
class RetryBudget:
    """Attempts made and when the first one started, for one logical request."""

    started_at: float
    attempts: int = 0


@dataclass(frozen=True)
class GiveUp:
    """Why retrying stopped; handed to the caller's ``give_up`` callback to build its error."""

    attempts: int
    elapsed_s: float
    response: requests.Response | None
    exception: BaseException | None
    retry_after_s: float | None
    reason: str

    @property
    def status(self) -> int | None:
        return self.response.status_code if self.response is not None else None


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value; ``now`` is wall-clock epoch seconds.

    Accepts delta-seconds (integer or decimal) and HTTP-dates. Returns None when absent or unreadable,
    so the caller falls back to backoff. Dates in the past mean "now" (0.0).
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; treat a naive one as UTC
        return None
    return max(0.0, when.timestamp() - now)


def send_with_retry(
    send: Callable[[], requests.Response],
    *,
    policy: RetryPolicy,
    describe: str,
    give_up: Callable[[GiveUp], Exception],
    stats: RetryStats,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    rng: random.Random,
    retry_timeouts: bool = True,
    budget: RetryBudget | None = None,
    retry_statuses: frozenset[int] = RETRYABLE_STATUSES,
) -> requests.Response:
    """Call ``send`` until it returns a non-retryable response, or raise ``give_up(...)``.

    ``describe`` names the request in logs (method and path; never headers or bodies). Non-retryable
    responses (2xx, 3xx, other 4xx) are returned for the caller to interpret. Exceptions from ``send``
    other than connection errors and timeouts propagate unchanged; so does a timeout when
    ``retry_timeouts`` is False (a caller that can make the request smaller should, instead of resending it).
    ``retry_statuses`` narrows which statuses are retried (a caller that answers a 504 with a smaller page
    instead of the same request again leaves it out). ``budget`` lets a caller that calls this again for one
    logical request (after renewing a token) keep one count of attempts and one time budget for all of it.
    """
    budget = budget or RetryBudget(started_at=clock())
    start = budget.started_at
    while True:
        budget.attempts += 1
        attempt = budget.attempts
        stats.count_request()
        response: requests.Response | None = None
        exception: BaseException | None = None
        retry_after: float | None = None
        try:
            response = send()
        except requests.exceptions.SSLError:
            raise
        except requests.exceptions.ReadTimeout as exc:
            # Sent but unanswered: it may have been applied. Resending is safe here (every write is
            # idempotent) but a caller that can make the request smaller asks to get the timeout instead.
            if not retry_timeouts:
                raise
            exception = exc
            problem = f"failed with {type(exc).__name__}"
        except _RETRYABLE_EXCEPTIONS as exc:
            exception = exc
            problem = f"failed with {type(exc).__name__}"
        else:
            if response.status_code not in retry_statuses:
                return response
            if response.status_code == 429:
                stats.count_throttled()
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now=clock())
            problem = f"returned {response.status_code}"

        elapsed = clock() - start
        if attempt >= policy.max_attempts:
            raise give_up(GiveUp(attempt, elapsed, response, exception, retry_after, "attempts"))
        delay = retry_after if retry_after is not None else policy.backoff_s(attempt, rng)
        if elapsed + delay > policy.max_total_wait_s:
            raise give_up(GiveUp(attempt, elapsed, response, exception, retry_after, "time budget"))

        throttled = response is not None and response.status_code == 429
        stats.count_retry(delay, throttled=throttled)
        log.warning(
            "%s %s (attempt %d of %d); retrying in %.1f s%s",
            describe,
            problem,
            attempt,
            policy.max_attempts,
            delay,
            " as asked by Retry-After" if retry_after is not None else "",
        )
        if response is not None:
            response.close()
        sleep(delay)
