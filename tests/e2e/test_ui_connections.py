"""The connection forms of `make airflow` and their Test Connection button, driven in a real Chromium.

For each connection type: the new-connection form and the sandbox connection's edit form give every field
help and flag none before anything is typed; a connection created in the form, and the sandbox's own,
pass Test Connection against the sandbox; with a wrong secret the notification carries the hook's reason.
Every step leaves a screenshot in .airflow/screenshots/ (git-ignored).

Run with ``make test-e2e``; skipped by a plain ``pytest`` run.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from nylas_dataverse.provider_info import PROVIDER_INFO
from nylas_dataverse_sandbox import personas

from .conftest import (
    SCREENSHOTS,
    RestApi,
    clear_toasts,
    click,
    evidence_on_failure,
    open_add_connection_form,
    visible_dialog,
)

if TYPE_CHECKING:
    from .conftest import LocalAirflow

pytestmark = pytest.mark.e2e

CONN_TYPES = ["nylas", "dataverse"]
TOAST_TIMEOUT_S = 120  # the API server runs the hook while the UI waits; slow on a busy machine
# What the hook says when the sandbox refuses the secret (the sandbox answers as the real services do).
REFUSED = {
    "nylas": ("Nylas rejected the API key of this connection", "check the key"),
    "dataverse": ("Entra ID refused a token", "Invalid client secret provided"),
}
# Every toast the page shows from now on, recorded as it appears: a success notification lasts only 2 s.
# Toasts already on the page when recording starts are not recorded: an earlier Test's "Successful" can
# still be showing (a toast pauses while the pointer rests on it) and must not pass for the next answer.
RECORD_TOASTS = """
const roots = () => document.querySelectorAll('[data-scope=toast][data-part=root]');
window.__staleToasts = new WeakSet(roots());
window.__toasts = [];
if (!window.__toastObserver) {
  const record = () => roots().forEach((toast) => {
    if (window.__staleToasts.has(toast)) return;
    const text = toast.innerText.trim();
    if (text && !window.__toasts.includes(text)) window.__toasts.push(text);
  });
  window.__toastObserver = new MutationObserver(record);
  window.__toastObserver.observe(document.body, {childList: true, subtree: true, characterData: true});
}
"""
# Each labelled field of the dialog as the user sees it. The Extra Fields JSON editor has no label.
READ_FIELDS = """
return [...arguments[0].querySelectorAll('[data-scope=field][data-part=root]')].flatMap((root) => {
  const label = root.querySelector('[data-part=label]');
  if (!label) return [];
  const control = root.querySelector('input:not([type=checkbox]), textarea:not([aria-hidden=true])');
  const helper = root.querySelector('[data-part=helper-text]');
  const error = root.querySelector('[data-part=error-text]');
  return [{
    label: label.innerText.replace(/\\*\\s*$/, '').trim(),
    name: control ? control.getAttribute('name') || control.id : null,
    placeholder: control ? control.getAttribute('placeholder') || '' : '',
    value: control ? control.value : '',
    helper: helper ? helper.innerText.trim() : '',
    error: error ? error.innerText.trim() : '',
    invalid: root.hasAttribute('data-invalid') || !!root.querySelector('[data-invalid], [aria-invalid=true]'),
  }];
});
"""
AIRFLOW_OWN_FIELDS = {"Connection ID", "Connection Type"}  # not the provider's to describe


def _screenshot(driver: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _type_into(driver: WebDriver, dialog: WebElement, locator: tuple[str, str], text: str) -> None:
    """Replace a field's text as a user does (select all, type) and check that it landed.

    The React form may re-render the field meanwhile, hence the retries.
    """
    for _ in range(5):
        try:
            box = WebDriverWait(driver, 30).until(
                lambda _: next(
                    (b for b in dialog.find_elements(*locator) if b.is_displayed() and b.is_enabled()), None
                )
            )
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys(Keys.DELETE)
            box.send_keys(text)
            if box.get_attribute("value") == text:
                return
        except StaleElementReferenceException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"could not type into {locator}")


def _declared(conn_type: str) -> dict[str, Any]:
    types: Any = PROVIDER_INFO["connection-types"]
    return next(entry for entry in types if entry["connection-type"] == conn_type)


def _open_connections(driver: WebDriver, airflow: LocalAirflow) -> None:
    driver.get(f"{airflow.base_url}/connections")
    WebDriverWait(driver, 60).until(
        ec.element_to_be_clickable((By.XPATH, "//button[normalize-space(.)='Add Connection']"))
    )
    driver.execute_script(RECORD_TOASTS)


def _row(driver: WebDriver, conn_id: str) -> WebElement:
    cell = f"//td[@data-testid='table-cell-connection_id'][normalize-space(.)='{conn_id}']/ancestor::tr"
    return WebDriverWait(driver, 60).until(ec.visibility_of_element_located((By.XPATH, cell)))


def _open_add_form(driver: WebDriver, conn_type: str) -> WebElement:
    return open_add_connection_form(driver, _declared(conn_type)["hook-name"])


def _open_edit_form(driver: WebDriver, conn_id: str) -> WebElement:
    _row(driver, conn_id).find_element(By.CSS_SELECTOR, "button[aria-label='Edit Connection']").click()
    dialog = visible_dialog(driver)
    WebDriverWait(driver, 30).until(lambda _: dialog.find_elements(By.NAME, "host"))
    return dialog


def _open_section(driver: WebDriver, dialog: WebElement, title: str) -> None:
    """Unfold one of the form's sections ("Standard Fields", "Extra Fields"); the other folds."""
    trigger = dialog.find_element(By.XPATH, f".//button[normalize-space(.)='{title}']")
    if trigger.get_attribute("aria-expanded") != "true":
        trigger.click()
    WebDriverWait(driver, 30).until(lambda _: trigger.get_attribute("aria-expanded") == "true")
    time.sleep(0.5)  # the unfolding animation, for the screenshot


