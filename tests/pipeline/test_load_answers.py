"""What load makes of each answer a change set can get (pure: the answers are built, not mocked)."""

from __future__ import annotations

import pytest

from nylas_dataverse.core.ledger import Outcome
from nylas_dataverse.hooks.odata import BatchOutcome, BatchResponse, Headers
from nylas_dataverse.pipeline.load import classify


def _failed(status: int, code: str | None, message: str, **headers: str) -> BatchOutcome:
    body = {"error": {"code": code, "message": message}}
    return BatchOutcome(
        ok=False, responses=(BatchResponse(status=status, headers=Headers(headers.items()), json=body),)
    )


@pytest.mark.parametrize(
    ("answer", "outcome", "reason", "retry_after", "not_applied"),
    [
        pytest.param(BatchOutcome(ok=True, responses=()), Outcome.CREATED, None, None, False, id="applied"),
        pytest.param(
            BatchOutcome(ok=False, responses=()),
            None,
            "dataverse_batch_not_applied",
            None,
            True,
            id="not-run",
        ),
        pytest.param(
            _failed(412, "0x80040237", "Cannot insert duplicate key."),
            Outcome.ALREADY_PRESENT,
            "activityid_exists",
            None,
            False,
            id="duplicate-key",
        ),
        pytest.param(
            _failed(500, "0x80040333", "A record was not created or updated because a duplicate ..."),
            Outcome.ALREADY_PRESENT,
            "messageid_duplicate_rule",
            None,
            False,
            id="duplicate-detection-rule",
        ),
        pytest.param(
            _failed(429, "0x80072322", "Number of requests exceeded", **{"Retry-After": "7"}),
            None,
            "dataverse_429",
            7.0,
            False,
            id="throttled-part",
        ),
        pytest.param(_failed(503, None, "unavailable"), None, "dataverse_503", None, False, id="5xx-part"),
        pytest.param(
            _failed(400, "0x80044331", "A validation error occurred."),
            Outcome.FAILED,
            "dataverse_400: 0x80044331",
            None,
            False,
            id="refused",
        ),
    ],
)
def test_each_answer_has_one_meaning(
    answer: BatchOutcome,
    outcome: Outcome | None,
    reason: str | None,
    retry_after: float | None,
    not_applied: bool,
) -> None:
    attempt = classify(answer)
    assert attempt.outcome is outcome
    assert (attempt.reason or "").startswith(reason or "")
    assert attempt.retry_after == retry_after
    assert attempt.not_applied is not_applied
