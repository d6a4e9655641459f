"""Drill: a staging file goes missing or is damaged between tasks.

A day is run once through all four tasks; each case then restores that staging folder, damages one file
(the data files and the manifests each task leaves for the next) and runs a task that reads it. The task
must stop with a ``StagingError`` that names the task to rerun, never load from a damaged file silently.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from nylas_dataverse.pipeline.staging import RunStaging, StagingError

from .conftest import SEEDED_DAY, DrillRunner, grants

pytestmark = pytest.mark.drills


def _missing(path: Path) -> None:
    path.unlink()


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xffnot what this file should be\n")


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _one_line_dropped(path: Path) -> None:
    """Still a valid gzip of JSON lines, but not what the manifest describes."""
    lines = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    path.write_bytes(gzip.compress(b"".join(lines[:-1])))


def _wrong_format_version(path: Path) -> None:
    manifest = json.loads(path.read_bytes())
    manifest["format_version"] = 999
    path.write_text(json.dumps(manifest))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "missing": _missing,
    "truncated": _truncated,
    "garbage": _garbage,
    "empty": _empty,
}
GZIP_DAMAGE = {**DAMAGE, "one line dropped": _one_line_dropped}
MANIFEST_DAMAGE = {**DAMAGE, "wrong format_version": _wrong_format_version}

# (file, the task that produced it, the tasks downstream that read it)
CASES = [
    *[("messages.jsonl.gz", "extract", "transform", damage) for damage in GZIP_DAMAGE],
    *[
        ("extract.json", "extract", reader, damage)
        for reader in ("transform", "report")
        for damage in MANIFEST_DAMAGE
    ],
    *[("payloads.jsonl.gz", "transform", "load", damage) for damage in GZIP_DAMAGE],
    *[
        ("transform.json", "transform", reader, damage)
        for reader in ("load", "report")
        for damage in MANIFEST_DAMAGE
    ],
    *[("load.json", "load", "report", damage) for damage in MANIFEST_DAMAGE],
    ("ledger.jsonl", "load", "report", "missing"),
]


@pytest.fixture(scope="module")
def finished_day(sandbox_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One day through all four tasks; the cases copy its staging folder and damage the copy."""
    with pytest.MonkeyPatch.context() as patch:
        for reset in (sandbox_session.nylas, sandbox_session.entra, sandbox_session.dataverse):
            reset.reset()
        for name, value in sandbox_session.environment().items():
            patch.setenv(name, value)
        root = tmp_path_factory.mktemp("finished-day")
        runner = DrillRunner(ObjectStoragePath(root.as_uri()))
        alice = grants(sandbox_session)["alice"]
        runner.extract(alice, SEEDED_DAY)
        runner.transform(alice, SEEDED_DAY)
        runner.load(alice, SEEDED_DAY)
        counts = runner.report(alice, SEEDED_DAY)
        assert counts["created"] > 0
        yield {"folder": Path(runner.staging(alice, SEEDED_DAY).folder.path), "grant": alice, "patch": patch}


@pytest.fixture
def damaged_copy(finished_day: dict[str, Any], tmp_path: Path) -> tuple[DrillRunner, RunStaging]:
    runner = DrillRunner(ObjectStoragePath(tmp_path.as_uri()) / "staging")
    staging = runner.staging(finished_day["grant"], SEEDED_DAY)
    shutil.copytree(finished_day["folder"], Path(staging.folder.path))
    return runner, staging


def _run(runner: DrillRunner, grant: Any, task: str) -> None:
    if task == "transform":
        runner.transform(grant, SEEDED_DAY)
    elif task == "load":
        runner.load(grant, SEEDED_DAY)
    else:
        runner.report(grant, SEEDED_DAY)


@pytest.mark.parametrize(("name", "producer", "reader", "damage"), CASES)
def test_a_damaged_staging_file_stops_the_next_task_with_the_task_to_rerun(
    finished_day: dict[str, Any],
    damaged_copy: tuple[DrillRunner, RunStaging],
    name: str,
    producer: str,
    reader: str,
    damage: str,
) -> None:
    runner, staging = damaged_copy
    damage_file = {**GZIP_DAMAGE, **MANIFEST_DAMAGE}[damage]
    damage_file(Path(staging.file(name).path))

    with pytest.raises(StagingError) as raised:
        _run(runner, finished_day["grant"], reader)

    message = str(raised.value)
    assert f"'{producer}'" in message, message
    assert "rerun" in message.lower(), message
    assert name in message or producer in message, message


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_ledger_stops_report_with_the_task_to_rerun(
    finished_day: dict[str, Any], damaged_copy: tuple[DrillRunner, RunStaging], damage: str
) -> None:
    runner, staging = damaged_copy
    DAMAGE[damage](Path(staging.file("ledger.jsonl").path))

    with pytest.raises(StagingError, match="rerun 'load'"):
        runner.report(finished_day["grant"], SEEDED_DAY)


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_load_part_cut_short_by_a_crash_is_redone_by_the_rerun(
    finished_day: dict[str, Any], damaged_copy: tuple[DrillRunner, RunStaging], damage: str
) -> None:
    runner, staging = damaged_copy
    part = Path(staging.file("load").path) / "part-000000.json"
    DAMAGE[damage](part)

    runner.load(finished_day["grant"], SEEDED_DAY)
    counts = runner.report(finished_day["grant"], SEEDED_DAY)

    assert counts["failed"] == 0
    assert counts["created"] + counts["already_present"] + counts["skipped"] == counts["extracted"]
