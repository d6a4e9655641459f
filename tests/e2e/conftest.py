"""What the browser tests share: one `make airflow` on free ports, a headless Chromium, a logged-in page.

The local Airflow runs ``scripts/local_airflow.py`` with its own AIRFLOW_HOME, sandbox state and staging in
a temp folder (nothing in .airflow/ or .sandbox/ is touched) and is stopped with Ctrl-C's SIGINT at the end
of the session, which must stop everything it started. ``test_ui_backfill.py`` and ``test_ui_health.py``
each start their own (module-scoped, from the same helpers here): their runs and backfills must not meet
another module's.

Skipped unless ``-m e2e`` is given (``make test-e2e``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = PROJECT_ROOT / ".airflow" / "screenshots"  # git-ignored: the browser tests' step screenshots
READY_LINE = "Airflow is ready"
STARTUP_TIMEOUT_S = 420  # 20-40 s on an idle 2-core machine; much longer when it is shared


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Skipped at collection, not in a fixture: a skip inside a module-scoped fixture comes after the
    # session-scoped `local_airflow` fixture has already started a whole Airflow for nothing.
    if "e2e" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="browser test: run it with `make test-e2e` (pytest -m e2e tests/e2e)")
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(skip)


@dataclass
class LocalAirflow:
    base_url: str
    password: str
    home: Path
    staging: Path
    output: Path
    artifacts: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, condition: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Timings:
    """How long the browser tests' steps took, printed at the end (the machine is shared; no limits here)."""

    started: float = field(default_factory=time.monotonic)
    steps: dict[str, float] = field(default_factory=dict)

    def mark(self, step: str, since: float) -> None:
        self.steps[step] = round(time.monotonic() - since, 1)


TIMINGS = Timings()


def run_local_airflow(request: pytest.FixtureRequest) -> Iterator[LocalAirflow]:
    """`make airflow` on free ports in a temp folder, until the generator is closed; then Ctrl-C's SIGINT.

    The temp folder is kept (and named) when a test failed or the stop was not clean.
    """
    workdir = Path(tempfile.mkdtemp(prefix="nylas-dataverse-e2e-"))
    failures_before = request.session.testsfailed
    home, staging, output = workdir / "airflow", workdir / "staging", workdir / "local_airflow.out"
    port = _free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW_", "AIRFLOW__", "NYLAS_DATAVERSE_", "LOCAL_AIRFLOW_"))
    }
    command = [
        sys.executable,
        str(PROJECT_ROOT / "scripts" / "local_airflow.py"),
        *("--port", str(port), "--airflow-home", str(home), "--sandbox-state", str(workdir / "sandbox")),
        *("--staging", str(staging), "--free-sandbox-ports"),
    ]
    started = time.monotonic()
    with output.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"local_airflow.py exited with {process.returncode}:\n{output.read_text()}")
        return READY_LINE in output.read_text()

    try:
        wait_for("local_airflow.py to report ready", ready, STARTUP_TIMEOUT_S)
        TIMINGS.mark("make airflow ready", started)
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        yield LocalAirflow(f"http://127.0.0.1:{port}", password, home, staging, output, workdir / "artifacts")
    finally:
        stopping = time.monotonic()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # what Ctrl-C sends; the script stops what it started
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        TIMINGS.mark("stop after Ctrl-C", stopping)
        stopped_cleanly = process.returncode == 0 and "Stopped Airflow and the sandbox." in output.read_text()
        keep = not stopped_cleanly or request.session.testsfailed > failures_before
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(f"\ne2e timings (s): {TIMINGS.steps}, total {time.monotonic() - TIMINGS.started:.0f}")
            if keep:
                print(f"local_airflow.py output, Airflow logs and failure evidence kept in {workdir}")
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    assert stopped_cleanly, output.read_text()[-3000:] if output.exists() else "no output"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the API server still listens after Ctrl-C"


@pytest.fixture(scope="session")
def local_airflow(request: pytest.FixtureRequest) -> Iterator[LocalAirflow]:
    yield from run_local_airflow(request)


def _chromium() -> tuple[str, str]:
    browser = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail(
            "chromium and chromedriver are needed: run `make test-e2e`, which installs Debian's "
            "chromium and chromium-driver, or set CHROMIUM and CHROMEDRIVER to their paths"
        )
    return browser, driver


class RestApi:
    """The REST API as a second pair of eyes (what the browser did must show up here) and to clean up."""

    def __init__(self, airflow: LocalAirflow) -> None:
        self.base = f"{airflow.base_url}/api/v2"
        token = requests.post(
            f"{airflow.base_url}/auth/token",
            json={"username": "admin", "password": airflow.password},
            timeout=30,
        )
        token.raise_for_status()
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def get(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.base}{path}", headers=self.headers, params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def delete(self, path: str) -> None:
        requests.delete(f"{self.base}{path}", headers=self.headers, timeout=30)


def run_chromium() -> Iterator[WebDriver]:
    """A headless Chromium, quit when the generator is closed."""
    binary, driver_path = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    # An explicit driver path keeps Selenium Manager from trying to download one.
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def browser(local_airflow: LocalAirflow) -> Iterator[WebDriver]:
    yield from run_chromium()


