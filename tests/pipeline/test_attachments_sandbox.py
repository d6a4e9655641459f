"""Attachments against the sandbox: files land on their email once, the policy's skips are explained, and
neither a rerun nor a crash makes a second copy or an email without its files."""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from nylas_dataverse.core.attachments import attachment_row_id
from nylas_dataverse.hooks.dataverse import DataverseHook

from .conftest import Runner, grants

DOWNLOAD_ROUTE = "GET /v3/grants/{grant}/attachments/{attachment_id}/download"


def _attachment_ledger(runner: Runner, grant: Any) -> list[dict[str, Any]]:
    path = runner.staging(grant).file("attachments.jsonl")
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _email_by_subject(sandbox: Any, text: str) -> dict[str, Any]:
    found = [row for row in sandbox.dataverse.emails_with_parties() if text in (row.get("subject") or "")]
    assert len(found) == 1, [row.get("subject") for row in found]
    return found[0]


def _files(sandbox: Any, email: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(
        sandbox.dataverse.attachments_of(email["activityid"]), key=lambda row: row["attachmentnumber"]
    )


def _downloads(sandbox: Any) -> int:
    return int(sandbox.nylas.stats.by_route.get(DOWNLOAD_ROUTE, 0))


def _all_files(sandbox: Any) -> int:
    return int(sandbox.dataverse.counters()["rows.activitymimeattachments"])


def test_files_become_attachment_rows_on_their_email_and_skips_are_explained(
    sandbox: Any, runner: Runner
) -> None:
    alice = grants(sandbox)["alice"]

    counts = runner.day(alice)

    assert counts["failed"] == 0
    many = _email_by_subject(sandbox, "Signed documents for the Northwind rollout")
    rows = _files(sandbox, many)
    assert [row["filename"] for row in rows] == [
        "scan.pdf",
        "scan.pdf",
        "Pricing_Q1.xlsx",
        "Contract_draft.docx",
        "invite.ics",
    ]
    for position, row in enumerate(rows):
        assert row["activitymimeattachmentid"] == attachment_row_id(
            many["activityid"], position, row["filename"]
        )
        assert row["objecttypecode"] == "email"
        assert len(base64.b64decode(row["body"])) == row["filesize"] > 0
    assert rows[0]["mimetype"] == "application/pdf"
    assert many["statecode"] == 1  # completed after its files were added

    # The inline logo is skipped by default, the PDF beside it kept.
    inline = _email_by_subject(sandbox, "Angebot 2026-118")
    assert [row["filename"] for row in _files(sandbox, inline)] == ["Angebot_2026-118.pdf"]
    # 25 MB is over the org's 5 MB (of Base64) limit: skipped without downloading it, the email created.
    large = _email_by_subject(sandbox, "Site survey walkthrough")
    assert _files(sandbox, large) == []

    ledger = _attachment_ledger(runner, alice)
    by_email = Counter(entry["activity_id"] for entry in ledger)
    assert by_email[many["activityid"]] == 5
    assert by_email[inline["activityid"]] == 2
    skipped = {
        (entry["activity_id"], entry["reason"].split(":")[0])
        for entry in ledger
        if entry["outcome"] == "skipped"
    }
    assert (inline["activityid"], "inline") in skipped
    assert (large["activityid"], "over_org_limit") in skipped
    assert _downloads(sandbox) == sum(1 for entry in ledger if entry["outcome"] == "created")
    assert "filename" not in ledger[0]
    assert "Angebot" not in json.dumps(ledger)

    report = json.loads(runner.staging(alice).file("report.json").read_bytes())
    created = [entry for entry in ledger if entry["outcome"] == "created"]
    assert report["attachments"]["counts"]["created"] == len(created) > 5
    assert report["attachments"]["bytes_moved"] == sum(entry["bytes_moved"] for entry in created) > 0
    assert report["attachments"]["skipped_by_reason"] == {"inline": 1, "over_org_limit": 1}


def test_a_rerun_creates_no_second_copy_of_any_file(sandbox: Any, runner: Runner) -> None:
    bob = grants(sandbox)["bob"]
    runner.day(bob)
    files_after_first = _all_files(sandbox)
    downloads_after_first = _downloads(sandbox)
    assert files_after_first > 0

    counts = runner.day(bob)

    assert counts["created"] == 0
    assert _all_files(sandbox) == files_after_first
    assert _downloads(sandbox) == downloads_after_first  # emails already present need no download
    outcomes = Counter(entry["outcome"] for entry in _attachment_ledger(runner, bob))
    assert outcomes["created"] == 0
    assert outcomes["already_present"] > 0


def test_a_blocked_file_type_is_skipped_and_its_email_still_created(sandbox: Any, runner: Runner) -> None:
    bob = grants(sandbox, blocked_attachment_types=[".exe", "application/pdf"])["bob"]

    runner.day(bob)

    invoice = _email_by_subject(sandbox, "Outstanding invoice 88213")
    assert invoice["statecode"] == 1
    assert _files(sandbox, invoice) == []
    reasons = {
        entry["reason"]
        for entry in _attachment_ledger(runner, bob)
        if entry["activity_id"] == invoice["activityid"]
    }
    assert reasons == {"blocked_type: .exe", "blocked_type: application/pdf"}


def test_files_over_the_grant_limit_are_skipped_and_inline_ones_kept_when_asked(
    sandbox: Any, runner: Runner
) -> None:
    alice = grants(sandbox, max_attachment_mb=1, inline_attachments="keep")["alice"]
    sandbox.dataverse.set_behaviour(max_upload_file_size=64 * 1024 * 1024)

    runner.day(alice)

    inline = _email_by_subject(sandbox, "Angebot 2026-118")
    rows = _files(sandbox, inline)
    assert [row["filename"] for row in rows] == ["image001.png", "Angebot_2026-118.pdf"]
    assert rows[0]["attachmentcontentid"] == "image001.png@01DB4A2C.7E3F9B10"  # as the body's cid: names it
    large = _email_by_subject(sandbox, "Site survey walkthrough")
    assert _files(sandbox, large) == []
    reasons = [
        e["reason"] for e in _attachment_ledger(runner, alice) if e["activity_id"] == large["activityid"]
    ]
    assert len(reasons) == 1
    assert reasons[0].startswith("over_grant_limit: 26214400 bytes > 1 MiB")


def test_a_file_dataverse_refuses_fails_alone_with_its_code_and_the_email_is_created(
    sandbox: Any, runner: Runner
) -> None:
    alice = grants(sandbox)["alice"]
    runner.extract(alice)
    runner.transform(alice)  # planned against the org's 5 MB
    sandbox.dataverse.set_behaviour(max_upload_file_size=200_000)  # the org lowers its limit meanwhile

    runner.load(alice)
    runner.report(alice)

    many = _email_by_subject(sandbox, "Signed documents for the Northwind rollout")
    assert many["statecode"] == 1
    kept = [row["filename"] for row in _files(sandbox, many)]
    assert kept == ["scan.pdf", "Pricing_Q1.xlsx", "Contract_draft.docx", "invite.ics"]  # 182 kB PDF refused
    failed = [e for e in _attachment_ledger(runner, alice) if e["outcome"] == "failed"]
    assert failed
    assert all("0x80044a02" in e["reason"] for e in failed)
    assert {e["activity_id"] for e in failed} >= {many["activityid"]}


class _CrashAfterFiles(HTTPAdapter):
    """Sends requests; once a $batch carrying files (sent from a spooled body) has been applied, the worker
    "dies" before reading the answer, as when it is killed mid-request."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        carries_files = hasattr(request.body, "read")
        response = super().send(request, **kwargs)
        if carries_files:
            raise KeyboardInterrupt("worker killed")
        return response


def test_a_crash_mid_load_then_a_rerun_leaves_each_email_once_with_all_its_files(
    sandbox: Any, runner: Runner
) -> None:
    alice = grants(sandbox, batch_size=1, max_concurrency=1)["alice"]
    runner.extract(alice)
    runner.transform(alice)
    session = requests.Session()
    session.mount("https://", _CrashAfterFiles())
    with pytest.raises(KeyboardInterrupt):
        runner.load(alice, hook=DataverseHook(alice.dataverse_conn_id, session=session))

    runner.load(alice)
    runner.report(alice)

    emails = sandbox.dataverse.emails_with_parties()
    assert len({row["messageid"] for row in emails}) == len(emails)
    ledger = _attachment_ledger(runner, alice)
    created_or_present = Counter(
        entry["activity_id"] for entry in ledger if entry["outcome"] in ("created", "already_present")
    )
    for row in emails:
        assert len(_files(sandbox, row)) == created_or_present.get(row["activityid"], 0)
    assert Counter(entry["outcome"] for entry in ledger)["already_present"] > 0  # the crashed one's files
    assert _all_files(sandbox) == sum(1 for entry in ledger if entry["outcome"] != "skipped")


def test_an_email_whose_files_cannot_be_downloaded_waits_and_a_rerun_brings_it_with_them(
    sandbox: Any, runner: Runner
) -> None:
    alice = grants(sandbox)["alice"]
    runner.extract(alice)
    runner.transform(alice)
    sandbox.nylas.set_faults({"expired_grants": ["alice"]})  # downloads now fail: the grant expired

    runner.load(alice)

    ledger = [
        json.loads(line) for line in runner.staging(alice).file("ledger.jsonl").read_bytes().splitlines()
    ]
    waiting = [e for e in ledger if e["outcome"] == "failed"]
    assert waiting
    assert all(e["reason"].startswith("attachment_download_failed") for e in waiting)
    created_ids = {e["activity_id"] for e in ledger if e["outcome"] == "created"}
    assert {row["activityid"] for row in sandbox.dataverse.emails_with_parties()} == created_ids
    assert _all_files(sandbox) == 0  # no email was created without its files

    sandbox.nylas.set_faults({"expired_grants": []})  # re-authenticated
    runner.load(alice)
    counts = runner.report(alice)

    assert counts["failed"] == 0
    many = _email_by_subject(sandbox, "Signed documents for the Northwind rollout")
    assert len(_files(sandbox, many)) == 5
