"""The local Airflow environment shared by `make run` and `make airflow` (AIRFLOW_HOME in .airflow/)."""

from __future__ import annotations

import base64
import importlib.metadata
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = PROJECT_ROOT / ".airflow"
BIN = Path(sys.executable).parent


def airflow_environment(
    extra: dict[str, str] | None = None, airflow_home: Path = AIRFLOW_HOME
) -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.update(local_secrets(airflow_home))
    env.update(extra or {})
    return env


def local_secrets(airflow_home: Path = AIRFLOW_HOME) -> dict[str, str]:
    """The keys every component of one local Airflow must share, generated once per AIRFLOW_HOME.

    Left unset, each process invents its own: tokens signed by the API server would not verify in the
    scheduler, and a short random JWT key trips the 64-byte minimum warning for HMAC-SHA512.
    """
    path = airflow_home / "local_secrets.json"
    if not path.exists():
        airflow_home.mkdir(parents=True, exist_ok=True)
        values = {
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(96),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(48),
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        }
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(values, out, indent=2)
    values = json.loads(path.read_text())
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        sys.exit(f"{path} is not a JSON object of strings; delete it to generate new keys")
    return values


def _airflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, check=False)


def ensure_database(env: dict[str, str]) -> None:
    """Migrate the metadata DB and create the pools once; both are slow CLI calls, so stamp them."""
    airflow_home = Path(env["AIRFLOW_HOME"])
    airflow_home.mkdir(parents=True, exist_ok=True)
    # The distribution's metadata, not `import airflow`: importing it here would create ~/airflow/.
    stamp = airflow_home / f".ready-{importlib.metadata.version('apache-airflow')}"
    if stamp.exists():
        return
    print("Preparing the local Airflow metadata database (first run only, about 30 s)...", flush=True)
    result = _airflow("db", "migrate", env=env)
    if result.returncode:
        sys.exit(f"airflow db migrate failed:\n{result.stderr[-4000:]}")
    pools = pools_from_settings()
    pools_file = airflow_home / "pools.json"
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
