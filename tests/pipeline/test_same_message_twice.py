"""One RFC message under two Nylas ids in one mailbox (a reply's client and provider copies, IMAP folders).

Both copies share the Message-ID and so the deterministic activityid: the day's run must create one row,
count it once, and explain the other copy in the ledger instead of overwriting the first one's outcome.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from typing import Any

from .conftest import DAY, Runner, grants

COPIES = 3


def _emails(sandbox: Any) -> list[dict[str, Any]]:
    return sandbox.dataverse.emails_with_parties()


def _ledger(runner: Runner, grant: Any) -> list[dict[str, Any]]:
    path = runner.staging(grant).file("ledger.jsonl")
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _extracted_ids(runner: Runner, grant: Any) -> list[str]:
    path = runner.staging(grant).file("messages.jsonl.gz")
    return [json.loads(line)["id"] for line in gzip.decompress(path.read_bytes()).splitlines()]


def test_a_message_listed_under_two_ids_lands_once_and_is_counted_once(sandbox: Any, runner: Runner) -> None:
    alice = grants(sandbox)["alice"]
    copies = sandbox.nylas.add_copies("alice", DAY, COPIES)
    copy_of = {copy["id"]: sandbox.nylas.copy_of("alice", copy["id"]) for copy in copies}
    rows_before = len(_emails(sandbox))

    counts = runner.day(alice)

    rows = _emails(sandbox)
    per_message_id = Counter(row["messageid"] for row in rows)
    assert per_message_id.most_common(1)[0][1] == 1, f"a message was created twice: {per_message_id}"
    created_rows = len(rows) - rows_before
    ledger = _ledger(runner, alice)
    ledger_created = [entry for entry in ledger if entry["outcome"] == "created"]
    report = json.loads(runner.staging(alice).file("report.json").read_bytes())
    assert counts["created"] == report["counts"]["created"] == len(ledger_created) == created_rows
    assert {entry["activity_id"] for entry in ledger_created} == {row["activityid"] for row in rows}
    assert counts["failed"] == 0
    extracted = _extracted_ids(runner, alice)
    assert set(copy_of) | set(copy_of.values()) <= set(extracted)
    lines_per_message = Counter(entry["nylas_id"] for entry in ledger)
    assert lines_per_message == Counter(extracted), "every extracted message has exactly one ledger line"
    assert set(lines_per_message.values()) == {1}
    assert counts["extracted"] == len(extracted) == len(ledger)
    by_nylas_id = {entry["nylas_id"]: entry for entry in ledger}
    for copy_id, original_id in copy_of.items():
        original, copy = by_nylas_id[original_id], by_nylas_id[copy_id]
        assert original["outcome"] == "created", original
        assert copy["outcome"] == "already_present", copy
        assert copy["reason"].startswith("same_message_in_run"), copy
        assert original_id in copy["reason"]
        assert copy["activity_id"] == original["activity_id"]
        assert copy["internet_message_id"] == original["internet_message_id"]
        assert per_message_id[original["internet_message_id"]] == 1

    again = runner.day(alice)

    assert again["created"] == 0
    assert again["failed"] == 0
    assert again["already_present"] == counts["created"] + counts["already_present"]
    assert len(_emails(sandbox)) == len(rows)
