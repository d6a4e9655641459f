"""Alerts from the grants file: the ``alerts`` section, its checks, and real DAG runs that send them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.config import AlertsConfig, NotifierConfig, parse_config
from nylas_dataverse.core.health import GrantStatus, grant_status
from nylas_dataverse.pipeline.alerts import check_alerts
from nylas_dataverse.pipeline.summary import SummaryStore

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOTIFIERS = Path(__file__).resolve().parent / "support"
RECORDING = "recording_notifier.RecordingNotifier"

GRANTS = """
grants:
  - {key: alice, grant_id: g-1, start_date: 2026-11-02}
"""


def _parse(alerts: str) -> Any:
    return parse_config(GRANTS + alerts, "grants.yaml")


# --- the section ------------------------------------------------------------------------------------------


def test_an_alerts_section_names_notifiers_by_class_path_with_their_arguments() -> None:
    result = _parse(
        """
alerts:
  on_failure:
    - notifier: airflow.providers.smtp.notifications.smtp.SmtpNotifier
      kwargs: {to: data-platform@contoso.example, from_email: airflow@contoso.example}
  grant_expired:
    - notifier: recording_notifier.RecordingNotifier
"""
    )

    assert not result.errors
    assert result.alerts == AlertsConfig(
        on_failure=(
            NotifierConfig(
                "airflow.providers.smtp.notifications.smtp.SmtpNotifier",
                {"to": "data-platform@contoso.example", "from_email": "airflow@contoso.example"},
            ),
        ),
        grant_expired=(NotifierConfig(RECORDING, {}),),
    )
    assert [g.key for g in result.grants] == ["alice"]


def test_no_alerts_section_means_no_notifiers() -> None:
    result = _parse("")
    assert not result.errors
    assert not result.alerts.configured


@pytest.mark.parametrize(
    ("alerts", "key", "says"),
    [
        ("alerts: [x]", "alerts", "must be a mapping"),
        ("alerts: {on_falure: []}", "alerts.on_falure", "did you mean 'alerts.on_failure'"),
        ("alerts: {on_failure: {notifier: x.Y}}", "alerts.on_failure", "must be a list"),
        ("alerts: {on_failure: [{notifier: SmtpNotifier}]}", "alerts.on_failure[0].notifier", "class path"),
        ("alerts: {on_failure: [{notifier: a.B, kwargs: [1]}]}", "alerts.on_failure[0].kwargs", "mapping"),
        ("alerts: {on_failure: [{notifier: a.B, args: {}}]}", "alerts.on_failure[0].args", "unknown key"),
    ],
)
def test_a_bad_alerts_section_is_one_error_for_the_whole_file(alerts: str, key: str, says: str) -> None:
    result = _parse(alerts)

    [error] = result.errors
    assert error.key == key
    assert says in error.message
    assert result.grants == ()  # like a bad defaults section: nothing half-configured runs


def test_the_config_check_names_notifiers_that_cannot_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(NOTIFIERS))
    alerts = AlertsConfig(
        on_failure=(
            NotifierConfig("no_such_module.Notifier"),
            NotifierConfig("recording_notifier.NotANotifier", {"path": "x"}),
            NotifierConfig(RECORDING, {"path": "x", "recipient": "typo"}),
            NotifierConfig("airflow.providers.smtp.notifications.smtp.SmtpNotifier", {"to": "a@b.example"}),
            NotifierConfig(RECORDING, {"path": "x"}),
        )
    )

    problems = [error.message for error in check_alerts(alerts, "grants.yaml")]

    assert len(problems) == 3
    assert "cannot be imported" in problems[0]
    assert "is not an Airflow notifier" in problems[1]
    assert "recipient" in problems[2]


# --- real runs ------------------------------------------------------------------------------------------


def _grants_file(tmp_path: Path, sandbox: Any, record: Path, **grant_overrides: Any) -> Path:
    config = sandbox.grants_config()
    for grant in config["grants"]:
        grant.update(grant_overrides)
    config["alerts"] = {
        "on_failure": [{"notifier": RECORDING, "kwargs": {"path": str(record), "tag": "on_failure"}}],
        "grant_expired": [
            {
                "notifier": RECORDING,
                "kwargs": {
                    "path": str(record),
                    "tag": "grant_expired",
                    "subject": "{{ nylas.grant }} expired on {{ nylas.day }}",
                },
            }
        ],
    }
    path = tmp_path / "grants.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _calls(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def _dag(dag_id: str) -> Any:
    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


@pytest.mark.airflow
def test_a_run_of_an_expired_grant_sends_the_grant_expired_notifier_naming_grant_day_and_reason(
    airflow_db: Path, sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, morning_after: Any
) -> None:
    morning_after(dt.date(2026, 11, 3))  # the scheduled run's hour: the summary keeps recent days only
    monkeypatch.syspath_prepend(str(NOTIFIERS))
    record = tmp_path / "calls.jsonl"
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(_grants_file(tmp_path, sandbox, record)))
    monkeypatch.setenv("NYLAS_DATAVERSE_STAGING", (tmp_path / "staging").as_uri())
    sandbox.nylas.set_faults({"expired_grants": ["alice"]})
    dag = _dag("nylas_to_dataverse__alice")

    run = dag.test(logical_date=dt.datetime(2026, 11, 3, tzinfo=dt.UTC))

    assert run.state == "failed"
    [call] = _calls(record)
    assert call["tag"] == "grant_expired"  # instead of on_failure, not as well
    assert call["subject"] == "alice expired on 2026-11-03"  # the grants file's template, rendered
    assert call["text"].startswith("ALERT grant_expired: grant alice (alice@contoso.example) for 2026-11-03")
    assert "re-authenticate" in call["text"]
    details = call["nylas"]
    assert (details["grant"], details["day"], details["kind"]) == ("alice", "2026-11-03", "grant_expired")
    assert details["task_id"] == "extract"
    # The same failure, on the health page: the day failed and the grant shows as expired.
    summary = SummaryStore(ObjectStoragePath((tmp_path / "staging").as_uri())).read_summary("alice")
    assert summary is not None
    assert summary.daily_by_day()[dt.date(2026, 11, 3)].failure_kind == "grant_expired"
    assert grant_status(summary, None)[0] is GrantStatus.EXPIRED


@pytest.mark.airflow
def test_any_other_failure_sends_the_on_failure_notifier_once_when_the_task_gives_up(
    airflow_db: Path, sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(NOTIFIERS))
    record = tmp_path / "calls.jsonl"
    grants = _grants_file(tmp_path, sandbox, record, dataverse_conn_id="dataverse_missing")
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(grants))
    monkeypatch.setenv("NYLAS_DATAVERSE_STAGING", (tmp_path / "staging").as_uri())
    dag = _dag("nylas_to_dataverse__bob")

    run = dag.test(logical_date=dt.datetime(2026, 11, 4, tzinfo=dt.UTC))

    assert run.state == "failed"
    [call] = _calls(record)
    assert call["tag"] == "on_failure"
    details = call["nylas"]
    assert (details["grant"], details["day"], details["kind"]) == ("bob", "2026-11-04", "config")
    assert "dataverse_missing" in details["reason"]
    assert details["task_id"] == "transform"
    assert call["subject"] == "Nylas to Dataverse: config for grant bob on 2026-11-04"  # filled in
