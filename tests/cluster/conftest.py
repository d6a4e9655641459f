"""The cluster of `make cluster`, started once for the tests in this folder and driven by its REST API.

``scripts/cluster.py`` runs with its own state folder (``.cluster-test/``, or ``$CLUSTER_TEST_STATE``)
and ``--fresh``: a new metadata database and an empty sandbox each time; PostgreSQL's data folder is
kept, so only the first run pays for ``initdb``. The S3 API is in memory, so staging starts empty too.

Run with ``make test-cluster``; a plain ``pytest`` run skips this folder unless ``-m cluster`` is given.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("CLUSTER_TEST_STATE", PROJECT_ROOT / ".cluster-test")).resolve()
READY_LINE = "The cluster is ready"
STOPPED_LINE = "Stopped the cluster."
STARTUP_TIMEOUT_S = 900.0
STOP_TIMEOUT_S = 180.0
LOCAL_STAGING = PROJECT_ROOT / ".staging"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "cluster" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="needs the local cluster: run it with `make test-cluster`")
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


def wait_until(what: str, condition: Callable[[], Any], timeout: float, interval: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Rest:
    """Airflow's REST API with a bearer token; never through a proxy."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.trust_env = False
        token = self.session.post(
            f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=30
        )
        token.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def get(self, path: str, **params: Any) -> Any:
        response = self.session.get(f"{self.base_url}/api/v2{path}", params=params, timeout=60)
        response.raise_for_status()
        return response.json()

    def send(self, method: str, path: str, body: dict[str, Any]) -> Any:
        response = self.session.request(method, f"{self.base_url}/api/v2{path}", json=body, timeout=60)
        assert response.ok, f"{method} {path}: {response.status_code} {response.text[:1000]}"
        return response.json()

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/dags/{dag_id}/dagRuns", limit=100)["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100)["task_instances"])

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        data = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
        return sorted(data["task_instances"], key=lambda ti: ti["try_number"])

    def backfill(self, dag_id: str, first_day: str, last_day: str) -> dict[str, Any]:
        body = {
            "dag_id": dag_id,
            "from_date": f"{first_day}T00:00:00Z",
            "to_date": f"{last_day}T00:00:00Z",
            "max_active_runs": 2,
            "reprocess_behavior": "none",
        }
        # The scheduler marks a finished backfill complete on its own loop, a little after its last run
        # ends; until then Airflow refuses a second backfill of the DAG with 409.
        deadline = time.monotonic() + 120
        while True:
            response = self.session.post(f"{self.base_url}/api/v2/backfills", json=body, timeout=60)
            running = response.status_code == 409 and "already a running backfill" in response.text
            if running and time.monotonic() < deadline:
                time.sleep(2)
                continue
            assert response.ok, f"POST /backfills: {response.status_code} {response.text[:1000]}"
            return dict(response.json())


