"""Suite-wide setup: a hermetic Airflow environment and a sandbox on free ports.

Airflow reads its configuration when first imported, so the environment is fixed here, before any test
module imports it. ``AIRFLOW__CORE__UNIT_TEST_MODE`` is deliberately not set: it would switch cron
schedules to data-interval semantics and hide the behaviour production sees.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The session sandbox's Dataverse spends a hundredth of each operation's modelled server time (and plays
# its 300 s window in 3 s). Its limits and costs are counted at full size; only the waiting shrinks. Tests
# about pacing set limits of their own; `make bench` measures at real and tenth speed.
SANDBOX_TIME_SCALE = 0.01
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="nd-airflow-home-"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
)
# Tests choose their own staging and grants file; a developer's shell must not leak in.
for _name in (
    "NYLAS_DATAVERSE_STAGING",
    "NYLAS_DATAVERSE_CONFIG",
    "AIRFLOW_CONN_NYLAS_DEFAULT",
    "AIRFLOW_CONN_DATAVERSE_DEFAULT",
    "REQUESTS_CA_BUNDLE",
):
    os.environ.pop(_name, None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--today",
        metavar="YYYY-MM-DD",
        help="run the suite as if today were this day (this process's clock only): finds tests that "
        "pass only while the sandbox's seeded days are recent",
    )


def pytest_configure(config: pytest.Config) -> None:
    today = config.getoption("--today")
    if today:
        import time_machine  # here, not at the top: the Astro image runs this conftest without it

        try:
            day = dt.date.fromisoformat(today)
        except ValueError:
            raise pytest.UsageError(f"--today wants a day as YYYY-MM-DD, got {today!r}") from None
        now = dt.datetime.now(dt.UTC)
        time_machine.travel(dt.datetime.combine(day, now.timetz()), tick=True).start()


@pytest.fixture
def morning_after() -> Iterator[Callable[[dt.date], dt.datetime]]:
    """Moves this process's wall clock to 06:00 UTC the day after a given day, still ticking.

    The sandbox's mail is seeded on fixed days, but what a grant's health summary keeps (its last
    ``SUMMARY_DAYS`` days, the entries of the last ``KEEP_DAYS``) is counted back from today. A test of
    what a daily run leaves behind runs at the hour the scheduled run for that day would: without
    this, it fails once the seeded week is a month old. Only Python's clock moves (TLS keeps the real one).
    """
    import time_machine

    travels: list[time_machine.travel] = []

    def move(day: dt.date) -> dt.datetime:
        moment = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(6), tzinfo=dt.UTC)
        travel = time_machine.travel(moment, tick=True)
        travel.start()
        travels.append(travel)
        return moment

    yield move
    for travel in reversed(travels):
        travel.stop()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated metadata database (about 20 s, once per session) for ``dag.test()``."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def sandbox_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """All three stand-ins on free ports, shared by the session; tests reset what they change."""
    from nylas_dataverse_sandbox.dataverse.throttle import ServiceProtectionLimits
    from nylas_dataverse_sandbox.sandbox import Sandbox, SandboxConfig

    config = SandboxConfig(
        state_dir=tmp_path_factory.mktemp("sandbox"),
        nylas_port=0,
        entra_port=0,
        dataverse_port=0,
        limits=ServiceProtectionLimits(time_scale=SANDBOX_TIME_SCALE),
    )
    sandbox = Sandbox.start(config)
    yield sandbox
    sandbox.stop()


@pytest.fixture
def sandbox(sandbox_session: object, monkeypatch: pytest.MonkeyPatch) -> object:
    """The session sandbox, reset to its seed, with this process's environment pointed at it."""
    sandbox_session.nylas.reset()  # type: ignore[attr-defined]
    sandbox_session.entra.reset()  # type: ignore[attr-defined]
    sandbox_session.dataverse.reset()  # type: ignore[attr-defined]
    for name, value in sandbox_session.environment().items():  # type: ignore[attr-defined]
        monkeypatch.setenv(name, value)
    return sandbox_session
