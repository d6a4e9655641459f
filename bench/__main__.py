"""``make bench``: measure the figures (most against a sandbox in its own process); see docs/benchmarks.md."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.harness import PROJECT_ROOT, Harness, say
from bench.machine import describe_machine
from bench.sandbox_process import SandboxProcess
from nylas_dataverse_sandbox.dataverse.throttle import COST_PROFILES

RESULTS = PROJECT_ROOT / "bench" / "results.json"  # the published figures, quoted by the README
SCRATCH_RESULTS = PROJECT_ROOT / "bench" / "out" / "results.json"  # git-ignored: smoke tests, single figures
FIGURES = (
    "transform",
    "e2e",
    "throttled",
    "multi_grant",
    "memory",
    "dashboard",
    "realtime",
    "realtime_burst",
    "realtime_memory",
    "app_users",
    "dag_parse",
    "day_sizes",
    "lookup",
    "burst",
    "sustained",
    "real_speed",
    "cost_profiles",
)
# What a plain `make bench` measures. `e2e` (20,000 emails against the serial seed recipe: 15 minutes of
# its 45) is superseded by `sustained`, the same day against the 8-thread baseline; `--only e2e` runs it.
DEFAULT_FIGURES = tuple(figure for figure in FIGURES if figure != "e2e")


class _TimedFigures(dict[str, Any]):
    """The measured figures, and how long each took: the time since the previous figure was stored, so its
    staging and sandbox resets count (the figures run one after another)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[str, float] = {}
        self.alongside: dict[str, str] = {}  # a figure measured while another ran -> that figure
        self.failed: dict[str, str] = {}  # a figure that raised -> its error
        self.start()

    def store_alongside(self, key: str, value: Any, *, seconds: float, during: str) -> None:
        """A figure measured on its own sandbox while ``during`` ran: its own duration, not the time since
        the previous figure (that time belongs to ``during``)."""
        self.seconds[key] = round(seconds, 1)
        self.alongside[key] = during
        say(f"{key}: measured in {seconds / 60:.1f} min, alongside {during}")
        super().__setitem__(key, value)

    def start(self) -> None:
        self._last = time.monotonic()

    def measure(self, key: str, measure: Callable[[], Any]) -> None:
        """Store ``measure()`` under ``key``; a figure that fails is named in ``failed`` with its error and
        the run goes on, so one bench bug or one crashed sandbox does not lose the figures already made."""
        try:
            self[key] = measure()
        except Exception as error:  # every failure is reported; none stops the run
            self.fail(key, error)

    def fail(self, key: str, error: BaseException, *, during: str | None = None) -> None:
        """Name ``key`` as failed; a figure measured alongside ``during`` leaves the clock to that one."""
        if during is None:
            now = time.monotonic()
            self.seconds[key] = round(now - self._last, 1)
            self._last = now
        else:
            self.alongside[key] = during
        self.failed[key] = f"{type(error).__name__}: {error}"
        say(f"{key}: FAILED: {self.failed[key]}")
        traceback.print_exception(error)

    def __setitem__(self, key: str, value: Any) -> None:
        now = time.monotonic()
        self.seconds[key] = round(now - self._last, 1)
        self._last = now
        say(f"{key}: measured in {self.seconds[key] / 60:.1f} min")
        super().__setitem__(key, value)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not a measurement")
    parser.add_argument("--only", choices=FIGURES, action="append", help="measure only these (repeatable)")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"where to write the results (default: {RESULTS.relative_to(PROJECT_ROOT)} for a full run or "
        f"--merge, {SCRATCH_RESULTS.relative_to(PROJECT_ROOT)} for --quick or --only)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, staging)")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="update the results file in place (bench/results.json unless --output): keep the figures of an "
        "earlier run that are not measured now",
    )
    parser.add_argument(
        "--real-speed-windows",
        type=_positive_int,
        metavar="N",
        help="count N whole windows (300 s at real speed) in the real-speed figure, not 1",
    )
    parser.add_argument(
        "--sustained-profile",
        choices=COST_PROFILES,
        metavar="PROFILE",
        help=f"the cost profile of the sustained figure ({', '.join(COST_PROFILES)}; default typical, the "
        "published one); not merged into bench/results.json",
    )
    return parser.parse_args(argv)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of windows (1 or more)")
    return value


