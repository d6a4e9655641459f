"""scripts/local_airflow.py (`make airflow`, `make run`, the browser tests) against a fake REST API."""

from __future__ import annotations

import argparse
import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from nylas_dataverse.core.config import REALTIME_DAG_ID

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
BASE = "http://127.0.0.1:8080"


@pytest.fixture
def local_airflow(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(SCRIPTS))
    return importlib.import_module("local_airflow")


def test_the_real_time_dag_is_unpaused_only_once_the_dag_processor_has_parsed_its_file(
    local_airflow: Any,
) -> None:
    grants = sorted(local_airflow.expected_dag_ids())
    listed = list(grants)  # the DAG processor parsed the grants' file first
    listings = 0
    unpaused: list[str] = []

    def list_dags(_request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        nonlocal listings
        listings += 1
        if listings == 2:
            listed.append(REALTIME_DAG_ID)  # ...and the real-time DAG's file a moment later
        return 200, {}, json.dumps({"dags": [{"dag_id": dag_id} for dag_id in listed]})

    def patch_dag(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        dag_id = str(request.url).rsplit("/", 1)[-1]
        if dag_id not in listed:  # what Airflow 3.3.2 answers for a DAG it has not serialized yet
            return 404, {}, json.dumps({"detail": f"Dag with id: {dag_id} was not found"})
        unpaused.append(dag_id)
        return 200, {}, json.dumps({"dag_id": dag_id, "is_paused": False})

    with responses.RequestsMock() as fake:
        fake.add_callback(responses.GET, f"{BASE}/api/v2/dags", callback=list_dags)
        fake.add_callback(responses.PATCH, re.compile(rf"{BASE}/api/v2/dags/[^/]+$"), callback=patch_dag)
        local_airflow.LocalAirflow(argparse.Namespace()).activate_dags(
            local_airflow.AirflowApi(BASE, "admin", "secret")
        )

    assert sorted(unpaused) == sorted([*grants, REALTIME_DAG_ID])
