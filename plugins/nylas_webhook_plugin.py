"""Mounts the Nylas webhook receiver on the Airflow API server: ``POST <api server>/nylas/webhook``.

Airflow does not authenticate plugin apps; the receiver authenticates every POST by its HMAC
signature instead (see ``docs/realtime.md``).
"""

from __future__ import annotations

from pathlib import Path

from airflow.plugins_manager import AirflowPlugin

from nylas_dataverse.realtime.receiver import URL_PREFIX, create_app

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class NylasWebhookPlugin(AirflowPlugin):
    name = "nylas_webhook"
    fastapi_apps = [  # noqa: RUF012 - the attribute Airflow reads
        {"app": create_app(project_root=PROJECT_ROOT), "url_prefix": URL_PREFIX, "name": "Nylas webhook"}
    ]
