"""Run the sandbox in its own process for the benchmarks: free ports, chosen time scale, JSON on stdout.

The benchmark keeps the sandbox out of the measured process so the two share the machine's cores the way
a client and a remote service would, instead of contending for one interpreter lock. The first line on
stdout is a JSON object with the service URLs, the client environment and the state directory; the
process then serves until it receives SIGTERM or SIGINT, or its stdin closes (the parent died).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from nylas_dataverse_sandbox.dataverse.throttle import ServiceProtectionLimits
from nylas_dataverse_sandbox.sandbox import Sandbox, SandboxConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--application-users", type=int, default=1)
    parser.add_argument("--nylas-extra-grants", type=int, default=0)
    args = parser.parse_args(argv)

    config = SandboxConfig(
        state_dir=Path(args.state_dir),
        nylas_port=0,
        entra_port=0,
        dataverse_port=0,
        limits=ServiceProtectionLimits(time_scale=args.time_scale),
        application_users=args.application_users,
        nylas_extra_grants=args.nylas_extra_grants,
    )
    sandbox = Sandbox.start(config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def watch_parent() -> None:
        sys.stdin.read()  # returns at EOF: the benchmark process is gone, so is the reason to serve
        stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    description = {
        "nylas_url": sandbox.nylas_url,
        "entra_url": sandbox.entra_url,
        "dataverse_url": sandbox.dataverse_url,
        "ca_pem": str(sandbox.ca_pem),
        "state_dir": str(Path(args.state_dir).resolve()),
        "environment": sandbox.environment(),
        "grants_config": sandbox.grants_config(),
    }
    print(json.dumps(description), flush=True)
    stop.wait()
    sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
