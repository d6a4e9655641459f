"""Run-level failures as Airflow sees them: classified once, retried only when a retry can help, recorded
where monitors look, and announced in one line when a person has to act.

``classify`` turns any exception into a ``core.errors.Failure``: the project's own errors carry their kind;
Airflow's missing-connection error is a ``config`` failure; an ``OSError`` from the staging store is
``service_unavailable``; anything else is ``unexpected``. ``RetryWhenRetryable`` is the tasks' Airflow retry
policy: it fails a task at once when the kind is not retryable, and otherwise lets the task's retries and
backoff apply (honouring a service's ``Retry-After`` when one was given).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import RetryDecision, RetryPolicy
from airflow.sdk.exceptions import AirflowNotFoundException

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.errors import Failure, FailureKind, PipelineError

log = logging.getLogger(__name__)


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, PipelineError):
        return exc.failure()
    if isinstance(exc, AirflowNotFoundException):
        return Failure(
            FailureKind.CONFIG,
            f"{exc} (an Airflow connection this grant names does not exist: check nylas_conn_id and"
            " dataverse_conn_id in the grants file, and the connections in Airflow or the secrets backend)",
        )
    if isinstance(exc, OSError):
        return Failure(FailureKind.SERVICE_UNAVAILABLE, f"staging storage: {type(exc).__name__}: {exc}")
    return Failure(FailureKind.UNEXPECTED, f"{type(exc).__name__}: {exc}")


def retry_after_s(exc: BaseException) -> float | None:
    value = getattr(exc, "retry_after", None)
    return float(value) if isinstance(value, int | float) and value > 0 else None


class RetryWhenRetryable(RetryPolicy):
    """Fail at once when the error's kind says a retry cannot fix it; otherwise retry as configured."""

    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Any = None,
    ) -> RetryDecision:
        failure = classify(exception)
        if not failure.retryable:
            return RetryDecision.fail(reason=f"{failure.kind.value} (not retried): {failure.remedy}")
        delay = retry_after_s(exception)
        if delay is not None:
            return RetryDecision.retry(delay=dt.timedelta(seconds=delay), reason="the service asked to wait")
        return RetryDecision.default()


def alert_line(grant: GrantConfig, day: str | None, failure: Failure) -> str:
    """The one line a person reads: which grant, which day, what happened, what to do."""
    mailbox = f" ({grant.email})" if grant.email else ""
    when = f" for {day}" if day else ""
    return (
        f"ALERT {failure.kind.value}: grant {grant.key}{mailbox}{when}: {failure.remedy}."
        f" {failure.one_line()}"
    )


def announce(grant: GrantConfig, day: str | None, failure: Failure) -> None:
    """Log a failure; kinds a person must act on get the ALERT line and a metric of their own."""
    if failure.retryable:
        log.warning(
            "Grant %s%s: %s (will be retried)", grant.key, f" {day}" if day else "", failure.one_line()
        )
        return
    log.error("%s", alert_line(grant, day, failure))
    try:
        from airflow.sdk.observability.stats import Stats
    except ImportError:  # metrics are best effort
        return
    Stats.incr(f"nylas_dataverse.failures.{failure.kind.value}", tags={"grant": grant.key})
