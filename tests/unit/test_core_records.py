"""The record contract between transform and load: decisions, their JSON form, and their ledger entries."""

from __future__ import annotations

import json

import pytest

from nylas_dataverse.core.identity import MessageIdSource
from nylas_dataverse.core.ledger import Outcome
from nylas_dataverse.core.mapping import EmailRecord, Party, RecordRef
from nylas_dataverse.core.records import Decision

RECORD = EmailRecord(
    activity_id="1d7152f4-ab9d-51a3-95b7-c8b64a26317d",
    internet_message_id="<quote-40@fabrikam.example>",
    message_id_source=MessageIdSource.HEADER,
    subject="Quote 😀",
    description="<p>hi</p>",
    outgoing=False,
    actual_end="2026-11-03T10:30:00Z",
    parties=(
        Party(1, "carol@fabrikam.example", RecordRef("contact", "c1")),
        Party(2, "alice@contoso.example", RecordRef("systemuser", "u1")),
        Party(3, "stranger@nowhere.example"),
    ),
    sender="carol@fabrikam.example",
    to_recipients="alice@contoso.example",
    regarding=RecordRef("contact", "c1"),
    regarding_rule="counterpart",
    owner_id="u1",
    parent_message_id="<root@fabrikam.example>",
)


@pytest.mark.parametrize(
    "decision",
    [
        Decision.to_load("n1", "g", RECORD),
        Decision("n2", "g", Outcome.SKIPPED, "internal_only", "<x@y>", "aid"),
        Decision("n3", "g", Outcome.FAILED, "invalid_message: bad_date"),
    ],
)
def test_decisions_round_trip_through_json(decision: Decision) -> None:
    assert Decision.from_json(json.loads(json.dumps(decision.to_json()))) == decision


def test_a_pending_decision_carries_its_email_and_identity() -> None:
    decision = Decision.to_load("n1", "g", RECORD)
    assert decision.pending
    assert (decision.internet_message_id, decision.activity_id) == (
        RECORD.internet_message_id,
        RECORD.activity_id,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outcome": None}, "needs an email record"),
        ({"outcome": Outcome.SKIPPED}, "needs a reason"),
        ({"outcome": Outcome.CREATED, "reason": "x"}, "only skipped or failed"),
    ],
)
def test_inconsistent_decisions_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Decision("n", "g", **kwargs)  # type: ignore[arg-type]


def test_every_decision_becomes_exactly_one_ledger_entry() -> None:
    skipped = Decision("n2", "g", Outcome.SKIPPED, "internal_only", "<x@y>", "aid")
    assert skipped.entry().outcome is Outcome.SKIPPED
    assert skipped.entry().reason == "internal_only"
    pending = Decision.to_load("n1", "g", RECORD)
    created = pending.entry(Outcome.CREATED, None)
    assert (created.outcome, created.reason, created.internet_message_id) == (
        Outcome.CREATED,
        None,
        RECORD.internet_message_id,
    )
    assert pending.entry(Outcome.ALREADY_PRESENT, "messageid_exists").reason == "messageid_exists"


def test_a_malformed_record_is_an_error_not_a_silent_default() -> None:
    data = Decision.to_load("n1", "g", RECORD).to_json()
    data["email"]["parties"][0]["mask"] = 9
    with pytest.raises(ValueError, match="participation mask"):
        Decision.from_json(data)
    data = Decision.to_load("n1", "g", RECORD).to_json()
    data["email"]["subject"] = None
    with pytest.raises(TypeError):
        Decision.from_json(data)
