"""Dataverse service protection limits, per user over a sliding window, with a scalable clock.

Three limits, evaluated when a request arrives (as Dataverse does, before the work):

- number of requests in the window (a ``$batch`` counts once)       -> 429 ``0x80072322``
- combined execution time of the requests in the window            -> 429 ``0x80072321``
- requests in flight at the same time                              -> 429 ``0x80072326``

Execution time is modelled, not measured: every operation has a cost in server milliseconds
(``DEFAULT_COSTS_MS``), and the server really spends ``cost * time_scale`` ms on it (the app sleeps outside
any lock) so throughput is bounded the way a real server bounds it. ``time_scale`` shrinks the window too: the
window lasts ``window_s * time_scale`` wall-clock seconds, so ``time_scale=0.01`` plays a 5-minute window in
3 s while the limits keep their real values.

``Retry-After`` is an integer number of wall-clock seconds (so already scaled): the time until the window
frees enough capacity, rounded up, at least 1, lengthened by ``retry_after_growth`` (10 %) for every further
429 the same user received since its last admitted request ("continued pressure lengthens Retry-After"), at
most two windows.

Execution costs come in named profiles (``COST_PROFILES``): ``fast`` is the model the benchmarks were
published with, ``typical`` and ``plugin-heavy`` are documented assumptions for orgs with more server-side
work per email (see docs/sandbox.md, "Execution-cost profiles"). Microsoft publishes no per-operation times;
only the 1,200,000 ms budget (which includes synchronous plug-in time) is documented.

The informational headers' value formats are undocumented; ``RATELIMIT_HEADER_FORMATS`` names the choices.
``observed`` is what Microsoft's own captures show: ``x-ms-ratelimit-burst-remaining-xrm-requests: 5999``
and ``x-ms-ratelimit-time-remaining-xrm-requests: 1,200.00`` (seconds of the 1,200 s budget, two decimals,
a grouping comma).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from nylas_dataverse_sandbox.dataverse.errors import ThrottledError

# Modelled server time per operation, in milliseconds. Chosen to be of the order a small real environment
# shows for these calls; they matter relative to each other and to the 1,200,000 ms execution limit.
# This is the "fast" profile, the one `make bench` published its figures with.
DEFAULT_COSTS_MS: Mapping[str, float] = MappingProxyType(
    {
        "query": 15.0,  # GET on a collection, plus query_per_row per row returned
        "query_per_row": 0.5,
        "query_scan_per_row": 0.001,  # per row examined when no index serves the $filter
        "retrieve": 10.0,  # GET of one row
        "create": 30.0,  # POST of a non-activity row
        "create_email": 40.0,  # POST of an email (or other activity), plus party per activity party
        "party": 5.0,
        "update": 25.0,  # PATCH (update, state change or upsert)
        "delete": 20.0,
        "attachment": 20.0,  # POST of an activitymimeattachment, plus attachment_per_mb of Base64 body
        "attachment_per_mb": 10.0,
        "metadata": 5.0,  # service document, $metadata, EntityDefinitions
        "whoami": 5.0,  # also RetrieveUserPrivileges
        "batch": 5.0,  # per $batch, on top of the sum of its operations
        "error": 5.0,  # a request rejected before any work (validation, 404)
    }
)

# Per email with two parties, created and then completed: create_email + 2 x party + update.
#   fast          40 + 2 x  5 +  25 =  75 ms   (80 with three parties)
#   typical      110 + 2 x 15 +  60 = 200 ms   (215)
#   plugin-heavy 340 + 2 x 30 + 200 = 600 ms   (630): synchronous plug-ins on create and on state change
COST_PROFILES: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "fast": DEFAULT_COSTS_MS,
        "typical": MappingProxyType(
            {
                **DEFAULT_COSTS_MS,
                "query": 40.0,
                "query_per_row": 1.0,
                "query_scan_per_row": 0.002,
                "retrieve": 25.0,
                "create": 80.0,
                "create_email": 110.0,
                "party": 15.0,
                "update": 60.0,
                "delete": 50.0,
                "attachment": 60.0,
                "attachment_per_mb": 20.0,
                "metadata": 10.0,
                "whoami": 10.0,
                "batch": 20.0,
                "error": 10.0,
            }
        ),
        "plugin-heavy": MappingProxyType(
            {
                **DEFAULT_COSTS_MS,
                "query": 60.0,
                "query_per_row": 1.5,
                "query_scan_per_row": 0.002,
                "retrieve": 40.0,
                "create": 250.0,
                "create_email": 340.0,
                "party": 30.0,
                "update": 200.0,
                "delete": 150.0,
                "attachment": 150.0,
                "attachment_per_mb": 40.0,
                "metadata": 10.0,
                "whoami": 10.0,
                "batch": 30.0,
                "error": 15.0,
            }
        ),
    }
)

# How the two x-ms-ratelimit-* headers are written (undocumented; see the module docstring).
RATELIMIT_HEADER_FORMATS = ("observed", "plain", "milliseconds", "omit")


@dataclass(frozen=True)
class ServiceProtectionLimits:
    window_s: float = 300.0
    max_requests: int = 6000
    max_execution_ms: float = 1_200_000.0
    max_concurrency: int = 52
    time_scale: float = 1.0
    cost_profile: str = "fast"
    cost_ms: Mapping[str, float] = field(default_factory=dict)  # overrides on top of the profile
    dop_hint: int | None = None  # x-ms-dop-hint; None derives it (see ServiceProtection.dop_hint)
    retry_after_growth: float = 0.1  # Retry-After grows by this share per consecutive 429 (0: never)
    ratelimit_header_format: str = "observed"  # one of RATELIMIT_HEADER_FORMATS
    dop_hint_header: bool = True
    _costs: Mapping[str, float] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.time_scale <= 0 or self.window_s <= 0:
            raise ValueError("time_scale and window_s must be positive")
        if self.max_requests < 1 or self.max_concurrency < 1 or self.max_execution_ms <= 0:
            raise ValueError("max_requests, max_concurrency and max_execution_ms must be positive")
        if self.cost_profile not in COST_PROFILES:
            raise ValueError(f"unknown cost_profile {self.cost_profile!r}; known: {sorted(COST_PROFILES)}")
        unknown = sorted(set(self.cost_ms) - set(DEFAULT_COSTS_MS))
        if unknown:
            raise ValueError(f"unknown cost_ms operations {unknown}; known: {sorted(DEFAULT_COSTS_MS)}")
        if self.retry_after_growth < 0:
            raise ValueError("retry_after_growth must not be negative")
        if self.ratelimit_header_format not in RATELIMIT_HEADER_FORMATS:
            raise ValueError(
                f"unknown ratelimit_header_format {self.ratelimit_header_format!r}; "
                f"known: {list(RATELIMIT_HEADER_FORMATS)}"
            )
        object.__setattr__(self, "cost_ms", MappingProxyType(dict(self.cost_ms)))
        merged = {**COST_PROFILES[self.cost_profile], **self.cost_ms}
        object.__setattr__(self, "_costs", MappingProxyType(merged))

    @property
    def window_real_s(self) -> float:
        return self.window_s * self.time_scale

    @property
    def costs(self) -> Mapping[str, float]:
        """The effective cost of every operation: the profile with the overrides applied."""
        return self._costs

    def cost(self, name: str) -> float:
        return float(self._costs[name])

    def email_create_cost(self, parties: int) -> float:
        return self.cost("create_email") + parties * self.cost("party")

    def attachment_cost(self, body_chars: int) -> float:
        return self.cost("attachment") + self.cost("attachment_per_mb") * body_chars / 1_048_576

    def sleep_s(self, cost_ms: float) -> float:
        """Wall-clock time the server spends on work that costs ``cost_ms`` modelled milliseconds."""
        return cost_ms * self.time_scale / 1000.0

    def settings(self) -> dict[str, object]:
        """The constructor arguments (for JSON and for building a changed copy)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        values["cost_ms"] = dict(self.cost_ms)
        return values


