"""Staging and the webhook inbox on an S3 API (moto in server mode), without the cluster around them.

The task bodies run in this process against the sandbox, with the staging root an
``ObjectStoragePath("s3://<conn>@<bucket>/...")`` reached through the Amazon provider, as on the
cluster. moto records every S3 request, so a test can tell how the code used the store: object stores
have no rename (a "move" is a copy and a delete, two requests with a window between them), no
exclusive directories and no guaranteed listing order beyond keys.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.config import GrantConfig, parse_config
from nylas_dataverse.core.window import Window
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.pipeline.extract import extract_window
from nylas_dataverse.pipeline.load import load_window
from nylas_dataverse.pipeline.report import report_window
from nylas_dataverse.pipeline.run import STAGES, Services, run_stage
from nylas_dataverse.pipeline.staging import RunStaging
from nylas_dataverse.pipeline.transform import transform_window
from nylas_dataverse.realtime.inbox import Inbox
from nylas_dataverse.realtime.notifications import notification_from_envelope
from nylas_dataverse.realtime.processor import process_open_batches
from nylas_dataverse.realtime.receiver import create_app
from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas.webhooks import WebhookSender

pytestmark = pytest.mark.cluster

CONN_ID = "staging_probe"
BUCKET = "staging-probe"
DAY = dt.date(2026, 11, 3)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class S3:
    endpoint: str
    client: Any
    recording: Path

    def url(self, prefix: str) -> str:
        return f"s3://{CONN_ID}@{BUCKET}/{prefix}"

    def keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def record(self) -> None:
        import requests

        requests.post(f"{self.endpoint}/moto-api/recorder/reset-recording", timeout=10)
        requests.post(f"{self.endpoint}/moto-api/recorder/start-recording", timeout=10)

    def recorded(self) -> list[dict[str, Any]]:
        import requests

        requests.post(f"{self.endpoint}/moto-api/recorder/stop-recording", timeout=10)
        text = requests.get(f"{self.endpoint}/moto-api/recorder/download-recording", timeout=30).text
        return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    import boto3
    from moto.server import ThreadedMotoServer

    recording = tmp_path_factory.mktemp("moto") / "recording.jsonl"
    os.environ["MOTO_RECORDER_FILEPATH"] = str(recording)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
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
    yield S3(endpoint, client, recording)
    server.stop()
    os.environ.pop(f"AIRFLOW_CONN_{CONN_ID.upper()}", None)
    os.environ.pop("MOTO_RECORDER_FILEPATH", None)


def grants(sandbox: Any) -> dict[str, GrantConfig]:
    result = parse_config(yaml.safe_dump(sandbox.grants_config()), "sandbox grants")
    assert not result.errors
    return {grant.key: grant for grant in result.grants}


def window(day: dt.date) -> Window:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return Window(start, start + dt.timedelta(days=1))


def run_day(grant: GrantConfig, root: ObjectStoragePath, day: dt.date = DAY) -> dict[str, Any]:
    """extract -> transform -> load -> report, each task handed only the path string, as XCom does."""
    path = str(RunStaging(root, grant.dag_id, day.isoformat()).folder)
    services = Services.for_grant(grant)
    counts: dict[str, Any] | None = None
    for stage in STAGES:
        counts = run_stage(stage, grant, RunStaging.from_path(path), services, window=window(day))
    assert counts is not None
    return counts


def trackable_message(grant: GrantConfig) -> dict[str, Any]:
    """A seeded inbound message the capture policy tracks and no other grant has."""
    sys.path.insert(0, str(PROJECT_ROOT))
    try:
        from bench.webhook_latency import tracked_candidates
    finally:
        sys.path.remove(str(PROJECT_ROOT))
    return dict(tracked_candidates([grant])[grant.key][0].message)


def rows_per_message_id(sandbox: Any) -> Counter[str]:
    return Counter(
        str(row["messageid"]).casefold()
        for row in sandbox.dataverse.emails_with_parties()
        if row.get("messageid")
    )


def test_a_day_stages_on_s3_and_its_paths_keep_the_connection_through_xcom(
    s3: S3, sandbox: Any, tmp_path: Path
) -> None:
    grant = grants(sandbox)["alice"]
    root = ObjectStoragePath(s3.url("day"))
    folder = RunStaging(root, grant.dag_id, DAY.isoformat()).folder

    counts = run_day(grant, root)

    assert RunStaging.from_path(str(folder)).root.conn_id == CONN_ID
    keys = s3.keys(f"day/{grant.dag_id}/{DAY.isoformat()}/")
    for name in ("extract.json", "messages.jsonl.gz", "payloads.jsonl.gz", "ledger.jsonl", "report.json"):
        assert f"day/{grant.dag_id}/{DAY.isoformat()}/{name}" in keys
    assert counts["failed"] == 0
    assert counts["created"] > 0


def test_load_writes_its_resume_points_in_place_never_by_copy_or_rename(s3: S3, sandbox: Any) -> None:
    """A rename on S3 is a copy and a delete: two requests, and a window in which both objects exist."""
    grant = grants(sandbox)["bob"]
    root = ObjectStoragePath(s3.url("parts"))
    staging = RunStaging(root, grant.dag_id, DAY.isoformat())
    extract_window(grant, window(DAY), staging, NylasHook(grant.nylas_conn_id))
    transform_window(grant, staging, DataverseHook(grant.dataverse_conn_id))

    s3.record()
    load_window(grant, staging, DataverseHook(grant.dataverse_conn_id))
    requests_made = s3.recorded()

    copies = [r["url"] for r in requests_made if "x-amz-copy-source" in {k.lower() for k in r["headers"]}]
    assert copies == []
    keys = s3.keys(f"parts/{grant.dag_id}/{DAY.isoformat()}/load/")
    assert keys
    assert all(key.endswith(".json") for key in keys), keys


def test_a_damaged_resume_point_on_s3_is_redone_and_the_day_stays_exact(s3: S3, sandbox: Any) -> None:
    grant = grants(sandbox)["carol"]
    root = ObjectStoragePath(s3.url("resume"))
    run_day(grant, root)
    part = f"resume/{grant.dag_id}/{DAY.isoformat()}/load/part-000000.json"
    s3.client.put_object(Bucket=BUCKET, Key=part, Body=b'[{"nylas_id": "cut sh')

    staging = RunStaging(root, grant.dag_id, DAY.isoformat())
    load_window(grant, staging, DataverseHook(grant.dataverse_conn_id))
    counts = report_window(grant, staging)

    rows = rows_per_message_id(sandbox)
    ledger = [json.loads(line) for line in staging.file("ledger.jsonl").read_bytes().splitlines()]
    assert counts["failed"] == 0
    outcomes = ("created", "already_present", "skipped", "failed")
    assert sum(counts[outcome] for outcome in outcomes) == counts["extracted"] == len(ledger)
    assert counts["already_present"] > 0  # the redone chunk found its own rows from the first load
    for entry in ledger:
        if entry["outcome"] in ("created", "already_present"):
            assert rows[str(entry["internet_message_id"]).casefold()] == 1


def test_an_s3_inbox_loads_a_notification_once_even_when_a_move_left_two_copies(s3: S3, sandbox: Any) -> None:
    """A receiver that died between the copy and the delete of its move leaves the notification in
    ``incoming/`` as well as in ``pending/``; it is claimed twice, and still makes one row."""
    config = grants(sandbox)
    clock = [dt.datetime(2026, 11, 8, 12, tzinfo=dt.UTC).timestamp()]
    root = ObjectStoragePath(s3.url("inbox"))
    inbox = Inbox(root, clock=lambda: clock[0])
    envelope = WebhookSender(personas.WEBHOOK_SECRET).build_notification(trackable_message(config["alice"]))

    assert inbox.store(notification_from_envelope(envelope)).value == "accepted"
    pending = s3.keys("inbox/_realtime/pending/")
    assert len(pending) == 1
    name = pending[0].rsplit("/", 1)[1]
    s3.client.copy_object(
        Bucket=BUCKET,
        Key=f"inbox/_realtime/incoming/{name}",
        CopySource={"Bucket": BUCKET, "Key": pending[0]},
    )

    first = inbox.claim_batch()
    first_totals = process_open_batches(inbox, list(config.values()), root)
    clock[0] += 120  # the leftover copy is now old enough to be adopted as an orphan
    second = inbox.claim_batch()
    second_totals = process_open_batches(inbox, list(config.values()), root)

    assert first is not None
    assert second is not None
    assert first.id != second.id
    assert first_totals["batches"] == second_totals["batches"] == 1
    assert first_totals.get("created") == 1
    assert second_totals.get("already_present") == 1
    rows = rows_per_message_id(sandbox)
    assert [count for count in rows.values() if count > 1] == []
    assert s3.keys("inbox/_realtime/incoming/") == []
    assert s3.keys("inbox/_realtime/pending/") == []


def _pending_in_a_forked_child(url: str) -> int:
    return Inbox(ObjectStoragePath(url)).pending_count()


def test_loading_the_webhook_plugin_leaves_forked_children_a_usable_s3_inbox(
    s3: S3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every Airflow component imports plugins in its main process; the triggerer then forks the
    process that runs the inbox watcher. An S3 filesystem built at import is inherited by that child,
    where fsspec refuses it ("This class is not fork-safe"), and the watcher never claims a thing."""
    fork_conn = "staging_fork_probe"  # a connection no earlier test has opened in this process
    monkeypatch.setenv(f"AIRFLOW_CONN_{fork_conn.upper()}", os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"])
    url = f"s3://{fork_conn}@{BUCKET}/forked"
    monkeypatch.setenv("NYLAS_DATAVERSE_STAGING", url)

    create_app(project_root=tmp_path)  # what plugins/nylas_webhook_plugin.py does on import
    with multiprocessing.get_context("fork").Pool(1) as pool:
        pending = pool.apply(_pending_in_a_forked_child, (url,))

    assert pending == 0
