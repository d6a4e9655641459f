"""`make cluster`: a production-shaped Airflow 3.3 on 127.0.0.1, from Debian packages and the lock.

Starts, each as its own process group with its own log in ``<state>/logs/``:

* PostgreSQL (Debian's ``postgresql``) as the metadata database, run as the unprivileged user
  ``nd-postgres`` (created when this runs as root) on a data folder in ``<state>/postgres/``;
* Redis (Debian's ``redis-server``) as the Celery broker, with a password and no persistence;
* an S3 API (moto in server mode) holding the staging bucket, reached by every component through the
  Airflow connection ``staging_s3`` (``apache-airflow-providers-amazon``) and
  ``NYLAS_DATAVERSE_STAGING=s3://staging_s3@<bucket>/nylas``;
* the project's sandbox (Nylas, Entra ID, Dataverse) in this process, on free ports;
* the Airflow API server (UI, webhook receiver), DAG processor, triggerer and scheduler with the
  CeleryExecutor, and two Celery workers, each reporting its own host name on its task instances.

Ctrl-C (or SIGTERM) stops everything this script started, in order: scheduler, workers, triggerer and
DAG processor, API server, then the S3 API, Redis and PostgreSQL. A second Ctrl-C kills what is left.
When it is ready it prints a banner and writes ``<state>/cluster.json`` (ports, URLs, process ids, the
bucket), which ``make test-cluster`` reads. Secrets are generated once into ``<state>/credentials.json``
(mode 0600) and never printed; the UI password is in the file the banner names.

The S3 API keeps its objects in memory: staging lives as long as the cluster runs. ``--fresh`` starts
with a new metadata database, an empty sandbox and no task logs (the PostgreSQL data folder is kept).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import glob
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_env import BIN, PROJECT_ROOT, airflow_environment, ensure_database
from cluster_hostname import HOSTNAME_ENV
from local_airflow import (
    SANDBOX_CONN_IDS,
    USERNAME,
    AirflowApi,
    Component,
    LocalAirflow,
    StartupError,
    StartupInterruptedError,
    all_healthy,
    dag_ids,
    dev_settings,
    ensure_password,
    expected_dag_ids,
    password_file,
    pools_from_settings_bodies,
    port_is_free,
    sandbox_connections,
)

from nylas_dataverse_sandbox.sandbox import Sandbox, SandboxConfig

DEFAULT_STATE = PROJECT_ROOT / ".cluster"
DEFAULT_PORT = 8090
PORT_ENV = "CLUSTER_PORT"
READY_LINE = "The cluster is ready"
STOPPED_LINE = "Stopped the cluster."
PG_USER = "nd-postgres"
PG_SUPERUSER = "postgres"
AIRFLOW_DB = "airflow"
AIRFLOW_DB_USER = "airflow"
S3_CONN_ID = "staging_s3"
BUCKET = "nylas-dataverse-staging"
STAGING_PREFIX = "nylas"
# moto accepts any key pair; these are not secrets, and the connection must carry some.
S3_ACCESS_KEY = "cluster-access-key"
S3_SECRET_KEY = "cluster-secret-key"  # noqa: S105
S3_REGION = "us-east-1"
REALTIME_DAG_ID = "nylas_to_dataverse__realtime"
# A task whose worker vanished is failed (and retried) after this long without a heartbeat. Airflow's
# default is 300 s; a minute is ample for a worker on this machine and keeps the kill drill short.
HEARTBEAT_TIMEOUT_S = 60
WORKER_READY_TEXT = " ready."
STOP_ORDER = (
    ("scheduler",),
    ("worker-1", "worker-2", "worker-3", "worker-4"),
    ("triggerer", "dag-processor"),
    ("api-server",),
    ("s3", "redis"),
    ("postgres",),
)
CORE = frozenset({"postgres", "redis", "s3", "api-server", "scheduler", "dag-processor", "triggerer"})


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
        "--state-dir", type=Path, default=DEFAULT_STATE, help="state folder (default .cluster)"
    )
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (default 2, at most 4)")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="task slots per worker (default 2)")
    parser.add_argument("--parallelism", type=int, default=4, help="[core] parallelism (default 4)")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="new metadata database, empty sandbox and no task logs (PostgreSQL's data folder is kept)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port} is not a TCP port")
    if not 1 <= args.workers <= 4:
        parser.error("--workers must be between 1 and 4")
    args.state_dir = args.state_dir.resolve()
    return args


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin_dir() -> Path:
    """Debian keeps the server binaries off PATH, one folder per major version; the newest wins."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/postgres")),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).parent
    raise StartupError(
        "PostgreSQL's server is not installed: `make cluster` installs Debian's postgresql "
        "(apt-get install postgresql)."
    )


