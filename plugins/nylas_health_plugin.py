"""Adds the sync-health page to the Airflow UI: ``<api server>/nylas-health/``, with a navigation entry.

Airflow does not authenticate plugin apps; the page authenticates every request with Airflow's auth manager
and shows only the grants whose DAGs the user may read (see ``docs/monitoring.md``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin

from nylas_dataverse.health.app import URL_PREFIX, create_app

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Behind a path prefix ([api] base_url = https://host/airflow/) the page lives under it too.
_BASE_PATH = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


class NylasHealthPlugin(AirflowPlugin):
    name = "nylas_health"
    fastapi_apps = [  # noqa: RUF012 - the attribute Airflow reads
        {"app": create_app(project_root=PROJECT_ROOT), "url_prefix": URL_PREFIX, "name": "Nylas sync health"}
    ]
    # Shown inside the UI (an iframe at /plugin/nylas-health), as a top-level navigation button.
    external_views = [  # noqa: RUF012 - the attribute Airflow reads
        {
            "name": "Sync health",
            "href": f"{_BASE_PATH}{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "nylas-health",
            "icon": f"{_BASE_PATH}{URL_PREFIX}/static/icon.svg",
            "nav_top_level": True,
        }
    ]