def _output(args: argparse.Namespace) -> Path:
    """Where the results go. Only a full run of the published plan (or a merge into it) replaces the
    published figures: a smoke test, a single figure or another cost profile written there would silently
    stand in for the 45-minute run the README quotes."""
    unpublished = "--quick" if args.quick else None
    if args.sustained_profile not in (None, "typical"):
        unpublished = f"--sustained-profile {args.sustained_profile}"
    if args.output is not None:
        output = Path(args.output)
    elif (unpublished or args.only) and not args.merge:
        output = SCRATCH_RESULTS
    else:
        output = RESULTS
    if unpublished and args.merge and output.resolve() == RESULTS.resolve():
        raise SystemExit(
            f"python -m bench: {unpublished} --merge would mix figures measured otherwise into the published "
            f"ones in {RESULTS.relative_to(PROJECT_ROOT)}; drop --merge, or name another file with --output"
        )
    return output


def _plan(args: argparse.Namespace) -> Any:
    """The sizes this run measures: the full plan, or --quick's, with any window count asked for."""
    from bench import figures

    plan = figures.QUICK_PLAN if args.quick else figures.Plan()
    if args.real_speed_windows:
        plan = dataclasses.replace(plan, real_speed_windows=args.real_speed_windows)
    if args.sustained_profile:
        plan = dataclasses.replace(plan, sustained_cost_profile=args.sustained_profile)
    return plan


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    output = _output(args)
    # A terminated benchmark still stops its sandbox and removes its scratch folder (via finally).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wanted = set(args.only or DEFAULT_FIGURES)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="nylas-dataverse-bench-"))
    # Airflow reads its home when first imported; the benchmark must not touch ~/airflow.
    os.environ["AIRFLOW_HOME"] = str(workdir / "airflow-home")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from bench import figures

    # The pipeline's own INFO lines (from the few calls made in this process) would break up the table.
    logging.getLogger("nylas_dataverse").setLevel(logging.WARNING)

    plan = _plan(args)
    say(f"Scratch folder {workdir}; results to {output}")
    say(f"Figures: {', '.join(f for f in FIGURES if f in wanted)}")
    measured = _TimedFigures()
    from bench import app_users

    sandbox = SandboxProcess(
        workdir / "sandbox",
        time_scale=plan.throttled_time_scale,
        log_path=workdir / "sandbox.log",
        application_users=app_users.APPLICATION_USERS,
        extra_grants=_extra_grants(wanted),
    )
    try:
        with sandbox:
            os.environ.update(sandbox.environment())
            say(f"Sandbox running in process {sandbox.pid}")
            harness = Harness(workdir, sandbox)
            measured.start()
            if "transform" in wanted:
                measured.measure("transform", lambda: figures.transform_throughput(harness, plan))
            if "e2e" in wanted:
                measured.measure("e2e", lambda: figures.end_to_end(harness, plan))
            if "throttled" in wanted:
                settings = [(figures.DEFAULT_BATCH_SIZE, figures.DEFAULT_MAX_CONCURRENCY)]
                measured.measure("throttled", lambda: figures.throttled_throughput(harness, plan, settings))
            if "multi_grant" in wanted:
                measured.measure("multi_grant", lambda: figures.multi_grant(harness, plan))
            if "memory" in wanted and "real_speed" not in wanted:
                measured.measure("memory", lambda: figures.peak_memory(harness, plan))
            _realistic(harness, plan, wanted, measured, quick=args.quick)
            if "dashboard" in wanted:
                from bench import dashboard

                sizes = dashboard.QUICK if args.quick else {}
                measured.measure("dashboard", lambda: dashboard.measure(workdir / "dashboard", **sizes))
            if wanted & {"realtime", "realtime_burst", "realtime_memory"}:
                from bench import realtime_bench

                measured.measure(
                    "realtime",
                    lambda: realtime_bench.measure(
                        harness,
                        quick=args.quick,
                        memory_and_history=bool(wanted & {"realtime", "realtime_memory"}),
                        burst=bool(wanted & {"realtime", "realtime_burst"}),
                    ),
                )
            if "app_users" in wanted:
                measured.measure(
                    "app_users",
                    lambda: app_users.measure(
                        harness, app_users.QUICK if args.quick else app_users.ScalingPlan()
                    ),
                )
            if "dag_parse" in wanted:
                from bench import dag_parse

                parse_sizes = dag_parse.QUICK_SIZES if args.quick else dag_parse.SIZES
                measured.measure(
                    "dag_parse", lambda: dag_parse.measure(workdir / "dag_parse", sizes=parse_sizes)
                )
    finally:
        if args.keep:
            say(f"Kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    results = _results(measured, plan, quick=args.quick, seconds=time.monotonic() - started)
    results["figure_seconds"] = measured.seconds
    if measured.alongside:
        results["figures_measured_alongside"] = measured.alongside
    if measured.failed:
        results["failed_figures"] = measured.failed
    if args.merge and output.exists():
        results = _merged(json.loads(output.read_text()), results)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(_table(results))
    print()
    say(f"Wrote {output} in {(time.monotonic() - started) / 60:.1f} min")
    if measured.failed:
        say(f"Failed (see failed_figures in the results): {', '.join(measured.failed)}")
        return 1
    return 0


def _extra_grants(wanted: set[str]) -> int:
    """The sandbox's synthetic mailboxes: only the real-time burst uses them."""
    if not wanted & {"realtime", "realtime_burst"}:
        return 0
    from bench import realtime_bench

    return realtime_bench.EXTRA_GRANTS


def _realistic(
    harness: Harness, plan: Any, wanted: set[str], measured: _TimedFigures, *, quick: bool
) -> None:
    """The figures of issue 15 (bench/realistic.py)."""
    from bench import figures, realistic

    if "day_sizes" in wanted:
        measured.measure(
            "day_sizes",
            lambda: realistic.requests_by_day_size(harness, plan.day_sizes, plan.org_mailbox_emails),
        )
    if "lookup" in wanted:
        measured.measure("lookup", lambda: realistic.lookup_cost(plan.lookup_sizes))
    if "burst" in wanted:
        measured.measure(
            "burst",
            lambda: realistic.speedup(
                harness,
                label="burst",
                count=plan.burst_messages,
                day=realistic._DAYS["burst"],
                time_scale=plan.burst_time_scale,
                cost_profile="typical",
                baseline_threads=(1, 4, 8),
            ),
        )
    if "sustained" in wanted:
        measured.measure(
            "sustained",
            lambda: realistic.speedup(
                harness,
                label="sustained",
                count=plan.sustained_messages,
                day=realistic._DAYS["sustained"],
                time_scale=plan.sustained_time_scale,
                cost_profile=plan.sustained_cost_profile,
                baseline_threads=plan.sustained_baseline_threads,
            ),
        )
    if "real_speed" in wanted:
        # The real-speed run mostly waits (20 emails/s, Retry-After pauses): the memory figure, whose peak
        # RSS does not depend on time, runs on a sandbox of its own meanwhile (docs/benchmarks.md, "Running").
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="alongside") as alongside:
            memory = None
            if "memory" in wanted:
                memory = alongside.submit(_memory_alongside, harness.workdir, plan)
            measured.measure(
                "real_speed",
                lambda: figures.throttled_throughput(
                    harness,
                    plan,
                    [(figures.DEFAULT_BATCH_SIZE, figures.DEFAULT_MAX_CONCURRENCY)],
                    cost_profile="typical",
                    time_scale=plan.burst_time_scale if quick else 1.0,
                    windows_measured=plan.real_speed_windows,
                ),
            )
            if memory is not None:
                try:
                    value, seconds = memory.result()
                except Exception as error:  # reported like any figure's failure
                    measured.fail("memory", error, during="real_speed")
                else:
                    measured.store_alongside("memory", value, seconds=seconds, during="real_speed")
    if "cost_profiles" in wanted:
        measured.measure("cost_profiles", lambda: _cost_profiles(harness, plan, measured))


