"""Which of the daily DAG files builds a grant's DAG.

The grants are spread over ``SHARDS`` DAG files (``dags/nylas_to_dataverse_shard_NN.py``) so that no
single file's parse grows with the whole grants file. A grant's shard depends only on its key (which is
also its DAG id), through a stable hash: adding or removing a grant never moves another grant's DAG to
another file, and every process (DAG processor, worker, scheduler host) computes the same shard.
"""

from __future__ import annotations

import hashlib

from nylas_dataverse.core.config import DAG_ID_PREFIX

SHARDS = 32


def shard_of(key: str, shards: int = SHARDS) -> int:
    """The shard (0 .. shards - 1) of the grant with this key; the same in every process and release."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1 (got {shards})")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def key_of_dag(dag_id: str) -> str | None:
    """The grant key of a daily DAG id (``nylas_to_dataverse__<key>``), or None for any other DAG id."""
    if not dag_id.startswith(DAG_ID_PREFIX) or len(dag_id) == len(DAG_ID_PREFIX):
        return None
    return dag_id[len(DAG_ID_PREFIX) :]
