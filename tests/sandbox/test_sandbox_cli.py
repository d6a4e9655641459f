"""The sandbox as a user runs it: the client environment it writes and the inspection CLI."""

from __future__ import annotations

import argparse
import dataclasses
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


def test_serve_offers_a_flag_for_every_dataverse_switch(capsys: pytest.CaptureFixture[str]) -> None:
    from nylas_dataverse_sandbox.dataverse.behaviour import DataverseBehaviour, DataverseFaults

    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    out = capsys.readouterr().out

    assert done.value.code == 0
    for kind in (DataverseBehaviour, DataverseFaults):
        for field in dataclasses.fields(kind):
            assert field.name.replace("_", "-") in out, field.name
    for flag in ("--cost-profile", "--ratelimit-header-format", "--entra-validate-resource"):
        assert flag in out


def test_serve_flags_become_the_configured_behaviour_faults_and_limits() -> None:
    from nylas_dataverse_sandbox.dataverse import cli_options

    parser = argparse.ArgumentParser()
    cli_options.add_arguments(parser)
    args = parser.parse_args(
        [
            "--cost-profile",
            "plugin-heavy",
            "--ratelimit-header-format",
            "omit",
            "--batch-stop-on-failed-changeset",
            "--missing-privileges",
            "prvReadLead",
            "--missing-privileges",
            "prvAssignActivity",
            "--messageid-duplicates",
            "rejected",
            "--no-messageid-indexed",
            "--no-seed-inactive-rows",
            "--changeset-fault-match",
            "<m1@x>",
            "--changeset-fault-times",
            "3",
            "--gateway-after-apply-status",
            "0",
            "--dataverse-seed",
            "5",
        ]
    )

    behaviour, faults, limits = cli_options.from_args(args)

    assert behaviour.batch_stop_on_failed_changeset is True
    assert behaviour.missing_privileges == ("prvReadLead", "prvAssignActivity")
    assert behaviour.messageid_duplicates == "rejected"
    assert (behaviour.messageid_indexed, behaviour.seed_inactive_rows) == (False, False)
    assert behaviour.sender_party_restricted is False  # untouched switches keep their defaults
    assert (faults.changeset_fault_match, faults.changeset_fault_times) == (("<m1@x>",), 3)
    assert (faults.gateway_after_apply_status, faults.seed) == (0, 5)
    assert limits == {"cost_profile": "plugin-heavy", "ratelimit_header_format": "omit"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--missing-privileges", "prvFly"])


def test_a_sandbox_started_with_switches_serves_them_and_resets_to_them(tmp_path: Path) -> None:
    from nylas_dataverse_sandbox.dataverse.behaviour import DataverseBehaviour, DataverseFaults
    from nylas_dataverse_sandbox.entra.backend import EntraError
    from nylas_dataverse_sandbox.sandbox import Sandbox, SandboxConfig

    config = SandboxConfig(
        state_dir=tmp_path,
        nylas_port=0,
        entra_port=0,
        dataverse_port=0,
        dataverse_behaviour=DataverseBehaviour(seed_inactive_rows=False, messageid_duplicates="rejected"),
        dataverse_faults=DataverseFaults(changeset_fault_nth=2),
        entra_validate_resource=True,
    )
    sandbox = Sandbox.start(config)
    try:
        sandbox.dataverse.set_behaviour(messageid_duplicates="allowed")
        sandbox.dataverse.reset()
        form = {
            "grant_type": "client_credentials",
            "client_id": personas.CLIENT_ID,
            "client_secret": personas.CLIENT_SECRET,
        }

        assert sandbox.dataverse.behaviour.messageid_duplicates == "rejected"
        assert sandbox.dataverse.faults.changeset_fault_nth == 2
        assert not sandbox.dataverse.exists("contact", personas.stable_id("contact", "hannah"))
        sandbox.entra.issue_token(personas.TENANT_ID, {**form, "scope": f"{sandbox.dataverse_url}/.default"})
        with pytest.raises(EntraError) as refused:
            sandbox.entra.issue_token(
                personas.TENANT_ID, {**form, "scope": "https://x.crm.dynamics.com/.default"}
            )
        assert refused.value.aadsts == 500011
    finally:
        sandbox.stop()
