"""What both service hooks share: injectable transport and time, one retry policy, request counters."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import requests
from airflow.sdk import BaseHook

from nylas_dataverse.hooks._retry import RetryPolicy, RetryStats


class RetryingServiceHook(BaseHook):
    """Base of NylasHook and DataverseHook. Stores configuration only: no I/O, no connection lookup."""

    DEFAULT_RETRY_POLICY: RetryPolicy

    def __init__(
        self,
        *,
        retry_policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        self.retry_policy = retry_policy or self.DEFAULT_RETRY_POLICY
        self._session = session
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._stats = RetryStats()
        self._lock = threading.Lock()
        self._session_ready = False

    @property
    def request_count(self) -> int:
        """HTTP requests sent to the service's API, retries included."""
        return self._stats.requests

    @property
    def retry_count(self) -> int:
        return self._stats.retries

    @property
    def throttled_count(self) -> int:
        """429 answers received."""
        return self._stats.throttled
