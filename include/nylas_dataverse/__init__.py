"""Track Nylas email in Dynamics 365 (Dataverse) as email activities, exactly once.

The distribution registers itself as an Airflow provider (entry point ``apache_airflow_provider``) so the
``nylas`` and ``dataverse`` connection types get their own forms in the Airflow UI.
"""

from __future__ import annotations

__version__ = "0.2.0"


def get_provider_info() -> dict[str, object]:
    from nylas_dataverse.provider_info import PROVIDER_INFO

    return PROVIDER_INFO