def _memory_alongside(workdir: Path, plan: Any) -> tuple[dict[str, Any], float]:
    """The memory figure on a sandbox of its own (its own limits, rows and counters); its value and
    duration."""
    from bench import figures

    started = time.monotonic()
    folder = workdir / "alongside"
    folder.mkdir(parents=True, exist_ok=True)
    sandbox = SandboxProcess(
        folder / "sandbox", time_scale=plan.unthrottled_time_scale, log_path=folder / "sandbox.log"
    )
    with sandbox:
        value = figures.peak_memory(Harness(folder, sandbox), plan)
    return value, time.monotonic() - started


def _cost_profiles(harness: Harness, plan: Any, measured: dict[str, Any]) -> dict[str, Any]:
    """Sustained throughput and burst speedup per cost profile. A run this benchmark has already made
    with the same profile and settings stands for its profile instead of being repeated: figure 2
    (``throttled``: fast costs, default settings) for the fast sustained one, and, as issue 15 asks, the
    real-speed runs (``real_speed``, ``burst``: typical costs) for the typical profile."""
    from bench import figures, realistic

    already = {
        ("fast", "sustained"): measured.get("throttled"),
        ("typical", "sustained"): measured.get("real_speed"),
        ("typical", "burst"): measured.get("burst"),
    }
    profiles: dict[str, Any] = {}
    for profile in plan.cost_profiles:
        sustained = already.get((profile, "sustained"))
        if sustained is not None and (
            profile == "typical" or sustained["time_scale"] == plan.cost_profile_time_scale
        ):
            say(f"Cost profile {profile}: sustained throughput from the {sustained['time_scale']} run above")
        else:
            sustained = figures.throttled_throughput(
                harness,
                plan,
                [(figures.DEFAULT_BATCH_SIZE, figures.DEFAULT_MAX_CONCURRENCY)],
                cost_profile=profile,
                time_scale=plan.cost_profile_time_scale,
                windows_measured=1,
            )
        burst = already.get((profile, "burst"))
        if burst is not None:
            say(f"Cost profile {profile}: burst speedup from the {burst['time_scale']} run above")
        else:
            burst = realistic.speedup(
                harness,
                label=f"burst-{profile}",
                count=plan.cost_profile_burst_messages,
                day=realistic._DAYS["burst"],
                time_scale=plan.cost_profile_time_scale,
                cost_profile=profile,
                baseline_threads=plan.cost_profile_baseline_threads,
            )
        profiles[profile] = {"sustained": sustained, "burst": burst}
    return profiles


