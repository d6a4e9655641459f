"""The error taxonomy: what kind of failure stopped a run, whether a retry can fix it, and what to do.

Every error the project raises for a whole run (not for one message; those are ledger outcomes) carries a
``FailureKind``. The kind decides two things in one place:

- **retryable**: whether repeating the same task later may succeed. Only ``service_unavailable`` (a service
  kept failing or throttling past the hooks' own retry budget, or the network or storage was unreachable)
  and ``unexpected`` (an error nobody classified; retried in case it was transient) are. Everything else
  fails the task at once: retrying an expired grant or a typo in a connection three times only delays the
  message a person has to read.
- **remedy**: the one thing a person should do about it, shown with the error.

Kinds, in the words a monitor uses:

=====================  ============================================================================
``grant_expired``      the Nylas grant expired or was revoked: its owner re-authenticates it
``credentials``        an API key or client secret was refused: fix the Airflow connection
``permissions``        the Dataverse application user lacks a privilege: grant its security role
``config``             an Airflow connection or the grants file is wrong or missing
``staging``            staged data is missing or damaged: rerun the task named in the message
``invalid_day``        the run has no valid UTC day to sync
``too_many_failures``  more messages failed than the grant allows; everything else was loaded
``service_refused``    a service refused a request for a reason a retry cannot change
``service_unavailable``  a service or the staging store kept failing: retried
``unexpected``         anything else: retried, then reported as a bug
=====================  ============================================================================

``PipelineError`` is the base of the project's own run-level errors; each subclass names its kind. Foreign
exceptions (Airflow's, the filesystem's) are classified in ``pipeline/failures.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar


class FailureKind(StrEnum):
    GRANT_EXPIRED = "grant_expired"
    CREDENTIALS = "credentials"
    PERMISSIONS = "permissions"
    CONFIG = "config"
    STAGING = "staging"
    INVALID_DAY = "invalid_day"
    TOO_MANY_FAILURES = "too_many_failures"
    SERVICE_REFUSED = "service_refused"
    SERVICE_UNAVAILABLE = "service_unavailable"
    UNEXPECTED = "unexpected"


RETRYABLE_KINDS = frozenset({FailureKind.SERVICE_UNAVAILABLE, FailureKind.UNEXPECTED})

REMEDIES: Mapping[FailureKind, str] = MappingProxyType(
    {
        FailureKind.GRANT_EXPIRED: (
            "the mailbox owner must re-authenticate the grant in Nylas (hosted authentication or the Nylas"
            " Dashboard; the grant keeps its id), then clear the failed runs"
        ),
        FailureKind.CREDENTIALS: "correct the credentials in the Airflow connection named in the message",
        FailureKind.PERMISSIONS: (
            "give the Dataverse application user a security role with the privilege named in the message"
        ),
        FailureKind.CONFIG: "correct the Airflow connection or the grants file entry named in the message",
        FailureKind.STAGING: "clear and rerun the task named in the message and the tasks after it",
        FailureKind.INVALID_DAY: "trigger the run for a complete UTC day (see the DAG's documentation)",
        FailureKind.TOO_MANY_FAILURES: (
            "read the failed entries in the run's ledger; fix their cause, then clear the load and report"
        ),
        FailureKind.SERVICE_REFUSED: "read the service's answer in the message; it will not change by itself",
        FailureKind.SERVICE_UNAVAILABLE: "nothing, if it passes: the task is retried",
        FailureKind.UNEXPECTED: "report it with the task log: this is a bug",
    }
)


@dataclass(frozen=True)
class Failure:
    """A classified run-level error, as logged, recorded in staging and shown to monitors."""

    kind: FailureKind
    message: str

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    @property
    def remedy(self) -> str:
        return REMEDIES[self.kind]

    def one_line(self) -> str:
        """The message on one line (multi-line messages keep their first line and say how many follow)."""
        lines = [line.strip() for line in self.message.strip().splitlines() if line.strip()]
        text = lines[0] if lines else "(no message)"
        if len(lines) > 1:
            text += f" (+{len(lines) - 1} more line(s))"
        return f"{self.kind.value}: {text}"


class PipelineError(Exception):
    """Base of the project's run-level errors; ``kind`` says what happened and whether to retry."""

    KIND: ClassVar[FailureKind] = FailureKind.UNEXPECTED

    @property
    def kind(self) -> FailureKind:
        return self.KIND

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    def failure(self) -> Failure:
        return Failure(self.kind, str(self))
