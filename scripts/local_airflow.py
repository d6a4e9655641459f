"""`make airflow`: a full local Airflow 3.3 on 127.0.0.1 with the sandbox behind it.

Starts the sandbox (Nylas, Entra ID, Dataverse), then the Airflow API server (UI), DAG processor,
triggerer and scheduler as separate process groups, with settings for a small machine. The sandbox's
connections and the pools from airflow_settings.yaml are written through the REST API, so they show in
the UI. Ctrl-C (or SIGTERM) stops everything this script started.

Nothing listens on a public interface: the API server binds 127.0.0.1, and the scheduler and triggerer
run without their log servers, which Airflow 3.3.2 always binds to every interface (the API server reads
task logs from the shared log folder instead).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import psutil
import requests
from airflow_env import AIRFLOW_HOME, BIN, PROJECT_ROOT, airflow_environment, ensure_database

from nylas_dataverse.core.config import DAG_ID_PREFIX, REALTIME_DAG_ID
from nylas_dataverse.provider_info import PROVIDER_INFO
from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.sandbox import Sandbox, SandboxConfig

DEFAULT_PORT = 8080
PORT_ENV = "LOCAL_AIRFLOW_PORT"
USERNAME = "admin"
STARTUP_TIMEOUT_S = 240.0
STOP_GRACE_S = 30.0
STOP_ORDER = (("scheduler",), ("triggerer", "dag-processor"), ("api-server",))
# Connections the sandbox owns. Stale copies in the caller's environment (a sourced
# .sandbox/connections.env) would shadow the metadata DB, so they are removed from the components' env.
SANDBOX_CONN_IDS = ("nylas_default", "dataverse_default", "nylas_webhook")


class StartupError(RuntimeError):
    """A component died or did not become healthy; the message says which and where its log is."""


class StartupInterruptedError(RuntimeError):
    """Ctrl-C or SIGTERM arrived while starting up."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get(PORT_ENV, DEFAULT_PORT)),
        help=f"UI/API port on 127.0.0.1 (default {DEFAULT_PORT}, or ${PORT_ENV})",
    )
    parser.add_argument(
        "--airflow-home", type=Path, default=AIRFLOW_HOME, help="AIRFLOW_HOME (default .airflow)"
    )
    parser.add_argument(
        "--sandbox-state",
        type=Path,
        default=PROJECT_ROOT / ".sandbox",
        help="sandbox state (default .sandbox)",
    )
    parser.add_argument(
        "--staging",
        default=os.environ.get("NYLAS_DATAVERSE_STAGING") or (PROJECT_ROOT / ".staging").as_uri(),
        help="staging root URL or path (default .staging, or $NYLAS_DATAVERSE_STAGING)",
    )
    parser.add_argument(
        "--free-sandbox-ports",
        action="store_true",
        help="serve the sandbox on free ports instead of 9041-9043",
    )
    parser.add_argument("--parallelism", type=int, default=4, help="[core] parallelism (default 4)")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port} is not a TCP port")
    args.airflow_home = args.airflow_home.resolve()
    if "://" not in args.staging:
        args.staging = Path(args.staging).resolve().as_uri()
    return args


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sandbox(state_dir: Path, free_ports: bool) -> Sandbox:
    if not free_ports:
        try:
            return Sandbox.start(SandboxConfig(state_dir=state_dir))
        except OSError as exc:
            print(f"{exc}; is `make sandbox` running? Serving this sandbox on free ports instead.")
    return Sandbox.start(SandboxConfig(state_dir=state_dir, nylas_port=0, entra_port=0, dataverse_port=0))


