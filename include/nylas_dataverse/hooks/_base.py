"""What both service hooks share: lazy settings from the Airflow connection, one session, one retry policy,
request counters, and redaction of the connection's secrets from every message.

A subclass says how to read its connection (``_load_settings``), which headers its session carries
(``_session_headers``) and which values are secret (``_secrets``); this base does the rest. Creating a hook
does no I/O and looks up no connection: that happens on first use.
"""

from __future__ import annotations

import random
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

import requests
from airflow.sdk import BaseHook

from nylas_dataverse import __version__
from nylas_dataverse.hooks._retry import RetryPolicy, RetryStats
from nylas_dataverse.hooks.errors import redact

SettingsT = TypeVar("SettingsT")
USER_AGENT = f"nylas-dataverse/{__version__}"


class RetryingServiceHook(BaseHook, Generic[SettingsT]):
    """Base of NylasHook and DataverseHook."""

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
        self._settings: SettingsT | None = None
        self._session_ready = False

    # --- connection -------------------------------------------------------------------------------

    @abstractmethod
    def _load_settings(self) -> SettingsT:
        """Read and validate the Airflow connection (raise ConnectionConfigError naming the field)."""

    @abstractmethod
    def _session_headers(self, settings: SettingsT) -> Mapping[str, str]:
        """Headers every request of the session carries."""

    @abstractmethod
    def _secrets(self, settings: SettingsT) -> Iterable[str | None]:
        """Values that must never appear in a message."""

    def _settings_loaded(self, settings: SettingsT) -> None:
        """Called once, under the hook's lock, right after the settings were read."""

    @property
    def settings(self) -> SettingsT:
        """The connection's settings, looked up and validated on first use."""
        with self._lock:
            if self._settings is None:
                settings = self._load_settings()
                self._settings_loaded(settings)
                self._settings = settings
            return self._settings

    def get_conn(self) -> requests.Session:
        """The hook's session, with the service's headers set."""
        settings = self.settings
        with self._lock:
            if self._session is None:
                self._session = requests.Session()
            if not self._session_ready:
                self._session.headers.update({"User-Agent": USER_AGENT, **self._session_headers(settings)})
                self._session_ready = True
            return self._session

    def _redact(self, text: str) -> str:
        settings = self._settings
        return text if settings is None else redact(text, self._secrets(settings))

    # --- counters ---------------------------------------------------------------------------------

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

    @property
    def throttle_wait_s(self) -> float:
        """Seconds slept because of 429 answers."""
        return self._stats.throttle_wait_s

    def counters(self) -> dict[str, float]:
        """All counters at once, so a caller can report what one step cost (the difference of two)."""
        return {
            "requests": self.request_count,
            "retries": self.retry_count,
            "throttled": self.throttled_count,
            "throttle_wait_s": self.throttle_wait_s,
        }
