"""One measured run in a fresh process: some of the pipeline's task bodies, or the seed-style baseline.

``python -m bench.worker SPEC.json RESULT.json``. The spec names the grant, day, staging folder, the
tasks to run and the grant settings (``batch_size``, ``max_concurrency``); the Airflow connections come
from the environment the benchmark passes in. The result holds wall-clock seconds per task (and the
epoch time each started, so the benchmark can line them up with its own samples of the sandbox), the
client-side request counters, the run report's counts and the process's peak RSS.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from airflow.sdk import ObjectStoragePath

from bench.baseline import run_baseline
from nylas_dataverse.core.config import GrantConfig, parse_config
from nylas_dataverse.core.window import Window
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.run import STAGES, Services, run_stage
from nylas_dataverse.pipeline.staging import RunStaging, open_binary


def peak_rss_kb() -> int | None:
    """The high-water mark of this program's resident set since it was started (VmHWM, Linux).

    ``ru_maxrss`` is not that: Linux carries it over from the image that called exec, so a worker started
    by a large benchmark process reports the benchmark's size (see docs/benchmarks.md).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def grant_from_spec(spec: dict[str, Any]) -> GrantConfig:
    config = dict(spec["grants_config"])
    config["defaults"] = {**config.get("defaults", {}), **spec.get("grant_settings", {})}
    result = parse_config(yaml.safe_dump(config), "benchmark grants")
    if result.errors:
        raise SystemExit(f"invalid benchmark grant settings: {[str(e) for e in result.errors]}")
    return {grant.key: grant for grant in result.grants}[spec["grant"]]


def day_window(day: dt.date) -> Window:
    return Window.for_day(day)


def mean_parties_per_email(staging: RunStaging) -> float:
    """Activity parties per email the load will create, for the apples-to-apples ceiling."""
    emails = parties = 0
    with gzip.open(open_binary(staging.file(layout.DECISIONS), "rb")) as lines:
        for line in lines:
            email = json.loads(line)["email"]
            if email is not None:
                emails += 1
                parties += len(email["parties"])
    return parties / emails if emails else 0.0


def run_pipeline(spec: dict[str, Any], result: dict[str, Any]) -> None:
    grant = grant_from_spec(spec)
    day = dt.date.fromisoformat(spec["day"])
    staging = RunStaging(ObjectStoragePath(Path(spec["staging"]).as_uri()), grant.dag_id, day.isoformat())
    services = Services.for_grant(grant)
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for task in spec["tasks"]:
        if task not in STAGES:
            raise SystemExit(f"unknown task {task!r}")
        started[task] = time.time()
        clock = time.monotonic()
        counts = run_stage(task, grant, staging, services, window=day_window(day))
        if task == "report":
            result["report"] = counts
        seconds[task] = time.monotonic() - clock
    result.update(started_at=started, seconds=seconds)
    result["client"] = {
        "dataverse_requests": services.dataverse.request_count,
        "dataverse_throttled": services.dataverse.throttled_count,
        "dataverse_retries": services.dataverse.retry_count,
        "throttle_wait_s": round(services.dataverse.throttle_wait_s, 3),
        "nylas_requests": services.nylas.request_count,
        "token_requests": services.dataverse.token_requests,
    }
    result["pacing"] = services.dataverse.pacing
    if spec.get("count_parties"):
        result["parties_per_email"] = mean_parties_per_email(staging)
    if "load" in spec["tasks"]:
        result["load_manifest"] = json.loads(staging.file(layout.LOAD_MANIFEST).read_bytes())


def run_seed_baseline(spec: dict[str, Any], result: dict[str, Any]) -> None:
    grant = grant_from_spec(spec)
    dataverse = DataverseHook(grant.dataverse_conn_id)
    nylas = NylasHook(grant.nylas_conn_id)
    started = time.time()
    clock = time.monotonic()
    day = day_window(dt.date.fromisoformat(spec["day"]))
    stop_after_s = spec.get("stop_after_s")
    outcome = run_baseline(
        grant,
        day,
        nylas,
        dataverse,
        threads=int(spec.get("threads", 1)),
        stop_after_s=None if stop_after_s is None else float(stop_after_s),
    )
    result.update(started_at={"baseline": started}, seconds={"baseline": time.monotonic() - clock})
    result["baseline"] = outcome.as_dict()
    result["client"] = {
        "dataverse_requests": dataverse.request_count,
        "dataverse_throttled": dataverse.throttled_count,
        "nylas_requests": nylas.request_count,
        "token_requests": dataverse.token_requests,
    }


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    result: dict[str, Any] = {"kind": spec["kind"]}
    if spec["kind"] == "pipeline":
        run_pipeline(spec, result)
    elif spec["kind"] == "baseline":
        run_seed_baseline(spec, result)
    else:
        raise SystemExit(f"unknown kind {spec['kind']!r}")
    result["ru_maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["peak_rss_kb"] = peak_rss_kb()
    Path(argv[1]).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
