"""How many Dataverse requests one application user keeps in flight: the pacing rule, without any I/O.

Dataverse's service protection counts per application user over a 300 s sliding window: 6,000 requests,
1,200 s of combined execution time and 52 concurrent requests. The execution-time budget refills at
1,200 s / 300 s = 4 s of server time per second, so four requests always in flight is what a user can sustain
and what the service's ``x-ms-dop-hint`` header recommends. A window's budget that is still unspent may be
spent faster: a short burst (a small mailbox-day) finishes sooner at high concurrency.

The rule (``Pacer.limit``):

* **burst** (up to ``burst`` in flight, at most 52) while this client's own account of the window leaves more
  than ``reserve`` of both budgets: the execution time its requests took in the last window (wall time
  measured by the client, which includes the network and so over-estimates the server's time), the requests
  it sent, and an estimate for the requests in flight;
* **sustained** (``x-ms-dop-hint`` when the service sends one, else 4) otherwise, and for one window after
  any execution-time or request-count 429;
* a 429 pauses every new request until its ``Retry-After`` (``paused_until``), not just the one refused;
* a concurrency 429 (``0x80072326``) lowers the burst ceiling to three quarters of what was in flight, for one
  window and never below the sustained level: the 52 concurrent requests are the user's, shared with every
  other process writing as it, so this process may have had one request in flight when the answer came
  (a ceiling lowered to 1 for good once held a load at a quarter of the refill rate for 430 s).

``x-ms-ratelimit-time-remaining-xrm-requests`` and ``x-ms-ratelimit-burst-remaining-xrm-requests`` are
undocumented debugging aids whose formats may change: when one reads as a number it may only make the pacer
more careful (a low value ends the burst), never let it send more, and an unreadable value is ignored.
Nothing here depends on any header being present.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

WINDOW_S = 300.0
EXECUTION_BUDGET_S = 1_200.0
REQUEST_BUDGET = 6_000
MAX_CONCURRENT = 52
SUSTAINED_DEFAULT = math.ceil(EXECUTION_BUDGET_S / WINDOW_S)  # 4
RESERVE = 0.15  # share of each budget the burst leaves unspent (for requests in flight and other writers)

EXECUTION_LIMIT_CODE = "0x80072321"
REQUEST_LIMIT_CODE = "0x80072322"
CONCURRENCY_LIMIT_CODE = "0x80072326"

DOP_HINT_HEADER = "x-ms-dop-hint"
TIME_REMAINING_HEADER = "x-ms-ratelimit-time-remaining-xrm-requests"
REQUESTS_REMAINING_HEADER = "x-ms-ratelimit-burst-remaining-xrm-requests"

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def read_number(value: str | None) -> float | None:
    """A header value as a number, or None: ``1,200.00`` and ``1200`` read as 1200; anything else is None."""
    if value is None:
        return None
    text = value.strip().replace(",", "")
    return float(text) if _NUMBER.fullmatch(text) else None


@dataclass(frozen=True)
class Answer:
    """What one finished request told the pacer. ``throttle_code`` is the 429's error code, if any."""

    elapsed_s: float
    status: int
    headers: Mapping[str, str]
    throttle_code: str | None = None
    retry_after_s: float | None = None