def dev_settings(port: int, parallelism: int, airflow_home: Path) -> dict[str, str]:
    """Airflow settings for one developer on a 2-core machine; every component gets the same."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # New DAGs start active, as in a deployment: the real-time DAG must run for webhooks to land, and
        # the trigger dialog of a paused DAG unpauses it in the same moment it creates the backfill,
        # which on SQLite makes the backfill fail with "database is locked" (Airflow 3.3.2).
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file(airflow_home)),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        # The Test button calls the sandbox from the API server; only this user can edit connections.
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__INSTANCE_NAME": "Nylas to Dataverse (local sandbox)",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        # Its health server would bind 0.0.0.0; /api/v2/monitor/health covers the scheduler anyway.
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
    }


def password_file(airflow_home: Path) -> Path:
    return airflow_home / "simple_auth_manager_passwords.json.generated"


def ensure_password(airflow_home: Path) -> str:
    """The UI password, generated once and kept where SimpleAuthManager reads it."""
    path = password_file(airflow_home)
    passwords: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if USERNAME not in passwords:
        passwords[USERNAME] = secrets.token_urlsafe(12)
        path.unlink(missing_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(json.dumps(passwords) + "\n")
    return passwords[USERNAME]


@dataclass
class Component:
    name: str
    args: list[str]
    log_path: Path
    # The scheduler's LocalExecutor waits for running tasks on SIGTERM; signalling its whole group ends
    # them now (they report their end through the API server, which is still up). The other components
    # stop their own children and get only their main process signalled.
    whole_group_on_stop: bool = False
    process: subprocess.Popen[bytes] | None = None
    tree: dict[int, psutil.Process] = field(default_factory=dict)

    def start(self, env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} airflow {' '.join(self.args)}\n".encode())
            log.flush()
            # Its own session: Ctrl-C in the terminal reaches only this script, which then stops the
            # components in order instead of all of them racing.
            self.process = subprocess.Popen(
                [str(BIN / "airflow"), *self.args],
                env=env,
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def remember_tree(self) -> None:
        """Record descendants now, so any that left the process group can still be stopped."""
        self.tree = {pid: proc for pid, proc in self.tree.items() if proc.is_running()}
        if self.process is None or self.process.poll() is not None:
            return
        try:
            root = psutil.Process(self.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                self.tree.setdefault(proc.pid, proc)
        except psutil.NoSuchProcess:
            pass

    def terminate(self) -> None:
        if self.process is None:
            return
        if self.whole_group_on_stop:
            self.signal(signal.SIGTERM)
        else:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def signal(self, signum: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)
        for proc in self.tree.values():
            # Only strays that left the group: a second SIGTERM makes Airflow skip its graceful exit.
            # psutil checks the creation time first, so a recycled pid is never signalled.
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                if os.getpgid(proc.pid) != self.process.pid:
                    proc.send_signal(signum)

    def alive(self) -> list[int]:
        """Processes of this component still running: its group, and descendants seen earlier."""
        if self.process is None:
            return []
        self.process.poll()  # reap the direct child so it does not linger as a zombie
        procs = [proc for proc in self.tree.values() if proc.is_running()]
        for proc in psutil.process_iter():
            try:
                if os.getpgid(proc.pid) == self.process.pid:
                    procs.append(proc)
            except (ProcessLookupError, psutil.Error):
                continue
        running: set[int] = set()
        for proc in procs:
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    running.add(proc.pid)
            except psutil.NoSuchProcess:
                continue
        return sorted(running)


class AirflowApi:
    """The few REST calls this script needs, with a bearer token from SimpleAuthManager."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.username = username
        self.password = password
        self.session = requests.Session()
        self.session.trust_env = False  # 127.0.0.1 only: never through a proxy from the environment

    def health(self) -> dict[str, Any] | None:
        try:
            response = self.session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        except requests.RequestException:
            return None
        return response.json() if response.ok else None

    def login(self) -> None:
        response = self.session.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=30,
        )
        if not response.ok:
            raise StartupError(
                f"logging in to {self.base_url} as {self.username!r} failed: {response.status_code}"
            )
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def upsert(self, collection: str, entities: list[dict[str, Any]]) -> None:
        body = {"actions": [{"action": "create", "action_on_existence": "overwrite", "entities": entities}]}
        response = self.patch_idempotent(f"/api/v2/{collection}", body)
        if not response.ok:
            raise StartupError(f"writing {collection} failed: {response.status_code} {response.text[:500]}")
        errors = response.json().get("create", {}).get("errors") or []
        if errors:
            raise StartupError(f"writing {collection} failed: {errors}")

    def get(self, path: str, **params: Any) -> Any:
        response = self.session.get(f"{self.base_url}/api/v2{path}", params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.session.post(f"{self.base_url}/api/v2{path}", json=body, timeout=60)

    def patch_idempotent(self, path: str, body: dict[str, Any], *, attempts: int = 8) -> requests.Response:
        """PATCH a body that may be sent twice, retrying the 5xx a locked SQLite database answers.

        On SQLite the DAG processor and the scheduler hold the database's single write lock for a moment
        at a time; the API server answers a write that meets it with a bare 500 "Database error". Both
        callers here (unpause, overwrite-upsert) are idempotent, so a 5xx is retried with a growing pause.
        """
        for attempt in range(1, attempts + 1):
            response = self.session.patch(f"{self.base_url}{path}", json=body, timeout=30)
            if response.status_code < 500 or attempt == attempts:
                return response
            time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
        raise AssertionError("unreachable: the loop returns on its last attempt")

    def unpause(self, dag_id: str) -> None:
        response = self.patch_idempotent(f"/api/v2/dags/{dag_id}", {"is_paused": False})
        if not response.ok:
            raise StartupError(f"unpausing {dag_id} failed: {response.status_code} {response.text[:300]}")

    def dag_ids(self) -> list[str]:
        response = self.session.get(f"{self.base_url}/api/v2/dags", params={"limit": 100}, timeout=30)
        response.raise_for_status()
        return sorted(dag["dag_id"] for dag in response.json()["dags"])

    def import_error_count(self) -> int:
        response = self.session.get(f"{self.base_url}/api/v2/importErrors", timeout=30)
        response.raise_for_status()
        return int(response.json()["total_entries"])


def _declared_extras(conn_type: object) -> list[str]:
    """The extras the provider declares for a connection type: its form's Extra Fields."""
    declared: Any = PROVIDER_INFO["connection-types"]
    return next(list(entry["conn-fields"]) for entry in declared if entry["connection-type"] == conn_type)


def sandbox_connections(sandbox: Sandbox) -> list[dict[str, Any]]:
    """The sandbox's connections as REST bodies. Rewritten at every start: the sandbox's ports can change."""
    note = "Written by `make airflow` at each start from the sandbox; edits last until the next start."
    connections: list[dict[str, Any]] = []
    for conn_id, conn in (
        ("nylas_default", sandbox.nylas_connection()),
        ("dataverse_default", sandbox.dataverse_connection()),
    ):
        # Every declared extra, null when unset: Airflow 3.3.2's edit form shows only the extras a
        # connection stores, and a null one is shown empty (the hook's default applies).
        extra = {**dict.fromkeys(_declared_extras(conn["conn_type"])), **(conn.get("extra") or {})}
        connections.append(
            {
                "connection_id": conn_id,
                "conn_type": conn["conn_type"],
                "description": note,
                "host": conn.get("host"),
                # Airflow 3.3.2's Test button cannot test a stored connection without a port.
                "port": urlsplit(str(conn.get("host"))).port,
                "login": conn.get("login"),
                "password": conn.get("password"),
                "extra": json.dumps(extra),
            }
        )
    connections.append(
        {
            "connection_id": "nylas_webhook",
            "conn_type": "generic",
            "description": "Nylas webhook signing secret (password). " + note,
            "password": personas.WEBHOOK_SECRET,
        }
    )
    return connections


def pools_from_settings_bodies() -> list[dict[str, Any]]:
    from airflow_env import pools_from_settings

    return [
        {"name": name, "slots": pool["slots"], "description": pool["description"]}
        for name, pool in pools_from_settings().items()
    ]


class LocalAirflow:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stop_requested = threading.Event()
        self.signals_received = 0
        self.components: list[Component] = []
        self.sandbox: Sandbox | None = None

    # -- signals -------------------------------------------------------------------------------------
    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals_received += 1
        if self.signals_received == 1:
            print(
                f"\n{signal.Signals(signum).name} received: stopping Airflow and the sandbox...", flush=True
            )
            self.stop_requested.set()
        else:
            print("Second signal: killing the components now.", flush=True)
            for component in self.components:
                component.signal(signal.SIGKILL)

    def wait_for(self, what: str, ready: Callable[[], bool], timeout: float = STARTUP_TIMEOUT_S) -> float:
        started = time.monotonic()
        while not ready():
            for component in self.components:
                code = component.exit_code()
                if code is not None:
                    raise StartupError(
                        f"airflow {component.name} exited with code {code} while waiting for {what}; "
                        f"its log is {component.log_path}:\n{component.log_tail()}"
                    )
            if time.monotonic() - started > timeout:
                raise StartupError(f"{what} not ready after {timeout:.0f} s; logs in {self.log_dir}")
            if self.stop_requested.wait(1.0):
                raise StartupInterruptedError(what)
        return time.monotonic() - started

    @property
    def log_dir(self) -> Path:
        return self.args.airflow_home / "logs" / "local_airflow"

    def component(self, name: str, *args: str) -> Component:
        component = Component(name, list(args), self.log_dir / f"{name}.log", name == "scheduler")
        self.components.append(component)
        return component

    # -- start and stop ------------------------------------------------------------------------------
    def run(self) -> int:
        args = self.args
        if not port_is_free(args.port):
            print(
                f"Port {args.port} on 127.0.0.1 is in use (another Airflow?). "
                f"Choose another: {PORT_ENV}=8081 make airflow, or --port 8081.",
                file=sys.stderr,
            )
            return 2
        started = time.monotonic()
        try:
            api, password = self.start()
            self.print_banner(password, api, time.monotonic() - started)
            return self.supervise()
        except StartupInterruptedError:
            return 130
        except StartupError as exc:
            print(f"\n{exc}", file=sys.stderr)
            return 1
        finally:
            self.stop()

    def start(self) -> tuple[AirflowApi, str]:
        """Start the sandbox and every component; return a logged-in API client once the DAGs are active.

        Raises StartupError (a component died or is not healthy in time) or StartupInterruptedError.
        The caller must call ``stop`` in every case.
        """
        args = self.args
        self.sandbox = start_sandbox(args.sandbox_state, args.free_sandbox_ports)
        env = self.environment(self.sandbox)
        ensure_database(env)
        if self.stop_requested.is_set():
            raise StartupInterruptedError("preparing the database")
        password = ensure_password(args.airflow_home)
        base_url = f"http://127.0.0.1:{args.port}"
        api = AirflowApi(base_url, USERNAME, password)

        print("Starting the Airflow API server, DAG processor and triggerer...", flush=True)
        self.component("api-server", "api-server", "--host", "127.0.0.1", "--port", str(args.port)).start(env)
        self.component("dag-processor", "dag-processor").start(env)
        self.component("triggerer", "triggerer", "--skip-serve-logs").start(env)
        self.wait_for("the API server", lambda: api.health() is not None)
        api.login()
        api.upsert("pools", pools_from_settings_bodies())
        api.upsert("connections", sandbox_connections(self.sandbox))
        # The scheduler starts last, so no task runs before its connections exist.
        print("Connections and pools written; starting the scheduler...", flush=True)
        self.component("scheduler", "scheduler", "--skip-serve-logs").start(env)
        self.wait_for("scheduler, triggerer and DAG processor heartbeats", lambda: all_healthy(api.health()))
        self.activate_dags(api)
        for component in self.components:
            component.remember_tree()
        write_lock(args.airflow_home, args.port)
        return api, password

    def activate_dags(self, api: AirflowApi) -> None:
        """Wait until every grant DAG and the real-time DAG is known to the API, then unpause them all.

        Active as documented, whatever an earlier `make run` or a user left: the real-time DAG must run for
        webhooks to land. The real-time DAG is in a file of its own, which the DAG processor may parse after
        the grants': waiting for the grant DAGs alone let its unpause meet a 404 (CI, 2026-12-05).
        """
        expected = expected_dag_ids() | {REALTIME_DAG_ID}
        self.wait_for("the grant and real-time DAGs", lambda: expected <= set(dag_ids(api)), timeout=120)
        for dag_id in sorted(expected):
            api.unpause(dag_id)

    def environment(self, sandbox: Sandbox) -> dict[str, str]:
        sandbox_env = {
            name: value
            for name, value in sandbox.environment().items()
            if not name.startswith("AIRFLOW_CONN_")
        }
        env = airflow_environment(
            {
                **sandbox_env,
                **dev_settings(self.args.port, self.args.parallelism, self.args.airflow_home),
                "NYLAS_DATAVERSE_STAGING": self.args.staging,
            },
            airflow_home=self.args.airflow_home,
        )
        for conn_id in SANDBOX_CONN_IDS:
            env.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)
        return env

    def supervise(self) -> int:
        """Run until a signal arrives or a component dies; a dead component takes the rest down."""
        while not self.stop_requested.wait(2.0):
            for component in self.components:
                component.remember_tree()
                code = component.exit_code()
                if code is not None:
                    print(
                        f"\nairflow {component.name} exited with code {code}; stopping the rest. "
                        f"Its log is {component.log_path}:\n{component.log_tail()}",
                        file=sys.stderr,
                    )
                    return 1
        return 0

    def stop(self) -> None:
        """Scheduler first (its running tasks report their end through the API server), API server last."""
        remove_lock(self.args.airflow_home)
        for stage in STOP_ORDER:
            self.stop_components([c for c in self.components if c.name in stage])
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None
        if self.components:
            print("Stopped Airflow and the sandbox.", flush=True)

    @staticmethod
    def stop_components(components: list[Component]) -> None:
        for component in components:
            component.remember_tree()
            component.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and any(c.alive() for c in components):
            time.sleep(0.25)
        for component in components:
            leftovers = component.alive()
            if leftovers:
                print(f"airflow {component.name} did not stop in {STOP_GRACE_S:.0f} s; killing {leftovers}")
                component.signal(signal.SIGKILL)

    def print_banner(self, password: str, api: AirflowApi, elapsed: float) -> None:
        sandbox = self.sandbox
        assert sandbox is not None
        all_dags = dag_ids(api)
        import_errors = api.import_error_count()
        print(
            f"""
Airflow is ready after {elapsed:.0f} s.

  UI:        {api.base_url}/
  Log in:    user {USERNAME}, password {password}
             (kept in {password_file(self.args.airflow_home)})
  DAGs:      {", ".join(all_dags)}
             (active; with catchup off each daily DAG runs only its latest day by itself)
  Sandbox:   Nylas {sandbox.nylas_url}, Entra ID {sandbox.entra_url}, Dataverse {sandbox.dataverse_url}
  Staging:   {self.args.staging}
  Task logs: {self.args.airflow_home / "logs"}/dag_id=<dag_id>/
  Component logs: {self.log_dir}/
{f"  Import errors: {import_errors} (see Browse > DAG import errors)" if import_errors else ""}
Backfill a date range: open a DAG, Trigger > Backfill. Walkthrough: docs/local-airflow.md
Press Ctrl-C to stop everything.""",
            flush=True,
        )


