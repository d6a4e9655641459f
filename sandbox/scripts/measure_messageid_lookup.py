"""How long the sandbox's Dataverse takes to answer a messageid lookup on a small and a big ``emails`` table,
with and without the messageid index (``DataverseBehaviour.messageid_indexed``).

Usage: python sandbox/scripts/measure_messageid_lookup.py [--sizes 10000 1000000] [--values 50] [--repeat 5]

The lookup is the pipeline's: ``GET emails?$select=activityid,messageid&$filter=Microsoft.Dynamics.CRM.In(
PropertyName='messageid',PropertyValues=[...])`` with ``--values`` messageids (half present, half absent),
answered by ``ODataService.handle`` in this process: no HTTP, TLS or service-protection sleep, so the time
is the sandbox's own work. Rows are inserted with ``DataverseBackend.bulk_emails`` (one transaction) into a
temporary SQLite file. Prints one JSON object: per size and mode the median and best wall time in ms, the rows
examined and the modelled server cost the limits would charge (fast profile).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nylas_dataverse_sandbox.dataverse.backend import Caller, DataverseBackend, application_user_id
from nylas_dataverse_sandbox.dataverse.batch import HeaderMap
from nylas_dataverse_sandbox.dataverse.service import ODataRequest, ODataService
from nylas_dataverse_sandbox.dataverse.throttle import ServiceProtectionLimits
from nylas_dataverse_sandbox.entra.backend import EntraBackend
from nylas_dataverse_sandbox.personas import CLIENT_ID


def _lookup_url(messageids: list[str]) -> str:
    values = ",".join(f"'{m}'" for m in messageids)
    return (
        "/api/data/v9.2/emails?$select=activityid,messageid&$filter=Microsoft.Dynamics.CRM.In("
        f"PropertyName='messageid',PropertyValues=[{values}])"
    )


def measure(sizes: list[int], values: int, repeat: int) -> dict[str, Any]:
    results: dict[str, Any] = {"values_per_lookup": values, "repeat": repeat, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="nd-lookup-") as tmp:
        backend = DataverseBackend(
            db_path=Path(tmp) / "dataverse.sqlite3",
            entra=EntraBackend(),
            limits=ServiceProtectionLimits(),
        )
        service = ODataService(backend)
        caller = Caller(CLIENT_ID, application_user_id(CLIENT_ID))
        present: list[str] = []
        for size in sorted(sizes):
            started = time.perf_counter()
            present += backend.bulk_emails(size - len(present))
            seeded_s = time.perf_counter() - started
            step = max(1, len(present) // (values // 2 or 1))
            wanted = present[::step][: values // 2] + [
                f"<absent-{n}@x.example>" for n in range(values - values // 2)
            ]
            request = ODataRequest("GET", _lookup_url(wanted), HeaderMap(), b"", "https://127.0.0.1")
            per_mode: dict[str, Any] = {"insert_s": round(seeded_s, 1)}
            for indexed in (True, False):
                backend.set_behaviour(messageid_indexed=indexed)
                timings, cost, examined = [], 0.0, 0
                for _ in range(repeat):
                    before = backend.counters().get("query.rows_examined", 0)
                    started = time.perf_counter()
                    response = service.handle(request, caller)
                    timings.append((time.perf_counter() - started) * 1000)
                    assert response.status == 200, response.body[:300]
                    assert len(json.loads(response.body)["value"]) == values // 2
                    cost = response.cost_ms
                    examined = backend.counters()["query.rows_examined"] - before
                per_mode["indexed" if indexed else "scan"] = {
                    "median_ms": round(statistics.median(timings), 2),
                    "best_ms": round(min(timings), 2),
                    "rows_examined": examined,
                    "modelled_cost_ms": round(cost, 2),
                }
            results["sizes"][str(size)] = per_mode
            print(f"{size:>9,} emails: {json.dumps(per_mode)}", file=sys.stderr, flush=True)
        backend.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--values", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.sizes, args.values, args.repeat), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
