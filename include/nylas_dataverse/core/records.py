"""The record contract between the stages: what transform decides for each extracted message.

Transform writes one ``Decision`` per extracted message (``payloads.jsonl.gz``), in extract's order; load
reads
them back as the same type. A decision is either final (``outcome`` skipped or failed, with its reason) or
pending (``outcome`` None) and then carries the ``EmailRecord`` to create. Load turns every decision into
exactly one ``LedgerEntry``. ``thread_wave`` is the pending email's wave (``core/threads.py``): transform
writes decisions wave by wave and load sends each wave after the earlier ones (``pipeline/load.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nylas_dataverse.core.ledger import LedgerEntry, Outcome
from nylas_dataverse.core.mapping import EmailRecord

FINAL_OUTCOMES = frozenset({Outcome.SKIPPED, Outcome.FAILED})


@dataclass(frozen=True)
class Decision:
    nylas_id: str
    grant_id: str
    outcome: Outcome | None
    reason: str | None = None
    internet_message_id: str | None = None
    activity_id: str | None = None
    email: EmailRecord | None = None
    thread_wave: int = 0

    def __post_init__(self) -> None:
        if self.outcome is None:
            if self.email is None:
                raise ValueError(f"a pending decision needs an email record (nylas id {self.nylas_id!r})")
        elif self.outcome not in FINAL_OUTCOMES:
            raise ValueError(f"transform decides only skipped or failed, not {self.outcome!s}")
        elif not self.reason:
            raise ValueError(f"a {self.outcome} decision needs a reason (nylas id {self.nylas_id!r})")

    @property
    def pending(self) -> bool:
        return self.outcome is None

    @classmethod
    def to_load(cls, nylas_id: str, grant_id: str, email: EmailRecord) -> Decision:
        return cls(
            nylas_id,
            grant_id,
            None,
            internet_message_id=email.internet_message_id,
            activity_id=email.activity_id,
            email=email,
        )

    def entry(
        self, outcome: Outcome | None = None, reason: str | None = None, parent_activity_id: str | None = None
    ) -> LedgerEntry:
        """This message's ledger entry: the final decision itself, or what load made of a pending one
        (with the rule that chose its regarding record, and the parent email it was bound to)."""
        return LedgerEntry(
            nylas_id=self.nylas_id,
            grant_id=self.grant_id,
            internet_message_id=self.internet_message_id,
            outcome=outcome or self.outcome or Outcome.FAILED,
            reason=reason if outcome is not None else self.reason,
            activity_id=self.activity_id,
            regarding_rule=self.email.regarding_rule
            if self.email is not None and outcome is not None
            else None,
            parent_activity_id=parent_activity_id,
            contact_ids=";".join(c.id for c in self.email.new_contacts) or None
            if self.email is not None and outcome is Outcome.CREATED
            else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "nylas_id": self.nylas_id,
            "grant_id": self.grant_id,
            "outcome": None if self.outcome is None else self.outcome.value,
            "reason": self.reason,
            "internet_message_id": self.internet_message_id,
            "activity_id": self.activity_id,
            "email": None if self.email is None else self.email.to_json(),
            "thread_wave": self.thread_wave,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Decision:
        """Inverse of ``to_json``; ValueError (or KeyError/TypeError) names what is wrong."""
        outcome = data.get("outcome")
        email = data.get("email")
        return cls(
            nylas_id=str(data["nylas_id"]),
            grant_id=str(data["grant_id"]),
            outcome=None if outcome is None else Outcome(outcome),
            reason=data.get("reason"),
            internet_message_id=data.get("internet_message_id"),
            activity_id=data.get("activity_id"),
            email=None if email is None else EmailRecord.from_json(email),
            thread_wave=int(data.get("thread_wave") or 0),
        )
