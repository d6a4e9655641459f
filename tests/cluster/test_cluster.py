"""`make cluster` driven through its REST API: Celery workers, PostgreSQL, Redis, staging on an S3 API.

In order (one cluster for the whole file; the last tests kill a worker and then stop everything):

1. three grants whose mailboxes share messages are backfilled over three days: every run succeeds,
   tasks run on both workers, each message is one row, every day's report is in S3 and nothing is
   staged on local disk;
2. the Dataverse pool holds across workers: the sandbox's peak of concurrent requests stays within
   pool slots x the hook's concurrency, a budget tighter than what the workers alone would allow;
3. webhooks reach the receiver on the API server, wait in the inbox on S3 and are loaded on a worker;
4. a worker killed with SIGKILL in the middle of a load: the task is retried on the other worker and
   the day ends with every message exactly once;
5. Ctrl-C stops every process the cluster started.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import psutil
import pytest

from nylas_dataverse.core.config import parse_config
from nylas_dataverse_sandbox import personas

from .conftest import PROJECT_ROOT, STATE_DIR, STOPPED_LINE, Cluster, local_staging_files, wait_until

pytestmark = pytest.mark.cluster

GRANTS = ("alice", "bob", "carol")
DAYS = ("2026-11-03", "2026-11-04", "2026-11-05")
# Extra mail on one backfilled day: several load chunks, so a load wants more requests in flight than
# the hook allows, and two grants' loads can overlap.
BULK_DAY = "2026-11-04"
BULK = {"alice": 600, "bob": 600}
DATAVERSE_CONCURRENCY = 2  # the Dataverse connection's max_concurrency during these tests
FAST_SERVER = 0.25  # Dataverse's modelled server time is spent at a quarter (limits unchanged)
KILL_GRANT, KILL_DAY, KILL_MESSAGES = "carol", "2026-11-20", 1000
KILL_AFTER_ROWS = 100
RUN_TIMEOUT_S = 900.0
WEBHOOK_DAYS = (dt.date(2026, 11, 7), dt.date(2026, 11, 8))


def dag_id(grant: str) -> str:
    return f"nylas_to_dataverse__{grant}"


def finished_runs(cluster: Cluster, dag: str, run_type: str) -> list[dict[str, Any]] | None:
    runs = [run for run in cluster.rest.runs(dag) if run["run_type"] == run_type]
    failed = [run["dag_run_id"] for run in runs if run["state"] == "failed"]
    assert not failed, f"{dag}: runs failed: {failed}; logs in {STATE_DIR / 'airflow' / 'logs'}"
    return runs if runs and all(run["state"] == "success" for run in runs) else None


def idle(cluster: Cluster) -> bool:
    return all(
        run["state"] in ("success", "failed") for grant in GRANTS for run in cluster.rest.runs(dag_id(grant))
    )


def set_dataverse_concurrency(cluster: Cluster, max_concurrency: int) -> None:
    urls = cluster.state["sandbox"]
    extra = {
        "tenant_id": personas.TENANT_ID,
        "authority_host": urls["entra_url"],
        "max_concurrency": max_concurrency,
    }
    connection = {
        "connection_id": "dataverse_default",
        "conn_type": "dataverse",
        "host": urls["dataverse_url"],
        "login": personas.CLIENT_ID,
        "password": personas.CLIENT_SECRET,
        "extra": json.dumps(extra),
    }
    body = {"actions": [{"action": "create", "action_on_existence": "overwrite", "entities": [connection]}]}
    result = cluster.rest.send("PATCH", "/connections", body)
    assert not result.get("create", {}).get("errors"), result


def rows_by_message_id(cluster: Cluster) -> Counter[str]:
    return Counter(
        str(row["messageid"]).casefold() for row in cluster.sandbox.emails() if row.get("messageid")
    )


def assert_exactly_once(rows: Counter[str], ledgers: dict[str, list[dict[str, Any]]]) -> None:
    """Every message a ledger says is in Dataverse is there, once; nothing failed or went unrecorded."""
    created: Counter[str] = Counter()
    for folder, entries in ledgers.items():
        outcomes = Counter(entry["outcome"] for entry in entries)
        assert outcomes["failed"] == 0, f"{folder}: {outcomes}"
        for entry in entries:
            if entry["outcome"] in ("created", "already_present"):
                key = str(entry["internet_message_id"]).casefold()
                assert rows[key] == 1, f"{folder}: {entry['message_id']} has {rows[key]} rows"
            if entry["outcome"] == "created":
                created[str(entry["internet_message_id"]).casefold()] += 1
    twice = [mid for mid, count in created.items() if count > 1]
    assert not twice, f"created by more than one run: {twice[:5]}"


@pytest.fixture(scope="module")
def backfill(cluster: Cluster) -> dict[str, Any]:
    """Three grants x three days, with service-protection counters from a clean start."""
    # The scheduled runs of the latest day start with the cluster; let them end before measuring.
    wait_until("the start-up runs to finish", lambda: idle(cluster), RUN_TIMEOUT_S)
    cluster.sandbox.dataverse("POST", "reset")  # rows and service-protection counters, peak included
    cluster.sandbox.dataverse("POST", "limits", {"time_scale": FAST_SERVER})
    set_dataverse_concurrency(cluster, DATAVERSE_CONCURRENCY)
    for grant, count in BULK.items():
        cluster.sandbox.nylas("bulk", {"grant": grant, "day": BULK_DAY, "count": count, "body_bytes": 2000})
    for grant in GRANTS:
        cluster.rest.backfill(dag_id(grant), DAYS[0], DAYS[-1])
    runs = {
        grant: wait_until(
            f"the backfill of {grant}",
            lambda g=grant: finished_runs(cluster, dag_id(g), "backfill"),
            RUN_TIMEOUT_S,
        )
        for grant in GRANTS
    }
    task_instances = [
        ti
        for grant in GRANTS
        for run in runs[grant]
        for ti in cluster.rest.task_instances(dag_id(grant), run["dag_run_id"])
    ]
    stats = cluster.sandbox.dataverse("GET", "stats")
    pool = cluster.rest.get("/pools/dataverse_api")
    return {"runs": runs, "task_instances": task_instances, "stats": stats, "pool": pool}


def test_backfill_runs_every_day_of_every_grant_on_both_workers(
    cluster: Cluster, backfill: dict[str, Any]
) -> None:
    for grant in GRANTS:
        starts = sorted(run["data_interval_start"][:10] for run in backfill["runs"][grant])
        assert starts == list(DAYS), grant
    tis = backfill["task_instances"]
    assert {ti["state"] for ti in tis} == {"success"}
    assert len(tis) == len(GRANTS) * len(DAYS) * 4
    hosts = Counter(ti["hostname"] for ti in tis)
    cluster.measurements["backfill_task_instances_per_worker"] = dict(hosts)
    assert set(hosts) == set(cluster.worker_names), hosts


def test_shared_messages_end_as_one_row_each_with_no_gap(cluster: Cluster, backfill: dict[str, Any]) -> None:
    ledgers = {
        f"{dag_id(g)}/{day}": cluster.staging.ledger(f"{dag_id(g)}/{day}") for g in GRANTS for day in DAYS
    }
    rows = rows_by_message_id(cluster)

    assert_exactly_once(rows, ledgers)
    grants_per_message: defaultdict[str, set[str]] = defaultdict(set)
    for folder, entries in ledgers.items():
        for entry in entries:
            grants_per_message[str(entry["internet_message_id"]).casefold()].add(folder.split("/")[0])
    shared = [mid for mid, grants in grants_per_message.items() if len(grants) > 1]
    assert shared, "the three mailboxes were expected to share messages"
    for folder in ledgers:
        report = cluster.staging.json(f"{folder}/report.json")
        assert report["counts"]["failed"] == 0
        outcomes = ("created", "already_present", "skipped", "failed")
        assert (
            sum(report["counts"][o] for o in outcomes)
            == report["counts"]["extracted"]
            == len(ledgers[folder])
        )
    bulk_ledger = ledgers[f"{dag_id('alice')}/{BULK_DAY}"]
    assert len(bulk_ledger) > BULK["alice"]


def test_every_report_is_in_s3_and_nothing_is_staged_on_local_disk(
    cluster: Cluster, backfill: dict[str, Any]
) -> None:
    keys = set(cluster.staging.keys())
    for grant in GRANTS:
        for day in DAYS:
            for name in ("extract.json", "transform.json", "load.json", "ledger.jsonl", "report.json"):
                assert f"{dag_id(grant)}/{day}/{name}" in keys
    assert not [key for key in keys if key.endswith(".partial")], "a part file was left half-renamed"
    assert local_staging_files() == cluster.local_staging_before
    staged_locally = [
        path for pattern in ("messages.jsonl.gz", "ledger.jsonl") for path in STATE_DIR.rglob(pattern)
    ]
    assert staged_locally == []


def test_dataverse_pool_bounds_concurrent_requests_across_workers(
    cluster: Cluster, backfill: dict[str, Any]
) -> None:
    slots = int(backfill["pool"]["slots"])
    budget = slots * DATAVERSE_CONCURRENCY
    workers_alone = (
        len(cluster.worker_names) * int(cluster.state["worker_concurrency"]) * DATAVERSE_CONCURRENCY
    )
    assert budget < workers_alone, "the pool must be the tighter limit, or this test proves nothing"
    users = backfill["stats"]["service_protection"]["users"]
    assert users, "no Dataverse request was counted"
    peak = max(user["peak_in_flight"] for user in users.values())

    cluster.measurements["dataverse_peak_in_flight"] = {
        "peak": peak,
        "budget": budget,
        "workers": workers_alone,
    }
    assert peak <= budget, (
        f"peak {peak} concurrent Dataverse requests, budget {slots} slots x {DATAVERSE_CONCURRENCY}"
    )
    assert peak >= DATAVERSE_CONCURRENCY  # the loads did ask for concurrency, so the bound was exercised
    assert backfill["stats"]["service_protection"]["rejections"] == {}


def _webhook_candidates(cluster: Cluster) -> list[Any]:
    sys.path.insert(0, str(PROJECT_ROOT))
    try:
        from bench.webhook_latency import tracked_candidates
    finally:
        sys.path.remove(str(PROJECT_ROOT))
    grants_file = Path(cluster.state["sandbox"]["grants_file"])
    grants = [g for g in parse_config(grants_file.read_text(), str(grants_file)).grants if g.enabled]
    chosen = []
    for grant, candidates in sorted(tracked_candidates(grants).items()):
        later = [
            c
            for c in candidates
            if dt.datetime.fromtimestamp(c.message["date"], dt.UTC).date() in WEBHOOK_DAYS
        ]
        assert later, f"no trackable message of {grant} on {WEBHOOK_DAYS}"
        chosen.append(later[0])
    return chosen


def test_webhooks_go_through_the_api_server_an_s3_inbox_and_a_worker(cluster: Cluster) -> None:
    chosen = _webhook_candidates(cluster)
    url = f"{cluster.state['api_url']}/nylas/webhook"
    for candidate in chosen:
        delivered = cluster.sandbox.nylas(
            "webhooks/deliver", {"url": url, "grant": candidate.grant_key, "message_id": candidate.nylas_id}
        )
        assert [d["status"] for d in delivered["deliveries"]] == [200]

    def loaded() -> bool:
        ids = {str(row["activityid"]) for row in cluster.sandbox.emails()}
        return all(candidate.activity_id in ids for candidate in chosen)

    wait_until("the webhooks' rows in Dataverse", loaded, RUN_TIMEOUT_S)
    runs = wait_until(
        "the real-time run to finish",
        lambda: finished_runs(cluster, "nylas_to_dataverse__realtime", "asset_triggered"),
        RUN_TIMEOUT_S,
    )
    hosts = {
        ti["hostname"]
        for run in runs
        for ti in cluster.rest.task_instances("nylas_to_dataverse__realtime", run["dag_run_id"])
    }
    assert hosts <= set(cluster.worker_names)
    assert hosts
    inbox = cluster.staging.keys("_realtime/")
    done = [key for key in inbox if key.endswith("/done.json")]
    assert done
    assert not [key for key in inbox if key.startswith(("_realtime/pending/", "_realtime/incoming/"))]
    assert len([key for key in inbox if key.startswith("_realtime/seen/messages/")]) >= len(chosen)
    summaries = [cluster.staging.json(key) for key in done]
    loaded_grants = {key for summary in summaries for key in summary["grants"]}
    assert {candidate.grant_key for candidate in chosen} <= loaded_grants
    for summary in summaries:
        for outcome in summary["grants"].values():
            assert outcome["error"] is None
            assert outcome["staging"].startswith(cluster.state["staging"])
    assert local_staging_files() == cluster.local_staging_before


def _kill_tree(pid: int) -> list[int]:
    """SIGKILL a process and every descendant at once, as a machine that loses power would."""
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=30)
    return [proc.pid for proc in procs]


def test_a_worker_killed_mid_load_is_replaced_by_the_other_and_the_day_is_exact(cluster: Cluster) -> None:
    dag = dag_id(KILL_GRANT)
    cluster.sandbox.dataverse("POST", "limits", {"time_scale": 1.0})  # a slow load: time to kill it
    cluster.sandbox.nylas(
        "bulk", {"grant": KILL_GRANT, "day": KILL_DAY, "count": KILL_MESSAGES, "body_bytes": 2000}
    )
    before = cluster.sandbox.email_count()
    cluster.rest.backfill(dag, KILL_DAY, KILL_DAY)

    def loading() -> dict[str, Any] | None:
        runs = [run for run in cluster.rest.runs(dag) if run["data_interval_start"].startswith(KILL_DAY)]
        if not runs:
            return None
        tis = {ti["task_id"]: ti for ti in cluster.rest.task_instances(dag, runs[0]["dag_run_id"])}
        load = tis.get("load")
        if load and load["state"] == "running" and load["hostname"]:
            return {"run_id": runs[0]["dag_run_id"], **load}
        return None

    load = wait_until("the load to start", loading, RUN_TIMEOUT_S, interval=1.0)
    victim = load["hostname"]
    assert victim in cluster.worker_names
    creates = len(cluster.staging.payload_message_ids(f"{dag}/{KILL_DAY}"))
    assert creates > KILL_AFTER_ROWS
    wait_until(
        "the first rows of the load",
        lambda: cluster.sandbox.email_count() - before >= KILL_AFTER_ROWS,
        RUN_TIMEOUT_S,
        interval=0.5,
    )
    cluster.remember_descendants()
    _kill_tree(cluster.state["workers"][victim]["pid"])
    rows_at_kill = cluster.sandbox.email_count() - before

    wait_until(
        "the day to finish after the kill",
        lambda: finished_runs(cluster, dag, "backfill"),
        RUN_TIMEOUT_S,
    )
    tries = cluster.rest.tries(dag, load["run_id"], "load")
    cluster.measurements["kill"] = {
        "rows_at_kill": rows_at_kill,
        "creates": creates,
        "tries": [(t["try_number"], t["hostname"], t["state"]) for t in tries],
    }
    survivor = next(name for name in cluster.worker_names if name != victim)
    assert 0 < rows_at_kill < creates, "the kill was meant to land in the middle of the load"
    assert tries[0]["hostname"] == victim
    assert tries[0]["state"] != "success"
    assert tries[-1]["hostname"] == survivor
    assert tries[-1]["state"] == "success"
    assert len(tries) >= 2
    ledger = cluster.staging.ledger(f"{dag}/{KILL_DAY}")
    rows = rows_by_message_id(cluster)
    assert_exactly_once(rows, {f"{dag}/{KILL_DAY}": ledger})
    outcomes = Counter(entry["outcome"] for entry in ledger)
    cluster.measurements["kill"]["outcomes"] = dict(outcomes)
    assert outcomes["created"] + outcomes["already_present"] == creates
    assert cluster.sandbox.email_count() - before == creates
    assert f"{victim} exited with code -9; {survivor} carries on" in cluster.transcript()


def test_ctrl_c_stops_every_process_the_cluster_started(cluster: Cluster) -> None:
    cluster.remember_descendants()
    started = len(cluster.started)

    code = cluster.stop()

    assert code == 0, cluster.transcript()[-3000:]
    assert STOPPED_LINE in cluster.transcript()
    assert started >= 8  # PostgreSQL, Redis, S3, API server, scheduler, DAG processor, triggerer, worker
    assert [f"{p.pid} {' '.join(p.cmdline())[:100]}" for p in cluster.leftovers()] == []
    assert not os.path.exists(STATE_DIR / "postgres" / "data" / "postmaster.pid")