def request_limit_message(limits: ServiceProtectionLimits) -> str:
    return (
        f"Number of requests exceeded the limit of {limits.max_requests} over time window of "
        f"{_number(limits.window_s)} seconds."
    )


def execution_limit_message(limits: ServiceProtectionLimits) -> str:
    return (
        f"Combined execution time of incoming requests exceeded limit of {limits.max_execution_ms:,.0f}  "
        f"milliseconds over time window of {_number(limits.window_s)} seconds. Decrease number of concurrent "
        "requests or reduce the duration of requests and try again later."
    )


def concurrency_limit_message(limits: ServiceProtectionLimits) -> str:
    return f"Number of concurrent requests exceeded the limit of {limits.max_concurrency}."


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def ceiling_breakdown(
    limits: ServiceProtectionLimits,
    batch_size: int,
    *,
    parties_per_email: int = 3,
    updates_per_email: int = 1,
) -> dict[str, float]:
    """Emails per wall-clock second one user can reach under each limit, writing ``batch_size`` emails per
    ``$batch`` (each email: one create with its parties plus ``updates_per_email`` PATCHes, e.g. the state
    change). Lookup queries are not counted, so this is an upper bound for a real pipeline."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    per_email_ms = limits.email_create_cost(parties_per_email) + updates_per_email * limits.cost("update")
    batch_ms = (limits.cost("batch") if batch_size > 1 else 0.0) + batch_size * per_email_ms
    window = limits.window_real_s
    return {
        "requests": limits.max_requests * batch_size / window,
        "execution_time": limits.max_execution_ms / batch_ms * batch_size / window,
        "concurrency": limits.max_concurrency * batch_size / limits.sleep_s(batch_ms),
    }


def ceiling_emails_per_s(
    limits: ServiceProtectionLimits,
    batch_size: int,
    *,
    parties_per_email: int = 3,
    updates_per_email: int = 1,
) -> float:
    """The theoretical maximum of ``ceiling_breakdown``: the binding limit decides."""
    return min(
        ceiling_breakdown(
            limits, batch_size, parties_per_email=parties_per_email, updates_per_email=updates_per_email
        ).values()
    )


@dataclass
class _UserWindow:
    requests: deque[float] = field(default_factory=deque)  # admission times
    costs: deque[tuple[float, float]] = field(default_factory=deque)  # (finish time, cost ms)
    cost_total: float = 0.0
    in_flight: int = 0
    peak_in_flight: int = 0  # the most requests in flight at once since the last reset
    strikes: int = 0


@dataclass(frozen=True)
class Ticket:
    """An admitted request; give it back with ``ServiceProtection.finish``."""

    user: str
    admitted_at: float


class ServiceProtection:
    def __init__(self, limits: ServiceProtectionLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._users: dict[str, _UserWindow] = {}
        self.rejections: dict[str, int] = {}

    def configure(self, limits: ServiceProtectionLimits) -> None:
        with self._lock:
            self.limits = limits

    def reset(self) -> None:
        with self._lock:
            self._users.clear()
            self.rejections = {}

    @property
    def dop_hint(self) -> int:
        """Parallelism at which one user saturates the execution-time limit with back-to-back requests."""
        limits = self.limits
        if limits.dop_hint is not None:
            return limits.dop_hint
        return max(
            1, min(limits.max_concurrency, math.ceil(limits.max_execution_ms / (limits.window_s * 1000)))
        )

    def _expire(self, window: _UserWindow, now: float) -> None:
        horizon = now - self.limits.window_real_s
        while window.requests and window.requests[0] <= horizon:
            window.requests.popleft()
        while window.costs and window.costs[0][0] <= horizon:
            window.cost_total -= window.costs.popleft()[1]

    def admit(self, user: str) -> Ticket:
        """Let a request in, or raise ``ThrottledError`` with Dataverse's code, message and Retry-After."""
        limits = self.limits
        with self._lock:
            now = self._clock()
            window = self._users.setdefault(user, _UserWindow())
            self._expire(window, now)
            if window.in_flight >= limits.max_concurrency:
                raise self._reject(window, "0x80072326", concurrency_limit_message(limits), 0.0)
            if len(window.requests) >= limits.max_requests:
                excess = len(window.requests) - limits.max_requests
                wait = window.requests[excess] + limits.window_real_s - now
                raise self._reject(window, "0x80072322", request_limit_message(limits), wait)
            if window.cost_total >= limits.max_execution_ms:
                wait = self._wait_for_cost(window, now)
                raise self._reject(window, "0x80072321", execution_limit_message(limits), wait)
            window.requests.append(now)
            window.in_flight += 1
            window.peak_in_flight = max(window.peak_in_flight, window.in_flight)
            window.strikes = 0
            return Ticket(user, now)

    def _wait_for_cost(self, window: _UserWindow, now: float) -> float:
        remaining = window.cost_total
        for finished_at, cost in window.costs:
            remaining -= cost
            if remaining < self.limits.max_execution_ms:
                return finished_at + self.limits.window_real_s - now
        return self.limits.window_real_s

    def _reject(self, window: _UserWindow, code: str, message: str, wait_s: float) -> ThrottledError:
        window.strikes += 1
        self.rejections[code] = self.rejections.get(code, 0) + 1
        return ThrottledError(
            code,
            message,
            retry_after(wait_s, window.strikes, self.limits.window_real_s, self.limits.retry_after_growth),
        )

    def finish(self, ticket: Ticket, cost_ms: float) -> None:
        with self._lock:
            window = self._users.setdefault(ticket.user, _UserWindow())
            window.in_flight = max(0, window.in_flight - 1)
            now = self._clock()
            window.costs.append((now, cost_ms))
            window.cost_total += cost_ms

    def headers(self, user: str | None) -> list[tuple[str, str]]:
        """The informational headers Dataverse adds to every response (``user`` None: before authentication,
        so only ``x-ms-dop-hint``)."""
        limits = self.limits
        result: list[tuple[str, str]] = []
        if user is not None and limits.ratelimit_header_format != "omit":
            with self._lock:
                window = self._users.setdefault(user, _UserWindow())
                self._expire(window, self._clock())
                remaining_requests = max(0, limits.max_requests - len(window.requests))
                remaining_ms = max(0.0, limits.max_execution_ms - window.cost_total)
            result += [
                ("x-ms-ratelimit-burst-remaining-xrm-requests", str(remaining_requests)),
                ("x-ms-ratelimit-time-remaining-xrm-requests", _time_remaining(remaining_ms, limits)),
            ]
        if limits.dop_hint_header:
            result.append(("x-ms-dop-hint", str(self.dop_hint)))
        return result

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            now = self._clock()
            users = {}
            for user, window in self._users.items():
                self._expire(window, now)
                users[user] = {
                    "requests_in_window": len(window.requests),
                    "execution_ms_in_window": round(window.cost_total, 1),
                    "in_flight": window.in_flight,
                    "peak_in_flight": window.peak_in_flight,
                }
            return {"users": users, "rejections": dict(self.rejections), "dop_hint": self.dop_hint}


def _time_remaining(remaining_ms: float, limits: ServiceProtectionLimits) -> str:
    if limits.ratelimit_header_format == "milliseconds":
        return f"{remaining_ms:.0f}"
    seconds = remaining_ms / 1000.0
    return f"{seconds:.2f}" if limits.ratelimit_header_format == "plain" else f"{seconds:,.2f}"


def retry_after(wait_s: float, strikes: int, window_real_s: float, growth: float = 0.1) -> int:
    """Whole seconds, at least 1; grows by ``growth`` (10 %) per consecutive rejection of the same user (and
    by a second per ten of them, for limits that free up at once like concurrency), never beyond two windows.
    ``growth=0`` turns the lengthening off."""
    pressure = max(strikes - 1, 0)
    extra = pressure // 10 if growth > 0 else 0
    grown = max(math.ceil(max(wait_s, 0.0) * (1 + growth * pressure)), 1 + extra)
    return max(1, min(grown, math.ceil(2 * window_real_s)))
