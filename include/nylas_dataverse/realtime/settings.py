"""Real-time tuning, from the environment of the component that needs it (triggerer, worker).

- ``NYLAS_DATAVERSE_REALTIME_BATCH_MAX_NOTIFICATIONS`` (default 200): notifications one batch takes.
- ``NYLAS_DATAVERSE_REALTIME_BATCH_MAX_BYTES`` (default 8 MiB): stored bytes one batch takes; a single
  larger notification still gets a batch of its own.
- ``NYLAS_DATAVERSE_REALTIME_MAX_PARALLEL_MAILBOXES`` (default 4): mailboxes of one batch processed at
  the same time. Dataverse requests stay within each connection's ``max_concurrency`` whatever this is,
  because every mailbox of one application user shares that connection's hook.

A value that is not a positive whole number is an error naming the variable, raised where it is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MAX_NOTIFICATIONS_ENV = "NYLAS_DATAVERSE_REALTIME_BATCH_MAX_NOTIFICATIONS"
MAX_BYTES_ENV = "NYLAS_DATAVERSE_REALTIME_BATCH_MAX_BYTES"
MAX_PARALLEL_ENV = "NYLAS_DATAVERSE_REALTIME_MAX_PARALLEL_MAILBOXES"
DEFAULT_MAX_NOTIFICATIONS = 200
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_PARALLEL = 4


def positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1; got {raw!r}")
    return value


@dataclass(frozen=True)
class BatchLimits:
    max_notifications: int = DEFAULT_MAX_NOTIFICATIONS
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def from_env(cls) -> BatchLimits:
        return cls(
            positive_int(MAX_NOTIFICATIONS_ENV, DEFAULT_MAX_NOTIFICATIONS),
            positive_int(MAX_BYTES_ENV, DEFAULT_MAX_BYTES),
        )


def max_parallel_mailboxes() -> int:
    return positive_int(MAX_PARALLEL_ENV, DEFAULT_MAX_PARALLEL)
