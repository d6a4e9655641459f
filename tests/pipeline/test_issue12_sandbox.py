"""Issue 12 against the sandbox: unresolved addresses, the dry-run plan, threads."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from nylas_dataverse.cli import main
from nylas_dataverse.core import unresolved
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
    assert set(rows[0]) >= {"decision", "reason", "parties", "regarding", "attachments_not_planned_yet"}
    assert all(row["attachments_not_planned_yet"] == "" for row in rows)
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
