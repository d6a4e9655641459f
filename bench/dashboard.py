"""``dashboard_overview_s``: the sync-health overview of 1,000 grants with 90 days each, read and rendered.

Setup (not timed): a grants file of ``grants`` grants and, for each, the summary a grant's report tasks
leave after ``days`` daily runs (3 % of days missing, 5 % failed) and a week of real-time batches, built
with the writers' own code (``core/health.build_summary``, which keeps the last ``SUMMARY_DAYS`` days the
pages show) and written to ``_summary/<key>.json`` on the local disk; one grant in 50 has a
``grant.expired`` marker. Timed, ``repeats`` times with a fresh reader (the files are in the page cache,
as on a warm API server): what ``GET /nylas-health/`` does after authentication, i.e. read every
summary and marker, build, filter and sort the rows, and render the HTML table. The grants file is parsed
once before (the app caches it until the file changes); its cold parse is reported separately.

Also measured: ``dashboard_summary_write_s``, what one report task adds to a run: writing its entry and
rebuilding a summary that already has 90 days (median of ``writes`` writes).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

GOAL_S = 1.0
QUICK: dict[str, int] = {"grants": 100, "days": 30, "repeats": 2, "writes": 2}


def _write_grants_file(path: Path, grants: int, start: dt.date) -> None:
    lines = ["grants:"]
    for index in range(grants):
        lines += [
            f"  - key: grant-{index:04d}",
            f"    grant_id: {index:08d}-0000-4000-8000-000000000000",
            f"    email: user{index:04d}@contoso.example",
            f"    display_name: Mailbox {index:04d}",
            f"    start_date: {start.isoformat()}",
        ]
    path.write_text("\n".join(lines) + "\n")


def _summary(key: str, days: int, now: dt.datetime, rng: random.Random) -> Any:
    from nylas_dataverse.core import health

    rows = []
    yesterday = now.date() - dt.timedelta(days=1)
    for offset in range(days):
        day = yesterday - dt.timedelta(days=offset)
        if rng.random() < 0.03:
            continue  # a missing day
        failed = rng.random() < 0.05
        failure = (
            health.RunFailure("service_unavailable", "service_unavailable: 503", final=True)
            if failed
            else None
        )
        created = rng.randint(5, 60)
        entry = health.RunEntry(
            grant_key=key,
            label=day.isoformat(),
            day=day,
            written_at=dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 20), tzinfo=dt.UTC),
            counts=None
            if failed
            else health.Counts(created + 20, created, rng.randint(0, 5), 15, rng.randint(0, 1)),
            failure=failure,
            unresolved_addresses=rng.randint(0, 12),
            throttled=rng.randint(0, 3),
            throttle_wait_s=rng.random() * 20,
            run=health.RunRef(
                f"nylas_to_dataverse__{key}", f"scheduled__{day.isoformat()}T00:00:00+00:00", 1
            ),
        )
        rows.append(health.DailyRow.of(entry, f"{day.isoformat()}~{day:%Y%m%d}T002000000000Z-000000.json"))
    realtime = [
        health.RealtimeDay(
            now.date() - dt.timedelta(days=offset), 40, health.Counts(80, 30, 40, 10, 0), 1, 2.0
        )
        for offset in range(8)
    ]
    return health.build_summary(
        key,
        rows,
        realtime_days=realtime,
        realtime_sources={row.day.isoformat(): ("x.json",) for row in realtime},
        previous=None,
        now=now,
    )


def measure(
    workdir: Path, *, grants: int = 1000, days: int = 90, repeats: int = 5, writes: int = 5
) -> dict[str, Any]:
    from airflow.sdk import ObjectStoragePath

    from nylas_dataverse.core import health
    from nylas_dataverse.health.inbox import read_inbox
    from nylas_dataverse.health.pages import COLUMNS, Pages, Query
    from nylas_dataverse.health.reader import GrantsFile, HealthReader, SummaryCache
    from nylas_dataverse.pipeline.staging import write_whole
    from nylas_dataverse.pipeline.summary import SummaryStore

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    staging = workdir / "staging"
    (staging / "_summary").mkdir(parents=True, exist_ok=True)
    root = ObjectStoragePath(staging.as_uri())
    grants_path = workdir / "grants.yaml"
    _write_grants_file(grants_path, grants, now.date() - dt.timedelta(days=days + 5))
    rng = random.Random(13)
    started = time.monotonic()
    store = SummaryStore(root)
    sizes = []
    for index in range(grants):
        key = f"grant-{index:04d}"
        data = _summary(key, days, now, rng).to_json()
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        sizes.append(len(payload))
        write_whole(store.summary_path(key), payload)
        if index % 50 == 0:
            store.write_grant_status(
                f"{index:08d}-0000-4000-8000-000000000000",
                status="expired",
                notification_type="grant.expired",
                notification_id=f"n-{index}",
                at=now,
            )
    setup_s = time.monotonic() - started

    previous = os.environ.get("NYLAS_DATAVERSE_CONFIG")
    os.environ["NYLAS_DATAVERSE_CONFIG"] = str(grants_path)
    try:
        grants_file = GrantsFile(workdir)
        parse_started = time.monotonic()
        configured = grants_file.grants()
        grants_parse_s = time.monotonic() - parse_started
    finally:
        if previous is None:
            os.environ.pop("NYLAS_DATAVERSE_CONFIG", None)
        else:
            os.environ["NYLAS_DATAVERSE_CONFIG"] = previous
    assert len(configured) == grants

    pages = Pages()
    data_s: list[float] = []
    total_s: list[float] = []
    html_bytes = 0
    for _ in range(repeats):
        reader = HealthReader(root, cache=SummaryCache())  # cold: every summary read and parsed
        begin = time.perf_counter()
        overview = reader.overview(configured, sort="status")
        data_done = time.perf_counter()
        chosen = Query()
        html = pages.render(
            "overview.html",
            overview=overview,
            inbox=read_inbox(root),
            now=now,
            query=chosen,
            query_string=chosen.query_string(),
            sort_link=chosen.sort_link,
            columns=COLUMNS,
            user="bench",
            base="/nylas-health",
            airflow="",
        )
        end = time.perf_counter()
        data_s.append(data_done - begin)
        total_s.append(end - begin)
        html_bytes = len(html.encode())
        assert len(overview.rows) == grants
        assert overview.status_counts.get(health.GrantStatus.EXPIRED.value, 0) == len(range(0, grants, 50))

    # Warm: a second request of the same API server process, nothing changed since the first.
    warm_cache = SummaryCache()
    HealthReader(root, cache=warm_cache).overview(configured)
    warm_s = []
    for _ in range(repeats):
        begin = time.perf_counter()
        HealthReader(root, cache=warm_cache).overview(configured)
        warm_s.append(time.perf_counter() - begin)

    # One report task's share: its entry and the rebuild of a summary that has `days` days.
    write_root = ObjectStoragePath((workdir / "writes").as_uri())
    writer = SummaryStore(write_root)
    yesterday = now.date() - dt.timedelta(days=1)
    for offset in range(days, 0, -1):
        day = yesterday - dt.timedelta(days=offset)
        writer.record(
            health.RunEntry(
                grant_key="grant-0000",
                label=day.isoformat(),
                day=day,
                written_at=now - dt.timedelta(days=offset),
                counts=health.Counts(30, 20, 2, 8, 0),
            )
        )
    write_s = []
    for attempt in range(writes):
        begin = time.perf_counter()
        writer.record(
            health.RunEntry(
                grant_key="grant-0000",
                label=yesterday.isoformat(),
                day=yesterday,
                written_at=now + dt.timedelta(seconds=attempt),
                counts=health.Counts(30, 20, 2, 8, 0),
            )
        )
        write_s.append(time.perf_counter() - begin)

    return {
        "overview_s": round(statistics.median(total_s), 3),
        "overview_data_s": round(statistics.median(data_s), 3),
        "overview_data_warm_s": round(statistics.median(warm_s), 3),
        "overview_runs_s": [round(value, 3) for value in total_s],
        "grants_file_parse_s": round(grants_parse_s, 3),
        "summary_write_s": round(statistics.median(write_s), 4),
        "grants": grants,
        "days": days,
        "summary_bytes_median": int(statistics.median(sizes)),
        "html_bytes": html_bytes,
        "setup_s": round(setup_s, 1),
        "goal_s": GOAL_S,
    }