class Pacer:
    """The pacing state of one application user in one process. Not thread-safe: the caller holds a lock.

    ``now`` is any monotonic clock in seconds; every method takes it, so the rule is tested without waiting.
    """

    def __init__(self, *, burst: int = MAX_CONCURRENT, sustained: int | None = None) -> None:
        if not 1 <= burst <= MAX_CONCURRENT:
            raise ValueError(f"burst must be between 1 and {MAX_CONCURRENT}, got {burst}")
        self.burst_ceiling = burst
        self._configured_burst = burst
        self._ceiling_lowered_until = float("-inf")
        self._configured_sustained = sustained
        self.dop_hint: int | None = None
        self.in_flight = 0
        self.paused_until = float("-inf")
        self.cooldown_until = float("-inf")
        self._spent: deque[tuple[float, float]] = deque()  # (finished at, elapsed s)
        self._spent_total = 0.0
        self._sent: deque[float] = deque()
        self._time_hint: tuple[float, float] | None = None  # (seen at, seconds remaining)
        self._requests_hint: tuple[float, float] | None = None
        self._mean_elapsed_s = 0.0
        self._finished = 0
        self.throttled: dict[str, int] = {}

    # --- what the rule decides ---------------------------------------------------------------------

    @property
    def sustained(self) -> int:
        """In flight once the burst is over: the service's dop hint, else 4 (never above the configured
        burst; a concurrency 429 lowers only the burst, see ``finished``)."""
        chosen = self._configured_sustained or self.dop_hint or SUSTAINED_DEFAULT
        return max(1, min(chosen, self._configured_burst))

    def bursting(self, now: float) -> bool:
        self._expire(now)
        if now < self.cooldown_until:
            return False
        in_flight_estimate = self.in_flight * self._mean_elapsed_s
        if self._spent_total + in_flight_estimate > (1 - RESERVE) * EXECUTION_BUDGET_S:
            return False
        if len(self._sent) > (1 - RESERVE) * REQUEST_BUDGET:
            return False
        for hint, budget in ((self._time_hint, EXECUTION_BUDGET_S), (self._requests_hint, REQUEST_BUDGET)):
            if hint is not None and now - hint[0] < WINDOW_S and hint[1] < RESERVE * budget:
                return False
        return True

    def limit(self, now: float) -> int:
        """Requests that may be in flight now (0 while a 429's Retry-After runs)."""
        if now < self.paused_until:
            return 0
        if now >= self._ceiling_lowered_until:
            self.burst_ceiling = self._configured_burst
        return self.burst_ceiling if self.bursting(now) else self.sustained

    def may_send(self, now: float) -> bool:
        return self.in_flight < self.limit(now)

    # --- what the caller reports --------------------------------------------------------------------

    def started(self, now: float) -> None:
        self.in_flight += 1
        self._sent.append(now)

    def finished(self, now: float, answer: Answer) -> None:
        in_flight_then = self.in_flight
        self.in_flight = max(0, self.in_flight - 1)
        self._spent.append((now, answer.elapsed_s))
        self._spent_total += answer.elapsed_s
        self._finished += 1
        self._mean_elapsed_s += (answer.elapsed_s - self._mean_elapsed_s) / min(self._finished, 50)
        self._read_headers(now, answer.headers)
        if answer.status != 429:
            return
        code = answer.throttle_code or "unknown"
        self.throttled[code] = self.throttled.get(code, 0) + 1
        if answer.retry_after_s is not None:
            self.paused_until = max(self.paused_until, now + answer.retry_after_s)
        if code == CONCURRENCY_LIMIT_CODE:
            lowered = min(self.burst_ceiling, (3 * in_flight_then) // 4)
            self.burst_ceiling = max(self.sustained, lowered)
            self._ceiling_lowered_until = now + WINDOW_S
        else:  # execution time, request count, or a 429 that names no limit: pace for a window
            self.cooldown_until = max(self.cooldown_until, now + WINDOW_S)

    def _read_headers(self, now: float, headers: Mapping[str, str]) -> None:
        lowered = {name.lower(): value for name, value in headers.items()}
        hint = read_number(lowered.get(DOP_HINT_HEADER))
        if hint is not None and hint >= 1:
            self.dop_hint = min(int(hint), MAX_CONCURRENT)
        remaining = read_number(lowered.get(TIME_REMAINING_HEADER))
        if remaining is not None:
            self._time_hint = (now, remaining)
        requests_left = read_number(lowered.get(REQUESTS_REMAINING_HEADER))
        if requests_left is not None:
            self._requests_hint = (now, requests_left)

    def _expire(self, now: float) -> None:
        horizon = now - WINDOW_S
        while self._spent and self._spent[0][0] <= horizon:
            self._spent_total -= self._spent.popleft()[1]
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()


# A $batch is planned to take at most this share of the client timeout, so one slower than observed still
# answers in time.
BATCH_TIMEOUT_SHARE = 0.5


def observed_seconds_per_email(previous: float, batch_seconds: float, emails: int) -> float:
    """The running estimate of server time per email after a batch of ``emails`` took ``batch_seconds``:
    a slower batch counts at once, a faster one pulls the estimate down by a quarter of the difference."""
    if emails < 1 or batch_seconds < 0:
        return previous
    observed = batch_seconds / emails
    return observed if observed > previous else previous + (observed - previous) / 4


def planned_batch_size(configured: int, *, timeout_s: float, seconds_per_email: float) -> int:
    """Emails per ``$batch``: the configured size, smaller when the observed cost per email would make one
    batch take more than ``BATCH_TIMEOUT_SHARE`` of the client timeout (at least 1)."""
    if configured < 1:
        raise ValueError(f"configured batch size must be at least 1, got {configured}")
    if seconds_per_email <= 0:
        return configured
    return max(1, min(configured, int(BATCH_TIMEOUT_SHARE * timeout_s / seconds_per_email)))


# A load of at most this many emails is a burst: even at the plug-in heavy profile (about 0.6 s of server time
# per email) it fits within 85 % of one window's 1,200 s budget (1,700 emails).
BURST_EMAILS = 1_700


def burst_batch_size(configured: int, total_emails: int) -> int:
    """Emails per ``$batch`` for a load of ``total_emails``: half the configured size (rounded up) when the
    whole load is a burst of more than two batches, so twice as many batches run at once while the window's
    budget lasts; the configured size otherwise (a bigger load is paced by the budget anyway, and fewer,
    larger batches spare the request count; a load of one or two batches gains nothing from splitting)."""
    if configured < 1:
        raise ValueError(f"configured batch size must be at least 1, got {configured}")
    if 2 * configured < total_emails <= BURST_EMAILS:
        return -(-configured // 2)
    return configured
