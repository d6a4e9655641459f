"""The suite's own option: ``pytest --today`` runs it as if on another day."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_EXPECTED = "ND_TEST_EXPECTED_TODAY"


def _pytest(*args: str, expected: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, _EXPECTED: expected or ""}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_today_moves_the_clock_of_the_whole_session_and_keeps_it_ticking() -> None:
    expected = os.environ.get(_EXPECTED)
    if expected:  # the inner run
        before = dt.datetime.now(dt.UTC)
        assert before.date().isoformat() == expected
        assert dt.date.today().isoformat() == expected
        assert dt.datetime.now(dt.UTC) >= before
        return
    name = test_today_moves_the_clock_of_the_whole_session_and_keeps_it_ticking.__name__
    here = f"{Path(__file__).relative_to(PROJECT_ROOT)}::{name}"
    run = _pytest("--today", "2027-03-01", here, expected="2027-03-01")
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("value", ["tomorrow", "2027-02-30"])
def test_today_refuses_what_is_not_a_day_and_says_the_format(value: str) -> None:
    run = _pytest("--today", value, "--collect-only", str(Path(__file__).relative_to(PROJECT_ROOT)))
    assert run.returncode == 4  # pytest's usage error
    assert f"--today wants a day as YYYY-MM-DD, got {value!r}" in run.stderr
