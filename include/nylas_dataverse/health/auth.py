"""Who may see the health page, decided by Airflow's own auth manager.

Airflow mounts plugin apps without authentication, so every route here depends on ``current_user``:
Airflow's ``get_user`` (``airflow.api_fastapi.core_api.security``), the same dependency Airflow's own API
routes use. It takes the JWT from an ``Authorization: Bearer`` header or from the ``_token`` cookie the UI
sets (a browser that opened the page from Airflow's navigation sends it), validates it with the auth
manager, and refuses expired (401) or invalid (403) tokens. Without a token it answers 401; the page
routes turn that into a redirect to the auth manager's login page.

A user sees only the grants whose DAG the auth manager lets them read: ``readable_dag_ids`` asks
``get_authorized_dag_ids(method="GET")``, which Airflow's DAG list uses too (it honours teams).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

AUTH_MANAGER_UNAVAILABLE = "the Airflow auth manager is not initialised (is this the Airflow API server?)"


def _security() -> Any:
    from airflow.api_fastapi.core_api import security

    return security


async def current_user(request: Request) -> Any:
    """The authenticated Airflow user (HTTP 401/403 otherwise); a FastAPI dependency."""
    security = _security()
    bearer = await security.bearer_scheme(request)
    return await security.get_user(request, None, bearer)


def readable_dag_ids(user: Any) -> set[str]:
    from airflow.api_fastapi.app import get_auth_manager

    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


def login_url(next_url: str) -> str:
    from airflow.api_fastapi.app import get_auth_manager

    return str(get_auth_manager().get_url_login(next_url=next_url))


def user_name(user: Any) -> str:
    try:
        return str(user.get_name())
    except Exception:  # a user object without a name is still a user
        return "user"
