"""Provider metadata read by Airflow's ProvidersManager.

Connection forms are declared here (``conn-fields`` and ``ui-field-behaviour``), not in Python widgets:
Airflow 3.2+ loads them without importing the hooks and deprecates the widget methods.
"""

from __future__ import annotations

from nylas_dataverse import __version__

_OPTIONAL_INT = {"type": ["integer", "null"]}
_OPTIONAL_STR = {"type": ["string", "null"]}

PROVIDER_INFO: dict[str, object] = {
    "package-name": "nylas-dataverse",
    "name": "Nylas to Dataverse",
    "description": "Hooks for the Nylas v3 Email API and the Microsoft Dataverse Web API.",
    "versions": [__version__],
    "integrations": [
        {
            "integration-name": "Nylas",
            "external-doc-url": "https://developer.nylas.com/",
            "tags": ["service"],
        },
        {
            "integration-name": "Microsoft Dataverse",
            "external-doc-url": "https://learn.microsoft.com/power-apps/developer/data-platform/webapi/overview",
            "tags": ["service"],
        },
    ],
    "hooks": [
        {"integration-name": "Nylas", "python-modules": ["nylas_dataverse.hooks.nylas"]},
        {"integration-name": "Microsoft Dataverse", "python-modules": ["nylas_dataverse.hooks.dataverse"]},
    ],
    "connection-types": [
        {
            "connection-type": "nylas",
            "hook-class-name": "nylas_dataverse.hooks.nylas.NylasHook",
            "hook-name": "Nylas",
            "ui-field-behaviour": {
                "hidden-fields": ["schema", "port", "login"],
                "relabeling": {"host": "API base URL", "password": "API key"},
                "placeholders": {"host": "https://api.us.nylas.com", "password": "nyk_v0_..."},
            },
            "conn-fields": {
                "timeout": {
                    "label": "Request timeout (seconds)",
                    "schema": {**_OPTIONAL_INT, "default": 90},
                },
                "page_size": {
                    "label": "Messages per page (1-200)",
                    "schema": {**_OPTIONAL_INT, "default": 200, "minimum": 1, "maximum": 200},
                },
            },
        },
        {
            "connection-type": "dataverse",
            "hook-class-name": "nylas_dataverse.hooks.dataverse.DataverseHook",
            "hook-name": "Microsoft Dataverse",
            "ui-field-behaviour": {
                "hidden-fields": ["schema", "port"],
                "relabeling": {
                    "host": "Environment URL",
                    "login": "Client (application) ID",
                    "password": "Client secret",
                },
                "placeholders": {
                    "host": "https://contoso.crm.dynamics.com",
                    "login": "00000000-0000-0000-0000-000000000000",
                },
            },
            "conn-fields": {
                "tenant_id": {"label": "Tenant ID", "schema": {"type": "string"}},
                "authority_host": {
                    "label": "Authority host",
                    "schema": {**_OPTIONAL_STR, "default": "https://login.microsoftonline.com"},
                },
                "timeout": {
                    "label": "Request timeout (seconds)",
                    "schema": {**_OPTIONAL_INT, "default": 120},
                },
                "max_concurrency": {
                    "label": "Max concurrent requests from this hook",
                    "schema": {**_OPTIONAL_INT, "default": 4, "minimum": 1},
                },
            },
        },
    ],
}
