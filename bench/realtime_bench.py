"""Real-time figures (issue 11), each measured in a fresh process against the benchmark's sandbox.

- ``realtime_peak_rss_growth_mib``: notifications with ~200 KB bodies (1,000; 100 with ``--quick``) stored
  in the inbox by another process, then claimed and processed by one process (bounded batches, bodies
  streamed to staging); the figure is its peak RSS (VmHWM) minus its RSS just before claiming. Goal 100.
- ``realtime_history_cost_ratio``: the CPU time of one run (claim + process 20 new notifications, median
  of 5, in one process) in an inbox holding 40,000 processed notifications of history (4,000 quick:
  finished batches of 10 plus both dedupe markers each), over the same runs in an empty inbox. Goal
  <= 1.2. CPU time, because on a shared machine wall time mostly measures the other load; the wall-time
  ratio is in ``details``. The hourly prune, which does list the history, is timed separately.
- ``realtime_burst_*``: signed notifications POSTed to the receiver (served in the measuring process, as
  standalone) at an even rate while a loop claims and processes batches as the trigger and the DAG do:
  10,000 in 300 s across 100 mailboxes (300 in 15 s across 10 quick), the sandbox's synthetic mailboxes
  (``--nylas-extra-grants``, in the benchmark's grants file) with bulk-day mail. ``lost`` counts accepted
  notifications whose message has no outcome in any real-time ledger; latency is from the receiver's
  200 to the grant's part of the batch being finished (after its rows were created);
  ``requests_per_email`` is the sandbox Dataverse's request count over the emails created.
  ``realtime_burst_mailboxes`` says how many mailboxes were used. Figure ``realtime_burst`` runs only
  the burst.

``python -m bench.realtime_bench SPEC.json RESULT.json`` runs one measurement (the harness starts it).
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import secrets
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from airflow.sdk import ObjectStoragePath

from bench.harness import Harness, say
from bench.worker import peak_rss_kb
from nylas_dataverse.core.config import GrantConfig, parse_config
from nylas_dataverse.core.window import Window
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.realtime.inbox import INDEX_STAMP, Inbox
from nylas_dataverse.realtime.notifications import notification_from_envelope
from nylas_dataverse.realtime.processor import process_open_batches
from nylas_dataverse_sandbox import personas

MIB = 1024 * 1024
DAYS = {"memory": dt.date(2026, 11, 20), "history": dt.date(2026, 11, 21), "burst": dt.date(2026, 11, 22)}
# The burst's mailboxes: the sandbox's synthetic ones (the benchmark's sandbox is started with them).
BURST_MAILBOXES = {"full": 100, "quick": 10}
EXTRA_GRANTS = BURST_MAILBOXES["full"]


def _current_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _grants(spec: dict[str, Any]) -> dict[str, GrantConfig]:
    result = parse_config(yaml.safe_dump(spec["grants_config"]), "benchmark grants")
    return {grant.key: grant for grant in result.grants}


def _messages(grant: GrantConfig, day: dt.date) -> list[dict[str, Any]]:
    window = Window.for_day(day)
    nylas = NylasHook(grant.nylas_conn_id)
    return list(
        nylas.iter_messages(
            grant.grant_id,
            received_after=int(window.start.timestamp()),
            received_before=int(window.end.timestamp()),
        )
    )


def _envelope(message: dict[str, Any], number: int) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": "message.created",
        "source": "/google/emails/realtime",
        "id": f"bench-{message['grant_id']}-{message['id']}-{number}",
        "time": int(message.get("date") or 0),
        "webhook_delivery_attempt": 1,
        "data": {"application_id": "bench", "object": message},
    }


def _padded(message: dict[str, Any], body_bytes: int) -> dict[str, Any]:
    """The message as field customization would deliver it: full headers, a body of ``body_bytes``."""
    body = str(message.get("body") or "")
    filler = "<p>" + "Lorem ipsum dolor sit amet. " * max(0, (body_bytes - len(body)) // 28) + "</p>"
    headers = [*(message.get("headers") or []), {"name": "X-Bench", "value": "realtime"}]
    return {**message, "body": body + filler, "headers": headers}


def _ledger_ids(root: ObjectStoragePath, grant: GrantConfig) -> list[str]:
    ids: list[str] = []
    folder = root / grant.dag_id
    if not folder.exists():
        return ids
    for run in folder.iterdir():
        ledger = run / "ledger.jsonl"
        if run.name.startswith("realtime-") and ledger.exists():
            ids += [json.loads(line)["nylas_id"] for line in ledger.read_bytes().splitlines()]
    return ids


def _drain(inbox: Inbox, grants: list[GrantConfig], root: ObjectStoragePath) -> dict[str, Any]:
    while inbox.claim_batch() is not None:
        pass
    return process_open_batches(inbox, grants, root)


# --- the measurements (in the worker process) ---------------------------------------------------------


def store(spec: dict[str, Any], result: dict[str, Any]) -> None:
    grant = _grants(spec)[spec["grant"]]
    inbox = Inbox(ObjectStoragePath(Path(spec["staging"]).as_uri()))
    messages = _messages(grant, dt.date.fromisoformat(spec["day"]))[spec.get("skip", 0) :][: spec["count"]]
    for number, message in enumerate(messages):
        inbox.store(notification_from_envelope(_envelope(_padded(message, spec["body_bytes"]), number)))
    result["stored"] = len(messages)


def memory(spec: dict[str, Any], result: dict[str, Any]) -> None:
    grant = _grants(spec)[spec["grant"]]
    root = ObjectStoragePath(Path(spec["staging"]).as_uri())
    gc.collect()
    start_kb = _current_rss_kb()
    clock = time.monotonic()
    totals = _drain(Inbox(root), [grant], root)
    result.update(
        seconds=round(time.monotonic() - clock, 1),
        totals=totals,
        start_rss_kb=start_kb,
        peak_rss_kb=peak_rss_kb(),
    )


def make_history(spec: dict[str, Any], result: dict[str, Any]) -> None:
    """Finished batches and dedupe markers as ``count`` processed notifications leave them."""
    inbox = Inbox(ObjectStoragePath(Path(spec["staging"]).as_uri()))
    per_batch = spec["per_batch"]
    stamp = int(time.time() * 1_000_000) - 3_600_000_000
    record = json.dumps({"format_version": 1, "notification": {"id": "x"}}).encode()
    marker = b'{"notification_id": "x", "type": "message.created"}'
    for notification_dir in ("notifications", "messages"):
        (inbox.root / "seen" / notification_dir).mkdir(parents=True, exist_ok=True)
    for first in range(0, spec["count"], per_batch):
        batch = Path((inbox.batches / f"20261101T000000{first:06d}Z-{first:06x}").path)
        (batch / "notifications").mkdir(parents=True)
        (batch / "grants").mkdir()
        for number in range(first, min(first + per_batch, spec["count"])):
            (batch / "notifications" / f"{stamp + number:020d}-{number:016x}.json").write_bytes(record)
            for kind in ("notifications", "messages"):
                Path((inbox.root / "seen" / kind / f"{kind[0]}{number:063x}").path).write_bytes(marker)
        (batch / "grants" / "alice.json").write_bytes(b"{}")
        (batch / "done.json").write_bytes(b"{}")
    # As this version leaves it: the open-batch index exists (and is empty), so no one-off indexing.
    inbox.open_index.mkdir(parents=True, exist_ok=True)
    (inbox.root / INDEX_STAMP).write_bytes(b"")
    os.sync()  # the measured runs should not pay for writing back the history
    result["history"] = spec["count"]


def history_runs(spec: dict[str, Any], result: dict[str, Any]) -> None:
    """``repeats`` runs, each claiming and processing ``new`` fresh notifications; their costs."""
    grant = _grants(spec)[spec["grant"]]
    root = ObjectStoragePath(Path(spec["staging"]).as_uri())
    inbox = Inbox(root)
    messages = _messages(grant, dt.date.fromisoformat(spec["day"]))[spec["skip"] :]
    inbox.root.mkdir(parents=True, exist_ok=True)
    (inbox.root / "pruned_at").write_text(str(time.time()))  # the hourly prune is timed on its own
    wall: list[float] = []
    cpu: list[float] = []
    for repeat in range(spec["repeats"]):
        for number, message in enumerate(messages[repeat * spec["new"] :][: spec["new"]]):
            inbox.store(notification_from_envelope(_envelope(message, number)))
        clock, used = time.monotonic(), time.process_time()
        totals = _drain(inbox, [grant], root)
        wall.append(time.monotonic() - clock)
        cpu.append(time.process_time() - used)
        if totals.get("extracted") != spec["new"]:
            raise SystemExit(f"a history run processed {totals.get('extracted')} of {spec['new']}: {totals}")
    result.update(wall_seconds=wall, cpu_seconds=cpu)
    if spec.get("time_prune"):
        clock = time.monotonic()
        inbox.prune(force=True, retention=dt.timedelta(days=3650))
        result["prune_seconds"] = time.monotonic() - clock


def burst(spec: dict[str, Any], result: dict[str, Any]) -> None:
    from nylas_dataverse.realtime.receiver import WebhookSecret, create_standalone_app
    from nylas_dataverse_sandbox.nylas.webhooks import WebhookSender
    from nylas_dataverse_sandbox.server import serve_in_thread

    grants = _grants(spec)
    chosen = [grants[key] for key in spec["keys"]]
    day = dt.date.fromisoformat(spec["day"])
    per_grant = spec["count"] // len(chosen)
    messages = [message for grant in chosen for message in _messages(grant, day)[:per_grant]]
    messages.sort(key=lambda message: str(message["id"]))  # interleave the mailboxes
    root = ObjectStoragePath(Path(spec["staging"]).as_uri())
    inbox = Inbox(root)
    secret = secrets.token_hex(16)
    app = create_standalone_app(inbox=inbox, secret=WebhookSecret(lambda: secret))
    server = serve_in_thread("bench-receiver", app, "127.0.0.1", 0)
    url = server.url + "/nylas/webhook"
    sender = WebhookSender(secret, retry_delays_s=(0.5, 1.0))
    stop = threading.Event()
    runs: list[float] = []

    def process_loop() -> None:  # the trigger's claim and the DAG's run, back to back
        while True:
            finished = stop.is_set()
            if inbox.claim_batch() is not None or inbox.open_batches():
                clock = time.monotonic()
                process_open_batches(inbox, chosen, root)
                runs.append(time.monotonic() - clock)
            elif finished:
                return
            else:
                time.sleep(0.5)

    accepted: dict[str, float] = {}
    lock = threading.Lock()

    def deliver(message: dict[str, Any]) -> None:
        outcome = sender.deliver(url, sender.build_notification(message))
        if outcome.delivered:
            with lock:
                accepted[str(message["id"])] = time.time()

    interval = spec["seconds"] / max(1, len(messages))
    processor = threading.Thread(target=process_loop, name="bench-processor")
    processor.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            for number, message in enumerate(messages):
                delay = started + number * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(deliver, message)
        sent_s = time.monotonic() - started
    finally:
        stop.set()
        processor.join()
        server.stop()
    landed = {nylas_id for grant in chosen for nylas_id in _ledger_ids(root, grant)}
    timed = _latencies(inbox)
    latencies = [latency for _, latency in timed]
    result.update(
        sent=len(messages),
        accepted=len(accepted),
        lost=len(set(accepted) - landed),
        send_seconds=round(sent_s, 1),
        runs=len(runs),
        mailboxes=len(chosen),
        latency_p50_s=round(statistics.median(latencies), 2) if latencies else None,
        latency_p95_s=round(_p95(latencies), 2) if latencies else None,
        latency_max_s=round(max(latencies), 2) if latencies else None,
        latency_p95_s_by_minute=_p95_by_minute(timed),
    )


def _p95(values: list[float]) -> float:
    return values[0] if len(values) == 1 else statistics.quantiles(values, n=100, method="inclusive")[94]


def _p95_by_minute(timed: list[tuple[float, float]]) -> list[float]:
    """The p95 latency of the notifications that arrived in each minute of the burst: a backlog that
    grows (the processing not keeping up) shows as a rising series."""
    if not timed:
        return []
    first = min(arrival for arrival, _ in timed)
    minutes: dict[int, list[float]] = {}
    for arrival, latency in timed:
        minutes.setdefault(int((arrival - first) // 60), []).append(latency)
    return [round(_p95(minutes[minute]), 2) for minute in sorted(minutes)]


def _latencies(inbox: Inbox) -> list[tuple[float, float]]:
    """Per notification: its arrival (the file name's stamp) and its grant part's marker time minus it."""
    values: list[tuple[float, float]] = []
    for batch in inbox.batches.iterdir():
        markers = [Path(marker.path).stat().st_mtime for marker in (batch / "grants").iterdir()]
        if not markers:
            continue
        end = max(markers)
        for record in (batch / "notifications").iterdir():
            stamp = record.name.split("-", 1)[0]
            if stamp.isdigit():
                arrival = int(stamp) / 1_000_000
                values.append((arrival, max(0.0, end - arrival)))
    return values


KINDS: dict[str, Callable[[dict[str, Any], dict[str, Any]], None]] = {
    "store": store,
    "memory": memory,
    "make_history": make_history,
    "history_runs": history_runs,
    "burst": burst,
}


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    result: dict[str, Any] = {"kind": spec["kind"]}
    KINDS[spec["kind"]](spec, result)
    Path(argv[1]).write_text(json.dumps(result, indent=2))
    return 0


# --- the figure (in the benchmark process) -------------------------------------------------------------


def measure(
    harness: Harness, *, quick: bool, memory_and_history: bool = True, burst: bool = True
) -> dict[str, Any]:
    """The real-time figures: ``realtime_memory`` is the memory and history parts, ``realtime_burst`` the
    burst, ``realtime`` both."""
    figures: dict[str, Any] = {}
    if memory_and_history:
        figures.update(_memory_and_history(harness, quick=quick))
    if burst:
        figures["burst"] = measure_burst(harness, quick=quick)
    return figures


def _memory_and_history(harness: Harness, *, quick: bool) -> dict[str, Any]:
    sandbox = harness.sandbox
    run = harness.run_worker
    module = "bench.realtime_bench"
    figures: dict[str, Any] = {}

    count = 100 if quick else 1_000
    sandbox.reset()
    sandbox.add_bulk_day("alice", DAYS["memory"], count)
    staging = str(harness.staging_dir("realtime-memory"))
    say(f"Real time: storing {count:,} notifications with 200 KB bodies (not measured)")
    common = {"grant": "alice", "day": DAYS["memory"].isoformat(), "staging": staging}
    run("rt-store", {"kind": "store", **common, "count": count, "body_bytes": 200_000}, module=module)
    say("Real time: processing them in bounded batches")
    used = run("rt-memory", {"kind": "memory", **common}, module=module)
    growth = (int(used["peak_rss_kb"]) - int(used["start_rss_kb"])) / 1024
    figures["memory"] = {
        "notifications": count,
        "body_bytes": 200_000,
        "peak_rss_growth_mib": round(growth, 1),
        "seconds": used["seconds"],
        "totals": used["totals"],
    }

    history = 4_000 if quick else 40_000
    new, repeats = 20, 5
    sandbox.reset()
    sandbox.add_bulk_day("alice", DAYS["history"], new * repeats * 2)
    costs: dict[str, dict[str, Any]] = {}
    for index, label in enumerate(("none", "history")):
        folder = str(harness.staging_dir(f"realtime-history-{label}"))
        if label == "history":
            say(f"Real time: writing {history:,} notifications of history (not measured)")
            spec = {"kind": "make_history", "staging": folder, "count": history, "per_batch": 10}
            run("rt-history", spec, module=module)
        say(f"Real time: {repeats} runs of {new} new notifications, {label} of history")
        spec = {
            "kind": "history_runs",
            "grant": "alice",
            "day": DAYS["history"].isoformat(),
            "staging": folder,
            "skip": index * new * repeats,
            "new": new,
            "repeats": repeats,
            "time_prune": label == "history",
        }
        costs[label] = run("rt-history-runs", spec, module=module)
    # CPU time of the processing process: the machine is shared, and wall time mostly measures its load.
    ratio = statistics.median(costs["history"]["cpu_seconds"]) / statistics.median(
        costs["none"]["cpu_seconds"]
    )
    wall_ratio = statistics.median(costs["history"]["wall_seconds"]) / statistics.median(
        costs["none"]["wall_seconds"]
    )
    figures["history"] = {
        "history_notifications": history,
        "new_notifications_per_run": new,
        "cpu_seconds": {label: [round(t, 3) for t in cost["cpu_seconds"]] for label, cost in costs.items()},
        "wall_seconds": {label: [round(t, 3) for t in cost["wall_seconds"]] for label, cost in costs.items()},
        "cost_ratio": round(ratio, 2),
        "wall_ratio": round(wall_ratio, 2),
        "prune_seconds_with_history": round(float(costs["history"]["prune_seconds"]), 2),
    }
    return figures


def measure_burst(harness: Harness, *, quick: bool) -> dict[str, Any]:
    sandbox = harness.sandbox
    burst_count, burst_seconds = (300, 15) if quick else (10_000, 300)
    keys = [
        personas.extra_grant(number).key
        for number in range(1, BURST_MAILBOXES["quick" if quick else "full"] + 1)
    ]
    missing = [key for key in keys if key not in {grant["key"] for grant in sandbox.grants_config["grants"]}]
    if missing:
        raise SystemExit(
            f"the benchmark's sandbox has no mailboxes {missing[0]} ...: start it with extra grants"
        )
    sandbox.reset()
    for key in keys:
        sandbox.add_bulk_day(key, DAYS["burst"], burst_count // len(keys))
    before = sandbox.dataverse_counters()
    say(f"Real time: a burst of {burst_count:,} notifications in {burst_seconds} s, {len(keys)} mailboxes")
    spec = {
        "kind": "burst",
        "keys": keys,
        "day": DAYS["burst"].isoformat(),
        "staging": str(harness.staging_dir("realtime-burst")),
        "count": burst_count,
        "seconds": burst_seconds,
    }
    outcome = harness.run_worker("rt-burst", spec, module="bench.realtime_bench")
    after = sandbox.dataverse_counters()
    created = after.get("rows.emails", 0) - before.get("rows.emails", 0)
    requests = after.get("requests", 0) - before.get("requests", 0)
    outcome["created"] = created
    outcome["dataverse_requests"] = requests
    outcome["requests_per_email"] = round(requests / created, 3) if created else None
    return outcome


def results(measured: dict[str, Any]) -> dict[str, Any]:
    """The top-level keys of ``bench/results.json``."""
    figures: dict[str, Any] = {}
    if "memory" in measured:
        figures["realtime_peak_rss_growth_mib"] = measured["memory"]["peak_rss_growth_mib"]
    if "history" in measured:
        figures["realtime_history_cost_ratio"] = measured["history"]["cost_ratio"]
    if "burst" not in measured:
        return figures
    burst_figures = measured["burst"]
    return figures | {
        "realtime_burst_lost": burst_figures["lost"],
        "realtime_burst_p50_s": burst_figures["latency_p50_s"],
        "realtime_burst_p95_s": burst_figures["latency_p95_s"],
        "realtime_burst_requests_per_email": burst_figures["requests_per_email"],
        "realtime_burst_mailboxes": burst_figures["mailboxes"],
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
