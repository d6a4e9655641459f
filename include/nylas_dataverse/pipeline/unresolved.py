"""Writing the unresolved addresses: the run's ``unresolved.csv`` and the grant's roll-up over its kept runs.

Transform writes the run's file (``layout.UNRESOLVED`` in the run folder); report rebuilds the roll-up
(``layout.unresolved_rollup``) from the ``unresolved.csv`` of every run folder of the grant still in staging
(daily and real-time runs; dry-run plans are previews and are left out). The roll-up is rebuilt whole each
time, so a rerun of a day replaces that day's contribution instead of adding to it. Run folders are read in
name order (never in the order a listing returns them), and both files are written whole. The rules (what a
row holds, how runs combine) are ``core/unresolved.py``'s.
"""

from __future__ import annotations

import logging

from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core import unresolved
from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.staging import RunStaging, write_whole

log = logging.getLogger(__name__)


def write_run(staging: RunStaging, tally: unresolved.UnresolvedTally) -> ObjectStoragePath:
    path = staging.file(layout.UNRESOLVED)
    staging.folder.mkdir(parents=True, exist_ok=True)
    write_whole(path, unresolved.to_csv(tally.rows()).encode())
    return path


def _run_rows(folder: ObjectStoragePath) -> list[unresolved.UnresolvedAddress]:
    path = folder / layout.UNRESOLVED
    try:
        return unresolved.from_csv(path.read_bytes().decode())
    except FileNotFoundError:
        return []
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning(
            "%s is unreadable (%s); it is left out of the roll-up. Rerun that run's transform.", path, exc
        )
        return []


def roll_up(grant: GrantConfig, root: ObjectStoragePath) -> ObjectStoragePath:
    """Rebuild the grant's roll-up from its run folders; returns where it was written."""
    grant_folder = root / grant.dag_id
    try:
        folders = sorted(
            (
                child
                for child in grant_folder.iterdir()
                if child.is_dir() and not layout.is_plan_label(child.name)
            ),
            key=lambda child: child.name,
        )
    except FileNotFoundError:
        folders = []
    rows = unresolved.merge(_run_rows(folder) for folder in folders)
    target = root / layout.unresolved_rollup(grant.key)
    write_whole(target, unresolved.to_csv(rows).encode())
    return target
