from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from nylas_dataverse.core.ledger import LedgerEntry, LedgerInvariantError, Outcome, RunReport

START = datetime.datetime(2026, 11, 2, tzinfo=datetime.UTC)
END = datetime.datetime(2026, 11, 3, tzinfo=datetime.UTC)


def entry(nylas_id: str, outcome: Outcome, reason: str | None = None) -> LedgerEntry:
    return LedgerEntry(
        nylas_id=nylas_id,
        grant_id="grant-alice",
        internet_message_id=f"<{nylas_id}@x>",
        outcome=outcome,
        reason=reason,
        activity_id=None if outcome in (Outcome.SKIPPED, Outcome.FAILED) else f"aid-{nylas_id}",
    )


def report_with(*entries: LedgerEntry, extracted: int | None = None) -> RunReport:
    report = RunReport("nylas_to_dataverse__alice", "alice", START, END)
    for item in entries:
        report.add(item)
    report.extracted = len(entries) if extracted is None else extracted
    return report


MIXED = (
    entry("m1", Outcome.CREATED),
    entry("m2", Outcome.CREATED),
    entry("m3", Outcome.ALREADY_PRESENT, "messageid_lookup"),
    entry("m4", Outcome.SKIPPED, "internal_only"),
    entry("m5", Outcome.SKIPPED, "internal_only"),
    entry("m6", Outcome.SKIPPED, "automated"),
    entry("m7", Outcome.FAILED, "0x80044331: A validation error occurred."),
    entry("m8", Outcome.FAILED, "bad_date: 'yesterday'"),
    entry("m9", Outcome.FAILED, "bad_date: 'tomorrow'"),
)


@pytest.mark.parametrize(
    "item",
    [
        entry("m1", Outcome.CREATED),
        entry("m2", Outcome.SKIPPED, "draft"),
        LedgerEntry("m3", "g", None, Outcome.FAILED, "missing_id", None),
        LedgerEntry(
            "m4", "g", "<a@b>", Outcome.ALREADY_PRESENT, None, "3f1c2a4e-0000-5000-8000-000000000000"
        ),
    ],
)
def test_ledger_entries_round_trip_through_json(item: LedgerEntry) -> None:
    line = json.dumps(item.to_json())
    assert LedgerEntry.from_json(json.loads(line)) == item


def test_ledger_json_has_exactly_the_documented_fields() -> None:
    assert entry("m1", Outcome.CREATED).to_json() == {
        "nylas_id": "m1",
        "grant_id": "grant-alice",
        "internet_message_id": "<m1@x>",
        "outcome": "created",
        "reason": None,
        "activity_id": "aid-m1",
    }


def test_ledgers_written_before_the_rename_are_still_read() -> None:
    old = {"nylas_id": "m1", "grant_id": "g", "message_id": "<m1@x>", "outcome": "created"}
    assert LedgerEntry.from_json(old).internet_message_id == "<m1@x>"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"grant_id": "g", "outcome": "created"}, "'nylas_id' must be a string"),
        ({"nylas_id": "m", "grant_id": "g", "outcome": "lost"}, "outcome must be one of created"),
        (
            {"nylas_id": "m", "grant_id": "g", "outcome": "created", "reason": 3},
            "'reason' must be a string or null",
        ),
        ({"nylas_id": "m", "grant_id": "g", "outcome": "created", "subject": "x"}, "unknown field"),
        ({"nylas_id": "m", "grant_id": "g", "outcome": "skipped"}, "needs a reason"),
    ],
)
def test_bad_ledger_lines_are_rejected_with_the_field_named(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LedgerEntry.from_json(data)


@pytest.mark.parametrize("outcome", [Outcome.SKIPPED, Outcome.FAILED])
@pytest.mark.parametrize("reason", [None, ""])
def test_skips_and_failures_need_a_reason(outcome: Outcome, reason: str | None) -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        LedgerEntry("m1", "g", None, outcome, reason)


def test_outcome_text_is_accepted_and_normalised() -> None:
    assert LedgerEntry("m1", "g", None, "created").outcome is Outcome.CREATED  # type: ignore[arg-type]


def test_the_report_counts_by_outcome_and_reason() -> None:
    report = report_with(*MIXED)
    report.unresolved_addresses = 14
    report.ambiguous_addresses = 1
    report.requests.update({"nylas": 3, "dataverse": 7})
    report.durations_s.update({"load": 2.34567, "extract": 1.0})
    report.check_invariant()
    assert report.to_json() == {
        "dag_id": "nylas_to_dataverse__alice",
        "grant_key": "alice",
        "window": {"start": "2026-11-02T00:00:00+00:00", "end": "2026-11-03T00:00:00+00:00"},
        "counts": {"extracted": 9, "created": 2, "already_present": 1, "skipped": 3, "failed": 3},
        "skipped_by_reason": {"automated": 1, "internal_only": 2},
        "failed_by_reason": {"0x80044331": 1, "bad_date": 2},
        "unresolved_addresses": 14,
        "ambiguous_addresses": 1,
        "requests": {"dataverse": 7, "nylas": 3},
        "durations_s": {"extract": 1.0, "load": 2.346},
        "files": {},
    }
    json.dumps(report.to_json())


def test_an_empty_run_satisfies_the_invariant() -> None:
    report = report_with()
    report.check_invariant()
    assert report.to_json()["counts"] == {
        "extracted": 0,
        "created": 0,
        "already_present": 0,
        "skipped": 0,
        "failed": 0,
    }


@pytest.mark.parametrize("extracted", [8, 10, 0])
def test_counts_that_do_not_add_up_break_the_invariant(extracted: int) -> None:
    report = report_with(*MIXED, extracted=extracted)
    with pytest.raises(LedgerInvariantError) as caught:
        report.check_invariant()
    text = str(caught.value)
    assert f"extracted {extracted} != created 2 + already_present 1 + skipped 3 + failed 3 (= 9)" in text
    assert "nylas_to_dataverse__alice" in text


def test_a_message_recorded_twice_breaks_the_invariant_even_when_counts_match() -> None:
    report = report_with(entry("m1", Outcome.CREATED), entry("m1", Outcome.ALREADY_PRESENT), extracted=2)
    with pytest.raises(LedgerInvariantError, match=r"repeat a Nylas id.*'m1'"):
        report.check_invariant()


def test_the_invariant_needs_the_extracted_count() -> None:
    report = RunReport("nylas_to_dataverse__alice", "alice", START, END)
    report.add(entry("m1", Outcome.CREATED))
    with pytest.raises(LedgerInvariantError, match="extracted count was never set"):
        report.check_invariant()


def test_the_summary_is_an_aligned_table_of_counts_without_message_content() -> None:
    report = report_with(*MIXED)
    report.unresolved_addresses = 14
    report.requests["dataverse"] = 7
    table = report.summary_table()
    lines = table.splitlines()
    assert lines[0] == "nylas_to_dataverse__alice  [2026-11-02T00:00:00+00:00, 2026-11-03T00:00:00+00:00)"
    body = lines[1:]
    assert len({len(line) for line in body}) == 1, "every row has the same width"
    rows = {line.rsplit(None, 1)[0].strip(): line.rsplit(None, 1)[1] for line in body[1:-1]}
    assert rows == {
        "extracted": "9",
        "created": "2",
        "already present": "1",
        "skipped": "3",
        "automated": "1",
        "internal_only": "2",
        "failed": "3",
        "0x80044331": "1",
        "bad_date": "2",
        "unresolved addresses": "14",
        "ambiguous addresses": "0",
        "requests dataverse": "7",
    }
    for content in ("validation error", "yesterday", "<m1@x>"):
        assert content not in table