def _look_at_the_form(
    driver: WebDriver, dialog: WebElement, conn_type: str, shot: str
) -> list[dict[str, Any]]:
    """Both sections as the user unfolds them, screenshotted; every labelled field."""
    _open_section(driver, dialog, "Standard Fields")
    _screenshot(driver, f"{shot}-standard-fields")
    _open_section(driver, dialog, "Extra Fields")
    _screenshot(driver, f"{shot}-extra-fields")
    extras = {spec["label"] for spec in _declared(conn_type)["conn-fields"].values()}
    fields: list[dict[str, Any]] = WebDriverWait(driver, 30).until(
        lambda _: (
            (fields := driver.execute_script(READ_FIELDS, dialog))
            and any(field["label"] in extras for field in fields)  # the extra fields have rendered
            and fields
        )
    )
    return fields


def _close(driver: WebDriver, dialog: WebElement) -> None:
    dialog.find_element(By.CSS_SELECTOR, "[data-part=close-trigger]").click()
    WebDriverWait(driver, 30).until(ec.invisibility_of_element(dialog))


def _save(driver: WebDriver, dialog: WebElement) -> None:
    save = dialog.find_element(By.XPATH, ".//button[normalize-space(.)='Save']")
    WebDriverWait(driver, 30).until(lambda _: save.is_enabled())
    click(driver, save)
    WebDriverWait(driver, 60).until(ec.invisibility_of_element(dialog))


def _check_every_field_helps(fields: list[dict[str, Any]], conn_type: str, *, form: str) -> None:
    """Every field the provider shows carries help, and none is flagged before the user types."""
    declared = _declared(conn_type)
    behaviour = declared["ui-field-behaviour"]
    extras = {spec["label"]: spec["description"] for spec in declared["conn-fields"].values()}
    shown = {field["label"]: field for field in fields if field["label"] not in AIRFLOW_OWN_FIELDS}

    assert [f for f in fields if f["invalid"] or f["error"]] == [], f"{form}: flagged before typing"
    assert set(behaviour["relabeling"].values()) | set(extras) == set(shown), f"{form}: fields shown"
    for label, field in shown.items():
        if label in extras:  # an extra: its help line under the field
            assert field["helper"] == extras[label], f"{form}: {label!r} shows no help line"
        else:  # a standard field: Airflow 3.3.2 gives it only a label and a placeholder
            assert "(" in label, f"{form}: {label!r} carries no hint"
            if field["name"] != "description":
                placeholder = behaviour["placeholders"][field["name"]]
                assert field["placeholder"] == placeholder, f"{form}: {label!r} has no example"


def _press_test(driver: WebDriver, conn_id: str) -> str:
    """Press Test Connection in the connection's row; the notification's text."""
    clear_toasts(driver)
    driver.execute_script(RECORD_TOASTS)
    click(driver, _row(driver, conn_id).find_element(By.CSS_SELECTOR, "button[aria-label='Test Connection']"))
    toast: str = WebDriverWait(driver, TOAST_TIMEOUT_S, poll_frequency=0.2).until(
        lambda d: next(
            (t for t in d.execute_script("return window.__toasts") if t.startswith("Test Connection")), None
        )
    )
    return toast


