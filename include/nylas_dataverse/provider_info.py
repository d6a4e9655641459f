"""Provider metadata read by Airflow's ProvidersManager.

Connection forms are declared here (``conn-fields`` and ``ui-field-behaviour``), not in Python widgets:
Airflow 3.2+ loads them without importing the hooks and deprecates the widget methods. Every field the
form shows carries help: the extras a ``description`` (shown under the field), the standard fields a
label that says what goes there and a placeholder with an example.
"""

from __future__ import annotations

from nylas_dataverse import __version__

_OPTIONAL_INT = {"type": ["integer", "null"]}
_OPTIONAL_STR = {"type": ["string", "null"]}

# Airflow 3.3.2's form gives the standard fields (host, port, login, password, description) a label and a
# placeholder but no help text of their own, so their labels carry the hint. The connection's
# description cannot take a placeholder: Airflow renames that one as if it were an extra field's.
_DESCRIPTION_LABEL = "Description (a note for people; the hook ignores it)"
# Airflow 3.3.2's Test button sends Port 0 for an empty Port and then refuses to test a stored connection
# whose Port is empty (apache/airflow#73298, fixed after 3.3.2), so the form asks for the port outright.
_PORT_LABEL = "Port (443 for https; Test needs it)"
_PORT_PLACEHOLDER = "443"

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
                "hidden-fields": ["schema", "login"],
                "relabeling": {
                    "description": _DESCRIPTION_LABEL,
                    "host": "API base URL (your app's region: US or EU)",
                    "port": _PORT_LABEL,
                    "password": "API key (Nylas Dashboard, API Keys)",
                },
                "placeholders": {
                    "host": "https://api.us.nylas.com",
                    "port": _PORT_PLACEHOLDER,
                    "password": "nyk_v0_...",
                },
            },
            "conn-fields": {
                "timeout": {
                    "label": "Request timeout (seconds)",
                    "description": "How long to wait for one Nylas answer before retrying it. 1 to 3600; "
                    "empty means 90, Nylas' own limit.",
                    "schema": {**_OPTIONAL_INT, "default": 90},
                },
                "page_size": {
                    "label": "Messages per page (1-200)",
                    "description": "Messages asked for per page when listing a mailbox. 1 to 200; empty "
                    "means 200, the most Nylas returns.",
                    "schema": {**_OPTIONAL_INT, "default": 200, "minimum": 1, "maximum": 200},
                },
            },
        },
        {
            "connection-type": "dataverse",
            "hook-class-name": "nylas_dataverse.hooks.dataverse.DataverseHook",
            "hook-name": "Microsoft Dataverse",
            "ui-field-behaviour": {
                "hidden-fields": ["schema"],
                "relabeling": {
                    "description": _DESCRIPTION_LABEL,
                    "host": "Environment URL (Power Platform admin center)",
                    "port": _PORT_LABEL,
                    "login": "Client (application) ID of the app registration",
                    "password": "Client secret (its Value, not its Secret ID)",
                },
                "placeholders": {
                    "host": "https://contoso.crm.dynamics.com",
                    "port": _PORT_PLACEHOLDER,
                    "login": "00000000-0000-0000-0000-000000000000",
                    "password": "the secret's Value from Certificates & secrets",
                },
            },
            "conn-fields": {
                # Required, but declared nullable: a non-null type makes the form flag it before anything
                # is typed. The hook refuses a connection without it and says so.
                "tenant_id": {
                    "label": "Tenant ID",
                    "description": "Required. The Entra ID tenant (directory) ID of the app registration, "
                    "a GUID, or the tenant's domain such as contoso.onmicrosoft.com.",
                    "schema": _OPTIONAL_STR,
                },
                "authority_host": {
                    "label": "Authority host",
                    "description": "Where tokens come from. Empty means https://login.microsoftonline.com; "
                    "national clouds have their own, e.g. https://login.microsoftonline.us.",
                    "schema": {**_OPTIONAL_STR, "default": "https://login.microsoftonline.com"},
                },
                "timeout": {
                    "label": "Request timeout (seconds)",
                    "description": "How long to wait for one Dataverse answer before retrying it. 1 to 3600; "
                    "empty means 120.",
                    "schema": {**_OPTIONAL_INT, "default": 120},
                },
                "max_concurrency": {
                    "label": "Max concurrent requests from this hook",
                    "description": "Requests one task keeps in flight at most (bursts; it paces to the "
                    "service's x-ms-dop-hint once the window's budget runs low). At least 1; empty means 52. "
                    "Dataverse's service protection limits count per application user, across tasks.",
                    "schema": {**_OPTIONAL_INT, "default": 52, "minimum": 1},
                },
            },
        },
    ],
}
