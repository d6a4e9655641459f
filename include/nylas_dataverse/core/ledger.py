"""Outcomes, ledger entries and the run report with its invariant.

Every extracted message gets exactly one `LedgerEntry` with one `Outcome`:

- `created`: this run created the Dataverse row;
- `already_present`: the row existed (found by `messageid`, or the create hit the deterministic
  `activityid` that another run or grant had already used);
- `skipped`: the capture policy left it out; `reason` is the `SkipReason`;
- `failed`: it could not be parsed, mapped or loaded; `reason` is `"<code>: <detail>"` (a `BadMessage`
  reason or Dataverse's error code and message).

`skipped` and `failed` entries must carry a reason. The report counts entries by outcome, skips by
reason and failures by reason code (the text before the first ':'). `check_invariant` insists that
extracted = created + already_present + skipped + failed and that no Nylas id has two entries. The
report and ledger never contain message content (subjects, bodies, addresses).
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from nylas_dataverse.core.errors import FailureKind, PipelineError


class Outcome(StrEnum):
    CREATED = "created"
    ALREADY_PRESENT = "already_present"
    SKIPPED = "skipped"
    FAILED = "failed"


class LedgerInvariantError(PipelineError):
    """The run's counts do not add up, or a message was recorded twice."""

    KIND = FailureKind.STAGING


_FIELDS = ("nylas_id", "grant_id", "internet_message_id", "outcome", "reason", "activity_id")
# Ledgers written before 0.2 called the Internet Message-ID "message_id"; they are still read.
_OLD_NAMES = {"message_id": "internet_message_id"}


