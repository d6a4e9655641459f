"""Grants and runs against the sandbox for the health tests."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.config import GrantConfig, parse_config
from nylas_dataverse.core.window import Window
from nylas_dataverse.pipeline.run import run_window
from nylas_dataverse.pipeline.staging import RunStaging

SEEDED_DAY = dt.date(2026, 11, 3)


def sandbox_grants(sandbox: Any, **defaults: Any) -> dict[str, GrantConfig]:
    config = sandbox.grants_config()
    config["defaults"].update(defaults)
    result = parse_config(yaml.safe_dump(config), "health test grants")
    assert not result.errors, result.errors
    return {grant.key: grant for grant in result.grants}


def run_day(root: ObjectStoragePath, grant: GrantConfig, day: dt.date = SEEDED_DAY) -> RunStaging:
    staging = RunStaging(root, grant.dag_id, day.isoformat())
    run_window(grant, staging, window=Window.for_day(day))
    return staging


def broken_message(template_message: dict[str, Any], serial: int) -> dict[str, Any]:
    """A message transform cannot parse (its subject is a number), from a real sender."""
    message = dict(template_message)
    message["id"] = f"broken-{serial}"
    message["subject"] = 42
    message["body"] = "<p>SECRET-BODY-TEXT must never reach the health page</p>"
    message["headers"] = [{"name": "Message-ID", "value": f"<broken-{serial}@fabrikam.example>"}]
    return message


def restage_with(staging: RunStaging, extra: list[dict[str, Any]]) -> None:
    """messages.jsonl.gz plus ``extra``, with extract.json updated as extract would write it."""
    manifest = json.loads(staging.file("extract.json").read_bytes())
    messages = [
        json.loads(line)
        for line in gzip.decompress(staging.file("messages.jsonl.gz").read_bytes()).splitlines()
    ]
    messages += extra
    data = gzip.compress(b"".join(json.dumps(m).encode() + b"\n" for m in messages), mtime=0)
    staging.file("messages.jsonl.gz").write_bytes(data)
    manifest["files"] = {
        "messages.jsonl.gz": {"count": len(messages), "sha256": hashlib.sha256(data).hexdigest()}
    }
    staging.write_json("extract.json", manifest)


@pytest.fixture
def staging_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ObjectStoragePath:
    root = ObjectStoragePath((tmp_path / "staging").as_uri())
    monkeypatch.setenv("NYLAS_DATAVERSE_STAGING", str(root))
    return root
