"""``app_user_scaling_2`` / ``app_user_scaling_4``: total load throughput with 2 and 4 Dataverse application
users against one, under the sandbox's per-user service-protection limits (time-scaled).

Dataverse evaluates its limits per user, so the point of several application users is that each brings
its own budget. Every configuration runs with the same client-side parallelism: four loads at once (one
generated day of mail each, default settings), spread round-robin over 1, 2 or 4 application users
(connections ``dataverse_default``, ``dataverse_app_2`` ...). Each load holds ``messages_per_load_per_user``
messages per user, so every configuration runs for about the same time instead of the one-user run taking
four times as long.

The sandbox uses the documented ``plugin-heavy`` cost profile (600 ms of modelled server time per email
with two parties, see docs/sandbox.md) at time scale 0.2, so one user's execution-time limit (about 33
emails per second here) and not this 2-core machine bounds the loads.

The figure is the whole run's rate: every email the four loads created over the time from the first
load's start to the last one's end. Each configuration has mail in proportion to its users, so all three
run for about the same time (150 to 175 s, 2.5 to 3 windows, on 2026-12-03) and what a fresh user adds
at the start (its first window's unspent budget, spent on top of the refill rate) is the same share of
each. Counting only part of a run was tried and dropped: with the same mail in every configuration the
one-user run lasted four times as long, so its start weighed less and the ratios depended on the run's
length; and whole windows before the first load ended caught the loads draining (Retry-After pauses with
budget left), 7.4 against a ceiling of 33.3 emails/s. ``emails_per_s_all_running`` (last start to first
end) is reported next to it.
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
FIRST_DAY = dt.date(2026, 11, 9)  # after the seeded week; one day per load and configuration (a reset clears
# the other figures' bulk days)


@dataclass(frozen=True)
class ScalingPlan:
    time_scale: float = 0.2  # a 60 s window
    cost_profile: str = "plugin-heavy"
    messages_per_load_per_user: int = 1_250  # about 2.5 windows of all loads running in every configuration
    loads: int = 4
    users: tuple[int, ...] = (1, 2, 4)


# A smoke test of the machinery (about a minute and a half): too small for the goals.
QUICK = ScalingPlan(time_scale=0.05, messages_per_load_per_user=100, loads=2, users=(1, 2))


def _loads_at_once(harness: Harness, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return run_together(
        [
            functools.partial(harness.run_worker, f"app-users-{len(specs)}-{index + 1}", spec)
            for index, spec in enumerate(specs)
        ]
    )


def measure(harness: Harness, plan: ScalingPlan) -> dict[str, Any]:
    sandbox = harness.sandbox
    limits = {"time_scale": plan.time_scale, "cost_profile": plan.cost_profile}
    window_s = WINDOW_S * plan.time_scale
    staging = harness.staging_dir("app-users")
    sandbox.reset()
    sandbox.set_limits(**limits)
    # Each configuration loads its own days: ``loads`` of them with mail in proportion to its users.
    days_by_users: dict[int, list[dt.date]] = {}
    for number, users in enumerate(plan.users):
        days = [FIRST_DAY + dt.timedelta(days=number * plan.loads + index) for index in range(plan.loads)]
        for day in days:
            sandbox.add_bulk_day(GRANT, day, plan.messages_per_load_per_user * users)
        days_by_users[users] = days
    staged = sum(plan.messages_per_load_per_user * users * plan.loads for users in plan.users)
    say(f"App users: staging {staged:,} messages for {len(plan.users)} configurations (not measured)")
    with ThreadPoolExecutor(max_workers=2) as pool:  # two cores
        prepared = [
            pool.submit(
                harness.run_worker,
                f"app-users-prepare-{day}",
                _spec(GRANT, day, staging, ["extract", "transform"]),
            )
            for days in days_by_users.values()
            for day in days
        ]
        for future in prepared:
            future.result()

    runs: dict[str, Any] = {}
    for users, days in days_by_users.items():
        count = plan.messages_per_load_per_user * users
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
        say(f"App users: {plan.loads} loads of {count:,} at once over {users} application user(s)")
        with Sampler(
            sandbox, interval_s=0.25, expected=count * plan.loads, progress_every_s=15.0, label="  load"
        ) as series:
            results = _loads_at_once(harness, specs)
        for result in results:
            _check_complete(result, count, f"load with {users} application user(s)")
        starts = [result["started_at"]["load"] for result in results]
        ends = [start + result["seconds"]["load"] for start, result in zip(starts, results, strict=True)]
        together_from, together_to = max(starts), min(ends)  # while every load runs
        all_running = series.emails_at(together_to) - series.emails_at(together_from)
        counters = sandbox.dataverse_counters()
        runs[str(users)] = {
            "application_users": users,
            "messages_per_load": count,
            "emails_per_s": round(count * plan.loads / (max(ends) - min(starts)), 1),
            "seconds": round(max(ends) - min(starts), 1),
            "windows": round((max(ends) - min(starts)) / window_s, 2),
            "emails_per_s_all_running": round(all_running / (together_to - together_from), 1),
            "seconds_all_running": round(together_to - together_from, 1),
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
