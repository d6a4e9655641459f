"""Runs the load task in forked children on command, so a drill can SIGKILL it at random points.

Importing Airflow takes seconds; forking a process that already did costs milliseconds, so twenty kills
stay cheap. This process starts no thread before forking (the sandbox runs in the test process), which
keeps fork safe. Each child builds its own hook and session and runs ``load_window`` once, logging at
DEBUG to the log file (the secret scan reads it).

Usage: ``python load_forker.py SPEC.json``; the spec holds the grants YAML, the grant key, the staging
folder (a URL) and the log file. Then one command per line on stdin, one answer per line on stdout:

* ``run``        -> ``pid <n>``: a child started the load
* ``wait <pid>`` -> ``exit <code>``: the child ended (a negative code is the signal that ended it)
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from pathlib import Path

from nylas_dataverse.core.config import parse_config
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.pipeline.load import load_window
from nylas_dataverse.pipeline.staging import RunStaging


def _load_once(spec: dict[str, str]) -> int:
    # stdout is the protocol channel; whatever the child prints (Airflow logs to stdout) goes to the log.
    with open(spec["log_file"], "ab") as log:
        os.dup2(log.fileno(), sys.stdout.fileno())
        os.dup2(log.fileno(), sys.stderr.fileno())
    handler = logging.FileHandler(spec["log_file"])
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s pid={os.getpid()} %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        config = parse_config(spec["grants_yaml"], "drill grants")
        grant = next(g for g in config.grants if g.key == spec["grant"])
        load_window(grant, RunStaging.from_path(spec["staging"]), DataverseHook(grant.dataverse_conn_id))
    except BaseException:
        logging.getLogger("drill").error("load failed:\n%s", traceback.format_exc())
        return 1
    finally:
        handler.flush()
    return 0


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command == ["run"]:
            pid = os.fork()
            if pid == 0:
                os._exit(_load_once(spec))
            print(f"pid {pid}", flush=True)
        elif len(command) == 2 and command[0] == "wait":
            _, status = os.waitpid(int(command[1]), 0)
            print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)
        else:
            print(f"error unknown command {line.strip()!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
