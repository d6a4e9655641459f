"""What `astro dev parse` (and `astro deploy --parse`) run, with pytest, inside the project's image.

The Astro CLI runs ``pytest .astro/test_dag_integrity_default.py`` from the project root; ``astro dev
init`` would generate a generic version that patches connection and variable lookups and passes
``include_examples`` to ``DagBag``, which Airflow 3.3.0-3.3.2 no longer accepts. This project's DAG
files read only the grants file while parsing, so nothing is patched and no metadata database is used.

Paths listed in ``.astro/dag_integrity_exceptions.txt`` (relative to the project root) may fail.
"""

from __future__ import annotations

from pathlib import Path

from airflow.dag_processing.dagbag import DagBag

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DAGS = PROJECT_ROOT / "dags"
EXCEPTIONS = Path(__file__).with_name("dag_integrity_exceptions.txt")


def _exempt() -> set[str]:
    if not EXCEPTIONS.exists():
        return set()
    lines = (line.split("#", 1)[0].strip() for line in EXCEPTIONS.read_text(encoding="utf-8").splitlines())
    return {line for line in lines if line}


def _relative(path: str) -> str:
    absolute = Path(path) if Path(path).is_absolute() else DAGS / path
    return absolute.resolve().relative_to(PROJECT_ROOT).as_posix()


def test_every_dag_file_imports() -> None:
    bag = DagBag(dag_folder=str(DAGS))
    failures = {
        _relative(path): error
        for path, error in bag.import_errors.items()
        if _relative(path) not in _exempt()
    }
    assert not failures, "DAG files that fail to import:\n" + "\n".join(
        f"--- {path}\n{error.strip()}" for path, error in sorted(failures.items())
    )
    assert bag.dags, f"no DAGs found in {DAGS}"
