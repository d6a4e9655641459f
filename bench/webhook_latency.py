"""Latency from a Nylas webhook to its Dataverse row, through the full local Airflow of `make airflow`.

Starts ``scripts/local_airflow.py`` on free ports with its own AIRFLOW_HOME, sandbox state and staging in a
temp folder, waits until it is healthy and the real-time DAG is active, then sends signed
``message.created`` notifications (the sandbox's ``WebhookSender``, as Nylas would: no headers in the
payload) for distinct seeded messages the capture policy tracks, one every ~1.5 s on average (exponential
gaps from a seeded generator). A watcher lists the sandbox Dataverse's emails every 100 ms through the Web
API, and each message's latency is the time from the receiver's 200 to its row being visible.

Afterwards it reads where the time went from Airflow itself (asset events, the run and task instance
timestamps through the REST API) and from the inbox's batch folders, stops Airflow with SIGINT as Ctrl-C
would, checks that nothing it started is left running, and writes ``bench/webhook_latency.json``.

Run: ``.venv/bin/python bench/webhook_latency.py`` (or ``python -m bench.webhook_latency``); ``--help``.
It takes about 2 minutes for 30 notifications: ~40 s to start Airflow, ~50 s of sending, ~20 s to stop.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msal
import psutil
import requests

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:  # run as a script: `bench` is not importable from bench/ itself
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.machine import describe_machine  # noqa: E402
from nylas_dataverse.core.config import GrantConfig, parse_config  # noqa: E402
from nylas_dataverse.core.identity import activity_id, dataverse_message_id  # noqa: E402
from nylas_dataverse.core.messages import parse_message  # noqa: E402
from nylas_dataverse.core.policy import FolderRoles, ThreadTracker, decide  # noqa: E402
from nylas_dataverse_sandbox import personas  # noqa: E402
from nylas_dataverse_sandbox.nylas import folders, seed  # noqa: E402
from nylas_dataverse_sandbox.nylas.webhooks import WebhookSender  # noqa: E402
from nylas_dataverse_sandbox.sandbox import DEFAULT_START_DAY  # noqa: E402

RESULTS = PROJECT_ROOT / "bench" / "webhook_latency.json"
REALTIME_DAG_ID = "nylas_to_dataverse__realtime"
WEBHOOK_PATH = "/nylas/webhook"
SANDBOX_DAYS = 7
READY_LINE = "Airflow is ready"
STOPPED_LINE = "Stopped Airflow and the sandbox."
SANDBOX_LINE = re.compile(r"Sandbox:\s+Nylas (\S+), Entra ID (\S+), Dataverse (\S+)")
STARTUP_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 90.0
GOAL_P95_S = 10.0
# Correspondents the default policy tracks when they write in; cross-grant mail is left out because the
# second grant to see it finds the row already there, and that is not a latency.
TRACKED_KINDS = frozenset({"contact", "account", "lead"})
# Deliveries are retried quickly here: a slow retry would count as pipeline latency.
RETRY_DELAYS_S = (0.2, 0.5)


def say(text: str) -> None:
    print(f"[webhook-latency {time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- the messages to announce ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    grant_key: str
    nylas_id: str
    message_id: str
    activity_id: str
    message: dict[str, Any] = field(repr=False, compare=False)


def tracked_candidates(grants: Iterable[GrantConfig]) -> dict[str, list[Candidate]]:
    """Per grant: seeded inbound messages the capture policy tracks, with a Message-ID no other grant has."""
    grants = list(grants)
    mailboxes = seed.mailboxes(DEFAULT_START_DAY, SANDBOX_DAYS)
    owners: dict[str, set[str]] = {}
    for grant_key, box in mailboxes.items():
        for seeded in box:
            mid = dataverse_message_id(parse_message(seeded.message))[0]
            owners.setdefault(mid, set()).add(grant_key)
    out: dict[str, list[Candidate]] = {}
    for grant in grants:
        persona = personas.grant_by_key(grant.key)
        roles = FolderRoles.from_nylas_folders(folders.folder_objects(persona, include_hidden=True))
        picked = []
        for seeded in mailboxes[grant.key]:
            if seeded.kind not in TRACKED_KINDS or seeded.role != "inbox":
                continue
            parsed = parse_message(seeded.message)
            mid = dataverse_message_id(parsed)[0]
            if owners[mid] != {grant.key}:
                continue
            skip = decide(
                parsed,
                policy=grant.policy,
                org_domains=grant.org_domains,
                grant_email=grant.email,
                folder_roles=roles,
                known_external=lambda _address: True,
                threads=ThreadTracker(),
            )
            if skip is None:
                picked.append(Candidate(grant.key, parsed.id, mid, str(activity_id(mid)), seeded.message))
        out[grant.key] = picked
    return out


def choose(candidates: dict[str, list[Candidate]], count: int, rng: random.Random) -> list[Candidate]:
    """``count`` messages, alternating between grants in a shuffled order."""
    pools = {key: rng.sample(values, len(values)) for key, values in sorted(candidates.items()) if values}
    chosen: list[Candidate] = []
    while len(chosen) < count and any(pools.values()):
        for key in sorted(pools):
            if pools[key] and len(chosen) < count:
                chosen.append(pools[key].pop())
    if len(chosen) < count:
        raise SystemExit(f"only {len(chosen)} trackable seeded messages; ask for fewer (--count)")
    return chosen


# -- the local Airflow -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_listens(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class SandboxUrls:
    nylas: str
    entra: str
    dataverse: str


class LocalAirflowProcess:
    """``scripts/local_airflow.py`` in a temp folder; remembers every descendant so leftovers can be named."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.home = workdir / "airflow"
        self.sandbox_state = workdir / "sandbox"
        self.staging = workdir / "staging"
        self.output = workdir / "local_airflow.out"
        self.process: subprocess.Popen[bytes] | None = None
        self.seen: dict[int, psutil.Process] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # The caller's Airflow or sandbox settings must not leak into this Airflow.
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("AIRFLOW_", "AIRFLOW__", "NYLAS_DATAVERSE_", "REQUESTS_CA_BUNDLE"))
        }
        command = [
            sys.executable,
            str(PROJECT_ROOT / "scripts" / "local_airflow.py"),
            *("--port", str(self.port), "--airflow-home", str(self.home)),
            *("--sandbox-state", str(self.sandbox_state), "--staging", str(self.staging)),
            "--free-sandbox-ports",
        ]
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def transcript(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> SandboxUrls:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while READY_LINE not in self.transcript():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"local_airflow.py exited with {self.process.returncode}:\n{self.transcript()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"local_airflow.py not ready after {timeout:.0f} s; see {self.output}")
            self.remember_tree()
            time.sleep(1.0)
        self.remember_tree()
        match = SANDBOX_LINE.search(self.transcript())
        if match is None:
            raise RuntimeError(f"no sandbox addresses in {self.output}")
        return SandboxUrls(*(url.rstrip(",") for url in match.groups()))

    def remember_tree(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            root = psutil.Process(self.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                self.seen.setdefault(proc.pid, proc)
        except psutil.NoSuchProcess:
            pass

    def password(self) -> str:
        path = self.home / "simple_auth_manager_passwords.json.generated"
        return str(json.loads(path.read_text())["admin"])

    def stop(self) -> dict[str, Any]:
        """SIGINT, as Ctrl-C; then report the exit code, the stop time and any process left running."""
        if self.process is None:
            return {}
        self.remember_tree()
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                say(f"local_airflow.py did not stop in {STOP_TIMEOUT_S:.0f} s; killing its process group")
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        stop_s = time.monotonic() - started
        leftovers = self.leftovers()
        for proc in leftovers:
            with_name = f"{proc.pid} {' '.join(proc.cmdline()[:4])}"
            say(f"left running after the stop, now killed: {with_name}")
            proc.kill()
        return {
            "exit_code": self.process.returncode,
            "stopped_cleanly": self.process.returncode == 0 and STOPPED_LINE in self.transcript(),
            "stop_s": round(stop_s, 1),
            "leftover_processes": [proc.pid for proc in leftovers],
            "api_port_still_listening": port_listens(self.port),
        }

    def leftovers(self) -> list[psutil.Process]:
        """Processes seen under local_airflow.py, or run with this AIRFLOW_HOME, that still run."""
        alive: dict[int, psutil.Process] = {}
        for proc in self.seen.values():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive[proc.pid] = proc
            except psutil.NoSuchProcess:
                continue
        me = os.getuid()
        for proc in psutil.process_iter(["uids"]):
            try:
                uids = proc.info["uids"]
                if uids and uids.real == me and proc.environ().get("AIRFLOW_HOME") == str(self.home):
                    alive[proc.pid] = proc
            except (psutil.Error, OSError):
                continue
        return list(alive.values())


class AirflowRest:
    def __init__(self, base_url: str, password: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.trust_env = False
        response = self.session.post(
            f"{base_url}/auth/token", json={"username": "admin", "password": password}, timeout=30
        )
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def get(self, path: str, **params: Any) -> Any:
        response = self.session.get(f"{self.base_url}/api/v2{path}", params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        response = self.session.get(f"{self.base_url}/api/v2/dags/{dag_id}", timeout=30)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return dict(response.json())

    def unpause(self, dag_id: str) -> None:
        response = self.session.patch(
            f"{self.base_url}/api/v2/dags/{dag_id}", json={"is_paused": False}, timeout=30
        )
        response.raise_for_status()

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/dags/{dag_id}/dagRuns", limit=1000, order_by="run_after")["dag_runs"])

    def task_instances(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/dags/{dag_id}/dagRuns/~/taskInstances", limit=1000)["task_instances"])

    def asset_events(self) -> list[dict[str, Any]]:
        return list(self.get("/assets/events", limit=1000, order_by="timestamp")["asset_events"])


def wait_until(what: str, condition: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# -- watching Dataverse ----------------------------------------------------------------------------------


class DataverseEmails:
    """Lists the sandbox Dataverse's email activity ids through the Web API, as a client would."""

    def __init__(self, urls: SandboxUrls, ca_file: Path) -> None:
        self.api = f"{urls.dataverse}/api/data/v9.2/emails"
        self.scope = f"{urls.dataverse}/.default"
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(ca_file)
        self.app = msal.ConfidentialClientApplication(
            personas.CLIENT_ID,
            client_credential=personas.CLIENT_SECRET,
            authority=f"{urls.entra}/{personas.TENANT_ID}",
            instance_discovery=False,
            http_client=self.session,
        )

    def _token(self) -> str:
        result = self.app.acquire_token_for_client(scopes=[self.scope])  # cached by MSAL until near expiry
        if "access_token" not in result:
            raise RuntimeError(f"sandbox Entra ID gave no token: {result.get('error')}")
        return str(result["access_token"])

    def activity_ids(self) -> set[str]:
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        url: str | None = f"{self.api}?$select=activityid"
        ids: set[str] = set()
        while url:
            response = self.session.get(url, headers=headers, timeout=10)
            response.raise_for_status()
            body = response.json()
            ids.update(str(row["activityid"]).lower() for row in body["value"])
            url = body.get("@odata.nextLink")
        return ids


class RowWatcher(threading.Thread):
    """Polls Dataverse every ``interval`` s and records when each activity id first shows."""

    def __init__(self, emails: DataverseEmails, interval: float = 0.1) -> None:
        super().__init__(name="row-watcher", daemon=True)
        self.emails = emails
        self.interval = interval
        self.first_seen: dict[str, tuple[float, float]] = {}  # activity id -> (monotonic, wall)
        self.polls = 0
        self.errors = 0
        self.stop_event = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                ids = self.emails.activity_ids()
            except (requests.RequestException, RuntimeError, KeyError, ValueError):
                self.errors += 1
                ids = set()
            now = (time.monotonic(), time.time())
            with self.lock:
                self.polls += 1
                for activity in ids:
                    self.first_seen.setdefault(activity, now)
            self.stop_event.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def seen(self, activity: str) -> tuple[float, float] | None:
        with self.lock:
            return self.first_seen.get(activity)


# -- sending and measuring -------------------------------------------------------------------------------


@dataclass
class Probe:
    grant_key: str
    nylas_id: str
    activity_id: str
    notification_id: str = ""
    status: int = 0
    attempts: int = 0
    post_s: float = 0.0
    sent_wall: float = 0.0
    sent_mono: float = 0.0
    visible_wall: float | None = None
    latency_s: float | None = None
    phases: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    batch_id: str | None = None


def deliver(sender: WebhookSender, url: str, candidate: Candidate) -> Probe:
    notification = sender.build_notification(candidate.message)
    result = sender.deliver(url, notification, timeout=10)
    return Probe(
        candidate.grant_key,
        candidate.nylas_id,
        candidate.activity_id,
        notification_id=str(notification["id"]),
        status=result.status,
        attempts=result.attempts,
        post_s=round(result.elapsed_s, 4),
        sent_wall=time.time(),
        sent_mono=time.monotonic(),
    )


def await_rows(watcher: RowWatcher, probes: list[Probe], timeout: float) -> None:
    """Wait until every delivered probe's row is visible, or ``timeout`` after its delivery."""
    while True:
        waiting = False
        for probe in probes:
            if probe.latency_s is not None or probe.status != 200:
                continue
            seen = watcher.seen(probe.activity_id)
            if seen is not None:
                probe.latency_s = round(seen[0] - probe.sent_mono, 3)
                probe.visible_wall = seen[1]
            elif time.monotonic() - probe.sent_mono < timeout:
                waiting = True
        if not waiting:
            return
        time.sleep(0.05)


def send_all(
    sender: WebhookSender,
    url: str,
    chosen: list[Candidate],
    watcher: RowWatcher,
    rng: random.Random,
    mean_gap_s: float,
) -> list[Probe]:
    probes = []
    for index, candidate in enumerate(chosen):
        if index:
            # Exponential gaps (a Poisson stream), bounded so one draw cannot stall or flood the run.
            time.sleep(min(max(rng.expovariate(1.0 / mean_gap_s), 0.2), 4 * mean_gap_s))
        probe = deliver(sender, url, candidate)
        if probe.status != 200:
            say(f"  delivery {index + 1} answered {probe.status} after {probe.attempts} attempt(s)")
        probes.append(probe)
        if (index + 1) % 10 == 0:
            arrived = sum(1 for p in probes if watcher.seen(p.activity_id))
            say(f"  sent {index + 1}/{len(chosen)}; {arrived} rows visible so far")
    return probes


# -- where the time went ---------------------------------------------------------------------------------


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _batch_claimed_at(batch_id: str) -> float:
    stamp = batch_id.split("-", 1)[0]
    return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.UTC).timestamp()


def batches_by_notification(staging: Path) -> dict[str, dict[str, Any]]:
    """notification id -> its batch's id, claim time, and the time its done.json was written."""
    out: dict[str, dict[str, Any]] = {}
    root = staging / "_realtime" / "batches"
    for folder in sorted(root.iterdir()) if root.exists() else []:
        done = folder / "done.json"
        info = {
            "batch_id": folder.name,
            "claimed": _batch_claimed_at(folder.name),
            "done": done.stat().st_mtime if done.exists() else None,
        }
        for path in (folder / "notifications").glob("*.json"):
            record = json.loads(path.read_bytes())
            received = record.get("received_at")
            out[str(record["notification"]["id"])] = {**info, "received": _ts(received)}
    return out


def attribute_phases(
    probes: list[Probe],
    staging: Path,
    logs: Path,
    runs: list[dict[str, Any]],
    tis: list[dict[str, Any]],
    events: list[dict[str, Any]],
) -> None:
    """Split each probe's latency at the inbox claim, asset event, run creation, task queue/start, and row."""
    batches = batches_by_notification(staging)
    ti_by_run = {ti["dag_run_id"]: ti for ti in tis if ti.get("task_id") == "process"}
    event_by_batch: dict[str, float] = {}
    for event in events:
        payload = (event.get("extra") or {}).get("payload") or {}
        batch_id = payload.get("batch_id") if isinstance(payload, dict) else None
        stamp = _ts(event.get("timestamp"))
        if batch_id and stamp is not None:
            event_by_batch.setdefault(str(batch_id), stamp)
    for probe in probes:
        batch = batches.get(probe.notification_id)
        if batch is None or probe.visible_wall is None:
            continue
        probe.batch_id = batch["batch_id"]
        # The run that wrote the row: its task was running when the row appeared.
        run = None
        for candidate in runs:
            ti = ti_by_run.get(candidate["dag_run_id"]) or {}
            start, end = _ts(ti.get("start_date")), _ts(ti.get("end_date"))
            if (
                start is not None
                and start <= probe.visible_wall
                and (end is None or probe.visible_wall <= end + 1.0)
            ):
                run = candidate
        if run is None:
            continue
        ti = ti_by_run[run["dag_run_id"]]
        probe.run_id = run["dag_run_id"]
        marks = {
            "received": batch["received"],
            "claimed": batch["claimed"],
            "asset_event": event_by_batch.get(batch["batch_id"]),
            "run_queued": _ts(run.get("queued_at")),
            "ti_scheduled": _ts(ti.get("scheduled_when")),
            "ti_queued": _ts(ti.get("queued_when")),
            "ti_started": _ts(ti.get("start_date")),
            "batch_done": batch["done"],
            "visible": probe.visible_wall,
        }
        # A batch claimed while a run was already queued is picked up by that run (the task processes
        # every open batch); its own asset event then only starts a later run and is no part of its path.
        event, queued = marks["asset_event"], marks["run_queued"]
        if event is not None and queued is not None and event > queued:
            marks["asset_event_after_run_queued"] = marks.pop("asset_event")
        marks.update(task_log_marks(logs, ti, batch["batch_id"]))
        probe.phases = {
            name: round(stamp - probe.sent_wall, 3) for name, stamp in marks.items() if stamp is not None
        }


def task_log_marks(logs: Path, ti: dict[str, Any], batch_id: str) -> dict[str, float | None]:
    """From the task's own log: when it finished parsing the DAG file, and when it began this batch
    (the end of the batch before it in the same run, or of the parse)."""
    path = (
        logs
        / f"dag_id={ti['dag_id']}"
        / f"run_id={ti['dag_run_id']}"
        / f"task_id={ti['task_id']}"
        / f"attempt={ti.get('try_number') or 1}.log"
    )
    parsed: float | None = None
    previous_end: float | None = None
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        event, stamp = str(entry.get("event", "")), _ts(entry.get("timestamp"))
        if event.startswith("Worker startup parse complete"):
            parsed = previous_end = stamp
        elif event.startswith("Report:"):
            if f"realtime-{batch_id}/" in event:
                return {"task_parsed": parsed, "own_batch_started": previous_end}
            previous_end = stamp
    return {"task_parsed": parsed}


PHASES = (
    ("trigger poll", "claimed"),
    ("asset event recorded", "asset_event"),
    ("scheduler creates run", "run_queued"),
    ("task scheduled", "ti_scheduled"),
    ("task queued", "ti_queued"),
    ("executor starts task", "ti_started"),
    ("task parses the DAG file", "task_parsed"),
    ("earlier batches in the run", "own_batch_started"),
    ("own batch: fetch+transform+load", "visible"),
)


def phase_table(probes: list[Probe]) -> list[dict[str, Any]]:
    """Median, p95 and max of the time each step adds to a message's latency.

    Marks are taken in order from the delivery (0); a step adds ``mark - latest earlier mark`` (at
    least 0), so the steps of one message add up to its latency. A batch claimed after its run was
    already queued adds nothing at "scheduler creates run", for example.
    """
    added: dict[str, list[float]] = {name: [] for name, _ in PHASES}
    for probe in probes:
        if "visible" not in probe.phases:
            continue
        cursor = 0.0
        for name, mark in PHASES:
            stamp = probe.phases.get(mark)
            if stamp is None:
                continue
            added[name].append(max(0.0, stamp - cursor))
            cursor = max(cursor, stamp)
    return [
        {"phase": name, "count": len(values), **describe(values)} for name, values in added.items() if values
    ]


# -- figures ---------------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def describe(values: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(values), 3),
        "p95_s": round(percentile(values, 0.95), 3),
        "max_s": round(max(values), 3),
        "min_s": round(min(values), 3),
    }


def print_table(result: dict[str, Any]) -> None:
    latency = result["latency"]
    print()
    print(
        f"Webhook receipt -> Dataverse row, {result['date']}, {result['machine']['cpu_model']}, "
        f"{result['machine']['cores']} cores"
    )
    print(f"  {'notifications sent':<28}{latency['sent']:>8}")
    print(f"  {'rows visible':<28}{latency['count']:>8}")
    print(
        f"  {'never arrived (' + str(int(result['settings']['timeout_s'])) + ' s)':<28}"
        f"{latency['never_arrived']:>8}"
    )
    for key in ("median_s", "p95_s", "max_s", "min_s"):
        if key in latency:
            print(f"  {key.replace('_s', ' (s)'):<28}{latency[key]:>8.2f}")
    print(f"  {'goal p95 < 10 s':<28}{'met' if latency.get('p95_s', 1e9) < GOAL_P95_S else 'NOT met':>8}")
    answer = result.get("receiver_answer_s") or {}
    if answer:
        print(
            f"  {'receiver answer (ms)':<28}{answer['median_s'] * 1000:>8.0f} median, "
            f"{answer['max_s'] * 1000:.0f} max"
        )
    if result.get("phases"):
        print(f"\n  {'where the time goes (s)':<34}{'median':>8}{'p95':>8}{'max':>8}")
        for row in result["phases"]:
            print(f"  {row['phase']:<34}{row['median_s']:>8.2f}{row['p95_s']:>8.2f}{row['max_s']:>8.2f}")
    print()


# -- main ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=30, help="notifications measured (default 30)")
    parser.add_argument(
        "--warmup", type=int, default=2, help="notifications sent first, not measured (default 2)"
    )
    parser.add_argument(
        "--mean-gap", type=float, default=1.5, help="mean seconds between notifications (1.5)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a row may take (default 60)")
    parser.add_argument("--seed", type=int, default=20261102, help="random seed for messages and gaps")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"default {RESULTS}")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs, staging)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.warmup < 0 or args.mean_gap <= 0 or args.timeout <= 0:
        parser.error("--count must be at least 1, --warmup at least 0, --mean-gap and --timeout positive")
    return args


def grants_from(sandbox_state: Path) -> list[GrantConfig]:
    path = sandbox_state / "grants.yaml"
    result = parse_config(path.read_text(), str(path))
    if result.errors:
        raise RuntimeError(f"the sandbox's grants file {path} has errors: {result.errors}")
    return [grant for grant in result.grants if grant.enabled]


def realtime_dag_active(rest: AirflowRest) -> bool:
    dag = rest.dag(REALTIME_DAG_ID)
    if dag is None:
        return False
    if dag.get("is_paused"):
        say(f"{REALTIME_DAG_ID} is paused; unpausing it")
        rest.unpause(REALTIME_DAG_ID)
        return False
    return True


def other_benchmarks() -> list[str]:
    """Other `python -m bench` runs on this machine: they would distort the figures."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.pid != os.getpid() and "-m" in cmdline and "bench" in cmdline:
            found.append(f"{proc.pid} {' '.join(cmdline)}")
    return found


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    airflow = LocalAirflowProcess(workdir, free_port())
    started = time.monotonic()
    say(f"Starting scripts/local_airflow.py on port {airflow.port} in {workdir}")
    airflow.start()
    result: dict[str, Any] = {}
    watcher: RowWatcher | None = None
    try:
        urls = airflow.wait_ready()
        ready_s = time.monotonic() - started
        say(f"Airflow ready after {ready_s:.0f} s; waiting for {REALTIME_DAG_ID} to be active")
        rest = AirflowRest(airflow.base_url, airflow.password())
        wait_until(f"{REALTIME_DAG_ID} to be parsed and active", lambda: realtime_dag_active(rest), 120)

        chosen = choose(tracked_candidates(grants_from(airflow.sandbox_state)), args.warmup + args.count, rng)
        warmup, measured = chosen[: args.warmup], chosen[args.warmup :]
        emails = DataverseEmails(urls, airflow.sandbox_state / "tls" / "ca.pem")
        already = emails.activity_ids() & {c.activity_id for c in chosen}
        if already:
            raise RuntimeError(f"{len(already)} chosen messages are already in Dataverse before any webhook")
        watcher = RowWatcher(emails)
        watcher.start()
        sender = WebhookSender(personas.WEBHOOK_SECRET, retry_delays_s=RETRY_DELAYS_S)
        url = f"{airflow.base_url}{WEBHOOK_PATH}"

        # Warm-up: the asset watcher must be running in the triggerer, and the first task run pays for
        # cold imports; neither is what a webhook meets on a running deployment.
        say(f"Warm-up: {len(warmup)} notification(s), not measured")
        warm = [deliver(sender, url, candidate) for candidate in warmup]
        await_rows(watcher, warm, timeout=180)
        for probe in warm:
            say(f"  warm-up {probe.grant_key}: HTTP {probe.status}, row after {probe.latency_s} s")
        time.sleep(3.0)

        say(f"Sending {len(measured)} notifications, one every ~{args.mean_gap} s on average")
        probes = send_all(sender, url, measured, watcher, rng, args.mean_gap)
        await_rows(watcher, probes, timeout=args.timeout)
        watcher.stop_event.set()

        runs = rest.runs(REALTIME_DAG_ID)
        tis = rest.task_instances(REALTIME_DAG_ID)
        events = rest.asset_events()
        attribute_phases(probes, airflow.staging, airflow.home / "logs", runs, tis, events)
        latencies = [p.latency_s for p in probes if p.latency_s is not None]
        delivered = [p for p in probes if p.status == 200]
        result = {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
            "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": describe_machine(),
            "what": "seconds from the webhook receiver's 200 to the email row being visible in the "
            "sandbox Dataverse's Web API, through the full local Airflow (scripts/local_airflow.py)",
            "settings": {
                "count": args.count,
                "warmup": args.warmup,
                "mean_gap_s": args.mean_gap,
                "timeout_s": args.timeout,
                "seed": args.seed,
                "row_poll_interval_s": watcher.interval,
                "grants": sorted({p.grant_key for p in probes}),
            },
            "latency": {
                "sent": len(probes),
                "delivered": len(delivered),
                "count": len(latencies),
                "never_arrived": len(delivered) - len(latencies),
                **(describe(latencies) if latencies else {}),
                "mean_s": round(statistics.fmean(latencies), 2) if latencies else None,
                "goal_p95_s": GOAL_P95_S,
            },
            "receiver_answer_s": describe([p.post_s for p in delivered]) if delivered else {},
            "phases": phase_table(probes),
            "phases_note": "time each step adds to a message's latency, in order; per message they add up "
            "to its latency (see phase_table)",
            "realtime_runs": len(runs),
            "realtime_runs_failed": sum(1 for run in runs if run.get("state") == "failed"),
            "warmup_latencies_s": [p.latency_s for p in warm],
            "airflow_ready_s": round(ready_s, 1),
            "row_polls": watcher.polls,
            "row_poll_errors": watcher.errors,
            "probes": [asdict(probe) for probe in probes],
        }
    finally:
        if watcher is not None:
            watcher.stop_event.set()
        say("Stopping Airflow (SIGINT, as Ctrl-C)")
        result["shutdown"] = airflow.stop()
        say(
            f"Stopped in {result['shutdown'].get('stop_s')} s; leftovers: "
            f"{result['shutdown'].get('leftover_processes') or 'none'}"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    others = other_benchmarks()
    if others:
        say("Another benchmark is running; its load would distort these figures:\n  " + "\n  ".join(others))
        return 3
    workdir = Path(tempfile.mkdtemp(prefix="nylas-dataverse-webhook-latency-"))
    ok = False
    try:
        result = measure(args, workdir)
        ok = bool(result.get("latency")) and result["shutdown"].get("stopped_cleanly", False)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
        print_table(result)
        say(f"Wrote {args.output}")
    finally:
        if args.keep or not ok:
            say(f"Logs and staging kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
