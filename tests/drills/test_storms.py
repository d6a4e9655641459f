"""Drill: a day loaded through a storm on every service at once.

Dataverse answers 30 % of requests with 429 (``Retry-After`` 1, 2, 3 ... s for consecutive ones) and 5 %
with 500/503, and invalidates every token every two seconds; Nylas answers every third request with 429,
every fourth with a 502 HTML page and every fifth with a 504. The tasks run as the DAG runs them,
including Airflow's task retries for errors the DAG does not fail fast on. The day must complete with
every message accounted for once, and Dataverse must hold each email exactly once.

The hooks run on a clock ten times faster than the wall (their ``sleep`` and ``clock`` are injectable):
a ``Retry-After`` of 1 s takes 0.1 s, and the pacing gate, which holds every thread until a 429's
``Retry-After`` has passed on the hook's clock, sees it pass. In production a token lives an hour and
outlasts any retry chain by far; the faster clock keeps that proportion while tokens here expire every
two seconds. With real waits a token can expire twice within one throttled request, which the hook does
not survive; the separate drill
``test_a_token_that_expires_twice_while_one_request_waits_out_429s_does_not_fail_the_task`` pins that.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from airflow.sdk import RetryAction

from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.errors import DataverseThrottledError
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.pipeline.failures import RetryWhenRetryable

from .conftest import BULK_DAY, DrillRunner, grants

pytestmark = pytest.mark.drills

MESSAGES = 300
TASK_RETRIES = 3  # default_args of the DAG

log = logging.getLogger(__name__)


def run_like_airflow(task: Callable[[], Any], name: str, attempts: list[str]) -> Any:
    """Run a task body with the DAG's retry policy: errors it fails at once are not retried."""
    for attempt in range(1, TASK_RETRIES + 2):
        try:
            return task()
        except Exception as exc:
            attempts.append(f"{name} attempt {attempt}: {type(exc).__name__}: {exc}")
            decision = RetryWhenRetryable().evaluate(exc, attempt, TASK_RETRIES + 1)
            if decision.action is RetryAction.FAIL or attempt > TASK_RETRIES:
                raise
            log.warning("task %s failed (attempt %d), retrying like Airflow would", name, attempt)
    raise AssertionError("unreachable")


class TenfoldTime:
    """A clock that runs ten times faster than the wall, and a sleep that waits on it.

    Scaling only the sleep is not enough: the pacing gate compares a 429's ``Retry-After`` with the hook's
    clock, so with a wall clock every wait would still last its full length."""

    FACTOR = 10.0

    def __init__(self) -> None:
        self._epoch = time.time()
        self._start = time.monotonic()

    def clock(self) -> float:
        return self._epoch + (time.monotonic() - self._start) * self.FACTOR

    def sleep(self, seconds: float) -> None:
        time.sleep(max(seconds, 0.0) / self.FACTOR)


def tenfold_dataverse(tenfold: TenfoldTime) -> DataverseHook:
    return DataverseHook(sleep=tenfold.sleep, clock=tenfold.clock)


def test_a_storm_of_429s_5xx_expiring_tokens_and_nylas_faults_still_lands_the_day_exactly_once(
    drill_sandbox: Any, drill_runner: DrillRunner
) -> None:
    sandbox = drill_sandbox
    sandbox.nylas.add_bulk_day("bob", BULK_DAY, MESSAGES)
    sandbox.nylas.set_faults(
        {"rate_limit_every": 3, "retry_after_s": 1, "html_502_every": 4, "timeout_504_every": 5}
    )
    sandbox.dataverse.set_faults(
        throttle_fraction=0.3, error_5xx_fraction=0.05, expire_tokens_every_s=2.0, seed=20261127
    )
    bob = grants(sandbox, batch_size=10, max_concurrency=3, page_size=25)["bob"]
    day: dt.date = BULK_DAY
    attempts: list[str] = []

    tenfold = TenfoldTime()
    nylas = NylasHook(bob.nylas_conn_id, sleep=tenfold.sleep, clock=tenfold.clock)

    run_like_airflow(lambda: drill_runner.extract(bob, day, nylas), "extract", attempts)
    run_like_airflow(
        lambda: drill_runner.transform(bob, day, tenfold_dataverse(tenfold)), "transform", attempts
    )
    run_like_airflow(lambda: drill_runner.load(bob, day, tenfold_dataverse(tenfold)), "load", attempts)
    sandbox.dataverse.set_faults(throttle_fraction=0.0, error_5xx_fraction=0.0, expire_tokens_every_s=None)
    sandbox.nylas.set_faults({"rate_limit_every": 0, "html_502_every": 0, "timeout_504_every": 0})
    counts = drill_runner.report(bob, day)

    # The storm really happened, on both sides.
    faults = sandbox.dataverse.counters()
    assert faults.get("faults.throttle", 0) >= 10
    assert faults.get("faults.5xx", 0) >= 1
    assert faults.get("faults.token_expiry", 0) >= 1
    nylas_statuses = sandbox.nylas.stats.by_status
    assert nylas_statuses[429] >= 1
    assert nylas_statuses[502] >= 1
    assert nylas_statuses[504] >= 1

    # Nothing lost, nothing doubled.
    assert counts["extracted"] == MESSAGES, attempts
    assert counts["failed"] == 0, attempts
    ledger = [
        json.loads(line)
        for line in drill_runner.staging(bob, day).file("ledger.jsonl").read_bytes().splitlines()
    ]
    loaded = {
        entry["internet_message_id"] for entry in ledger if entry["outcome"] in ("created", "already_present")
    }
    assert len(loaded) == counts["created"] + counts["already_present"] > 0
    rows = Counter(row["messageid"] for row in sandbox.dataverse.store.scan("emails"))
    assert max(rows.values()) == 1, "an email was created twice"
    assert set(rows) == loaded, "an email is missing from Dataverse"


def test_a_token_that_expires_twice_while_one_request_waits_out_429s_does_not_fail_the_task(
    drill_sandbox: Any,
) -> None:
    sandbox = drill_sandbox
    # Every request is throttled (Retry-After 1, 2, 3 ... s) and every token dies within 0.5 s, so each
    # retry after a wait meets a dead token: the request must end throttled (transient), not unauthorised.
    sandbox.dataverse.set_faults(throttle_fraction=1.0, expire_tokens_every_s=0.5)
    hook = DataverseHook()

    with pytest.raises(DataverseThrottledError) as raised:
        hook.whoami()

    assert raised.value.transient
