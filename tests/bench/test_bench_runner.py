"""`make bench` runs for most of an hour: one figure that fails must not lose the figures already made."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

runner = importlib.import_module("bench.__main__")


def test_a_figure_that_raises_is_named_and_the_next_figures_still_run() -> None:
    measured = runner._TimedFigures()

    def broken() -> dict[str, float]:
        raise ConnectionError("sandbox on port 5 went away")

    measured.measure("burst", lambda: {"speedup": 1.6})
    measured.measure("sustained", broken)
    measured.measure("lookup", lambda: {"indexed_ratio_big_vs_small": 1.1})

    assert dict(measured) == {"burst": {"speedup": 1.6}, "lookup": {"indexed_ratio_big_vs_small": 1.1}}
    assert measured.failed == {"sustained": "ConnectionError: sandbox on port 5 went away"}
    assert set(measured.seconds) == {"burst", "sustained", "lookup"}


def test_a_failed_alongside_figure_leaves_the_clock_to_the_figure_it_ran_beside() -> None:
    measured = runner._TimedFigures()
    measured.fail("memory", MemoryError("out of memory"), during="real_speed")

    assert "memory" not in measured.seconds
    assert measured.alongside == {"memory": "real_speed"}
    assert measured.failed == {"memory": "MemoryError: out of memory"}


def test_merging_a_rerun_clears_the_failures_it_measured_and_keeps_the_others() -> None:
    earlier = {
        "date": "2026-12-01",
        "burst_speedup_vs_best_baseline": 1.5,
        "details": {"burst": {}, "memory": {}},
        "figure_seconds": {"burst": 60.0, "sustained": 5.0, "memory": 1.0},
        "failed_figures": {"sustained": "ConnectionError: x", "memory": "MemoryError: y"},
    }
    rerun = {
        "date": "2026-12-03",
        "sustained_speedup_vs_best_baseline": 2.2,
        "details": {"sustained": {}},
        "figure_seconds": {"sustained": 400.0},
    }

    merged = runner._merged(earlier, rerun)

    assert merged["failed_figures"] == {"memory": "MemoryError: y"}
    assert merged["sustained_speedup_vs_best_baseline"] == 2.2
    assert merged["burst_speedup_vs_best_baseline"] == 1.5
    assert merged["date"] == "2026-12-01"
    assert merged["merged_runs"][-1]["figures"] == ["sustained"]


def test_the_real_speed_figure_can_count_more_windows_and_rejects_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert runner._plan(runner._parse(["--real-speed-windows", "2"])).real_speed_windows == 2
    assert runner._plan(runner._parse([])).real_speed_windows == 1

    for bad in ("0", "two"):
        with pytest.raises(SystemExit) as exit_:
            runner._parse(["--real-speed-windows", bad])
        assert exit_.value.code == 2
    assert "is not a whole number of windows" in capsys.readouterr().err


def test_only_a_full_run_or_a_merge_replaces_the_published_figures() -> None:
    def output(*argv: str) -> object:
        return runner._output(runner._parse(list(argv)))

    assert output() == runner.RESULTS
    assert output("--only", "dashboard", "--merge") == runner.RESULTS
    # A smoke test or a single figure must not stand in for the full run the README quotes.
    assert output("--quick") == runner.SCRATCH_RESULTS
    assert output("--only", "burst") == runner.SCRATCH_RESULTS
    assert output("--quick", "--output", "/tmp/q.json") == Path("/tmp/q.json")
    assert runner.SCRATCH_RESULTS.parent.name == "out"  # bench/out/ is git-ignored


def test_a_quick_run_refuses_to_merge_into_the_published_figures() -> None:
    with pytest.raises(
        SystemExit, match="--quick --merge would mix figures measured otherwise into the published ones"
    ):
        runner._output(runner._parse(["--quick", "--merge"]))
    scratch = runner._output(runner._parse(["--quick", "--merge", "--output", "/tmp/quick-merged.json"]))
    assert scratch == Path("/tmp/quick-merged.json")


def test_the_sustained_figure_can_use_another_cost_profile_but_not_merge_it_into_the_published_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert runner._plan(runner._parse([])).sustained_cost_profile == "typical"
    fast = runner._parse(["--only", "sustained", "--sustained-profile", "fast"])
    assert runner._plan(fast).sustained_cost_profile == "fast"
    assert runner._output(fast) == runner.SCRATCH_RESULTS
    assert runner._output(runner._parse(["--sustained-profile", "fast"])) == runner.SCRATCH_RESULTS
    assert runner._output(runner._parse(["--sustained-profile", "typical"])) == runner.RESULTS

    with pytest.raises(SystemExit, match="--sustained-profile fast --merge"):
        runner._output(runner._parse(["--only", "sustained", "--sustained-profile", "fast", "--merge"]))
    with pytest.raises(SystemExit) as exit_:
        runner._parse(["--sustained-profile", "cheap"])
    assert exit_.value.code == 2
    assert "invalid choice: 'cheap'" in capsys.readouterr().err
