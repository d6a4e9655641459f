"""The error taxonomy: kinds, whether a retry can help, what to do, and one-line messages."""

from __future__ import annotations

import pickle

import pytest

from nylas_dataverse.core.config import ConfigError
from nylas_dataverse.core.errors import REMEDIES, Failure, FailureKind, PipelineError
from nylas_dataverse.core.ledger import LedgerInvariantError
from nylas_dataverse.core.window import WindowError


def test_every_kind_has_a_remedy() -> None:
    assert set(REMEDIES) == set(FailureKind)


@pytest.mark.parametrize(
    ("kind", "retryable"),
    [
        (FailureKind.SERVICE_UNAVAILABLE, True),
        (FailureKind.UNEXPECTED, True),
        (FailureKind.GRANT_EXPIRED, False),
        (FailureKind.CREDENTIALS, False),
        (FailureKind.PERMISSIONS, False),
        (FailureKind.CONFIG, False),
        (FailureKind.STAGING, False),
        (FailureKind.INVALID_DAY, False),
        (FailureKind.TOO_MANY_FAILURES, False),
        (FailureKind.SERVICE_REFUSED, False),
    ],
)
def test_only_errors_a_retry_can_fix_are_retryable(kind: FailureKind, retryable: bool) -> None:
    assert Failure(kind, "x").retryable is retryable


def test_a_multi_line_message_becomes_one_line_that_says_more_follows() -> None:
    failure = Failure(FailureKind.CONFIG, "2 problem(s) in the grants file:\n  - first\n  - second\n")
    assert failure.one_line() == "config: 2 problem(s) in the grants file: (+2 more line(s))"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ConfigError("grants.yaml", "alice", "batch_size", "too big"), FailureKind.CONFIG),
        (WindowError("no day"), FailureKind.INVALID_DAY),
        (LedgerInvariantError("counts"), FailureKind.STAGING),
        (PipelineError("anything"), FailureKind.UNEXPECTED),
    ],
)
def test_the_core_errors_name_their_kind(error: PipelineError, kind: FailureKind) -> None:
    assert error.kind is kind
    assert error.failure() == Failure(kind, str(error))


def test_errors_survive_being_passed_between_processes() -> None:
    error = ConfigError("grants.yaml", "alice", "batch_size", "too big")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, as between Airflow processes
    assert (copy.kind, str(copy)) == (error.kind, str(error))
