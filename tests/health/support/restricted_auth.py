"""SimpleAuthManager with per-DAG read permissions, as a production auth manager (FAB, Keycloak) has them.

``NYLAS_TEST_DAG_PERMISSIONS`` is ``user=dag_a|dag_b;other=dag_c``: a listed user may read only those DAGs;
anyone else keeps SimpleAuthManager's role rules. Airflow loads it by class path from
``[core] auth_manager`` (``restricted_auth.RestrictedDagsAuthManager``).
"""

from __future__ import annotations

import os
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

ENV = "NYLAS_TEST_DAG_PERMISSIONS"


def _permissions() -> dict[str, set[str]]:
    rules: dict[str, set[str]] = {}
    for part in os.environ.get(ENV, "").split(";"):
        if "=" in part:
            user, dags = part.split("=", 1)
            rules[user.strip()] = {dag.strip() for dag in dags.split("|") if dag.strip()}
    return rules


class RestrictedDagsAuthManager(SimpleAuthManager):
    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        allowed = _permissions().get(user.get_name())
        if allowed is not None and (details is None or details.id not in allowed):
            return False
        return bool(
            super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
        )
