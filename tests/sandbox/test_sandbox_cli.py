"""The sandbox as a user runs it: the client environment it writes and the inspection CLI."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.cli import main


def _exports(env_file: Path) -> dict[str, str]:
    exports = {}
    for line in env_file.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            exports[name] = shlex.split(value)[0]
    return exports


def test_connections_env_points_the_hooks_at_the_sandbox(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    exports = _exports(sandbox.config.state_dir / "connections.env")
    assert set(exports) == {
        "AIRFLOW_CONN_NYLAS_DEFAULT",
        "AIRFLOW_CONN_DATAVERSE_DEFAULT",
        "REQUESTS_CA_BUNDLE",
        "NYLAS_DATAVERSE_CONFIG",
    }
    for name, value in exports.items():
        monkeypatch.setenv(name, value)

    grant = personas.grant_by_key("alice")
    assert NylasHook().get_grant(grant.grant_id)["email"] == grant.email
    assert DataverseHook().whoami()["UserId"]
    grants_file = yaml.safe_load(Path(exports["NYLAS_DATAVERSE_CONFIG"]).read_text())
    assert [g["key"] for g in grants_file["grants"]] == ["alice", "bob", "carol"]


def test_inspect_prints_emails_with_parties_and_counters(
    sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = DataverseHook()
    hook.create(
        "emails",
        {
            "subject": "Quarterly review",
            "messageid": "<inspect-1@example.test>",
            "email_activity_parties": [{"participationtypemask": 1, "addressused": "someone@example.test"}],
        },
    )
    state_dir = str(sandbox.config.state_dir)

    assert main(["inspect", "emails", "--state-dir", state_dir]) == 0
    out = capsys.readouterr().out
    assert "1 email activities" in out
    assert "Quarterly review" in out
    assert "someone@example.test" in out

    assert main(["inspect", "emails", "--state-dir", state_dir, "--json"]) == 0
    [email] = json.loads(capsys.readouterr().out)
    assert email["messageid"] == "<inspect-1@example.test>"

    assert main(["inspect", "counters", "--state-dir", state_dir]) == 0
    assert json.loads(capsys.readouterr().out)


def test_inspect_without_state_says_how_to_create_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", "emails", "--state-dir", str(tmp_path)]) == 2
    assert "make sandbox" in capsys.readouterr().err


def test_the_nylas_connection_test_button_works_against_the_sandbox(sandbox: Any) -> None:
    ok, message = NylasHook().test_connection()
    assert ok, message
