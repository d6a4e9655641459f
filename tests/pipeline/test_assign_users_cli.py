"""``nylas-dataverse assign-users``: spreads the grants file's mailboxes over application users."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk import ObjectStoragePath

from nylas_dataverse.cli import main
from nylas_dataverse.pipeline.run import run_window
from nylas_dataverse.pipeline.staging import RunStaging

from .conftest import DAY, grants, window


def _grants_file(tmp_path: Path, keys: list[str], monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "grants.yaml"
    entries = [{"key": key, "grant_id": f"g-{key}", "start_date": "2026-11-02"} for key in keys]
    entries.append({"key": "off", "grant_id": "g-off", "start_date": "2026-11-02", "enabled": False})
    path.write_text(yaml.safe_dump({"grants": entries}))
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(path))
    return path


def _assigned(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split(": ", 1) for line in lines)


def test_by_count_every_user_gets_the_same_number_of_mailboxes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _grants_file(tmp_path, [f"m{n}" for n in range(6)], monkeypatch)

    code = main(
        ["assign-users", "--user", "dataverse_default", "--user", "dataverse_app_2", "--user", "app3"]
    )

    out = capsys.readouterr().out
    assert code == 0
    chosen = _assigned(out)
    assert set(chosen) == {f"m{n}" for n in range(6)}  # the disabled grant is left out
    assert sorted(
        list(chosen.values()).count(user) for user in ("dataverse_default", "dataverse_app_2", "app3")
    ) == [
        2,
        2,
        2,
    ]
    assert "airflow pools set dataverse_api 2 " in out
    assert "airflow pools set dataverse_api__dataverse_app_2 2 " in out


def test_naming_a_user_twice_is_a_clear_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _grants_file(tmp_path, ["alice"], monkeypatch)
    assert main(["assign-users", "--user", "a", "--user", "a"]) == 1
    assert "FAIL each Dataverse connection may be named once" in capsys.readouterr().out


def test_by_volume_reads_each_grants_daily_creates_from_the_health_summaries(
    sandbox: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    morning_after: Any,
) -> None:
    morning_after(DAY)  # the history is the summaries' recent days, counted back from today
    root = ObjectStoragePath(tmp_path.as_uri()) / "staging"
    monkeypatch.setenv("NYLAS_DATAVERSE_STAGING", str(root))
    config = sandbox.grants_config()
    (tmp_path / "grants.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(tmp_path / "grants.yaml"))
    alice = grants(sandbox)["alice"]
    counts = run_window(alice, RunStaging(root, alice.dag_id, DAY.isoformat()), window=window(DAY))
    assert counts is not None
    assert counts["created"] > 0

    code = main(
        ["assign-users", "--by", "volume", "--user", "dataverse_default", "--user", "dataverse_app_2"]
    )

    out = capsys.readouterr().out
    assert code == 0
    chosen = _assigned(out)
    others = sorted(key for key in chosen if key != "alice")
    assert others
    # alice's history is the only one; the others count as its median, alice goes first, to the first user.
    assert chosen["alice"] == "dataverse_default"
    assert f"no history, counted as the median: {', '.join(others)}" in out
