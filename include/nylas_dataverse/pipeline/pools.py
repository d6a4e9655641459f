"""The Airflow pools the grants' daily tasks run in, for ``nylas-dataverse doctor``.

A task whose pool does not exist is never scheduled: it waits forever, with nothing in the task's log.
Every daily DAG's ``extract`` runs in ``nylas_api``; ``transform`` and ``load`` run in the pool of the
grant's application user (``core/assignment.pool_name``); ``report`` runs in Airflow's ``default_pool``,
which always exists. The real-time DAG's ``process`` task runs in ``dataverse_api`` whatever users the
grants name, so that pool is always needed. ``required_pools`` is pure; ``existing_pool_names`` reads
the metadata database.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from nylas_dataverse.core.assignment import DEFAULT_POOL, pool_name
from nylas_dataverse.core.config import REALTIME_DAG_ID, GrantConfig
from nylas_dataverse.pipeline.dag_factory import NYLAS_POOL

NYLAS_POOL_SLOTS = 8  # airflow_settings.yaml's size of nylas_api
DATAVERSE_POOL_SLOTS = 2  # as nylas-dataverse assign-users proposes (--pool-slots)


@dataclass(frozen=True)
class RequiredPool:
    name: str
    slots: int
    description: str
    tasks: str  # which tasks run in it, for the operator
    grants: tuple[str, ...]  # keys of the grants whose tasks use it

    def create_command(self) -> str:
        return f"airflow pools set {self.name} {self.slots} {shlex.quote(self.description)}"

    def users(self, shown: int = 3) -> str:
        """``alice, bob`` or ``alice, bob, carol and 7 more``."""
        head = ", ".join(self.grants[:shown])
        rest = len(self.grants) - shown
        return f"{head} and {rest} more" if rest > 0 else head


def required_pools(grants: Iterable[GrantConfig]) -> list[RequiredPool]:
    """The pools the given grants' daily tasks need: ``nylas_api`` first, then each application user's
    pool in the order the grants first name it."""
    grants = list(grants)
    if not grants:
        return []
    pools = [
        RequiredPool(
            NYLAS_POOL,
            NYLAS_POOL_SLOTS,
            "Concurrent extract tasks against the Nylas API",
            "extract",
            tuple(g.key for g in grants),
        )
    ]
    users: dict[str, list[str]] = {}
    for grant in grants:
        users.setdefault(grant.dataverse_conn_id, []).append(grant.key)
    for conn_id, keys in users.items():
        pools.append(
            RequiredPool(
                pool_name(conn_id),
                DATAVERSE_POOL_SLOTS,
                f"Dataverse tasks of application user {conn_id}",
                "transform and load",
                tuple(keys),
            )
        )
    if DEFAULT_POOL not in {pool.name for pool in pools}:
        # The real-time DAG's task runs in the default user's pool whichever users the grants name.
        pools.append(
            RequiredPool(
                DEFAULT_POOL,
                DATAVERSE_POOL_SLOTS,
                "Dataverse tasks of application user dataverse_default",
                "process",
                (REALTIME_DAG_ID,),
            )
        )
    return pools


def existing_pool_names() -> set[str]:
    """The pools in Airflow's metadata database (``airflow.models.Pool``, as ``airflow pools list`` reads
    them). Raises whatever reaching the database raises: no database, not migrated, no ORM access."""
    from airflow.models import Pool

    return {pool.pool for pool in Pool.get_pools() if pool.pool is not None}
