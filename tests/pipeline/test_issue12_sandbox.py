"""Issue 12 against the sandbox: unresolved addresses, the dry-run plan, threads."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from nylas_dataverse.cli import main
from nylas_dataverse.core import unresolved
from nylas_dataverse.core.config import ROLE_ADDRESS_PATTERNS
from nylas_dataverse.core.contacts import contact_id, is_role_address
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.pipeline import layout

from .conftest import DAY, Runner, grants


def _json(path: Any) -> Any:
    return json.loads(path.read_bytes())


def test_every_run_lists_its_unresolved_addresses_and_the_grant_rolls_them_up(
    sandbox: Any, runner: Runner
) -> None:
    alice = grants(sandbox)["alice"]
    runner.day(alice)
    staging = runner.staging(alice)
    transform = _json(staging.file("transform.json"))

    rows = unresolved.from_csv(staging.file("unresolved.csv").read_bytes().decode())

    assert len(rows) == transform["unresolved_addresses"] > 0
    assert {row.address.casefold() for row in rows} == {a for a, _n in transform["unresolved_top"]}
    assert all(row.first_seen <= row.last_seen and row.messages >= 1 for row in rows)
    text = staging.file("unresolved.csv").read_text()
    assert "subject" not in text.splitlines()[0]
    report = _json(staging.file("report.json"))
    rollup_path = runner.root / layout.unresolved_rollup(alice.key)
    assert report["files"]["unresolved addresses"] == str(staging.file("unresolved.csv"))
    assert report["files"]["unresolved addresses, all kept runs"] == str(rollup_path)
    assert unresolved.from_csv(rollup_path.read_text()) == rows

    runner.day(alice)  # a rerun replaces the day's contribution, it does not add to it

    assert unresolved.from_csv(rollup_path.read_text()) == rows


def _writes(sandbox: Any) -> dict[str, int]:
    return {k: v for k, v in sandbox.dataverse.counters().items() if k.startswith("writes.")}


def test_a_dry_run_plans_every_message_and_writes_nothing_to_dataverse(sandbox: Any, runner: Runner) -> None:
    alice = grants(sandbox)["alice"]
    assert _writes(sandbox) == {}

    planned = runner.plan(alice)

    assert _writes(sandbox) == {}, "a dry run must not write to Dataverse"
    assert sandbox.dataverse.emails_with_parties() == []
    staging = runner.staging(alice, label=layout.plan_label(DAY.isoformat()))
    plan = _json(staging.file("plan.json"))
    rows = list(csv.DictReader(io.StringIO(staging.file("plan.csv").read_text())))
    assert (
        len(rows)
        == len(plan["messages"])
        == _json(staging.file("extract.json"))["files"]["messages.jsonl.gz"]["count"]
    )
    assert planned == plan["counts"]
    assert planned["create"] > 0
    assert {"internal_only", "automated"} <= set(plan["skipped_by_reason"])
    assert set(rows[0]) >= {"decision", "reason", "parties", "regarding", "attachments"}
    files = [row["attachments"] for row in rows if row["attachments"]]
    assert any(": upload" in cell for cell in files), "alice's day has files to upload"
    assert any(": skip inline" in cell for cell in files), "and an inline image the default policy skips"
    assert any(row["parent"].startswith("this_run:") for row in rows), "replies to mail the run creates first"
    assert all(row["reason"] for row in rows if row["decision"] in ("skip", "fail"))
    assert any("=contact:" in row["parties"] and row["regarding"].startswith("contact:") for row in rows)
    assert not runner.staging(alice).folder.exists(), "the day's real run folder is left alone"

    counts = runner.day(alice)  # the real run then does what the plan said
    assert _writes(sandbox)
    assert counts["created"] == planned["create"]
    assert counts["skipped"] == planned["skip"]

    again = runner.plan(alice)  # and a plan after it finds everything present
    assert again["create"] == 0
    assert again["already_present"] == planned["create"]


def test_the_plan_command_previews_a_policy_change_from_a_grants_file_before_it_is_deployed(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NYLAS_DATAVERSE_STAGING", (tmp_path / "staging").as_uri())
    config = sandbox.grants_config()
    config["defaults"] = {"policy": {"require_known_party": True}}
    changed = tmp_path / "grants-next.yaml"
    changed.write_text(yaml.safe_dump(config))

    assert main(["plan", "--grant", "alice", "--day", DAY.isoformat(), "--grants-file", str(changed)]) == 0

    out = capsys.readouterr().out
    assert "nothing written to Dataverse" in out
    assert "skip no_known_party:" in out
    assert "plan.csv" in out
    assert _writes(sandbox) == {}
    assert main(["plan", "--grant", "nobody", "--day", DAY.isoformat()]) == 1


def _ledger(runner: Runner, grant: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in runner.staging(grant).file("ledger.jsonl").read_bytes().splitlines()]


def test_a_reply_is_bound_to_the_email_it_answers_whoever_created_it(sandbox: Any, runner: Runner) -> None:
    alice = grants(sandbox)["alice"]
    runner.day(alice)
    rows = {row["activityid"]: row for row in sandbox.dataverse.emails_with_parties()}
    by_message_id = {row["messageid"].casefold(): row["activityid"] for row in rows.values()}
    ledger = {
        entry["activity_id"]: entry for entry in _ledger(runner, alice) if entry["outcome"] == "created"
    }
    payloads = runner.staging(alice).file("payloads.jsonl.gz")
    replies = [
        d["email"]
        for d in (json.loads(line) for line in gzip.decompress(payloads.read_bytes()).splitlines())
        if d["email"] is not None and d["email"]["parent_message_id"] and d["email"]["activity_id"] in ledger
    ]
    bound = [r for r in replies if r["parent_message_id"].casefold() in by_message_id]
    assert bound, "the seeded day has replies to mail created in the same run"
    for reply in bound:
        parent = by_message_id[reply["parent_message_id"].casefold()]
        assert rows[reply["activity_id"]]["_parentactivityid_value"] == parent
        assert ledger[reply["activity_id"]]["parent_activity_id"] == parent
    for reply in replies:
        if reply not in bound:
            assert rows[reply["activity_id"]].get("_parentactivityid_value") is None
    assert {entry.get("regarding_rule") for entry in ledger.values()} >= {"counterpart"}


def test_a_reply_to_mail_server_side_sync_tracked_is_bound_to_that_row(sandbox: Any, runner: Runner) -> None:
    alice = grants(sandbox)["alice"]
    runner.extract(alice)
    runner.transform(alice)
    payloads = runner.staging(alice).file("payloads.jsonl.gz")
    decisions = [json.loads(line) for line in gzip.decompress(payloads.read_bytes()).splitlines()]
    own = {d["internet_message_id"].casefold() for d in decisions if d["internet_message_id"]}
    orphan = next(
        d["email"]
        for d in decisions
        if d["email"]
        and d["email"]["parent_message_id"]
        and d["email"]["parent_message_id"].casefold() not in own
    )
    # Another writer tracked the parent earlier, under its own random activityid.
    tracked = DataverseHook("dataverse_default").create(
        "emails", {"subject": "tracked by SSS", "messageid": orphan["parent_message_id"]}
    )

    runner.load(alice)
    runner.report(alice)

    row = next(r for r in sandbox.dataverse.emails_with_parties() if r["activityid"] == orphan["activity_id"])
    assert row["_parentactivityid_value"] == tracked
    entry = next(e for e in _ledger(runner, alice) if e["activity_id"] == orphan["activity_id"])
    assert entry["parent_activity_id"] == tracked


def test_first_message_of_thread_only_counts_a_thread_already_tracked_in_dataverse(
    sandbox: Any, runner: Runner
) -> None:
    alice = grants(sandbox, policy={"first_message_of_thread_only": True})["alice"]
    runner.extract(alice)

    def orphan_decision() -> dict[str, Any]:
        runner.transform(alice)
        payloads = runner.staging(alice).file("payloads.jsonl.gz")
        decisions = [json.loads(line) for line in gzip.decompress(payloads.read_bytes()).splitlines()]
        return next(d for d in decisions if d["internet_message_id"] == orphan_id)

    staged = runner.staging(alice).file("messages.jsonl.gz")
    messages = [json.loads(line) for line in gzip.decompress(staged.read_bytes()).splitlines()]
    orphan = next(m for m in messages if m["id"] == _orphan_nylas_id(messages))
    orphan_id = next(h["value"] for h in orphan["headers"] if h["name"].casefold() == "message-id")
    parent_id = next(h["value"] for h in orphan["headers"] if h["name"].casefold() == "in-reply-to")

    # Its thread is tracked nowhere: the reply is the thread's first tracked message.
    assert orphan_decision()["outcome"] is None

    DataverseHook("dataverse_default").create(
        "emails", {"subject": "tracked earlier", "messageid": parent_id}
    )

    assert orphan_decision()["reason"] == "not_first_in_thread"


def _orphan_nylas_id(messages: list[dict[str, Any]]) -> str:
    """The reply whose parent is in no mailbox of the day (the seed's reply_orphan)."""
    own = {
        h["value"].casefold()
        for m in messages
        for h in m.get("headers") or []
        if h["name"].casefold() == "message-id"
    }
    for message in messages:
        headers = {h["name"].casefold(): h["value"] for h in message.get("headers") or []}
        parent = headers.get("in-reply-to")
        if parent and parent.casefold() not in own and message["from"][0]["email"].startswith("maria"):
            return str(message["id"])
    raise AssertionError("the seed has no orphan reply")


def test_create_contacts_makes_one_contact_per_unresolved_external_address_before_its_email(
    sandbox: Any, runner: Runner
) -> None:
    alice = grants(sandbox, policy={"create_contacts": "all"})["alice"]
    contacts_before = sandbox.dataverse.counters()["rows.contacts"]

    first = runner.day(alice)

    assert first["failed"] == 0
    ledger = [e for e in _ledger(runner, alice) if e.get("contact_ids")]
    assert ledger, "the seeded day has mail naming unknown external addresses"
    created = {cid for e in ledger for cid in e["contact_ids"].split(";")}
    assert sandbox.dataverse.counters()["rows.contacts"] == contacts_before + len(created)
    rows = {row["activityid"]: row for row in sandbox.dataverse.emails_with_parties()}
    bound = {
        p["_partyid_value"]: p["addressused"].casefold()
        for entry in ledger
        for p in rows[entry["activity_id"]]["email_activity_parties"]
        if p.get("_partyid_value") in entry["contact_ids"].split(";")
    }
    assert set(bound) == created
    for contact, address in bound.items():
        assert contact_id(address) == contact
        assert not address.endswith("@contoso.example")
        assert not is_role_address(address, ROLE_ADDRESS_PATTERNS)

    second = runner.day(alice)  # a rerun creates no second contact: the addresses now resolve

    assert second["created"] == 0
    assert sandbox.dataverse.counters()["rows.contacts"] == contacts_before + len(created)


def test_a_reply_whose_parties_give_no_regarding_takes_the_regarding_of_the_email_it_answers(
    sandbox: Any, runner: Runner
) -> None:
    alice = grants(sandbox, policy={"regarding_preference": ["lead"]})["alice"]
    runner.extract(alice)
    runner.transform(alice)

    def orphan() -> dict[str, Any]:
        payloads = runner.staging(alice).file("payloads.jsonl.gz")
        decisions = [json.loads(line) for line in gzip.decompress(payloads.read_bytes()).splitlines()]
        own = {d["internet_message_id"].casefold() for d in decisions if d["internet_message_id"]}
        return next(
            d["email"]
            for d in decisions
            if d["email"]
            and d["email"]["parent_message_id"]
            and d["email"]["parent_message_id"].casefold() not in own
            and d["email"]["sender"].startswith("maria")
        )

    reply = orphan()
    assert reply["regarding"] is None  # its parties are contacts, and this grant only regards leads
    contact = next(
        p["record"] for p in reply["parties"] if p["record"] and p["record"]["entity"] == "contact"
    )
    # The email it answers was tracked earlier (here: by another writer), regarding that contact.
    DataverseHook("dataverse_default").create(
        "emails",
        {
            "subject": "tracked earlier",
            "messageid": reply["parent_message_id"],
            "regardingobjectid_contact_email@odata.bind": f"/contacts({contact['id']})",
        },
    )

    runner.transform(alice)
    runner.load(alice)
    runner.report(alice)

    followed = orphan()
    assert followed["regarding"] == contact
    assert followed["regarding_rule"] == "thread_parent"
    entry = next(e for e in _ledger(runner, alice) if e["activity_id"] == followed["activity_id"])
    assert entry["regarding_rule"] == "thread_parent"
    row = next(
        r for r in sandbox.dataverse.emails_with_parties() if r["activityid"] == followed["activity_id"]
    )
    assert row["_regardingobjectid_value"] == contact["id"]
