"""Where the grants file and the staging area are, from the environment or the project layout."""

from __future__ import annotations

import os
from pathlib import Path

from nylas_dataverse.core.config import ConfigError, ConfigResult, parse_config

CONFIG_ENV = "NYLAS_DATAVERSE_CONFIG"
RETENTION_DRY_RUN_ENV = "NYLAS_DATAVERSE_RETENTION_DRY_RUN"


def config_path(project_root: Path) -> Path:
    configured = os.environ.get(CONFIG_ENV, "").strip()
    return Path(configured) if configured else project_root / "include" / "grants.yaml"


def load_grants(project_root: Path) -> ConfigResult:
    """Read and validate the grants file. Reading a file shipped with the DAGs is the only I/O here."""
    path = config_path(project_root)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        hint = f"set {CONFIG_ENV} to an existing file" if os.environ.get(CONFIG_ENV) else "create it"
        error = ConfigError(str(path), None, None, f"cannot read the grants file ({exc.strerror}); {hint}")
        return ConfigResult(grants=(), errors=(error,))
    return parse_config(text, str(path))


def retention_dry_run_default() -> bool:
    """Whether the staging retention DAG's runs only list what they would delete (its ``dry_run`` param's
    default). True unless ``NYLAS_DATAVERSE_RETENTION_DRY_RUN`` is ``false``, ``0``, ``no`` or ``off`` (any
    case): a new deployment shows what it would delete before it deletes anything."""
    value = os.environ.get(RETENTION_DRY_RUN_ENV, "").strip().casefold()
    return value not in {"false", "0", "no", "off"}


class InvalidGrantsFileError(ValueError):
    """All problems of the grants file at once, one per line, so one fix-and-reload cycle suffices."""

    def __init__(self, errors: tuple[ConfigError, ...]) -> None:
        lines = "\n".join(f"  - {error}" for error in errors)
        super().__init__(
            f"{len(errors)} problem(s) in the grants file; the affected DAGs are not loaded:\n{lines}"
        )
        self.errors = errors
