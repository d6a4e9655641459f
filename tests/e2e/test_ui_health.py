"""The sync-health page in the local Airflow of `make airflow`, through a real headless Chromium.

After start-up, the sandbox gets a day of mail for alice (with addresses Dataverse does not know) and an
expired grant (carol); both are run for yesterday from the REST API, Nylas' webhook sends carol's
``grant.expired`` and a message for alice that cannot be parsed (the real-time DAG records it as failed).
The browser logs in, opens **Sync health** from the navigation, and checks that the failure, the
unresolved addresses and the expired grant are each shown; it filters, sorts and opens a grant's page.
Its screenshots go to ``.airflow/screenshots/`` (git-ignored); ``make docs-images`` runs it with
``E2E_DOC_IMAGES=1`` to refresh the ``docs/images/`` the README shows (each run's dates differ, so a plain
test run must not rewrite committed files).

The Airflow start-up, browser and helpers are those of ``conftest.py`` (imported, not copied).
Run with ``make test-e2e``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas.webhooks import WebhookSender

from . import test_ui_backfill as backfill
from .conftest import SCREENSHOTS, TIMINGS, LocalAirflow, RestApi, evidence_on_failure, wait_for
from .test_ui_backfill import _idle

# Module-scoped like the backfill test's: this module starts its own Airflow, browser and login.
local_airflow = backfill.local_airflow
browser = backfill.browser
logged_in = backfill.logged_in

pytestmark = pytest.mark.e2e

PROJECT_ROOT = Path(__file__).resolve().parents[2]
IMAGES = PROJECT_ROOT / "docs" / "images" if os.environ.get("E2E_DOC_IMAGES") == "1" else SCREENSHOTS
RUN_TIMEOUT_S = 300
YESTERDAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
BODY_MARK = "E2E-BODY-MUST-NOT-SHOW"
BROKEN_ID = "e2e-broken-1"
SENDER = "maria.garcia@fabrikam.example"


def _sandbox(airflow: LocalAirflow) -> tuple[str, Path]:
    """The sandbox Nylas URL (from make airflow's banner) and its CA."""
    match = re.search(r"Nylas (https://127\.0\.0\.1:\d+)", airflow.output.read_text())
    assert match, "make airflow did not print the sandbox's Nylas URL"
    return match.group(1), airflow.home.parent / "sandbox" / "tls" / "ca.pem"


def _webhook(airflow: LocalAirflow, notification: dict[str, Any]) -> None:
    sender = WebhookSender(personas.WEBHOOK_SECRET, retry_delays_s=(0.0,))
    body = json.dumps(notification).encode()
    answer = requests.post(
        f"{airflow.base_url}/nylas/webhook",
        data=body,
        headers={"X-Nylas-Signature": sender.sign(body), "Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def _broken_message(grant: personas.GrantPersona) -> dict[str, Any]:
    """A message.created whose message cannot be parsed (its subject is a number): recorded as failed."""
    now = int(time.time())
    message = {
        "id": BROKEN_ID,
        "grant_id": grant.grant_id,
        "object": "message",
        "thread_id": "e2e-thread",
        "subject": 42,
        "from": [{"name": "María José García", "email": SENDER}],
        "to": [{"email": grant.email}],
        "cc": [],
        "bcc": [],
        "reply_to": [],
        "date": now,
        "folders": ["INBOX"],
        "body": f"<p>{BODY_MARK}</p>",
        "snippet": BODY_MARK,
        "headers": [
            {"name": "Message-ID", "value": f"<{BROKEN_ID}@fabrikam.example>"},
            {"name": "X-Mailer", "value": "e2e"},
        ],
    }
    return {
        "specversion": "1.0",
        "type": "message.created",
        "source": "/google/emails/realtime",
        "id": "e2e-notification-1",
        "time": now,
        "webhook_delivery_attempt": 1,
        "data": {"application_id": personas.APPLICATION_ID, "object": message},
    }


def _full_page_screenshot(driver: WebDriver, path: Path) -> None:
    """The whole page, not just the window (Chromium's DevTools protocol)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": int(size["width"]), "height": int(size["height"]), "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path.write_bytes(base64.b64decode(shot["data"]))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _summary(airflow: LocalAirflow, key: str) -> dict[str, Any] | None:
    path = airflow.staging / "_summary" / f"{key}.json"
    return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture(scope="module")
def scenario(local_airflow: LocalAirflow) -> LocalAirflow:
    """A failed message, unresolved addresses and an expired grant, as the page must show them."""
    airflow = local_airflow
    api = RestApi(airflow)
    wait_for("the start-up runs to finish", lambda: _idle(api), 180, interval=2)
    started = time.monotonic()
    nylas, ca = _sandbox(airflow)
    day = YESTERDAY.isoformat()
    # A bulk day's senders are drawn from its date: 30 messages (10 threads) had no unknown sender on one
    # day in five (2026-12-03 among them), so days are added until one has.
    for _ in range(8):
        added = requests.post(
            f"{nylas}/_sandbox/bulk",
            json={"grant": "alice", "day": day, "count": 30, "describe": True},
            verify=ca,
            timeout=30,
        )
        assert added.ok, added.text
        if added.json()["data"]["counterparts"]["unknown"]:
            break
    else:
        pytest.fail(f"eight bulk days of {day} for alice had no unknown sender")
    expired = requests.post(
        f"{nylas}/_sandbox/faults", json={"expired_grants": ["carol"]}, verify=ca, timeout=30
    )
    assert expired.ok, expired.text
    for key in ("alice", "carol"):
        made = requests.post(
            f"{api.base}/dags/nylas_to_dataverse__{key}/dagRuns",
            headers=api.headers,
            json={"logical_date": f"{day}T12:00:00Z"},
            timeout=30,
        )
        assert made.ok, made.text
    sender = WebhookSender(personas.WEBHOOK_SECRET)
    _webhook(airflow, sender.grant_expired_notification("carol"))
    _webhook(airflow, _broken_message(personas.grant_by_key("alice")))

    def manual_runs_done() -> dict[str, str] | None:
        states = {}
        for key in ("alice", "carol"):
            runs = api.get(f"/dags/nylas_to_dataverse__{key}/dagRuns", run_type="manual")["dag_runs"]
            states[key] = runs[0]["state"] if runs else "none"
        return states if all(state in ("success", "failed") for state in states.values()) else None

    states = wait_for("alice's and carol's runs of yesterday", manual_runs_done, RUN_TIMEOUT_S, interval=2)
    assert states == {"alice": "success", "carol": "failed"}

    def realtime_recorded() -> bool:
        summary = _summary(airflow, "alice")
        return bool(summary and summary.get("realtime"))

    wait_for("the real-time run of alice's broken message", realtime_recorded, RUN_TIMEOUT_S, interval=2)
    TIMINGS.mark("health scenario: runs and webhooks done", started)
    return airflow


def test_the_page_needs_a_login(local_airflow: LocalAirflow) -> None:
    page = requests.get(f"{local_airflow.base_url}/nylas-health/", allow_redirects=False, timeout=30)
    assert page.status_code == 303
    assert "/auth/login" in page.headers["location"]
    for path in ("/nylas-health/api/overview", "/nylas-health/grants/alice/unresolved.csv"):
        assert requests.get(f"{local_airflow.base_url}{path}", timeout=30).status_code == 401, path


def _row(driver: WebDriver, key: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f"tr[data-grant='{key}']")


def _cell(row: Any, column: str) -> str:
    return str(row.find_element(By.CSS_SELECTOR, f"td[data-col='{column}']").text)


def test_the_overview_shows_the_failure_the_unresolved_addresses_and_the_expired_grant(
    scenario: LocalAirflow, logged_in: WebDriver
) -> None:
    driver = logged_in
    wait = WebDriverWait(driver, 30)
    with evidence_on_failure(driver, scenario, "health-overview"):
        driver.get(f"{scenario.base_url}/")
        nav = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "a[href$='/plugin/nylas-health']")))
        assert "Sync health" in nav.text
        nav.click()
        wait.until(ec.frame_to_be_available_and_switch_to_it((By.TAG_NAME, "iframe")))
        wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid=grants-table]")))

        carol = _row(driver, "carol")
        assert carol.get_attribute("data-status") == "expired"
        assert "expired or revoked" in carol.text
        # The day the test ran carol for (the strip ends with the last complete day, later after midnight).
        yesterday = carol.find_element(By.CSS_SELECTOR, f".strip .cell[title^='{YESTERDAY.isoformat()}:']")
        assert yesterday.get_attribute("title").startswith(f"{YESTERDAY.isoformat()}: run failed")
        assert "run_failed" in yesterday.get_attribute("class").split()
        alice = _row(driver, "alice")
        assert int(_cell(alice, "failed")) >= 1  # the real-time run's broken message, today
        assert int(_cell(alice, "unresolved")) >= 1  # the day of mail from unknown senders
        assert int(_cell(alice, "created")) >= 30
        latency = driver.find_element(By.CSS_SELECTOR, "[data-testid=inbox-latency]").text
        assert latency.startswith("p50"), latency
        assert BODY_MARK not in driver.page_source
        driver.switch_to.default_content()
        IMAGES.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(IMAGES / "health-overview.png"))

        # Filter as a user types (the script submits the form), then sort by a column.
        driver.switch_to.frame(driver.find_element(By.TAG_NAME, "iframe"))
        box = driver.find_element(By.CSS_SELECTOR, "[data-testid=filter-text]")
        box.send_keys("carol")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr[data-grant]")) == 1)
        assert _row(driver, "carol")
        box = driver.find_element(By.CSS_SELECTOR, "[data-testid=filter-text]")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.BACKSPACE)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr[data-grant]")) == 3)
        driver.find_element(By.LINK_TEXT, "Created").click()
        wait.until(lambda d: "sort=created" in d.current_url)
        first = driver.find_elements(By.CSS_SELECTOR, "tr[data-grant]")[0]
        assert first.get_attribute("data-grant") == "alice"  # most created first

        # A grant's page opens inside the UI; its link to the DAG leaves the iframe for Airflow's own page.
        driver.find_element(By.LINK_TEXT, "Alice (google)").click()
        wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid=failed-messages]")))
        driver.find_element(By.PARTIAL_LINK_TEXT, "DAG nylas_to_dataverse__alice").click()
        driver.switch_to.default_content()
        wait.until(lambda d: d.current_url.rstrip("/").endswith("/dags/nylas_to_dataverse__alice"))


def test_a_grants_page_shows_the_failed_message_the_addresses_and_the_runs(
    scenario: LocalAirflow, logged_in: WebDriver
) -> None:
    driver = logged_in
    wait = WebDriverWait(driver, 30)
    with evidence_on_failure(driver, scenario, "health-grant"):
        driver.get(f"{scenario.base_url}/nylas-health/grants/alice")
        failed = wait.until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid=failed-messages]"))
        )
        assert SENDER in failed.text
        assert "invalid_message" in failed.text
        assert BODY_MARK not in driver.page_source
        run_links = failed.find_elements(By.PARTIAL_LINK_TEXT, "run")
        assert run_links
        assert "/dags/nylas_to_dataverse__realtime/runs/" in run_links[0].get_attribute("href")
        unresolved = driver.find_element(By.CSS_SELECTOR, "[data-testid=unresolved]")
        assert unresolved.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert driver.find_element(By.CSS_SELECTOR, "[data-testid=outcome-chart]")
        assert driver.find_elements(By.CSS_SELECTOR, "[data-testid=records] li")
        _full_page_screenshot(driver, IMAGES / "health-grant.png")
        driver.find_element(By.CSS_SELECTOR, "[data-testid=chart-table] summary").click()
        table = driver.find_element(By.CSS_SELECTOR, "[data-testid=chart-table] table")
        assert YESTERDAY.isoformat() in table.text

        driver.get(f"{scenario.base_url}/nylas-health/grants/carol")
        reason = wait.until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid=status-reason]"))
        )
        assert "re-authenticate" in reason.text
        runs = driver.find_element(By.CSS_SELECTOR, "[data-testid=run-failures]")
        assert "grant_expired" in runs.text

    api = RestApi(scenario)
    csv_text = requests.get(
        f"{scenario.base_url}/nylas-health/grants/alice/unresolved.csv", headers=api.headers, timeout=30
    )
    assert csv_text.status_code == 200
    assert csv_text.text.splitlines()[0] == "address,messages,days,last_seen"
    assert len(csv_text.text.splitlines()) >= 2
    marker = (
        scenario.staging / "_realtime" / "grant_status" / f"{personas.grant_by_key('carol').grant_id}.json"
    )
    assert json.loads(marker.read_text())["type"] == "grant.expired"
