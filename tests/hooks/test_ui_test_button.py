"""Test Connection as the Airflow 3.3.2 UI sends it, through the real API route, against the sandbox.

The UI's Test button (a connection row in Admin → Connections) posts the listed connection back to
``POST /api/v2/connections/test`` with ``port: Number(port)`` and the masked password; the route refuses
("Bad Request") when that port differs from the stored one. The browser test presses the button itself
(tests/e2e/test_ui_connections.py); this one pins the same behaviour in `make test`, in seconds.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.airflow

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture
def api(airflow_db: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """Airflow's REST API in-process, Test enabled as `make airflow` does, every request an admin."""
    monkeypatch.setenv("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    # The sandbox fixture also exports these; environment variables shadow the metadata database.
    for conn_id in ("NYLAS_DEFAULT", "DATAVERSE_DEFAULT"):
        monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id}", raising=False)
    from airflow.api_fastapi.app import create_app

    with TestClient(create_app(apps="core")) as client:
        yield client
        for conn in client.get("/api/v2/connections").json()["connections"]:
            client.delete(f"/api/v2/connections/{conn['connection_id']}")


def _make_airflow_connections(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The connection bodies `make airflow` writes for this sandbox (scripts/local_airflow.py)."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    local_airflow = importlib.import_module("local_airflow")
    bodies: list[dict[str, Any]] = local_airflow.sandbox_connections(sandbox)
    return [body for body in bodies if body["conn_type"] in ("nylas", "dataverse")]


def _press_test(client: TestClient, conn_id: str) -> tuple[int, Any]:
    """What the 3.3.2 UI sends when Test is pressed in the connection's row."""
    listed = client.get(f"/api/v2/connections/{conn_id}").json()
    body = {
        "conn_type": listed["conn_type"],
        "connection_id": listed["connection_id"],
        "description": listed["description"] or "",
        "extra": listed["extra"] or "{}",
        "host": listed["host"] or "",
        "login": listed["login"] or "",
        "password": listed["password"] or "",  # "***": the stored secret is used
        "port": listed["port"] or 0,  # Number(null) is 0 in the browser
        "schema": listed["schema"] or "",
    }
    response = client.post("/api/v2/connections/test", json=body)
    return response.status_code, response.json()


def test_test_passes_for_the_connections_make_airflow_writes(
    api: TestClient, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for body in _make_airflow_connections(sandbox, monkeypatch):
        assert api.post("/api/v2/connections", json=body).status_code == 201

    nylas = _press_test(api, "nylas_default")
    dataverse = _press_test(api, "dataverse_default")

    assert nylas == (200, {"status": True, "message": f"Connected to the Nylas API at {sandbox.nylas_url}"})
    assert dataverse[0] == 200
    assert dataverse[1]["status"] is True
    assert dataverse[1]["message"].startswith(f"Connected to {sandbox.dataverse_url} as user ")


def test_a_wrong_secret_comes_back_as_the_hooks_reason(
    api: TestClient, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for body in _make_airflow_connections(sandbox, monkeypatch):
        api.post("/api/v2/connections", json={**body, "password": "not-the-secret"})

    nylas = _press_test(api, "nylas_default")
    dataverse = _press_test(api, "dataverse_default")

    assert nylas[0] == dataverse[0] == 200
    assert nylas[1]["status"] is dataverse[1]["status"] is False
    assert "Nylas rejected the API key of this connection" in nylas[1]["message"]
    assert "Entra ID refused a token" in dataverse[1]["message"]
    assert "Invalid client secret provided" in dataverse[1]["message"]
    assert "not-the-secret" not in json.dumps([nylas, dataverse])


def test_without_a_stored_port_airflow_refuses_to_test(
    api: TestClient, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Why the form asks for the port: a connection saved with Port empty is stored with NULL, the UI then
    # sends 0, and Airflow 3.3.2 answers 400 before the hook runs (apache/airflow#73298, fixed after
    # 3.3.2). When this starts passing the Port label's "Test needs it" and the docs can go.
    [nylas] = [
        body for body in _make_airflow_connections(sandbox, monkeypatch) if body["conn_type"] == "nylas"
    ]
    api.post("/api/v2/connections", json={**nylas, "port": None})

    status, answer = _press_test(api, "nylas_default")

    assert status == 400
    assert "differs from the stored connection" in answer["detail"]


def test_a_secret_changed_to_a_wrong_one_after_a_passing_test_fails_the_next_test(
    api: TestClient, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    [dataverse] = [
        b for b in _make_airflow_connections(sandbox, monkeypatch) if b["conn_type"] == "dataverse"
    ]
    assert api.post("/api/v2/connections", json=dataverse).status_code == 201
    assert _press_test(api, "dataverse_default")[1]["status"] is True

    patched = api.patch(
        "/api/v2/connections/dataverse_default",
        params={"update_mask": ["password"]},
        json={**dataverse, "password": "not-the-secret"},
    )
    assert patched.status_code == 200

    status, answer = _press_test(api, "dataverse_default")
    assert (status, answer["status"]) == (200, False), answer
    assert "Invalid client secret provided" in answer["message"]
