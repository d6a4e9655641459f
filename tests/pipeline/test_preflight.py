"""The privilege check before a load, and `nylas-dataverse doctor`, against the sandbox's security model."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from nylas_dataverse.cli import doctor, main
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.errors import DataversePermissionError
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.preflight import ensure_privileges
from nylas_dataverse_sandbox import personas

from .conftest import Runner, grants


def _created_emails(sandbox: Any) -> int:
    return len(sandbox.dataverse.emails_with_parties())


def test_a_missing_privilege_fails_the_load_once_before_any_email_and_names_what_to_grant(
    sandbox: Any, runner: Runner
) -> None:
    alice = grants(sandbox)["alice"]
    runner.extract(alice)
    runner.transform(alice)
    sandbox.dataverse.set_behaviour(missing_privileges=("prvAppendToContact", "prvAssignActivity"))

    with pytest.raises(DataversePermissionError) as caught:
        runner.load(alice)

    text = str(caught.value)
    assert "prvAppendToContact: to bind contacts as parties and as regarding" in text
    assert "prvAssignActivity" in text
    assert "Edit security roles" in text
    assert caught.value.kind == "permissions"
    assert caught.value.retryable is False
    assert _created_emails(sandbox) == 0
    assert not runner.staging(alice).file(layout.load_part(0)).exists()


def test_a_passing_check_is_kept_for_an_hour_so_later_loads_do_not_ask_again(
    sandbox: Any, runner: Runner
) -> None:
    alice = grants(sandbox)["alice"]
    now = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
    hook = DataverseHook(alice.dataverse_conn_id)

    ensure_privileges(alice, hook, runner.root, now=now)
    first = hook.request_count
    ensure_privileges(alice, hook, runner.root, now=now + dt.timedelta(minutes=59))
    kept = hook.request_count
    ensure_privileges(alice, hook, runner.root, now=now + dt.timedelta(minutes=61))

    assert first == 2  # WhoAmI and RetrieveUserPrivileges
    assert kept == first
    assert hook.request_count == first + 2
    assert len(list((runner.root / layout.PREFLIGHT_DIR).iterdir())) == 1


def test_a_failing_check_is_not_kept(sandbox: Any, runner: Runner) -> None:
    alice = grants(sandbox)["alice"]
    sandbox.dataverse.set_behaviour(missing_privileges=("prvCreateActivity",))
    with pytest.raises(DataversePermissionError, match="prvCreateActivity"):
        ensure_privileges(alice, DataverseHook(alice.dataverse_conn_id), runner.root)
    sandbox.dataverse.set_behaviour(missing_privileges=())
    ensure_privileges(alice, DataverseHook(alice.dataverse_conn_id), runner.root)  # the fixed role counts


def test_doctor_passes_for_the_sandbox_and_names_a_missing_privilege(sandbox: Any) -> None:
    config = list(grants(sandbox).values())
    out = io.StringIO()
    assert doctor(config, out) == 0
    assert f"All {len(config) + 1} checks passed." in out.getvalue()
    assert out.getvalue().count("ok  ") == len(config) + 1  # one Nylas line per grant, one per app user

    sandbox.dataverse.set_behaviour(missing_privileges=("prvReadLead",))
    out = io.StringIO()
    assert doctor(config, out) == 1
    assert "prvReadLead: to resolve addresses of leads" in out.getvalue()


def test_doctor_tells_an_expired_grant_from_a_missing_connection(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dave = personas.grant_by_key("dave")
    config = sandbox.grants_config()
    config["grants"].append({"key": "dave", "grant_id": dave.grant_id, "start_date": "2026-11-02"})
    config["grants"].append(
        {"key": "erin", "grant_id": "g-erin", "start_date": "2026-11-02", "nylas_conn_id": "nylas_typo"}
    )
    grants_file = tmp_path / "grants.yaml"
    grants_file.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(grants_file))

    assert main(["doctor"]) == 1

    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if "nylas " in line}
    assert lines["alice"].startswith("ok")
    assert "grant_expired" in lines["dave"]
    assert "re-authenticate" in lines["dave"]
    assert "config" in lines["erin"]
    assert "nylas_typo" in lines["erin"]