class Sandbox:
    """The sandbox's admin routes and Dataverse's rows (the sandbox runs inside the cluster process)."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = urls["ca_pem"]

    def dataverse(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.session.request(
            method, f"{self.urls['dataverse_url']}/_sandbox/{path}", json=body, timeout=120
        )
        response.raise_for_status()
        return response.json()

    def nylas(self, path: str, body: dict[str, Any]) -> Any:
        response = self.session.post(f"{self.urls['nylas_url']}/_sandbox/{path}", json=body, timeout=120)
        response.raise_for_status()
        return response.json()["data"]

    def emails(self) -> list[dict[str, Any]]:
        return list(self.dataverse("GET", "emails"))

    def email_count(self) -> int:
        return int(self.dataverse("GET", "stats")["counters"].get("rows.emails", 0))


class Staging:
    """The S3 bucket, read with boto3 directly, not through the code under test."""

    def __init__(self, s3: dict[str, str]) -> None:
        import boto3

        self.bucket = s3["bucket"]
        self.prefix = s3["prefix"]
        self.client = boto3.client(
            "s3",
            endpoint_url=s3["endpoint_url"],
            aws_access_key_id=s3["access_key"],
            aws_secret_access_key=s3["secret_key"],
            region_name=s3["region"],
        )

    def keys(self, under: str = "") -> list[str]:
        prefix = f"{self.prefix}/{under}" if under else f"{self.prefix}/"
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [obj["Key"][len(self.prefix) + 1 :] for obj in page.get("Contents", [])]
        return keys

    def read(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")["Body"].read())

    def json(self, key: str) -> Any:
        return json.loads(self.read(key))

    def ledger(self, folder: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.read(f"{folder}/ledger.jsonl").splitlines() if line]

    def payload_message_ids(self, folder: str) -> list[str]:
        lines = gzip.decompress(self.read(f"{folder}/payloads.jsonl.gz")).splitlines()
        return [
            record["internet_message_id"]
            for record in map(json.loads, lines)
            if record.get("email") is not None
        ]


def local_staging_files() -> set[str]:
    if not LOCAL_STAGING.exists():
        return set()
    return {str(path.relative_to(LOCAL_STAGING)) for path in LOCAL_STAGING.rglob("*") if path.is_file()}


@dataclass
class Cluster:
    process: subprocess.Popen[bytes]
    output: Path
    state: dict[str, Any]
    rest: Rest
    sandbox: Sandbox
    staging: Staging
    local_staging_before: set[str]
    # Every process the cluster started, as psutil handles: a handle never matches a recycled pid.
    started: dict[int, psutil.Process] = field(default_factory=dict)
    # Figures the tests observed (peak concurrency, rows at the kill, ...), written to measurements.json.
    measurements: dict[str, Any] = field(default_factory=dict)

    @property
    def worker_names(self) -> list[str]:
        return sorted(self.state["workers"])

    def transcript(self) -> str:
        return self.output.read_text(errors="replace")

    def remember_descendants(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            for proc in psutil.Process(self.process.pid).children(recursive=True):
                self.started.setdefault(proc.pid, proc)

    def stop(self) -> int:
        """What Ctrl-C does; returns the exit code."""
        self.remember_descendants()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGINT)  # the second one kills what is left
                self.process.wait(timeout=60)
        return int(self.process.returncode)

    def leftovers(self) -> list[psutil.Process]:
        alive = []
        for proc in self.started.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
        return alive


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    output = STATE_DIR / "cluster.out"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW_", "AIRFLOW__", "NYLAS_DATAVERSE_", "AWS_", "REQUESTS_CA_BUNDLE"))
    }
    before = local_staging_files()
    command = [
        sys.executable,
        str(PROJECT_ROOT / "scripts" / "cluster.py"),
        *("--state-dir", str(STATE_DIR), "--port", str(_free_port()), "--fresh"),
    ]
    started = time.monotonic()
    with output.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(
                f"cluster.py exited with {process.returncode}:\n{output.read_text()[-5000:]}"
            )
        return READY_LINE in output.read_text(errors="replace")

    handle: Cluster | None = None
    try:
        wait_until("the cluster to report ready", ready, STARTUP_TIMEOUT_S)
        state = json.loads((STATE_DIR / "cluster.json").read_text())
        password = json.loads(Path(state["password_file"]).read_text())[state["username"]]
        handle = Cluster(
            process,
            output,
            state,
            Rest(state["api_url"], state["username"], password),
            Sandbox(state["sandbox"]),
            Staging(state["s3"]),
            before,
        )
        handle.remember_descendants()
        handle.measurements["startup_s"] = round(time.monotonic() - started, 1)
        print(f"\ncluster ready after {time.monotonic() - started:.0f} s (state in {STATE_DIR})")
        yield handle
    finally:
        if handle is not None:
            handle.stop()
            (STATE_DIR / "measurements.json").write_text(json.dumps(handle.measurements, indent=2) + "\n")
            for proc in handle.leftovers():  # only if the stop test failed: leave nothing behind
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
        elif process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if request.session.testsfailed:
            print(f"\ncluster transcript: {output}; component logs: {STATE_DIR / 'logs'}")