LOCK_FILE = "local_airflow.json"


def write_lock(airflow_home: Path, port: int) -> None:
    """Say that a local Airflow runs on this AIRFLOW_HOME (``make run`` then uses it instead of a second)."""
    (airflow_home / LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "port": port}))


def remove_lock(airflow_home: Path) -> None:
    (airflow_home / LOCK_FILE).unlink(missing_ok=True)


def running_instance(airflow_home: Path) -> int | None:
    """The port of the local Airflow running on ``airflow_home`` (its supervisor is alive), else None."""
    try:
        data = json.loads((airflow_home / LOCK_FILE).read_text())
        pid, port = int(data["pid"]), int(data["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return port if psutil.pid_exists(pid) else None


def expected_dag_ids() -> set[str]:
    """One daily DAG per grant in the grants file the sandbox writes."""
    return {f"{DAG_ID_PREFIX}{grant.key}" for grant in personas.GRANTS if grant.in_grants_file}


def dag_ids(api: AirflowApi) -> list[str]:
    try:
        return api.dag_ids()
    except requests.RequestException:
        return []


def all_healthy(health: dict[str, Any] | None) -> bool:
    if not health:
        return False
    return all(
        health.get(name, {}).get("status") == "healthy"
        for name in ("metadatabase", "scheduler", "triggerer", "dag_processor")
    )


def main(argv: list[str] | None = None) -> int:
    app = LocalAirflow(parse_args(argv))
    signal.signal(signal.SIGINT, app.on_signal)
    signal.signal(signal.SIGTERM, app.on_signal)
    return app.run()


if __name__ == "__main__":
    sys.exit(main())