def _sandbox(api: RestApi) -> dict[str, Any]:
    """Where `make airflow` put the sandbox, read back from its stored connections."""
    nylas = api.get("/connections/nylas_default")
    dataverse = api.get("/connections/dataverse_default")
    return {
        "nylas": urlsplit(nylas["host"]),
        "dataverse": urlsplit(dataverse["host"]),
        "entra": json.loads(dataverse["extra"])["authority_host"],
    }


def _fill_new_connection(
    driver: WebDriver, dialog: WebElement, conn_type: str, sandbox: dict[str, Any]
) -> str:
    """A user fills in the form: the host without a port and the port in Port, as the labels ask."""
    conn_id = f"e2e_{conn_type}_from_the_form"
    url = sandbox[conn_type]
    _type_into(driver, dialog, (By.NAME, "connection_id"), conn_id)
    _open_section(driver, dialog, "Standard Fields")
    _type_into(driver, dialog, (By.NAME, "host"), f"{url.scheme}://{url.hostname}")
    _type_into(driver, dialog, (By.NAME, "port"), str(url.port))
    if conn_type == "nylas":
        _type_into(driver, dialog, (By.NAME, "password"), personas.NYLAS_API_KEY)
    else:
        _type_into(driver, dialog, (By.NAME, "login"), personas.CLIENT_ID)
        _type_into(driver, dialog, (By.NAME, "password"), personas.CLIENT_SECRET)
        _open_section(driver, dialog, "Extra Fields")
        _type_into(driver, dialog, (By.ID, "element_tenant_id"), personas.TENANT_ID)
        _type_into(driver, dialog, (By.ID, "element_authority_host"), sandbox["entra"])
    return conn_id


def _expect_success(toast: str, conn_type: str, sandbox: dict[str, Any]) -> None:
    url = sandbox[conn_type]
    where = f"{url.scheme}://{url.hostname}:{url.port}"
    expected = f"Connected to the Nylas API at {where}" if conn_type == "nylas" else f"Connected to {where}"
    assert toast.startswith("Test Connection Successful"), toast
    assert expected in toast


@pytest.mark.parametrize("conn_type", CONN_TYPES)
def test_the_sandbox_connection_opens_with_help_everywhere_and_passes_test(
    conn_type: str, logged_in: WebDriver, local_airflow: LocalAirflow
) -> None:
    driver, conn_id = logged_in, f"{conn_type}_default"
    sandbox = _sandbox(RestApi(local_airflow))
    with evidence_on_failure(driver, local_airflow, f"{conn_type}-existing"):
        _open_connections(driver, local_airflow)
        dialog = _open_edit_form(driver, conn_id)
        fields = _look_at_the_form(driver, dialog, conn_type, f"{conn_type}-1-edit-form-of-{conn_id}")
        _check_every_field_helps(fields, conn_type, form=f"edit form of {conn_id}")
        _close(driver, dialog)

        toast = _press_test(driver, conn_id)
        _screenshot(driver, f"{conn_type}-2-test-of-{conn_id}")
    _expect_success(toast, conn_type, sandbox)


@pytest.mark.parametrize("conn_type", CONN_TYPES)
def test_a_connection_made_in_the_form_passes_test_and_a_wrong_secret_is_named(
    conn_type: str, logged_in: WebDriver, local_airflow: LocalAirflow
) -> None:
    driver, api = logged_in, RestApi(local_airflow)
    sandbox = _sandbox(api)
    conn_id = None
    try:
        with evidence_on_failure(driver, local_airflow, f"{conn_type}-new"):
            _open_connections(driver, local_airflow)
            dialog = _open_add_form(driver, conn_type)
            fields = _look_at_the_form(driver, dialog, conn_type, f"{conn_type}-3-new-form")
            _check_every_field_helps(fields, conn_type, form=f"new {conn_type} form")

            conn_id = _fill_new_connection(driver, dialog, conn_type, sandbox)
            _screenshot(driver, f"{conn_type}-4-new-form-filled")
            _save(driver, dialog)
            passed = _press_test(driver, conn_id)
            _screenshot(driver, f"{conn_type}-5-test-of-the-new-connection")

            dialog = _open_edit_form(driver, conn_id)
            _open_section(driver, dialog, "Standard Fields")
            _type_into(driver, dialog, (By.NAME, "password"), "not-the-secret")
            _save(driver, dialog)
            refused = _press_test(driver, conn_id)
            time.sleep(0.3)  # let the error notification finish drawing for the screenshot
            _screenshot(driver, f"{conn_type}-6-test-with-a-wrong-secret")
    finally:
        if conn_id:
            api.delete(f"/connections/{conn_id}")

    _expect_success(passed, conn_type, sandbox)
    assert refused.startswith("Test Connection Failed"), refused
    for words in REFUSED[conn_type]:
        assert words in refused
