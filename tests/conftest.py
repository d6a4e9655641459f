"""Suite-wide setup: a hermetic Airflow environment and a sandbox on free ports.

Airflow reads its configuration when first imported, so the environment is fixed here, before any test
module imports it. ``AIRFLOW__CORE__UNIT_TEST_MODE`` is deliberately not set: it would switch cron
schedules to data-interval semantics and hide the behaviour production sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
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
    from nylas_dataverse_sandbox.sandbox import Sandbox, SandboxConfig

    config = SandboxConfig(
        state_dir=tmp_path_factory.mktemp("sandbox"), nylas_port=0, entra_port=0, dataverse_port=0
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
