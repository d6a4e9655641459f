"""``app_user_scaling_2`` / ``app_user_scaling_4``: total load throughput with 2 and 4 Dataverse application
users against one, under the sandbox's per-user service-protection limits (time-scaled).

Dataverse evaluates its limits per user, so the point of several application users is that each brings
its own budget. Every configuration runs the same work with the same client-side parallelism: four
loads at once (one generated day of mail each, default settings: ``batch_size`` 50, ``max_concurrency``
4), spread round-robin over 1, 2 or 4 application users (connections ``dataverse_default``,
``dataverse_app_2`` ...). The figure is the emails created per second while every load runs, from the
sandbox's row count, leaving out each configuration's first service-protection window.

The sandbox uses the documented ``plugin-heavy`` cost profile (600 ms of modelled server time per email
with two parties, see docs/sandbox.md) at time scale 0.2, so one user's execution-time limit (about 33
emails per second here) and not this 2-core machine bounds the loads: one load with ``max_concurrency``
4 reaches about that ceiling by itself, four on one user are held to it. A fresh user spends its first
window's unspent budget faster than the refill rate (the one-user run reached 1.27x its ceiling there on
2026-12-02), and that start is a larger share of the one-user run than of the others, so the rate is
counted from one window after the last load started (``steady``) when at least half a window of all loads
running is left, else from the last start (``steady: false``).
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from airflow.sdk import ObjectStoragePath

from bench.figures import _check_complete, _spec
from bench.harness import Harness, Sampler, run_together, say
from bench.worker import grant_from_spec
from nylas_dataverse.pipeline.staging import RunStaging
from nylas_dataverse_sandbox.dataverse.throttle import ServiceProtectionLimits, ceiling_emails_per_s
from nylas_dataverse_sandbox.sandbox import dataverse_conn_id

WINDOW_S = 300.0  # Dataverse's service-protection window, scaled by the sandbox's time scale
APPLICATION_USERS = 4  # the benchmark's sandbox registers this many
GRANT = "alice"
FIRST_DAY = dt.date(2026, 11, 23)  # after the other figures' bulk days


@dataclass(frozen=True)
class ScalingPlan:
    time_scale: float = 0.2  # a 60 s window
    cost_profile: str = "plugin-heavy"
    messages_per_load: int = 4_000  # four users: about a window of all running after the first
    loads: int = 4
    users: tuple[int, ...] = (1, 2, 4)


# A smoke test of the machinery (about a minute and a half): too small for the goals.
QUICK = ScalingPlan(time_scale=0.05, messages_per_load=100, loads=2, users=(1, 2))


def _loads_at_once(harness: Harness, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return run_together(
        [
            functools.partial(harness.run_worker, f"app-users-{len(specs)}-{index + 1}", spec)
            for index, spec in enumerate(specs)
        ]
    )


def measure(harness: Harness, plan: ScalingPlan) -> dict[str, Any]:
    sandbox = harness.sandbox
    count = plan.messages_per_load
    limits = {"time_scale": plan.time_scale, "cost_profile": plan.cost_profile}
    days = [FIRST_DAY + dt.timedelta(days=index) for index in range(plan.loads)]
    staging = harness.staging_dir("app-users")
    sandbox.reset()
    sandbox.set_limits(**limits)
    for day in days:
        sandbox.add_bulk_day(GRANT, day, count)
    say(f"App users: staging {len(days)} days x {count:,} messages (extract + transform, not measured)")
    with ThreadPoolExecutor(max_workers=2) as pool:  # two cores
        prepared = [
            pool.submit(
                harness.run_worker,
                f"app-users-prepare-{day}",
                _spec(GRANT, day, staging, ["extract", "transform"]),
            )
            for day in days
        ]
        for future in prepared:
            future.result()

    runs: dict[str, Any] = {}
    for users in plan.users:
        sandbox.reset_dataverse()  # rows, counters and every user's window start empty
        sandbox.set_limits(**limits)
        specs = []
        for index, day in enumerate(days):
            spec = _spec(GRANT, day, staging, ["load", "report"])
            spec["grant_settings"]["dataverse_conn_id"] = dataverse_conn_id(index % users + 1)
            grant = grant_from_spec({**spec, "grants_config": sandbox.grants_config})
            RunStaging(ObjectStoragePath(Path(staging).as_uri()), grant.dag_id, spec["day"]).clear_after(
                "transform"
            )
            specs.append(spec)
        say(f"App users: {plan.loads} loads at once over {users} application user(s)")
        with Sampler(
            sandbox, interval_s=0.25, expected=count * plan.loads, progress_every_s=15.0, label="  load"
        ) as series:
            results = _loads_at_once(harness, specs)
        for result in results:
            _check_complete(result, count, f"load with {users} application user(s)")
        starts = [result["started_at"]["load"] for result in results]
        ends = [start + result["seconds"]["load"] for start, result in zip(starts, results, strict=True)]
        # While every load runs: from the last start to the first end; the steady part from one window on.
        together_from, together_to = max(starts), min(ends)
        window_s = WINDOW_S * plan.time_scale
        steady = together_to - (together_from + window_s) >= window_s / 2
        counted_from = together_from + window_s if steady else together_from
        emails = series.emails_at(together_to) - series.emails_at(counted_from)
        all_running = series.emails_at(together_to) - series.emails_at(together_from)
        counters = sandbox.dataverse_counters()
        runs[str(users)] = {
            "application_users": users,
            "emails_per_s": round(emails / (together_to - counted_from), 1),
            "steady": steady,
            "seconds_counted": round(together_to - counted_from, 1),
            "emails_per_s_all_running": round(all_running / (together_to - together_from), 1),
            "seconds_all_running": round(together_to - together_from, 1),
            "emails_per_s_first_start_to_last_end": round(count * plan.loads / (max(ends) - min(starts)), 1),
            "created": sum(int(result["report"]["created"]) for result in results),
            "server_429s": counters.get("status.429", 0),
            "client_429s_retried": sum(result["client"]["dataverse_throttled"] for result in results),
        }
        say(f"App users: {users} -> {runs[str(users)]['emails_per_s']:.0f} emails/s")
        time.sleep(0.5)
    one = runs["1"]["emails_per_s"]
    ceiling = ceiling_emails_per_s(ServiceProtectionLimits(**limits), 50, parties_per_email=2)
    return {
        "plan": asdict(plan),
        "ceiling_emails_per_s_per_user": round(ceiling, 1),
        "runs": runs,
        "scaling": {
            users: round(run["emails_per_s"] / one, 2) for users, run in runs.items() if users != "1"
        },
    }
