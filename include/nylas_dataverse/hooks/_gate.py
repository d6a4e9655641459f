"""The gate every Dataverse request passes: it applies the pacing rule of ``core/pacing.py`` across threads.

A thread asks for a slot before it sends and reports the answer after; while a 429's ``Retry-After`` runs no
thread sends, and otherwise at most ``Pacer.limit`` requests are in flight. Time spent queueing here is not
time spent retrying: ``wait`` returns it so the caller can leave it out of its retry time budget.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import requests

from nylas_dataverse.core.pacing import Answer, Pacer
from nylas_dataverse.hooks._retry import parse_retry_after

# How long a queued thread sleeps before it looks at the rule again (the burst can end while it waits).
_RECHECK_S = 0.5


class PacingGate:
    def __init__(
        self,
        pacer: Pacer,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.pacer = pacer
        self._clock = clock
        self._sleep = sleep
        self._condition = threading.Condition()
        self.peak_in_flight = 0

    def enter(self) -> tuple[float, float]:
        """Block until this thread may send; returns (when it was let in, seconds it queued)."""
        asked = self._clock()
        while True:
            with self._condition:
                now = self._clock()
                pause = self.pacer.paused_until - now
                if pause <= 0 and self.pacer.may_send(now):
                    self.pacer.started(now)
                    self.peak_in_flight = max(self.peak_in_flight, self.pacer.in_flight)
                    return now, now - asked
                if pause <= 0:
                    self._condition.wait(_RECHECK_S)
                    continue
            self._sleep(min(pause, 5.0))  # outside the lock: a pause is waited out on the hook's clock

    def leave(self, entered: float, response: requests.Response | None) -> None:
        """Report how the request went (``response`` None: it failed without an answer)."""
        with self._condition:
            now = self._clock()
            self.pacer.finished(now, _answer(now - entered, response, now))
            self._condition.notify_all()

    def snapshot(self) -> dict[str, object]:
        with self._condition:
            return {
                "peak_in_flight": self.peak_in_flight,
                "burst_ceiling": self.pacer.burst_ceiling,
                "dop_hint": self.pacer.dop_hint,
                "throttled_by_code": dict(self.pacer.throttled),
            }


def _answer(elapsed_s: float, response: requests.Response | None, now: float) -> Answer:
    if response is None:
        return Answer(elapsed_s=elapsed_s, status=0, headers={})
    code: str | None = None
    retry_after: float | None = None
    if response.status_code == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict) and error.get("code"):
            code = str(error["code"]).lower()
    return Answer(
        elapsed_s=elapsed_s,
        status=response.status_code,
        headers=response.headers,
        throttle_code=code,
        retry_after_s=retry_after,
    )
