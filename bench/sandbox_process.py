"""The sandbox as a separate process, and the admin calls the benchmarks make to it over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from nylas_dataverse_sandbox import personas


class SandboxProcess:
    """``python -m bench.sandbox_server`` on free ports; admin routes wrapped as methods."""

    def __init__(
        self,
        state_dir: Path,
        *,
        time_scale: float,
        log_path: Path,
        application_users: int = 1,
        extra_grants: int = 0,
    ) -> None:
        self.state_dir = state_dir
        self.application_users = application_users
        self.extra_grants = extra_grants
        self.time_scale = time_scale
        self.log_path = log_path
        self._process: subprocess.Popen[str] | None = None
        self._log: Any = None
        self.description: dict[str, Any] = {}
        self._http = requests.Session()

    def __enter__(self) -> SandboxProcess:
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        self._log = self.log_path.open("w")
        command = [
            sys.executable,
            "-m",
            "bench.sandbox_server",
            "--state-dir",
            str(self.state_dir),
            "--time-scale",
            str(self.time_scale),
            "--application-users",
            str(self.application_users),
            "--nylas-extra-grants",
            str(self.extra_grants),
        ]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError(f"the sandbox process did not start; see {self.log_path}")
        self.description = json.loads(line)
        self._http.verify = self.description["ca_pem"]

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    # --- client side --------------------------------------------------------------------------------

    def environment(self, *, max_concurrency: int | None = None) -> dict[str, str]:
        """What a pipeline process needs; ``max_concurrency`` sets the Dataverse connections' extra."""
        env = dict(self.description["environment"])
        if max_concurrency is not None:
            for name in [name for name in env if name.startswith("AIRFLOW_CONN_DATAVERSE_")]:
                connection = json.loads(env[name])
                connection["extra"]["max_concurrency"] = max_concurrency
                env[name] = json.dumps(connection)
        return env

    @property
    def grants_config(self) -> dict[str, Any]:
        return dict(self.description["grants_config"])

    # --- admin --------------------------------------------------------------------------------------

    def _admin(self, service: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.description[service + '_url']}/_sandbox/{path}"
        # verify= on the call: requests lets REQUESTS_CA_BUNDLE (another sandbox's CA, when two run) win
        # over the session's own.
        response = self._http.request(method, url, json=body, timeout=120, verify=self._http.verify)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """Every service back to its seed (Nylas bulk days are dropped too)."""
        for service in ("nylas", "entra", "dataverse"):
            self._admin(service, "POST", "reset")

    def reset_dataverse(self) -> None:
        """Dataverse rows, counters and service-protection windows back to the seed; Nylas is kept."""
        self._admin("dataverse", "POST", "reset")

    def set_limits(self, **limits: Any) -> dict[str, Any]:
        return dict(self._admin("dataverse", "POST", "limits", limits))

    def set_dataverse_faults(self, **faults: Any) -> dict[str, Any]:
        return dict(self._admin("dataverse", "POST", "faults", faults))

    def add_bulk_day(self, grant_key: str, day: dt.date, count: int) -> None:
        self._admin("nylas", "POST", "bulk", {"grant": grant_key, "day": day.isoformat(), "count": count})

    def dataverse_stats(self) -> dict[str, Any]:
        return dict(self._admin("dataverse", "GET", "stats"))

    def dataverse_counters(self) -> dict[str, int]:
        return dict(self.dataverse_stats()["counters"])

    def entra_stats(self) -> dict[str, Any]:
        return dict(self._admin("entra", "GET", "stats"))

    def email_count(self) -> int:
        return int(self.dataverse_counters().get("rows.emails", 0))

    def wait_until_idle(self, seconds: float) -> None:
        """Let the service-protection window drain (time-scaled), so the next figure starts fresh."""
        time.sleep(seconds)


def grant_email(grant_key: str) -> str:
    return personas.grant_by_key(grant_key).email
