"""Memory of a 25 MB attachment's trip from Nylas to Dataverse: streamed, not held whole.

Starts the sandbox in this process, lets the org accept 64 MiB attachments, and loads alice's seeded day
(which holds the sandbox's 25 MiB video among ten files) twice on a fresh Dataverse: with ``attachments:
off`` (the control) and on. Each load runs in a child process that measures itself
(``bench/attachment_load_child.py``: tracemalloc's peak and sampled RSS growth around the load only); the
difference is what the files cost. It checks the video arrived whole and writes
``bench/attachment_memory.json``.

The file's Base64 text alone is 33.3 MiB: a load that held the file, its Base64 text or the request body
around it would show at least that much. Run: ``make bench-attachments`` (about a minute). Not part of
``make test``: it moves 25 MiB through the sandbox.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:  # run as a script: `bench` is not importable from bench/ itself
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.machine import describe_machine  # noqa: E402

RESULTS = PROJECT_ROOT / "bench" / "attachment_memory.json"
CHILD = Path(__file__).with_name("attachment_load_child.py")
DAY = dt.date(2026, 11, 3)
MIB = 1024 * 1024


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="nylas-dataverse-attachments-"))
    os.environ["AIRFLOW_HOME"] = str(workdir / "airflow-home")
    from airflow.sdk import ObjectStoragePath

    from nylas_dataverse.core.config import parse_config
    from nylas_dataverse.core.window import Window
    from nylas_dataverse.pipeline.run import Services, run_stage
    from nylas_dataverse.pipeline.staging import RunStaging
    from nylas_dataverse_sandbox.nylas.seed import LARGE_ATTACHMENT_BYTES
    from nylas_dataverse_sandbox.sandbox import Sandbox, SandboxConfig

    sandbox = Sandbox.start(
        SandboxConfig(state_dir=workdir / "sandbox", nylas_port=0, entra_port=0, dataverse_port=0)
    )
    try:
        os.environ.update(sandbox.environment())
        config = sandbox.grants_config()
        measured: dict[str, dict[str, float]] = {}
        # The same load twice on a fresh Dataverse: without attachments (the control: everything else the
        # load allocates, lazy imports included) and with them (the 25 MiB video among ten files).
        for variant in ("off", "on"):
            sandbox.dataverse.reset()
            sandbox.dataverse.set_behaviour(max_upload_file_size=64 * MIB)
            config["defaults"]["attachments"] = variant
            grants_yaml = yaml.safe_dump(config)
            alice = next(g for g in parse_config(grants_yaml, "bench grants").grants if g.key == "alice")
            root = ObjectStoragePath((workdir / f"staging-{variant}").as_uri())
            staging = RunStaging(root, alice.dag_id, DAY.isoformat())
            for stage in ("extract", "transform"):
                run_stage(stage, alice, staging, Services.for_grant(alice), window=Window.for_day(DAY))
            spec, out = workdir / f"spec-{variant}.json", workdir / f"child-{variant}.json"
            spec.write_text(
                json.dumps({"grants_yaml": grants_yaml, "grant": "alice", "staging": str(staging.folder)})
            )
            subprocess.run(
                [sys.executable, str(CHILD), str(spec), str(out)], check=True, env=dict(os.environ)
            )
            measured[f"attachments_{variant}"] = json.loads(out.read_text())
        (email,) = [
            row
            for row in sandbox.dataverse.emails_with_parties()
            if "Site survey walkthrough" in (row.get("subject") or "")
        ]
        (video,) = sandbox.dataverse.attachments_of(email["activityid"])
        if video["filesize"] != LARGE_ATTACHMENT_BYTES:
            raise SystemExit(
                f"the video arrived with {video['filesize']} bytes, not {LARGE_ATTACHMENT_BYTES}"
            )
        on, off = measured["attachments_on"], measured["attachments_off"]
        result = {
            "measured_on": dt.date.today().isoformat(),
            "machine": describe_machine(),
            "attachment_bytes": LARGE_ATTACHMENT_BYTES,
            "attachment_base64_bytes": 4 * -(-LARGE_ATTACHMENT_BYTES // 3),
            "python_peak_added_by_files_bytes": on["tracemalloc_peak_bytes"] - off["tracemalloc_peak_bytes"],
            **measured,
        }
    finally:
        sandbox.stop()
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"Load with the 25 MiB attachment: Python peak {on['tracemalloc_peak_bytes'] / MIB:.1f} MiB against"
        f" {off['tracemalloc_peak_bytes'] / MIB:.1f} MiB without attachments (the files add"
        f" {result['python_peak_added_by_files_bytes'] / MIB:.1f} MiB); RSS growth"
        f" {on['rss_growth_bytes'] / MIB:.1f} vs {off['rss_growth_bytes'] / MIB:.1f} MiB -> {RESULTS}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