@dataclass
class Service(Component):
    """A process that is not Airflow (PostgreSQL, Redis, the S3 API), with the same logs and stopping."""

    command: list[str] = field(default_factory=list)
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    cwd: Path | None = None

    def start(self, env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command,
                env=env,
                cwd=self.cwd or PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user else None,
            )

    def terminate(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(self.stop_signal)


class Credentials:
    """Passwords for PostgreSQL and Redis, generated once per state folder, readable by root only."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            values = {
                "postgres_superuser": secrets.token_urlsafe(24),
                "postgres_airflow": secrets.token_urlsafe(24),
                "redis": secrets.token_urlsafe(24),
            }
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
                json.dump(values, out, indent=2)
        self.values: dict[str, str] = json.loads(path.read_text())

    def __getitem__(self, name: str) -> str:
        return self.values[name]


class Cluster(LocalAirflow):
    def __init__(self, args: argparse.Namespace) -> None:
        # LocalAirflow reads args.airflow_home (logs, password file) and args.port.
        args.airflow_home = args.state_dir / "airflow"
        super().__init__(args)
        self.state: Path = args.state_dir
        self.credentials = Credentials(self.state / "credentials.json")
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.s3_port = free_port()
        self.worker_names = [f"worker-{n}" for n in range(1, args.workers + 1)]
        self.reported_dead: set[str] = set()

    @property
    def log_dir(self) -> Path:
        return self.state / "logs"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def staging_url(self) -> str:
        return f"s3://{S3_CONN_ID}@{BUCKET}/{STAGING_PREFIX}"

    def service(self, name: str, command: list[str], **kwargs: Any) -> Service:
        service = Service(name, [], self.log_dir / f"{name}.log", command=command, **kwargs)
        self.components.append(service)
        return service

    # -- PostgreSQL ----------------------------------------------------------------------------------------
    def postgres_user(self) -> str | None:
        """Root may not run PostgreSQL: create (once) and use an unprivileged system user."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            print(f"Creating the system user {PG_USER} to run PostgreSQL...", flush=True)
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    PG_USER,
                ],
                check=True,
            )
        return PG_USER

    def postgres_folder(self, user: str | None) -> Path:
        """``<state>/postgres``, unless the unprivileged user cannot reach it.

        A checkout under a private folder (``mktemp -d`` makes mode 0700, as does a home directory) is
        closed to ``nd-postgres``; PostgreSQL then keeps its data in ``/var/tmp``, in a folder named after
        this state folder, so two checkouts never share a database.
        """
        folder = self.state / "postgres"
        if user is None:
            return folder
        probe = subprocess.run(
            ["/bin/sh", "-c", 'cd "$1"', "sh", str(folder.parent)],
            user=user,
            group=user,
            extra_groups=[],
            cwd="/",
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return folder
        digest = hashlib.sha256(str(self.state.resolve()).encode()).hexdigest()[:16]
        # A fixed name in a shared folder, so it is checked: a directory of root's, not a link, that only
        # root can write (this runs as root whenever there is a PostgreSQL user to switch to).
        parent = Path("/var/tmp/nylas-dataverse-postgres")  # noqa: S108
        parent.mkdir(mode=0o755, exist_ok=True)
        info = os.lstat(parent)
        if parent.is_symlink() or info.st_uid != 0 or info.st_mode & 0o022:
            raise StartupError(f"{parent} is not a folder only root can write; remove it and start again")
        outside = parent / digest
        print(f"{folder.parent} is closed to {user}; PostgreSQL keeps its data in {outside}", flush=True)
        return outside

    def start_postgres(self) -> None:
        bin_dir = postgres_bin_dir()
        user = self.postgres_user()
        self.state.mkdir(parents=True, exist_ok=True)
        folder = self.postgres_folder(user)
        data = folder / "data"
        folder.mkdir(parents=True, exist_ok=True)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        folder.chmod(0o700)
        if not (data / "PG_VERSION").exists():
            print(f"Creating the PostgreSQL cluster in {data} (first run only)...", flush=True)
            pwfile = folder / "initdb.pw"
            pwfile.write_text(self.credentials["postgres_superuser"] + "\n")
            pwfile.chmod(0o600)
            if user is not None:
                os.chown(pwfile, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
            try:
                result = subprocess.run(
                    [
                        str(bin_dir / "initdb"),
                        *("-D", str(data), "-U", PG_SUPERUSER, "-E", "UTF8", "--locale=C"),
                        *("--auth-host=scram-sha-256", "--auth-local=reject", f"--pwfile={pwfile}"),
                        "--no-sync",
                        "--no-instructions",
                    ],
                    cwd=folder,
                    user=user,
                    group=user,
                    extra_groups=[] if user else None,
                    capture_output=True,
                    text=True,
                    check=False,
                )
            finally:
                pwfile.unlink(missing_ok=True)
            if result.returncode:
                shutil.rmtree(data, ignore_errors=True)
                raise StartupError(f"initdb failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        self.service(
            "postgres",
            [
                str(bin_dir / "postgres"),
                *("-D", str(data), "-p", str(self.pg_port)),
                # TCP on loopback only; no Unix socket, so nothing else on the machine shares this server.
                *("-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="),
                *("-c", "max_connections=200", "-c", "shared_buffers=64MB"),
                # A local cluster: a machine crash may lose the last commits, never corrupt the data.
                *("-c", "synchronous_commit=off"),
                *("-c", "logging_collector=off", "-c", "log_min_messages=warning"),
            ],
            user=user,
            stop_signal=signal.SIGINT,  # "fast" shutdown: no waiting for idle clients
            cwd=folder,
        ).start(self.service_env())
        self.wait_for("PostgreSQL", lambda: self.pg_connect(PG_SUPERUSER, "postgres") is not None, 60)

    def pg_connect(self, user: str, dbname: str) -> Any:
        import psycopg2

        password = self.credentials["postgres_superuser" if user == PG_SUPERUSER else "postgres_airflow"]
        try:
            connection = psycopg2.connect(
                host="127.0.0.1",
                port=self.pg_port,
                user=user,
                password=password,
                dbname=dbname,
                connect_timeout=3,
            )
        except psycopg2.OperationalError:
            return None
        connection.close()
        return connection

    def ensure_airflow_database(self) -> None:
        import psycopg2
        from psycopg2 import sql

        connection = psycopg2.connect(
            host="127.0.0.1",
            port=self.pg_port,
            user=PG_SUPERUSER,
            password=self.credentials["postgres_superuser"],
            dbname="postgres",
            connect_timeout=5,
        )
        connection.autocommit = True
        created = False
        try:
            with connection.cursor() as cursor:
                role = sql.Identifier(AIRFLOW_DB_USER)
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (AIRFLOW_DB_USER,))
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
                cursor.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD %s").format(role), (self.credentials["postgres_airflow"],)
                )
                if self.args.fresh:
                    cursor.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(AIRFLOW_DB))
                    )
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (AIRFLOW_DB,))
                if cursor.fetchone() is None:
                    cursor.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8'").format(
                            sql.Identifier(AIRFLOW_DB), role
                        )
                    )
                    created = True
        finally:
            connection.close()
        if created:
            # airflow_env.ensure_database skips migrating when its stamp exists; a new database needs it.
            for stamp in self.args.airflow_home.glob(".ready-*"):
                stamp.unlink()

    @property
    def sql_alchemy_conn(self) -> str:
        password = self.credentials["postgres_airflow"]
        return f"postgresql+psycopg2://{AIRFLOW_DB_USER}:{password}@127.0.0.1:{self.pg_port}/{AIRFLOW_DB}"

    # -- Redis and the S3 API --------------------------------------------------------------------------------
    def start_redis(self) -> None:
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise StartupError(
                "redis-server is not installed: `make cluster` installs Debian's redis-server."
            )
        folder = self.state / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "# Written by scripts/cluster.py at each start.",
                    "bind 127.0.0.1",
                    f"port {self.redis_port}",
                    "protected-mode yes",
                    "daemonize no",
                    f"requirepass {self.credentials['redis']}",
                    'save ""',
                    "appendonly no",
                    f"dir {folder}",
                    'logfile ""',
                    "",
                ]
            )
        )
        config.chmod(0o600)
        self.service("redis", [redis_server, str(config)]).start(self.service_env())
        self.wait_for("Redis", self.redis_ready, 30)

    def redis_ready(self) -> bool:
        import redis

        client = redis.Redis(
            host="127.0.0.1", port=self.redis_port, password=self.credentials["redis"], socket_timeout=2
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start_s3(self) -> None:
        self.service("s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.s3_port)]).start(
            self.service_env()
        )
        self.wait_for("the S3 API", self.create_bucket, 60)

    def s3_client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
            region_name=S3_REGION,
        )

    def create_bucket(self) -> bool:
        import botocore.exceptions

        try:
            self.s3_client().create_bucket(Bucket=BUCKET)
        except botocore.exceptions.EndpointConnectionError:
            return False
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise
        return True

    # -- environments ----------------------------------------------------------------------------------------
    def service_env(self) -> dict[str, str]:
        """PostgreSQL, Redis and moto get a plain environment, none of Airflow's settings or secrets."""
        keep = ("PATH", "LANG", "LC_ALL", "TZ", "HOME")
        env = {name: os.environ[name] for name in keep if name in os.environ}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        return env

    def s3_connection(self) -> str:
        return json.dumps(
            {
                "conn_type": "aws",
                "login": S3_ACCESS_KEY,
                "password": S3_SECRET_KEY,
                "extra": {"endpoint_url": self.s3_endpoint, "region_name": S3_REGION},
            }
        )

    def environment(self, sandbox: Sandbox) -> dict[str, str]:
        sandbox_env = {
            name: value
            for name, value in sandbox.environment().items()
            if not name.startswith("AIRFLOW_CONN_")
        }
        redis_url = f"redis://:{self.credentials['redis']}@127.0.0.1:{self.redis_port}/0"
        settings = dev_settings(self.args.port, self.args.parallelism, self.args.airflow_home)
        env = airflow_environment(
            {
                **sandbox_env,
                **settings,
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
                "AIRFLOW__CELERY__BROKER_URL": redis_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.sql_alchemy_conn,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.args.worker_concurrency),
                "AIRFLOW__API__INSTANCE_NAME": "Nylas to Dataverse (local cluster)",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
                # Present from the first moment in every component (the API server's webhook receiver
                # opens the inbox when the plugin loads), as a secrets backend would provide it.
                f"AIRFLOW_CONN_{S3_CONN_ID.upper()}": self.s3_connection(),
                "NYLAS_DATAVERSE_STAGING": self.staging_url,
            },
            airflow_home=self.args.airflow_home,
        )
        for conn_id in SANDBOX_CONN_IDS:
            env.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)
        return env

    def worker_env(self, env: dict[str, str], name: str) -> dict[str, str]:
        scripts = str(PROJECT_ROOT / "scripts")
        path = env.get("PYTHONPATH")
        return {
            **env,
            HOSTNAME_ENV: name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "cluster_hostname.worker_hostname",
            "PYTHONPATH": f"{scripts}{os.pathsep}{path}" if path else scripts,
        }

    # -- start, supervise, stop ------------------------------------------------------------------------------
    def run(self) -> int:
        args = self.args
        if not port_is_free(args.port):
            print(
                f"Port {args.port} on 127.0.0.1 is in use (another Airflow or cluster?). "
                f"Choose another: {PORT_ENV}=8091 make cluster, or --port 8091.",
                file=sys.stderr,
            )
            return 2
        started = time.monotonic()
        try:
            self.state.mkdir(parents=True, exist_ok=True)
            self.state.chmod(0o755)  # PostgreSQL's user must reach its folder inside
            if args.fresh:
                for folder in ("sandbox", "airflow/logs", "logs"):
                    shutil.rmtree(self.state / folder, ignore_errors=True)
            (self.state / "cluster.json").unlink(missing_ok=True)
            print(f"Starting PostgreSQL, Redis and the S3 API (logs in {self.log_dir})...", flush=True)
            self.start_postgres()
            self.ensure_airflow_database()
            self.start_redis()
            self.start_s3()
            self.sandbox = Sandbox.start(
                SandboxConfig(state_dir=self.state / "sandbox", nylas_port=0, entra_port=0, dataverse_port=0)
            )
            env = self.environment(self.sandbox)
            ensure_database(env)
            if self.stop_requested.is_set():
                raise StartupInterruptedError("preparing the database")
            password = ensure_password(args.airflow_home)
            api = AirflowApi(f"http://127.0.0.1:{args.port}", USERNAME, password)

            print("Starting the Airflow API server, DAG processor and triggerer...", flush=True)
            self.component("api-server", "api-server", "--host", "127.0.0.1", "--port", str(args.port)).start(
                env
            )
            self.component("dag-processor", "dag-processor").start(env)
            self.component("triggerer", "triggerer", "--skip-serve-logs").start(env)
            self.wait_for("the API server", lambda: api.health() is not None)
            api.login()
            api.upsert("pools", pools_from_settings_bodies())
            api.upsert("connections", sandbox_connections(self.sandbox))
            print(f"Starting the scheduler and {len(self.worker_names)} Celery workers...", flush=True)
            self.component("scheduler", "scheduler", "--skip-serve-logs").start(env)
            for name in self.worker_names:
                self.component(
                    name,
                    *("celery", "worker", "--celery-hostname", f"{name}@%h"),
                    *("--concurrency", str(args.worker_concurrency)),
                    *("--skip-serve-logs", "--without-gossip", "--without-mingle"),
                ).start(self.worker_env(env, name))
            self.wait_for(
                "scheduler, triggerer and DAG processor heartbeats", lambda: all_healthy(api.health())
            )
            self.wait_for("the Celery workers", self.workers_ready)
            expected = expected_dag_ids() | {REALTIME_DAG_ID}
            self.wait_for("the DAGs", lambda: expected <= set(dag_ids(api)), timeout=180)
            for component in self.components:
                component.remember_tree()
            elapsed = time.monotonic() - started
            self.write_state(elapsed)
            self.print_cluster_banner(password, api, elapsed)
            return self.supervise()
        except StartupInterruptedError:
            return 130
        except StartupError as exc:
            print(f"\n{exc}", file=sys.stderr)
            return 1
        finally:
            self.stop()

    def workers_ready(self) -> bool:
        for component in self.components:
            if component.name in self.worker_names:
                try:
                    text = component.log_path.read_text(errors="replace")
                except OSError:
                    return False
                # Celery logs "<name>@<host> ready." once it consumes; a restart appends a new start line.
                if WORKER_READY_TEXT not in text.rsplit("\n==== ", 1)[-1]:
                    return False
        return True

    def supervise(self) -> int:
        """Until a signal: a dead worker is reported and the others carry on; anything else stops it all."""
        while not self.stop_requested.wait(2.0):
            for component in self.components:
                component.remember_tree()
                code = component.exit_code()
                if code is None or component.name in self.reported_dead:
                    continue
                if component.name in self.worker_names:
                    self.reported_dead.add(component.name)
                    alive = [
                        c.name
                        for c in self.components
                        if c.name in self.worker_names and c.exit_code() is None
                    ]
                    if alive:
                        print(
                            f"\n{component.name} exited with code {code}; {', '.join(alive)} "
                            f"{'carries' if len(alive) == 1 else 'carry'} on. "
                            f"Its log is {component.log_path}. Restart the cluster to get it back.",
                            file=sys.stderr,
                            flush=True,
                        )
                        continue
                print(
                    f"\n{component.name} exited with code {code}; stopping the rest. "
                    f"Its log is {component.log_path}:\n{component.log_tail()}",
                    file=sys.stderr,
                )
                return 1
        return 0

    def stop(self) -> None:
        for stage in STOP_ORDER:
            self.stop_components([c for c in self.components if c.name in stage])
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None
        if self.components:
            print(STOPPED_LINE, flush=True)

    def write_state(self, elapsed: float) -> None:
        sandbox = self.sandbox
        assert sandbox is not None
        state = {
            "pid": os.getpid(),
            "started_at": dt.datetime.now(dt.UTC).isoformat(),
            "startup_s": round(elapsed, 1),
            "api_url": f"http://127.0.0.1:{self.args.port}",
            "username": USERNAME,
            "password_file": str(password_file(self.args.airflow_home)),
            "airflow_home": str(self.args.airflow_home),
            "log_dir": str(self.log_dir),
            "staging": self.staging_url,
            "s3": {
                "endpoint_url": self.s3_endpoint,
                "bucket": BUCKET,
                "prefix": STAGING_PREFIX,
                "conn_id": S3_CONN_ID,
                "access_key": S3_ACCESS_KEY,
                "secret_key": S3_SECRET_KEY,
                "region": S3_REGION,
            },
            "postgres_port": self.pg_port,
            "redis_port": self.redis_port,
            "sandbox": {
                "nylas_url": sandbox.nylas_url,
                "entra_url": sandbox.entra_url,
                "dataverse_url": sandbox.dataverse_url,
                "ca_pem": str(sandbox.ca_pem),
                "grants_file": str((self.state / "sandbox" / "grants.yaml").resolve()),
            },
            "worker_concurrency": self.args.worker_concurrency,
            "workers": {
                name: {"hostname": name, "pid": component.process.pid}
                for component in self.components
                if component.name in self.worker_names and component.process is not None
                for name in [component.name]
            },
            "components": {
                component.name: component.process.pid
                for component in self.components
                if component.process is not None
            },
        }
        path = self.state / "cluster.json"
        path.write_text(json.dumps(state, indent=2) + "\n")
        path.chmod(0o600)

    def print_cluster_banner(self, password: str, api: AirflowApi, elapsed: float) -> None:
        sandbox = self.sandbox
        assert sandbox is not None
        print(
            f"""
{READY_LINE} after {elapsed:.0f} s.

  UI:        {api.base_url}/   (user {USERNAME}, password {password}; kept in
             {password_file(self.args.airflow_home)})
  Executor:  CeleryExecutor, {len(self.worker_names)} workers ({", ".join(self.worker_names)}) x \
{self.args.worker_concurrency} slots, broker Redis on 127.0.0.1:{self.redis_port}
  Metadata:  PostgreSQL on 127.0.0.1:{self.pg_port} (database {AIRFLOW_DB}, run as \
{self.postgres_user() or pwd.getpwuid(os.geteuid()).pw_name})
  Staging:   {self.staging_url}  (S3 API {self.s3_endpoint}, connection {S3_CONN_ID}; in memory)
  Webhooks:  {api.base_url}/nylas/webhook
  Sandbox:   Nylas {sandbox.nylas_url}, Entra ID {sandbox.entra_url}, Dataverse {sandbox.dataverse_url}
  Logs:      {self.log_dir}/<component>.log, task logs in {self.args.airflow_home / "logs"}/
  State:     {self.state}/cluster.json

Press Ctrl-C to stop everything.""",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    app = Cluster(parse_args(argv))
    signal.signal(signal.SIGINT, app.on_signal)
    signal.signal(signal.SIGTERM, app.on_signal)
    return app.run()


if __name__ == "__main__":
    sys.exit(main())
