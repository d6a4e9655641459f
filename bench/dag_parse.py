"""``dag_parse_max_file_s``: seconds to parse and serialize the slowest DAG file, at 1, 1,000, 5,000 grants.

Each file of ``dags/`` is parsed the way Airflow 3.3's DAG processor does it: in a process forked from one
that has Airflow imported (so the project's own imports are paid per file, as they are there), with a
``BundleDagBag`` of that one file, then ``DagSerialization.to_dict`` and ``LazyDeserializedDAG`` for each
DAG. Every file is parsed right after the grants file was written (one file pays for validating it and
writing the grants index), then the three slowest of them again (the steady state, every
30 s; the shards are alike, so the slowest ones stand for the rest and the second pass costs a tenth of the
first). The figure is the slowest parse of either pass; ``details`` has every file's.

``task_config_s``: what one task pays for its grant's configuration, at 1 and 5,000 grants: looking its
grant up (``grants_index.load_one``, the index warm). ``task_parse_s`` is the whole parse a task does
before it runs (its DAG file, with Airflow's parsing context naming its DAG), and ``full_parse_s`` what
reading and validating the whole file costs (what every task paid before the index).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import PROJECT_ROOT, say

SIZES = (1, 1000, 5000)
QUICK_SIZES = (1, 100)
GOAL_S = 10.0
WARM_FILES = 3  # parsed a second time: the slowest of the first pass


def write_grants_file(path: Path, grants: int) -> list[str]:
    lines = ["defaults:", "  org_domains: [contoso.example]", "grants:"]
    keys = [f"mailbox-{index:05d}" for index in range(grants)]
    for index, key in enumerate(keys):
        lines += [
            f"  - key: {key}",
            f"    grant_id: {index:08d}-0000-4000-8000-000000000000",
            f"    email: user{index:05d}@contoso.example",
            f"    display_name: Mailbox {index:05d}",
            "    start_date: 2026-11-02",
        ]
    path.write_text("\n".join(lines) + "\n")
    return keys


# Runs in a fresh interpreter: import Airflow once, then fork once per parse, like the DAG processor.
_CHILD = r"""
import json, os, sys, time
from pathlib import Path

from airflow.dag_processing.dagbag import BundleDagBag
from airflow.serialization.serialized_objects import DagSerialization, LazyDeserializedDAG

plan = json.loads(sys.argv[1])
dags = Path(plan["dags"])


def parse(file, dag_id):
    if dag_id:
        os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = dag_id
    started = time.perf_counter()
    bag = BundleDagBag(dag_folder=file, bundle_path=dags, bundle_name="dags-folder", load_op_links=False)
    parsed = time.perf_counter()
    for dag in bag.dags.values():
        LazyDeserializedDAG(data=DagSerialization.to_dict(dag), last_loaded=dag.last_loaded)
    done = time.perf_counter()
    return {"file": Path(file).name, "parse_s": parsed - started, "serialize_s": done - parsed,
            "total_s": done - started, "dags": len(bag.dags), "import_errors": len(bag.import_errors)}


def config(key):
    from nylas_dataverse.pipeline import grants_index
    from nylas_dataverse.pipeline.settings import load_grants

    root = Path(plan["project"])
    grants_index.load_one(root, key)  # warm: the index exists
    times = []
    for _ in range(20):
        started = time.perf_counter()
        grant, _alerts = grants_index.load_one(root, key)
        times.append(time.perf_counter() - started)
    assert grant is not None and grant.key == key
    started = time.perf_counter()
    load_grants(root)
    return {"task_config_s": sorted(times)[len(times) // 2], "full_parse_s": time.perf_counter() - started}


def forked(job):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        result = parse(*job[1:]) if job[0] == "parse" else config(job[1])
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data)


print(json.dumps([forked(job) for job in plan["jobs"]]))
"""


def _run(workdir: Path, jobs: list[list[Any]], env: dict[str, str]) -> list[dict[str, Any]]:
    plan = {"dags": str(PROJECT_ROOT / "dags"), "project": str(PROJECT_ROOT), "jobs": jobs}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(plan)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"DAG parse benchmark failed:\n{done.stderr[-4000:]}")
    results: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def measure(workdir: Path, *, sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    from nylas_dataverse.core.sharding import shard_of
    from nylas_dataverse.pipeline.grants_index import CACHE_ENV, RACY_SECONDS

    workdir.mkdir(parents=True, exist_ok=True)
    files = sorted(str(path) for path in (PROJECT_ROOT / "dags").glob("*.py"))
    figures: dict[str, Any] = {"per_size": {}}
    for size in sizes:
        grants_file = workdir / f"grants-{size}.yaml"
        keys = write_grants_file(grants_file, size)
        env = {
            **os.environ,
            "NYLAS_DATAVERSE_CONFIG": str(grants_file),
            CACHE_ENV: str(workdir / f"cache-{size}"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
        # A deployed grants file is older than the timestamp granularity the index allows for.
        time.sleep(RACY_SECONDS + 0.1)
        say(f"DAG parse: {size:,} grants, {len(files)} files parsed in a forked process each, then again")
        cold = _run(workdir, [["parse", file, None] for file in files], env)
        slowest_cold = sorted(cold, key=lambda r: r["total_s"])[-WARM_FILES:]
        again = [str(PROJECT_ROOT / "dags" / r["file"]) for r in slowest_cold]
        warm = _run(workdir, [["parse", file, None] for file in again], env)
        slowest = max((*cold, *warm), key=lambda r: r["total_s"])
        entry: dict[str, Any] = {
            "max_file_s": round(slowest["total_s"], 3),
            "slowest_file": slowest["file"],
            "max_file_warm_s": round(max(r["total_s"] for r in warm), 3),
            "sum_of_files_s": round(sum(r["total_s"] for r in cold), 2),
            "dags": sum(r["dags"] for r in cold),
            "import_errors": sum(r["import_errors"] for r in cold),
            "cold": cold,
            "warm": warm,
        }
        if size in (1, max(sizes)):
            key = keys[len(keys) // 2]
            shard_file = next(f for f in files if f.endswith(f"_shard_{shard_of(key):02d}.py"))
            runs = _run(
                workdir,
                [["config", key], *[["parse", shard_file, f"nylas_to_dataverse__{key}"]] * 3],
                env,
            )
            entry["task_config_s"] = round(runs[0]["task_config_s"], 5)
            entry["full_parse_s"] = round(runs[0]["full_parse_s"], 3)
            entry["task_parse_s"] = round(statistics.median(r["total_s"] for r in runs[1:]), 3)
            entry["task_parse_dags"] = runs[1]["dags"]
        figures["per_size"][str(size)] = entry
        say(f"  slowest file {entry['max_file_s']} s ({entry['slowest_file']}), {entry['dags']} DAGs")
    per_size = figures["per_size"]
    figures["dag_parse_max_file_s"] = {size: entry["max_file_s"] for size, entry in per_size.items()}
    for name in ("task_config_s", "task_parse_s", "full_parse_s"):
        figures[name] = {size: entry[name] for size, entry in per_size.items() if name in entry}
    return figures
