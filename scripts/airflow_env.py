"""The local Airflow environment shared by `make run` and `make airflow` (AIRFLOW_HOME in .airflow/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = PROJECT_ROOT / ".airflow"
BIN = Path(sys.executable).parent


def airflow_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        {
            "AIRFLOW_HOME": str(AIRFLOW_HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.update(extra or {})
    return env


def _airflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, check=False)


def ensure_database(env: dict[str, str]) -> None:
    """Migrate the metadata DB and create the pools once; both are slow CLI calls, so stamp them."""
    AIRFLOW_HOME.mkdir(exist_ok=True)
    import airflow

    stamp = AIRFLOW_HOME / f".ready-{airflow.__version__}"
    if stamp.exists():
        return
    print("Preparing the local Airflow metadata database (first run only, about 30 s)...", flush=True)
    result = _airflow("db", "migrate", env=env)
    if result.returncode:
        sys.exit(f"airflow db migrate failed:\n{result.stderr[-4000:]}")
    pools = pools_from_settings()
    pools_file = AIRFLOW_HOME / "pools.json"
    pools_file.write_text(json.dumps(pools))
    result = _airflow("pools", "import", str(pools_file), env=env)
    if result.returncode:
        sys.exit(f"airflow pools import failed:\n{result.stderr[-4000:]}")
    stamp.touch()


def pools_from_settings() -> dict[str, dict[str, object]]:
    import yaml

    settings = yaml.safe_load((PROJECT_ROOT / "airflow_settings.yaml").read_text())
    return {
        pool["pool_name"]: {"slots": pool["pool_slot"], "description": pool.get("pool_description", "")}
        for pool in settings["airflow"]["pools"]
    }
