"""The local Airflow of `make airflow`, driven by a real headless Chromium, as a user would.

Starts ``scripts/local_airflow.py`` on free ports with its own AIRFLOW_HOME, sandbox state and staging
(nothing in .airflow/ or .sandbox/ is touched), logs in, finds one DAG per sandbox grant, opens the Nylas
connection form, and backfills two days from the trigger dialog; the backfill's runs must succeed
against the sandbox. Screenshots and page sources of a failing step go to the temp dir printed.

Run with ``make test-e2e`` (installs Debian's chromium and chromium-driver when missing). Skipped by a
plain ``pytest`` run unless ``-m e2e`` is given: it takes about a minute and a half.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from nylas_dataverse.provider_info import PROVIDER_INFO
from nylas_dataverse_sandbox import personas

from .conftest import (
    TIMINGS,
    LocalAirflow,
    RestApi,
    click,
    evidence_on_failure,
    log_in,
    open_add_connection_form,
    run_chromium,
    run_local_airflow,
    visible_dialog,
    wait_for,
)

pytestmark = pytest.mark.e2e

BACKFILL_TIMEOUT_S = 300
# Nov 3 and Nov 4 hold sandbox mail (the sandbox's mailboxes span Nov 2-8, 2026).
BACKFILL_FROM = ("2026/11/03", "2026-11-03")
BACKFILL_TO = ("2026/11/04", "2026-11-04")
BACKFILL_DAG = "nylas_to_dataverse__alice"
SQLITE_LOCKED = "Database is locked"


# This module's own Airflow, browser and login (module-scoped): its backfills must meet no other module's.
@pytest.fixture(scope="module")
def local_airflow(request: pytest.FixtureRequest) -> Iterator[LocalAirflow]:
    yield from run_local_airflow(request)


@pytest.fixture(scope="module")
def browser(local_airflow: LocalAirflow) -> Iterator[WebDriver]:
    yield from run_chromium()


@pytest.fixture(scope="module")
def logged_in(browser: WebDriver, local_airflow: LocalAirflow) -> WebDriver:
    return log_in(browser, local_airflow)


def test_wrong_password_is_refused(local_airflow: LocalAirflow) -> None:
    response = requests.post(
        f"{local_airflow.base_url}/auth/token", json={"username": "admin", "password": "not-it"}, timeout=30
    )
    assert response.status_code == 401


def test_one_dag_per_sandbox_grant_is_listed(logged_in: WebDriver, local_airflow: LocalAirflow) -> None:
    expected = {f"nylas_to_dataverse__{grant.key}" for grant in personas.GRANTS if grant.in_grants_file}
    with evidence_on_failure(logged_in, local_airflow, "dag-list"):
        logged_in.get(f"{local_airflow.base_url}/dags")

        def listed() -> set[str]:
            links = logged_in.find_elements(By.CSS_SELECTOR, "a[href*='/dags/nylas_to_dataverse__']")
            return {link.get_attribute("href").rstrip("/").rsplit("/", 1)[-1] for link in links}

        found = WebDriverWait(logged_in, 30).until(lambda _: expected <= listed() and listed())
    assert expected <= found
    assert len(expected) >= 2


def _labels(dialog: WebElement) -> set[str]:
    """Field labels as shown, without the asterisk that marks a required field."""
    return {label.text.removesuffix("*").strip() for label in dialog.find_elements(By.TAG_NAME, "label")}


@pytest.mark.parametrize("conn_type", ["nylas", "dataverse"])
def test_connection_form_has_the_providers_fields(
    conn_type: str, logged_in: WebDriver, local_airflow: LocalAirflow
) -> None:
    declared = next(t for t in PROVIDER_INFO["connection-types"] if t["connection-type"] == conn_type)
    behaviour = declared["ui-field-behaviour"]
    extra_labels = {spec["label"] for spec in declared["conn-fields"].values()}
    with evidence_on_failure(logged_in, local_airflow, f"{conn_type}-connection-form"):
        logged_in.get(f"{local_airflow.base_url}/connections")
        dialog = open_add_connection_form(logged_in, declared["hook-name"])
        wait = WebDriverWait(logged_in, 30)

        assert set(behaviour["relabeling"].values()) <= _labels(dialog)  # e.g. "API base URL", "API key"
        host = dialog.find_element(By.NAME, "host")
        assert host.get_attribute("placeholder") == behaviour["placeholders"]["host"]
        assert dialog.find_element(By.NAME, "password").get_attribute("type") == "password"
        for hidden in behaviour["hidden-fields"]:
            assert not dialog.find_elements(By.NAME, hidden), f"{hidden} should be hidden on this form"

        dialog.find_element(By.XPATH, ".//button[contains(normalize-space(.), 'Extra Fields')]").click()
        wait.until(lambda _: extra_labels <= _labels(dialog))
        dialog.find_element(By.CSS_SELECTOR, "[data-part=close-trigger]").click()
        wait.until(ec.invisibility_of_element(dialog))


def _pick_datetime(driver: WebDriver, dialog: WebElement, index: int, date: str) -> None:
    dialog.find_elements(By.CSS_SELECTOR, "[data-testid=datetime-input]")[index].click()
    picker = WebDriverWait(driver, 10).until(
        lambda d: next(
            (
                p
                for p in d.find_elements(By.CSS_SELECTOR, "[data-scope=popover][data-part=content]")
                if p.is_displayed()
            ),
            None,
        )
    )
    date_input, time_input = picker.find_elements(By.TAG_NAME, "input")[:2]
    for box, value in ((date_input, date), (time_input, "00:00")):
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(value)
    time_input.send_keys(Keys.ESCAPE)
    WebDriverWait(driver, 10).until(ec.invisibility_of_element(picker))


def _idle(api: RestApi) -> bool:
    """No DAG run queued or running anywhere (the start-up runs of the active DAGs are done)."""
    busy = api.get("/dags/~/dagRuns", state=["queued", "running"], limit=1)
    return busy["total_entries"] == 0


def test_two_day_backfill_from_the_trigger_dialog_completes(
    logged_in: WebDriver, local_airflow: LocalAirflow
) -> None:
    api = RestApi(local_airflow)
    # On SQLite, Airflow 3.3.2 refuses to create a backfill while other writes are in flight (HTTP 503,
    # "Database is locked"); a user who opens the UI after start-up finds it idle, so wait for that.
    wait_for("the start-up runs to finish", lambda: _idle(api), 180, interval=2)
    started = time.monotonic()
    with evidence_on_failure(logged_in, local_airflow, "backfill-dialog"):
        logged_in.get(f"{local_airflow.base_url}/dags/{BACKFILL_DAG}")
        wait = WebDriverWait(logged_in, 30)
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid=trigger-dag-button]"))).click()
        dialog = visible_dialog(logged_in)
        dialog.find_element(By.XPATH, ".//*[normalize-space(text())='Backfill']").click()
        wait.until(lambda _: dialog.find_elements(By.CSS_SELECTOR, "[data-testid=datetime-input]"))
        _pick_datetime(logged_in, dialog, 0, BACKFILL_FROM[0])
        _pick_datetime(logged_in, dialog, 1, BACKFILL_TO[0])
        wait.until(lambda _: "2 runs will be triggered" in dialog.text)
        run_button = dialog.find_element(By.XPATH, ".//button[normalize-space(.)='Run Backfill']")

        attempts = 0
        while True:
            attempts += 1
            click(logged_in, run_button)
            try:
                outcome = WebDriverWait(logged_in, 30).until(
                    lambda d: (
                        "created"
                        if api.get("/backfills", dag_id=BACKFILL_DAG)["total_entries"]
                        else ("locked" if SQLITE_LOCKED in d.find_element(By.TAG_NAME, "body").text else None)
                    )
                )
            except TimeoutException:
                raise AssertionError("no backfill was created and the dialog showed no error") from None
            if outcome == "created" or attempts == 5:
                break
            time.sleep(2)  # Airflow removed the partial backfill; the user clicks again
    assert outcome == "created", f"backfill still refused after {attempts} clicks: {SQLITE_LOCKED}"
    TIMINGS.steps["backfill clicks"] = attempts

    backfill = api.get("/backfills", dag_id=BACKFILL_DAG)["backfills"][0]
    assert backfill["from_date"].startswith(BACKFILL_FROM[1])
    assert backfill["to_date"].startswith(BACKFILL_TO[1])

    def finished_runs() -> list[dict[str, Any]] | None:
        runs = api.get(f"/dags/{BACKFILL_DAG}/dagRuns", run_type="backfill")["dag_runs"]
        return runs if len(runs) == 2 and all(r["state"] in ("success", "failed") for r in runs) else None

    runs = wait_for("the backfill's two runs to finish", finished_runs, BACKFILL_TIMEOUT_S, interval=2)
    TIMINGS.mark("backfill click to both runs finished", started)
    states = {run["logical_date"][:10]: run["state"] for run in runs}
    assert states == {BACKFILL_FROM[1]: "success", BACKFILL_TO[1]: "success"}, states

    # The runs really went through the sandbox: each day's report counts mail extracted from the sandbox
    # Nylas and created in the sandbox Dataverse, with no failures.
    for day in (BACKFILL_FROM[1], BACKFILL_TO[1]):
        report = json.loads((local_airflow.staging / BACKFILL_DAG / day / "report.json").read_text())
        counts = report["counts"]
        assert counts["extracted"] > 0
        assert counts["created"] > 0
        assert counts["failed"] == 0


# --- the day model: what a user asks for is what gets synced, and what the UI shows ----------------------

DAY_DAG = "nylas_to_dataverse__bob"
MAKE_RUN_DAY = "2026-11-03"
UI_BACKFILL = (("2026/11/03", "2026-11-03"), ("2026/11/05", "2026-11-05"))
TRIGGER_DAY = ("2026/11/07", "2026-11-07")
SANDBOX_DAYS = [f"2026-11-0{n}" for n in range(2, 9)]


def _post(api: RestApi, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{api.base}{path}", headers=api.headers, json=body, timeout=60)


def _runs_by_day(api: RestApi, dag_id: str) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {}
    for run in api.get(f"/dags/{dag_id}/dagRuns", limit=100)["dag_runs"]:
        interval = run.get("data_interval_start") or ""
        runs.setdefault(interval[:10], []).append(run)
    return runs


def _settled(api: RestApi, dag_id: str, days: set[str]) -> dict[str, list[dict[str, Any]]] | None:
    runs = _runs_by_day(api, dag_id)
    if not days <= set(runs):
        return None
    if any(r["state"] not in ("success", "failed") for day_runs in runs.values() for r in day_runs):
        return None
    return runs


def test_every_path_syncs_the_day_it_is_identified_by(
    logged_in: WebDriver, local_airflow: LocalAirflow
) -> None:
    """make run's backfill of one day, then a UI backfill over an overlapping range, then a UI trigger of a
    day: a report exists for every day asked for, none for a day not asked for, and every run is shown under
    the day it synced."""
    api = RestApi(local_airflow)
    wait_for("the start-up runs to finish", lambda: _idle(api), 180, interval=2)

    # 1. What `make run` does: a backfill of one day through the REST API.
    made = _post(
        api,
        "/backfills",
        {
            "dag_id": DAY_DAG,
            "from_date": f"{MAKE_RUN_DAY}T00:00:00Z",
            "to_date": f"{MAKE_RUN_DAY}T00:00:00Z",
            "reprocess_behavior": "completed",
            "max_active_runs": 1,
        },
    )
    assert made.ok, made.text
    wait_for(
        "make run's day to be synced", lambda: _settled(api, DAY_DAG, {MAKE_RUN_DAY}), BACKFILL_TIMEOUT_S, 2
    )
    wait_for("idle", lambda: _idle(api), 120, interval=2)

    wait = WebDriverWait(logged_in, 30)
    with evidence_on_failure(logged_in, local_airflow, "day-model-backfill"):
        # 2. A backfill from the UI over a range that overlaps the day make run synced.
        logged_in.get(f"{local_airflow.base_url}/dags/{DAY_DAG}")
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid=trigger-dag-button]"))).click()
        dialog = visible_dialog(logged_in)
        dialog.find_element(By.XPATH, ".//*[normalize-space(text())='Backfill']").click()
        wait.until(lambda _: dialog.find_elements(By.CSS_SELECTOR, "[data-testid=datetime-input]"))
        _pick_datetime(logged_in, dialog, 0, UI_BACKFILL[0][0])
        _pick_datetime(logged_in, dialog, 1, UI_BACKFILL[1][0])
        # Missing runs only (the dialog's default): the day make run synced is not synced twice.
        wait.until(lambda _: "2 runs will be triggered" in dialog.text)
        before = api.get("/backfills", dag_id=DAY_DAG)["total_entries"]
        for _attempt in range(5):
            click(logged_in, dialog.find_element(By.XPATH, ".//button[normalize-space(.)='Run Backfill']"))
            with contextlib.suppress(AssertionError):
                wait_for(
                    "the UI backfill",
                    lambda: api.get("/backfills", dag_id=DAY_DAG)["total_entries"] > before,
                    20,
                )
                break
            time.sleep(2)
        expected = {"2026-11-03", "2026-11-04", "2026-11-05"}
        wait_for("the UI backfill's days", lambda: _settled(api, DAY_DAG, expected), BACKFILL_TIMEOUT_S, 2)
        wait_for("idle", lambda: _idle(api), 120, interval=2)

    with evidence_on_failure(logged_in, local_airflow, "day-model-trigger"):
        # 3. A manual trigger of one day from the trigger form's date picker.
        logged_in.get(f"{local_airflow.base_url}/dags/{DAY_DAG}")
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid=trigger-dag-button]"))).click()
        dialog = visible_dialog(logged_in)
        wait.until(lambda _: dialog.find_elements(By.CSS_SELECTOR, "[data-testid=datetime-input]"))
        _pick_datetime(logged_in, dialog, 0, TRIGGER_DAY[0])
        click(logged_in, dialog.find_element(By.XPATH, ".//button[normalize-space(.)='Trigger']"))
        expected.add(TRIGGER_DAY[1])
        runs = wait_for("the triggered day", lambda: _settled(api, DAY_DAG, expected), BACKFILL_TIMEOUT_S, 2)

    for day in SANDBOX_DAYS:
        report = local_airflow.staging / DAY_DAG / day / "report.json"
        if day in expected:
            assert report.exists(), f"{day} was asked for but has no report"
            counts = json.loads(report.read_text())["counts"]
            assert counts["failed"] == 0
            assert counts["extracted"] > 0
            day_runs = runs[day]
            assert all(r["state"] == "success" for r in day_runs), day_runs
            # Shown under the day it synced: the logical date is in the day and the note names it; so do
            # the ids of scheduled and manual runs (Airflow names backfill runs after the next day).
            assert all((r["logical_date"] or "")[:10] == day for r in day_runs), day_runs
            assert all(r["note"] == f"Syncs the UTC day {day}" for r in day_runs), day_runs
            assert all(day in r["dag_run_id"] for r in day_runs if r["run_type"] != "backfill"), [
                r["dag_run_id"] for r in day_runs
            ]
        else:
            assert not report.exists(), f"{day} was never asked for, yet has a report"
            assert day not in runs, f"{day} was never asked for, yet has a run: {runs.get(day)}"
    assert len(runs["2026-11-03"]) == 1  # the overlapping backfill did not run make run's day again
