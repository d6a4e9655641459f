"""Runs one load in this process and reports the memory it took (for ``bench/attachment_memory.py``).

Usage: ``python bench/attachment_load_child.py SPEC.json OUT.json``; the spec holds the grants YAML, the grant
key and the staging folder (a URL). Measured around ``load_window`` only, after every import:

* ``tracemalloc_peak_bytes``: the most memory Python objects held at once during the load (a copy of a file,
  of its Base64 text or of a request body around it would each count in full);
* ``rss_growth_bytes``: the highest resident set sampled every 20 ms, minus the one before the load.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import psutil

from nylas_dataverse.core.config import parse_config
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.load import load_window
from nylas_dataverse.pipeline.staging import RunStaging


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    grant = next(
        g for g in parse_config(spec["grants_yaml"], "bench grants").grants if g.key == spec["grant"]
    )
    staging = RunStaging.from_path(spec["staging"])
    dataverse, nylas = DataverseHook(grant.dataverse_conn_id), NylasHook(grant.nylas_conn_id)
    # Token, sessions, and the lazy imports behind the first staging access (Airflow's providers, fsspec)
    # happen before the baseline: what is measured is the load's own memory.
    dataverse.whoami()
    nylas.get_grant(grant.grant_id)
    staging.read_manifest("transform")
    staging.file(layout.LOAD_PARTS).exists()
    process = psutil.Process()
    before = process.memory_info().rss
    highest = [before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            highest[0] = max(highest[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tracemalloc.start()
    started = time.monotonic()
    load_window(grant, staging, dataverse, nylas)
    seconds = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stop.set()
    sampler.join()
    result = {
        "tracemalloc_peak_bytes": peak,
        "rss_before_bytes": before,
        "rss_growth_bytes": highest[0] - before,
        "load_seconds": round(seconds, 1),
    }
    Path(argv[1]).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