@contextlib.contextmanager
def evidence_on_failure(driver: WebDriver, airflow: LocalAirflow, step: str) -> Iterator[None]:
    """A failing step leaves a screenshot and the page source in the kept temp folder."""
    try:
        yield
    except BaseException:
        airflow.artifacts.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(airflow.artifacts / f"{step}.png"))
        (airflow.artifacts / f"{step}.html").write_text(driver.page_source)
        print(f"\n{step} failed at {driver.current_url}; screenshot and page source in {airflow.artifacts}")
        raise


def visible_dialog(driver: WebDriver) -> WebElement:
    return WebDriverWait(driver, 30).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-scope=dialog][data-part=content]"))
    )


def open_add_connection_form(driver: WebDriver, hook_name: str) -> WebElement:
    """Admin > Connections > Add Connection, with the type chosen as a user does (typing its name)."""
    wait = WebDriverWait(driver, 30)
    wait.until(
        ec.element_to_be_clickable((By.XPATH, "//button[normalize-space(.)='Add Connection']"))
    ).click()
    dialog = visible_dialog(driver)
    # The dialog is visible before its combobox takes input (it animates in): typing at once was refused
    # as "element not interactable" (CI, 2026-12-05).
    type_box = wait.until(
        lambda _: _interactable(dialog.find_elements(By.CSS_SELECTOR, "input[role=combobox]"))
    )
    type_box.send_keys(hook_name)  # "Nylas", "Microsoft Dataverse"
    wait.until(
        ec.visibility_of_element_located((By.XPATH, f"//*[@role='option'][normalize-space(.)='{hook_name}']"))
    )
    type_box.send_keys(Keys.ENTER)
    wait.until(lambda _: dialog.find_elements(By.NAME, "host"))
    return dialog


def _interactable(found: list[WebElement]) -> WebElement | bool:
    return next((element for element in found if element.is_displayed() and element.is_enabled()), False)


def type_into(driver: WebDriver, locator: tuple[str, str], text: str) -> None:
    """Type into a field the React app may still be re-rendering; check that the text landed."""
    for _ in range(5):
        try:
            box = WebDriverWait(driver, 30).until(ec.element_to_be_clickable(locator))
            box.clear()
            box.send_keys(text)
            if box.get_attribute("value") == text:
                return
        except StaleElementReferenceException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"could not type into {locator}")


# Close the toasts showing (those Airflow gives a close button); how many are still open.
CLOSE_TOASTS = """
const roots = [...document.querySelectorAll('[data-scope=toast][data-part=root]')];
roots.forEach((toast) => {
  const close = toast.querySelector('[data-part=close-trigger]');
  if (close) close.click();
});
return roots
  .filter((toast) => toast.getAttribute('data-state') !== 'closed')
  .map((toast) => toast.innerText.trim());
"""


def clear_toasts(driver: WebDriver, timeout_s: float = 30) -> list[str]:
    """Put the toasts away as a user would; the texts of any still showing after `timeout_s`.

    The pointer moves to the viewport's top-left corner, far from Airflow's bottom-end toasts (one under
    the pointer never expires), and any close button is pressed. Most of Airflow 3.3's toasts have no
    close button and expire on their own, so one can outstay the wait (CI saw one last over 30 s): that
    is not a failure, since callers that read toasts ignore those shown before they started recording.
    """
    pointer = ActionBuilder(driver)
    pointer.pointer_action.move_to_location(1, 1)
    pointer.perform()
    showing: list[str] = []

    def all_gone(d: WebDriver) -> bool:
        showing[:] = d.execute_script(CLOSE_TOASTS)
        return not showing

    with contextlib.suppress(TimeoutException):
        WebDriverWait(driver, timeout_s, poll_frequency=0.3).until(all_gone)
    if showing:
        print(f"toasts still showing after {timeout_s:.0f} s, left in place: {showing}")
    return showing


def click(driver: WebDriver, button: WebElement) -> None:
    """Click as a user does: a notification in front of the button is put away first, then click again."""
    for _ in range(5):
        try:
            button.click()
            return
        except ElementClickInterceptedException:
            clear_toasts(driver, timeout_s=10)
    button.click()


def log_in(browser: WebDriver, airflow: LocalAirflow) -> WebDriver:
    """Log in as admin on the login page, as a user does; the browser on the DAG list."""
    started = time.monotonic()
    with evidence_on_failure(browser, airflow, "login"):
        browser.get(f"{airflow.base_url}/")
        wait = WebDriverWait(browser, 60)
        type_into(browser, (By.NAME, "username"), "admin")
        type_into(browser, (By.NAME, "password"), airflow.password)
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[type=submit]"))).click()
        wait.until(lambda d: "/auth/login" not in d.current_url)
        wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid=nav-dags-link]")))
    TIMINGS.mark("login", started)
    return browser


@pytest.fixture(scope="session")
def logged_in(browser: WebDriver, local_airflow: LocalAirflow) -> WebDriver:
    return log_in(browser, local_airflow)
