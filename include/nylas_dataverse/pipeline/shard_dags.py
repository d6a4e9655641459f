"""What each daily DAG file in ``dags/`` runs: build the DAGs of one shard of the grants file.

When the DAG processor parses a file it builds every enabled grant of the file's shard. When a task runs,
Airflow parses only its DAG's file and says which DAG it wants (``get_parsing_context``); then the file
builds that one DAG from that one grant's entry of the index, or nothing when the DAG is another file's.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import get_parsing_context

from nylas_dataverse.core.sharding import key_of_dag, shard_of
from nylas_dataverse.pipeline import grants_index


def build_shard(shard: int, project_root: Path) -> None:
    wanted = get_parsing_context().dag_id
    if wanted is None:
        result = grants_index.load_shard(project_root, shard)
        grants, alerts = [g for g in result.grants if g.enabled], result.alerts
    else:
        key = key_of_dag(wanted)
        if key is None or shard_of(key) != shard:
            return
        grant, alerts = grants_index.load_one(project_root, key)
        grants = [grant] if grant is not None and grant.enabled else []
    if not grants:
        return
    # Only a file with DAGs to build pays for importing Airflow's DAG machinery and the task code.
    from nylas_dataverse.pipeline.dag_factory import build_dag

    for grant in grants:
        build_dag(grant, project_root, alerts=alerts)
