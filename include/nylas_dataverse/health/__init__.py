"""The sync-health page on the Airflow API server (see ``app.py`` and docs/monitoring.md)."""