_RUN_KEYS = ("date", "machine", "quick", "bench_seconds", "plan")


def _merged(earlier: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """``now``'s figures over ``earlier``'s; the run's date and machine stay those of the full run, and the
    merged run is listed under ``merged_runs`` with its own."""
    merged = {**earlier, **{key: value for key, value in now.items() if key not in _RUN_KEYS}}
    merged["details"] = {**earlier.get("details", {}), **now.get("details", {})}
    merged["figure_seconds"] = {**earlier.get("figure_seconds", {}), **now.get("figure_seconds", {})}
    alongside = {
        key: during
        for key, during in earlier.get("figures_measured_alongside", {}).items()
        if key not in now.get("figure_seconds", {})
    }
    alongside.update(now.get("figures_measured_alongside", {}))
    if alongside:
        merged["figures_measured_alongside"] = alongside
    else:
        merged.pop("figures_measured_alongside", None)
    # A figure measured now is no longer failed; one that failed now keeps its earlier value, named here.
    failed = {
        key: error
        for key, error in earlier.get("failed_figures", {}).items()
        if key not in now.get("figure_seconds", {})
    }
    failed.update(now.get("failed_figures", {}))
    if failed:
        merged["failed_figures"] = failed
    else:
        merged.pop("failed_figures", None)
    run = {key: now[key] for key in _RUN_KEYS if key in now and key != "plan"}
    merged["merged_runs"] = [
        *earlier.get("merged_runs", []),
        {**run, "figures": sorted(now.get("details", {}))},
    ]
    return merged


def _results(measured: dict[str, Any], plan: Any, *, quick: bool, seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": describe_machine(),
        "quick": quick,
        "bench_seconds": round(seconds, 1),
    }
    if "e2e" in measured:
        e2e = measured["e2e"]
        results["requests_per_email"] = e2e["pipeline"]["requests_per_email"]
        results["baseline_requests_per_email"] = e2e["baseline"]["requests_per_email"]
        results["e2e_speedup_vs_baseline"] = e2e["speedup"]
        results["e2e_speedup_lookup_scan_excluded_estimate"] = e2e[
            "speedup_if_lookups_cost_like_writes_estimate"
        ]
        results["e2e_seconds_pipeline"] = e2e["pipeline"]["seconds"]
        results["e2e_seconds_baseline"] = e2e["baseline"]["seconds"]
    if "throttled" in measured:
        runs = measured["throttled"]["runs"]
        # The first setting (defaults first) that meets the goal, else the closest one.
        best = next(
            (run for run in runs if run["fraction_of_ceiling"] >= 0.85),
            max(runs, key=lambda run: run["fraction_of_ceiling"]),
        )
        results["throttled_fraction_of_ceiling"] = best["fraction_of_ceiling"]
        results["throttled_settings"] = {
            "batch_size": best["batch_size"],
            "max_concurrency": best["max_concurrency"],
        }
        results["throttled_fraction_of_ceiling_default_settings"] = runs[0]["fraction_of_ceiling"]
    if "transform" in measured:
        results["transform_msgs_per_s_per_core"] = measured["transform"]["msgs_per_cpu_s"]
    if "memory" in measured:
        results["peak_rss_ratio_100k_vs_1k"] = measured["memory"]["ratio"]
    if "multi_grant" in measured:
        modes = measured["multi_grant"]["modes"]
        pooled = next(mode for name, mode in modes.items() if name != "without_pool")
        results["multi_grant_429s_without_pool"] = modes["without_pool"]["server_429s"]
        results["multi_grant_429s_with_pool"] = pooled["server_429s"]
        results["multi_grant_emails_per_s_without_pool"] = modes["without_pool"]["emails_per_s"]
        results["multi_grant_emails_per_s_with_pool"] = pooled["emails_per_s"]
    _realistic_results(measured, results)
    if "dashboard" in measured:
        dashboard_figures = measured["dashboard"]
        results["dashboard_overview_s"] = dashboard_figures["overview_s"]
        results["dashboard_overview_warm_s"] = dashboard_figures["overview_data_warm_s"]
        results["dashboard_summary_write_s"] = dashboard_figures["summary_write_s"]
    if "realtime" in measured:
        from bench import realtime_bench

        results.update(realtime_bench.results(measured["realtime"]))
    if "app_users" in measured:
        for users, ratio in measured["app_users"]["scaling"].items():
            results[f"app_user_scaling_{users}"] = ratio
    if "dag_parse" in measured:
        for key in ("dag_parse_max_file_s", "task_config_s", "task_parse_s", "full_parse_s"):
            results[key] = measured["dag_parse"][key]
    results["details"] = measured
    results["plan"] = {k: v for k, v in vars(plan).items()}
    return results


def _by_size(results: dict[str, Any], key: str, fmt: str, pick: Any) -> str:
    """One entry of a figure measured per number of grants ({"1": s, "5000": s}), with its size."""
    if key not in results or not results[key]:
        return "-"
    size = pick(results[key], key=int)
    return f"{fmt.format(results[key][size])} ({int(size):,})"


def _largest(results: dict[str, Any], key: str, fmt: str) -> str:
    return _by_size(results, key, fmt, max)


def _smallest(results: dict[str, Any], key: str, fmt: str) -> str:
    return _by_size(results, key, fmt, min)


def _realistic_results(measured: dict[str, Any], results: dict[str, Any]) -> None:
    if "day_sizes" in measured:
        sizes = measured["day_sizes"]
        results["requests_per_email_by_day_size"] = {
            size: run["requests_per_email"] for size, run in sizes["by_day_size"].items()
        }
        results["requests_per_email_org_1000x50"] = sizes["org_mailbox_day"]["requests_per_email"]
        results["platform_requests_per_email"] = {
            size: run["platform_requests_per_email"] for size, run in sizes["by_day_size"].items()
        } | {"org_mailbox_day_50": sizes["org_mailbox_day"]["platform_requests_per_email"]}
    if "lookup" in measured:
        lookup = measured["lookup"]
        results["lookup_cost_vs_table_size"] = {
            "indexed": lookup["indexed_ratio_big_vs_small"],
            "scan": lookup["scan_ratio_big_vs_small"],
            "sizes": list(lookup["sizes"]),
        }
    if "burst" in measured:
        results["burst_speedup_vs_best_baseline"] = measured["burst"]["speedup"]
    if "sustained" in measured:
        results["sustained_speedup_vs_best_baseline"] = measured["sustained"]["speedup"]
        # What the limits allow at most (the pipeline's exec-time ceiling over the baseline's request one).
        results["sustained_speedup_bound"] = measured["sustained"]["bound"]["speedup"]
        results["sustained_cost_profile"] = measured["sustained"]["cost_profile"]
    if "real_speed" in measured:
        run = measured["real_speed"]["runs"][0]
        results["sustained_fraction_of_exec_ceiling_real_speed"] = run["fraction_of_ceiling"]
        results["real_speed_unhandled_429s"] = run["server_429s"] - run["client_429s_retried"]
        results["real_speed_time_scale"] = measured["real_speed"]["time_scale"]
    if "cost_profiles" in measured:
        results["cost_profiles"] = {
            profile: {
                "sustained_emails_per_s": runs["sustained"]["runs"][0]["emails_per_s"],
                "sustained_fraction_of_ceiling": runs["sustained"]["runs"][0]["fraction_of_ceiling"],
                "burst_speedup_vs_best_baseline": runs["burst"]["speedup"],
                "time_scale": runs["sustained"]["time_scale"],
                "burst_time_scale": runs["burst"]["time_scale"],
                "burst_messages": runs["burst"]["messages"],
            }
            for profile, runs in measured["cost_profiles"].items()
        }


def _table(results: dict[str, Any]) -> str:
    def value(key: str, fmt: str = "{}") -> str:
        return fmt.format(results[key]) if key in results else "-"

    def met(key: str, check: Any) -> str:
        if key not in results:
            return ""
        return "yes" if check(results[key]) else "NO"

    rows = [
        ("figure", "measured", "goal", "met"),
        (
            "Dataverse requests per created email",
            value("requests_per_email"),
            "<= 0.05",
            met("requests_per_email", lambda v: v <= 0.05),
        ),
        ("  seed-style baseline", value("baseline_requests_per_email"), "", ""),
        # Time-scaled, this fraction measures the compression as much as the client (docs/benchmarks.md,
        # figure 2); the goal moved to the real-speed row below.
        (
            "throughput / ceiling (time scale 0.1)",
            value("throttled_fraction_of_ceiling"),
            "see real speed",
            "",
        ),
        ("  with default settings", value("throttled_fraction_of_ceiling_default_settings"), "", ""),
        ("transform msgs/s per core", value("transform_msgs_per_s_per_core", "{:,.0f}"), "", ""),
        (
            "peak RSS 100k day / 1k day",
            value("peak_rss_ratio_100k_vs_1k"),
            "<= 1.5",
            met("peak_rss_ratio_100k_vs_1k", lambda v: v <= 1.5),
        ),
        (
            "end-to-end speedup vs baseline",
            value("e2e_speedup_vs_baseline", "{}x"),
            ">= 5x",
            met("e2e_speedup_vs_baseline", lambda v: v >= 5),
        ),
        (
            "  lookups costed like writes (estimate)",
            value("e2e_speedup_lookup_scan_excluded_estimate", "{}x"),
            "",
            "",
        ),
        (
            "org of 1,000 mailboxes x 50: requests per email",
            value("requests_per_email_org_1000x50"),
            "<= 0.10",
            met("requests_per_email_org_1000x50", lambda v: v <= 0.10),
        ),
        (
            "burst (1,000, real speed) vs best baseline",
            value("burst_speedup_vs_best_baseline", "{}x"),
            ">= 1.5x",
            met("burst_speedup_vs_best_baseline", lambda v: v >= 1.5),
        ),
        (
            "sustained (20,000) vs best baseline",
            value("sustained_speedup_vs_best_baseline", "{}x"),
            ">= 5x",
            met("sustained_speedup_vs_best_baseline", lambda v: v >= 5),
        ),
        ("sustained: most the limits allow", value("sustained_speedup_bound", "{}x"), "", ""),
        (
            "real speed: fraction of the execution ceiling",
            value("sustained_fraction_of_exec_ceiling_real_speed"),
            ">= 0.90",
            met("sustained_fraction_of_exec_ceiling_real_speed", lambda v: v >= 0.90),
        ),
        ("several grants: 429s without pool", value("multi_grant_429s_without_pool"), "", ""),
        ("several grants: 429s with pool", value("multi_grant_429s_with_pool"), "", ""),
        ("several grants: emails/s without pool", value("multi_grant_emails_per_s_without_pool"), "", ""),
        ("several grants: emails/s with pool", value("multi_grant_emails_per_s_with_pool"), "", ""),
        (
            "sync health overview, 1,000 grants x 90 days",
            value("dashboard_overview_s", "{} s"),
            "< 1 s",
            met("dashboard_overview_s", lambda v: v < 1.0),
        ),
        ("  the next request (summaries cached)", value("dashboard_overview_warm_s", "{} s"), "", ""),
        ("  what a report adds (entry + summary)", value("dashboard_summary_write_s", "{} s"), "", ""),
        (
            "real time: peak RSS growth, 1,000 x 200 KB",
            value("realtime_peak_rss_growth_mib", "{} MiB"),
            "<= 100 MiB",
            met("realtime_peak_rss_growth_mib", lambda v: v <= 100),
        ),
        (
            "real time: run cost, 40,000 of history / none",
            value("realtime_history_cost_ratio", "{}x"),
            "<= 1.2x",
            met("realtime_history_cost_ratio", lambda v: v <= 1.2),
        ),
        (
            "real time: burst lost",
            value("realtime_burst_lost"),
            "0",
            met("realtime_burst_lost", lambda v: v == 0),
        ),
        (
            "  receipt to row p50 / p95",
            f"{value('realtime_burst_p50_s')} / {value('realtime_burst_p95_s')} s",
            "",
            "",
        ),
        ("  Dataverse requests per email", value("realtime_burst_requests_per_email"), "", ""),
        (
            "2 application users vs 1, throughput",
            value("app_user_scaling_2", "{}x"),
            ">= 1.8x",
            met("app_user_scaling_2", lambda v: v >= 1.8),
        ),
        (
            "4 application users vs 1, throughput",
            value("app_user_scaling_4", "{}x"),
            ">= 3.4x",
            met("app_user_scaling_4", lambda v: v >= 3.4),
        ),
        (
            "slowest DAG file parse + serialize, most grants",
            _largest(results, "dag_parse_max_file_s", "{} s"),
            "<= 10 s",
            met("dag_parse_max_file_s", lambda v: max(v.values()) <= 10.0),
        ),
        ("  a task's grant lookup, 1 grant", _smallest(results, "task_config_s", "{} s"), "", ""),
        ("  a task's grant lookup, most grants", _largest(results, "task_config_s", "{} s"), "", ""),
    ]
    if "throttled_settings" in results:
        settings = results["throttled_settings"]
        rows.insert(
            4,
            (
                "  at batch_size / max_concurrency",
                f"{settings['batch_size']} / {settings['max_concurrency']}",
                "",
                "",
            ),
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    machine = results["machine"]
    lines.append(
        f"{results['date']}, {machine['cpu_model']}, {machine['cores']} cores, {machine['ram_gib']} GiB, "
        f"Python {machine['python']}"
    )
    for run in results.get("merged_runs", []):
        lines.append(f"  {', '.join(run['figures'])} measured {run['date']} on {run['machine']['cpu_model']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
