"""Drill: the load task is killed with SIGKILL at random points, twenty times, and rerun after each kill.

A kill lands at a random point of progress: before the first create (during the Message-ID lookup), or
after a random number of emails has reached Dataverse (mid-chunk, mid-batch, while a part file or the
ledger is written). The points come from a seeded RNG, so a failure can be replayed. After a final clean
run, Dataverse must hold each message exactly once, completed, and the ledger must account for all.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import BULK_DAY, DrillRunner, SecretWatch, grants

pytestmark = pytest.mark.drills

KILLS = 20
MESSAGES = 3000
SEED = 20261127


class LoadForker:
    """Drives ``load_forker.py``: start a load in a fresh child, kill it, reap it."""

    def __init__(self, spec_path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("load_forker.py")), str(spec_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        assert self.ask(None) == "ready"

    def ask(self, command: str | None) -> str:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        if command is not None:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def start(self) -> int:
        answer = self.ask("run")
        assert answer.startswith("pid "), answer
        return int(answer.split()[1])

    def reap(self, pid: int) -> int:
        answer = self.ask(f"wait {pid}")
        assert answer.startswith("exit "), answer
        return int(answer.split()[1])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def _payload_message_ids(staging: Any) -> list[str]:
    lines = gzip.decompress(staging.file("payloads.jsonl.gz").read_bytes()).splitlines()
    return [record["internet_message_id"] for record in map(json.loads, lines) if record["email"] is not None]


def _running(pid: int) -> bool:
    """True until the child exits (the forker, not this process, reaps it, so look at /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _kill_points(rng: random.Random) -> list[tuple[int, float]]:
    """(new emails to wait for, extra delay) per kill: a quarter before any create, the rest mid-load.

    Up to 400 new emails reaches past the two chunks in flight, so some kills fall after a chunk was
    finished (while the next one is looked up, or its part file is written).
    """
    points = []
    for _ in range(KILLS):
        kind = rng.random()
        emails = 0 if kind < 0.25 else rng.randint(1, 100) if kind < 0.75 else rng.randint(101, 400)
        points.append((emails, rng.uniform(0.0, 0.05)))
    return points


def _kill_at(sandbox: Any, forker: LoadForker, emails: int, delay_s: float) -> int:
    """Start a load, wait for ``emails`` new rows (progress, not time, so any machine kills at the same
    points) and a short delay, then SIGKILL it; returns the child's exit code."""
    store = sandbox.dataverse.store
    before = store.count("emails")
    pid = forker.start()
    while store.count("emails") - before < emails and _running(pid):
        time.sleep(0.002)
    time.sleep(delay_s)
    os.kill(pid, signal.SIGKILL)
    return forker.reap(pid)


def test_sigkill_during_load_twenty_times_then_a_clean_rerun_leaves_no_duplicate_and_no_gap(
    drill_sandbox: Any, drill_runner: DrillRunner, tmp_path: Path, secret_watch: SecretWatch
) -> None:
    sandbox = drill_sandbox
    sandbox.nylas.add_bulk_day("alice", BULK_DAY, MESSAGES)
    overrides = {"batch_size": 10, "max_concurrency": 2}
    alice = grants(sandbox, **overrides)["alice"]
    drill_runner.extract(alice, BULK_DAY)
    staging = drill_runner.transform(alice, BULK_DAY)
    expected = _payload_message_ids(staging)
    assert len(expected) == MESSAGES

    config = sandbox.grants_config()
    config["defaults"].update(overrides)
    log_file = tmp_path / "load-children.log"
    secret_watch.paths.append(log_file)
    spec = tmp_path / "forker.json"
    spec.write_text(
        json.dumps(
            {
                "grants_yaml": yaml.safe_dump(config),
                "grant": "alice",
                "staging": str(staging.folder),
                "log_file": str(log_file),
            }
        )
    )
    points = _kill_points(random.Random(SEED))
    # Every kill must find the load unfinished: the points leave a margin of a batch per kill in flight.
    assert sum(emails for emails, _ in points) + KILLS * 2 * 10 < MESSAGES
    forker = LoadForker(spec)
    try:
        exits = [_kill_at(sandbox, forker, emails, delay) for emails, delay in points]
        final_exit = forker.reap(forker.start())
    finally:
        forker.close()

    assert exits == [-signal.SIGKILL] * KILLS, f"a load finished before its kill: {exits}"
    assert final_exit == 0, log_file.read_text()[-3000:]
    counts = drill_runner.report(alice, BULK_DAY)  # checks the ledger invariant

    assert counts["failed"] == 0
    assert counts["created"] + counts["already_present"] == MESSAGES
    # Emails created by a killed attempt whose chunk never finished are found again by the lookup.
    assert counts["already_present"] > 0
    rows = sandbox.dataverse.store.scan("emails")
    per_message_id = Counter(row["messageid"] for row in rows)
    assert max(per_message_id.values()) == 1, "a message was created twice"
    assert set(per_message_id) == set(expected), "a message is missing from Dataverse"
    assert {(row["statecode"], row["statuscode"]) for row in rows} <= {(1, 3), (1, 4)}, (
        "an email was left open"
    )
    ledger = [json.loads(line) for line in staging.file("ledger.jsonl").read_bytes().splitlines()]
    assert Counter(entry["internet_message_id"] for entry in ledger) == Counter(expected)
