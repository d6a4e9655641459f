"""Plumbing shared by the figures: worker processes, sampling the sandbox, progress lines."""

from __future__ import annotations

import bisect
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.sandbox_process import SandboxProcess

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


class WorkerError(RuntimeError):
    """A measured process exited with an error; its log file says why."""


@dataclass
class Harness:
    """The benchmark's scratch folder and sandbox; every worker process gets its own log file."""

    workdir: Path
    sandbox: SandboxProcess
    _runs: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def staging_dir(self, name: str) -> Path:
        path = self.workdir / "staging" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run_worker(
        self,
        name: str,
        spec: dict[str, Any],
        *,
        max_concurrency: int | None = None,
        module: str = "bench.worker",
    ) -> dict[str, Any]:
        """Run ``module`` (``bench.worker`` unless told) with ``spec`` in a fresh process; its result."""
        with self._lock:  # several grants run their workers from threads at once
            self._runs += 1
            stem = f"{self._runs:03d}-{name}"
        spec_path = self.workdir / f"{stem}.spec.json"
        result_path = self.workdir / f"{stem}.result.json"
        log_path = self.workdir / f"{stem}.log"
        spec = {"grants_config": self.sandbox.grants_config, **spec}
        spec_path.write_text(json.dumps(spec, indent=2))
        env = {
            **os.environ,
            **self.sandbox.environment(max_concurrency=max_concurrency),
            "AIRFLOW_HOME": str(self.workdir / "airflow-home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        with log_path.open("w") as log:
            completed = subprocess.run(
                [sys.executable, "-m", module, str(spec_path), str(result_path)],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if completed.returncode != 0 or not result_path.exists():
            tail = log_path.read_text(errors="replace")[-3000:]
            raise WorkerError(f"worker {name!r} failed (exit {completed.returncode}); {log_path}:\n{tail}")
        return dict(json.loads(result_path.read_text()))


@dataclass
class Sample:
    at: float
    emails: int
    throttled: int
    requests: int


@dataclass
class Sampler:
    """Polls the sandbox's counters on a thread; optionally prints progress towards ``expected`` emails."""

    sandbox: SandboxProcess
    interval_s: float = 0.5
    expected: int | None = None
    progress_every_s: float | None = None
    label: str = ""
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._take()

    def _take(self) -> None:
        counters = self.sandbox.dataverse_counters()
        self.samples.append(
            Sample(
                time.time(),
                int(counters.get("rows.emails", 0)),
                int(counters.get("throttled", 0)),
                int(counters.get("requests", 0)),
            )
        )

    def _run(self) -> None:
        started = time.monotonic()
        last_print = started
        while not self._stop.wait(self.interval_s):
            self._take()
            now = time.monotonic()
            if self.progress_every_s is not None and now - last_print >= self.progress_every_s:
                last_print = now
                self._print_progress(now - started)

    def _print_progress(self, elapsed: float) -> None:
        emails = self.samples[-1].emails
        text = f"{self.label}: {emails:,} emails in Dataverse after {elapsed:.0f} s"
        if self.expected and emails:
            rate = emails / elapsed
            remaining = (self.expected - emails) / rate if rate else float("nan")
            text += f" of {self.expected:,} ({rate:.0f}/s, about {remaining:.0f} s to go)"
        say(text)

    def emails_at(self, moment: float) -> float:
        """Emails in Dataverse at ``moment`` (epoch seconds), interpolated between samples."""
        times = [sample.at for sample in self.samples]
        index = bisect.bisect_left(times, moment)
        if index == 0:
            return float(self.samples[0].emails)
        if index >= len(self.samples):
            return float(self.samples[-1].emails)
        before, after = self.samples[index - 1], self.samples[index]
        share = (moment - before.at) / (after.at - before.at) if after.at > before.at else 1.0
        return before.emails + share * (after.emails - before.emails)


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    value = action()
    return value, time.monotonic() - started


def run_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` at once, one thread each; their results in order. Every thread is joined before the
    first error is raised, so no worker outlives the measurement that started it."""
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # raised below, once every thread has finished
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
