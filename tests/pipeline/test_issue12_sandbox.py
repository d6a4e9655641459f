"""Issue 12 against the sandbox: unresolved addresses, the dry-run plan, threads."""

from __future__ import annotations

import json
from typing import Any

from nylas_dataverse.core import unresolved
from nylas_dataverse.pipeline import layout

from .conftest import Runner, grants


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