@dataclass(frozen=True)
class LedgerEntry:
    """One message's outcome. ``nylas_id`` is Nylas' id of the grant's copy; ``internet_message_id`` is the
    RFC Message-ID that deduplicates (Dataverse's ``messageid``)."""

    nylas_id: str
    grant_id: str
    internet_message_id: str | None
    outcome: Outcome
    reason: str | None = None
    activity_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        if self.outcome in (Outcome.SKIPPED, Outcome.FAILED) and not self.reason:
            raise ValueError(f"a {self.outcome} ledger entry needs a reason (nylas id {self.nylas_id!r})")

    @property
    def reason_code(self) -> str | None:
        return None if self.reason is None else self.reason.split(":", 1)[0].strip()

    def to_json(self) -> dict[str, str | None]:
        return {
            "nylas_id": self.nylas_id,
            "grant_id": self.grant_id,
            "internet_message_id": self.internet_message_id,
            "outcome": str(self.outcome),
            "reason": self.reason,
            "activity_id": self.activity_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LedgerEntry:
        """Inverse of `to_json` (also of older ledgers); raises ValueError naming the bad field."""
        data = {_OLD_NAMES.get(name, name): value for name, value in data.items()}
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ValueError(f"ledger entry has unknown field(s) {unknown}")
        for name in ("nylas_id", "grant_id", "outcome"):
            if not isinstance(data.get(name), str):
                raise ValueError(f"ledger entry field {name!r} must be a string, got {data.get(name)!r}")
        for name in ("internet_message_id", "reason", "activity_id"):
            if data.get(name) is not None and not isinstance(data.get(name), str):
                raise ValueError(
                    f"ledger entry field {name!r} must be a string or null, got {data.get(name)!r}"
                )
        try:
            outcome = Outcome(data["outcome"])
        except ValueError:
            choices = ", ".join(o.value for o in Outcome)
            raise ValueError(
                f"ledger entry outcome must be one of {choices}, got {data['outcome']!r}"
            ) from None
        return cls(
            nylas_id=data["nylas_id"],
            grant_id=data["grant_id"],
            internet_message_id=data.get("internet_message_id"),
            outcome=outcome,
            reason=data.get("reason"),
            activity_id=data.get("activity_id"),
        )


class RunReport:
    """Counts for one run of one grant, built entry by entry (mutable by design; one owner)."""

    def __init__(
        self, dag_id: str, grant_key: str, window_start: datetime.datetime, window_end: datetime.datetime
    ) -> None:
        self.dag_id = dag_id
        self.grant_key = grant_key
        self.window_start = window_start
        self.window_end = window_end
        self.extracted: int | None = None
        self.unresolved_addresses = 0
        self.ambiguous_addresses = 0
        self.requests: dict[str, int] = {}
        # Counts of the attachment ledger (core/attachments.summarize); empty when no message had files.
        self.attachments: dict[str, Any] = {}
        self.durations_s: dict[str, float] = {}
        self.counts: Counter[Outcome] = Counter({outcome: 0 for outcome in Outcome})
        self.skipped_by_reason: Counter[str] = Counter()
        self.failed_by_reason: Counter[str] = Counter()
        self._ids: set[str] = set()
        self._repeated_ids: list[str] = []

    def add(self, entry: LedgerEntry) -> None:
        if entry.nylas_id in self._ids:
            self._repeated_ids.append(entry.nylas_id)
        self._ids.add(entry.nylas_id)
        self.counts[entry.outcome] += 1
        if entry.outcome is Outcome.SKIPPED and entry.reason:
            self.skipped_by_reason[entry.reason] += 1
        if entry.outcome is Outcome.FAILED and entry.reason_code is not None:
            self.failed_by_reason[entry.reason_code] += 1

    @property
    def recorded(self) -> int:
        return sum(self.counts.values())

    def check_invariant(self) -> None:
        if self.extracted is None:
            raise LedgerInvariantError(f"{self.dag_id}: the extracted count was never set")
        if self._repeated_ids:
            shown = ", ".join(repr(i) for i in self._repeated_ids[:5])
            raise LedgerInvariantError(
                f"{self.dag_id}: {len(self._repeated_ids)} ledger entries repeat a Nylas id already"
                f" recorded (first: {shown})"
            )
        if self.extracted != self.recorded:
            c = self.counts
            raise LedgerInvariantError(
                f"{self.dag_id}: extracted {self.extracted} != created {c[Outcome.CREATED]}"
                f" + already_present {c[Outcome.ALREADY_PRESENT]} + skipped {c[Outcome.SKIPPED]}"
                f" + failed {c[Outcome.FAILED]} (= {self.recorded})"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "grant_key": self.grant_key,
            "window": {"start": self.window_start.isoformat(), "end": self.window_end.isoformat()},
            "counts": {
                "extracted": self.extracted,
                **{outcome.value: self.counts[outcome] for outcome in Outcome},
            },
            "skipped_by_reason": dict(sorted(self.skipped_by_reason.items())),
            "failed_by_reason": dict(sorted(self.failed_by_reason.items())),
            "unresolved_addresses": self.unresolved_addresses,
            "ambiguous_addresses": self.ambiguous_addresses,
            "requests": dict(sorted(self.requests.items())),
            **({"attachments": self.attachments} if self.attachments else {}),
            "durations_s": {name: round(value, 3) for name, value in sorted(self.durations_s.items())},
        }

    def summary_table(self) -> str:
        rows: list[tuple[str, str]] = [("extracted", "-" if self.extracted is None else str(self.extracted))]
        rows.append(("created", str(self.counts[Outcome.CREATED])))
        rows.append(("already present", str(self.counts[Outcome.ALREADY_PRESENT])))
        rows.append(("skipped", str(self.counts[Outcome.SKIPPED])))
        rows.extend((f"  {reason}", str(n)) for reason, n in sorted(self.skipped_by_reason.items()))
        rows.append(("failed", str(self.counts[Outcome.FAILED])))
        rows.extend((f"  {code}", str(n)) for code, n in sorted(self.failed_by_reason.items()))
        rows.append(("unresolved addresses", str(self.unresolved_addresses)))
        rows.append(("ambiguous addresses", str(self.ambiguous_addresses)))
        if self.attachments:
            files = self.attachments["counts"]
            rows.extend((f"attachments {outcome}", str(n)) for outcome, n in files.items())
            rows.extend((f"  {code}", str(n)) for code, n in self.attachments["skipped_by_reason"].items())
            rows.append(("attachment bytes moved", str(self.attachments["bytes_moved"])))
        rows.extend((f"requests {name}", str(n)) for name, n in sorted(self.requests.items()))
        rows.extend((f"seconds {name}", f"{s:.1f}") for name, s in sorted(self.durations_s.items()))
        label_width = max(len(label) for label, _ in rows)
        value_width = max(len(value) for _, value in rows)
        header = f"{self.dag_id}  [{self.window_start.isoformat()}, {self.window_end.isoformat()})"
        rule = "-" * (label_width + 2 + value_width)
        lines = [header, rule]
        lines.extend(f"{label.ljust(label_width)}  {value.rjust(value_width)}" for label, value in rows)
        lines.append(rule)
        return "\n".join(lines)
