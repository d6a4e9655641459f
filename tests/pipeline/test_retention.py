"""Staging retention (``pipeline/retention.py``): what the cleanup deletes, what it keeps, dry run first,
on a local staging root and on an S3 API (moto in server mode, in this process, as
``tests/cluster/test_staging_s3.py`` does)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.pipeline import layout, retention
from nylas_dataverse.pipeline.run import Services, run_stage, run_window
from nylas_dataverse.pipeline.staging import RunStaging, StagingError, write_whole
from nylas_dataverse.realtime.inbox import Batch, Inbox
from nylas_dataverse.realtime.notifications import notification_from_envelope

from ..realtime.conftest import envelope
from .conftest import grants, window

OLD = dt.date(2026, 11, 3)  # older than the retention on TODAY
RECENT = dt.date(2026, 11, 6)  # within it
TODAY = dt.date(2026, 11, 10)
RETENTION_DAYS = 5  # keeps 2026-11-05 and later
BODIES = ("messages.jsonl.gz", "payloads.jsonl.gz")
KEPT = (
    "extract.json",
    "transform.json",
    "quarantine.jsonl.gz",
    "load/part-000000.json",
    "load.json",
    "ledger.jsonl",
    "report.json",
)
REALTIME_LABEL = "realtime-20261102T101502123456Z-a1b2c3"


def _at(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC).timestamp()


def _batch(root: ObjectStoragePath, day: dt.date, notification_id: str, *, done: bool) -> Batch:
    inbox = Inbox(root, clock=lambda: _at(day))
    inbox.store(notification_from_envelope(envelope(notification_id, message_id=notification_id)))
    batch = inbox.claim_batch()
    assert batch is not None
    if done:
        inbox.mark_done(batch, {"batch_id": batch.id})
    return batch


@dataclass
class Staged:
    """A staging root with runs of alice (old and recent, retention set) and bob (old, none set)."""

    root: ObjectStoragePath
    alice: GrantConfig
    bob: GrantConfig
    old_done: Batch
    old_open: Batch
    recent_done: Batch

    def run(self, day: dt.date, grant: GrantConfig) -> RunStaging:
        return self.run_label(day.isoformat(), grant)

    def run_label(self, label: str, grant: GrantConfig) -> RunStaging:
        return RunStaging(self.root, grant.dag_id, label)

    @property
    def grants(self) -> list[GrantConfig]:
        return [self.alice, self.bob]


def _write_run(root: ObjectStoragePath, dag_id: str, day: dt.date) -> None:
    """Every file a finished daily run leaves, by the layout's names (the real pipeline writes them in
    ``test_a_day_whose_bodies_were_deleted_...``; here only which files exist matters)."""
    staging = RunStaging(root, dag_id, day.isoformat())
    for stage, names in layout.STAGE_FILES.items():
        for name in names:
            if name.endswith(".gz"):
                with staging.writer(name) as writer:
                    writer.write({"stage": stage, "body": "a message body"})
            elif name == layout.LOAD_PARTS:
                staging.write_json(layout.load_part(0), {"entries": []})
            elif name == layout.LEDGER:
                write_whole(staging.file(name), b'{"outcome": "created"}\n')
            else:
                staging.write_json(name, {"format_version": layout.FORMAT_VERSION})


def _stage(root: ObjectStoragePath, sandbox: Any) -> Staged:
    alice = grants(sandbox, retention_days=RETENTION_DAYS)["alice"]
    bob = grants(sandbox)["bob"]
    for grant, day in ((alice, OLD), (alice, RECENT), (bob, OLD)):
        _write_run(root, grant.dag_id, day)
    # A real-time run of alice on the old day, and a removed grant's folder (nobody says how long to keep it).
    with RunStaging(root, alice.dag_id, REALTIME_LABEL).writer("messages.jsonl.gz") as writer:
        writer.write({"id": "m-1"})
    _write_run(root, "nylas_to_dataverse__gone", OLD)
    return Staged(
        root,
        alice,
        bob,
        old_done=_batch(root, OLD, "n-old-done", done=True),
        old_open=_batch(root, OLD, "n-old-open", done=False),
        recent_done=_batch(root, RECENT, "n-recent", done=True),
    )


def _exists(root: ObjectStoragePath, folder: RunStaging | Batch, name: str) -> bool:
    target = folder.file(name) if isinstance(folder, RunStaging) else folder.folder / name
    return bool(target.exists())


def _notifications(batch: Batch) -> list[str]:
    return [record["notification"]["id"] for record in batch.records()]


def _check_plan_then_delete(staged: Staged, caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    old_alice = staged.run(OLD, staged.alice)
    with caplog.at_level(logging.INFO, logger="nylas_dataverse.pipeline.retention"):
        dry = retention.run(staged.root, staged.grants, TODAY, dry_run=True)

    # The dry run lists every file it would delete, with counts and bytes, and deletes nothing.
    assert dry["dry_run"] is True
    assert dry["deleted"] == {"files": 0, "bytes": 0}
    assert dry["by_owner"]["alice"]["files"] == 3  # the old day's two, the old real-time run's one
    assert dry["by_owner"][retention.INBOX]["files"] == 1
    assert dry["candidates"]["files"] == 4
    assert dry["candidates"]["bytes"] > 0
    assert dry["unknown_folders"] == ["nylas_to_dataverse__gone"]
    logged = caplog.text
    for name in BODIES:
        assert f"Would delete {old_alice.file(name).path}" in logged
    assert "Dry run: would delete 4 files" in logged
    assert "nylas_to_dataverse__gone is in staging but no grant" in logged
    assert all(_exists(staged.root, old_alice, name) for name in BODIES)
    assert _notifications(staged.old_done) == ["n-old-done"]

    done = retention.run(staged.root, staged.grants, TODAY, dry_run=False)

    assert done["deleted"] == dry["candidates"]
    # The old day of the grant with a retention lost its bodies and kept its record of what happened.
    assert not any(_exists(staged.root, old_alice, name) for name in BODIES)
    assert all(_exists(staged.root, old_alice, name) for name in KEPT)
    assert not _exists(staged.root, staged.run_label(REALTIME_LABEL, staged.alice), BODIES[0])
    # Within the retention, without a retention, or of a removed grant: untouched.
    for folder in (staged.run(RECENT, staged.alice), staged.run(OLD, staged.bob)):
        assert all(_exists(staged.root, folder, name) for name in (*BODIES, *KEPT))
    assert RunStaging(staged.root, "nylas_to_dataverse__gone", OLD.isoformat()).file(BODIES[0]).exists()
    # The inbox: an old finished batch's notifications go; an unfinished one and a recent one stay.
    assert _notifications(staged.old_done) == []
    assert staged.old_done.done
    assert _notifications(staged.old_open) == ["n-old-open"]
    assert _notifications(staged.recent_done) == ["n-recent"]
    # A second run finds nothing more.
    assert retention.run(staged.root, staged.grants, TODAY, dry_run=False)["candidates"]["files"] == 0
    return done


def test_the_cleanup_lists_first_then_deletes_only_old_bodies_on_local_staging(
    sandbox: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    staged = _stage(ObjectStoragePath(tmp_path.as_uri()) / "staging", sandbox)
    _check_plan_then_delete(staged, caplog)


def test_a_day_whose_bodies_were_deleted_says_what_to_rerun_and_syncs_again_from_extract(
    sandbox: Any, tmp_path: Path
) -> None:
    root = ObjectStoragePath(tmp_path.as_uri()) / "staging"
    alice = grants(sandbox, retention_days=RETENTION_DAYS)["alice"]
    staging = RunStaging(root, alice.dag_id, OLD.isoformat())
    first = run_window(alice, staging, window=window(OLD))
    assert first is not None
    retention.run(root, [alice], TODAY, dry_run=False)

    with pytest.raises(StagingError, match=r"messages\.jsonl\.gz is missing; clear and rerun 'extract'"):
        run_stage("transform", alice, staging, Services.for_grant(alice))
    again = run_window(alice, staging, window=window(OLD))

    assert again is not None
    assert again["created"] == 0
    assert again["already_present"] == first["created"] + first["already_present"]


def test_long_deletes_log_progress(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = ObjectStoragePath(tmp_path.as_uri())
    candidates = []
    for n in range(5):
        target = root / f"f{n}"
        target.write_bytes(b"x" * 10)
        candidates.append(retention.Candidate(target.path, "alice", OLD, 10))
    ticks = iter(range(0, 1000, 11))  # every chunk takes 11 s by this clock

    with caplog.at_level(logging.INFO, logger="nylas_dataverse.pipeline.retention"):
        tally = retention.delete(root, candidates, chunk=2, clock=lambda: float(next(ticks)))

    assert (tally.files, tally.bytes) == (5, 50)
    assert not any((root / f"f{n}").exists() for n in range(5))
    assert "Deleted 2 of 5 files" in caplog.text
    assert "Deleted 4 of 5 files" in caplog.text


# --- on S3 ----------------------------------------------------------------------------------------

CONN_ID = "retention_probe"
BUCKET = "retention-probe"


@pytest.fixture(scope="module")
def s3_root() -> Iterator[tuple[ObjectStoragePath, Any, str]]:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    variable = f"AIRFLOW_CONN_{CONN_ID.upper()}"
    os.environ[variable] = json.dumps(
        {
            "conn_type": "aws",
            "login": "probe-key",
            "password": "probe-secret",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="probe-key",
        aws_secret_access_key="probe-secret",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    yield ObjectStoragePath(f"s3://{CONN_ID}@{BUCKET}/staging"), client, endpoint
    server.stop()
    os.environ.pop(variable, None)


def test_the_cleanup_works_the_same_on_s3(
    sandbox: Any, s3_root: tuple[ObjectStoragePath, Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    root, client, _ = s3_root
    staged = _stage(root, sandbox)

    _check_plan_then_delete(staged, caplog)

    keys = {
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="staging/")
        for obj in page.get("Contents", [])
    }
    old = f"staging/{staged.alice.dag_id}/{OLD.isoformat()}"
    assert not {f"{old}/{name}" for name in BODIES} & keys
    assert {f"{old}/{name}" for name in KEPT} <= keys
    assert f"staging/{staged.bob.dag_id}/{OLD.isoformat()}/messages.jsonl.gz" in keys
