"""How both hooks read their Airflow connection: lazily, from any conn_type, with declared extras only."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import responses
from airflow.sdk.exceptions import AirflowNotFoundException

from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.errors import ConnectionConfigError
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.provider_info import PROVIDER_INFO

NYLAS_API_KEY = "nyk_v0_connection_test_key"
DATAVERSE_URL = "https://contoso.crm.sandbox.test"
AUTHORITY_HOST = "https://login.sandbox.test"
TENANT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "00000000-aaaa-bbbb-cccc-000000000001"
CLIENT_SECRET = "client~secret~for~connection~tests"


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, value: dict[str, Any] | str) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", value if isinstance(value, str) else json.dumps(value)
    )


def nylas_connection(extra: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {"conn_type": "nylas", "password": NYLAS_API_KEY, **fields, "extra": extra or {}}


def dataverse_connection(extra: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    base_extra = {"tenant_id": TENANT_ID, "authority_host": AUTHORITY_HOST}
    return {
        "conn_type": "dataverse",
        "host": DATAVERSE_URL,
        "login": CLIENT_ID,
        "password": CLIENT_SECRET,
        **fields,
        "extra": {**base_extra, **(extra or {})} if extra is not None else base_extra,
    }


def test_hooks_declare_the_attributes_airflow_registers_them_by() -> None:
    types = {entry["connection-type"]: entry for entry in PROVIDER_INFO["connection-types"]}  # type: ignore[attr-defined]
    for hook in (NylasHook, DataverseHook):
        entry = types[hook.conn_type]
        assert entry["hook-class-name"] == f"{hook.__module__}.{hook.__name__}"
        assert hook.hook_name == entry["hook-name"]
        assert hook.default_conn_name == f"{hook.conn_type}_default"
        assert set(entry["conn-fields"]) == hook.EXTRAS  # every form field is read, nothing else


def test_constructing_a_hook_does_no_connection_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NOT_DEFINED_ANYWHERE", raising=False)
    nylas_hook = NylasHook("not_defined_anywhere")
    dataverse_hook = DataverseHook("not_defined_anywhere")

    with pytest.raises(AirflowNotFoundException, match="not_defined_anywhere"):
        nylas_hook.get_conn()
    with pytest.raises(AirflowNotFoundException, match="not_defined_anywhere"):
        dataverse_hook.get_conn()


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        (None, None, "https://api.us.nylas.com"),
        ("", None, "https://api.us.nylas.com"),
        ("api.eu.nylas.com", None, "https://api.eu.nylas.com"),
        ("https://api.eu.nylas.com/", None, "https://api.eu.nylas.com"),
        ("http://127.0.0.1:8801", None, "http://127.0.0.1:8801"),
        ("127.0.0.1", 8801, "https://127.0.0.1:8801"),
        # The form's Port field: 0 (what the UI's Test sends for an empty Port) is unset, the scheme's
        # own port stays out of the URL, and a port repeated from the host is fine.
        (None, 0, "https://api.us.nylas.com"),
        ("https://api.eu.nylas.com", 443, "https://api.eu.nylas.com"),
        ("https://api.eu.nylas.com:443/", None, "https://api.eu.nylas.com"),
        ("http://127.0.0.1", 80, "http://127.0.0.1"),
        ("api.eu.nylas.com", 8443, "https://api.eu.nylas.com:8443"),
        ("http://127.0.0.1:8801", 8801, "http://127.0.0.1:8801"),
        ("http://[::1]:8801", 8801, "http://[::1]:8801"),
    ],
)
def test_nylas_base_url_from_host(
    monkeypatch: pytest.MonkeyPatch, host: str | None, port: int | None, expected: str
) -> None:
    set_conn(monkeypatch, "nylas_default", nylas_connection(host=host, port=port))
    assert NylasHook().base_url == expected


@pytest.mark.parametrize(
    "host",
    [
        "https://api.us.nylas.com/v3",
        "https://api.eu.nylas.com/v3/",
        "api.us.nylas.com/v3/grants",
        "https://127.0.0.1:9000/nylas/",
    ],
)
def test_a_nylas_host_with_a_path_is_refused_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    # The hook adds /v3/...: a path in the host would make every call a 404 that seems to blame the grant.
    set_conn(monkeypatch, "nylas_eu", nylas_connection(host=host))
    with pytest.raises(ConnectionConfigError) as caught:
        NylasHook("nylas_eu").get_conn()
    text = str(caught.value)
    assert text.startswith("Connection 'nylas_eu': host must be the Nylas API base URL")
    assert "https://api.us.nylas.com or https://api.eu.nylas.com (no /v3" in text
    assert text.endswith(f"got {host!r}")


def test_nylas_works_with_a_generic_connection_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(
        monkeypatch,
        "nylas_default",
        {"conn_type": "generic", "host": "api.us.nylas.com", "password": "k3y-value"},
    )
    settings = NylasHook().settings
    assert (settings.base_url, settings.timeout_s, settings.page_size) == (
        "https://api.us.nylas.com",
        90.0,
        200,
    )


def test_nylas_reads_ui_prefixed_extras_and_uri_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(
        monkeypatch,
        "nylas_ui",
        nylas_connection({"extra__nylas__page_size": 25, "extra__nylas__timeout": ""}),
    )
    set_conn(monkeypatch, "nylas_uri", "generic://:k3y-value@api.eu.nylas.com/?timeout=15&page_size=100")

    ui = NylasHook("nylas_ui").settings
    uri = NylasHook("nylas_uri").settings

    assert (ui.page_size, ui.timeout_s) == (25, 90.0)
    assert (uri.base_url, uri.api_key, uri.page_size, uri.timeout_s) == (
        "https://api.eu.nylas.com",
        "k3y-value",
        100,
        15.0,
    )


def test_plain_extra_wins_over_the_prefixed_form(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(
        monkeypatch, "nylas_default", nylas_connection({"page_size": 10, "extra__generic__page_size": 99})
    )
    assert NylasHook().page_size == 10


def test_unknown_extras_are_rejected_listing_the_allowed_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(
        monkeypatch,
        "nylas_default",
        nylas_connection({"page_size": 10, "headers": {"X-Debug": "1"}, "extra__nylas__grant": "g"}),
    )

    with pytest.raises(ConnectionConfigError) as caught:
        NylasHook().get_conn()

    text = str(caught.value)
    assert "'headers'" in text
    assert "'extra__nylas__grant'" in text
    assert "'page_size'" in text
    assert "'timeout'" in text
    assert "nylas_default" in text


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"page_size": 500}, "page_size"),
        ({"page_size": 2.5}, "page_size"),
        ({"page_size": True}, "page_size"),
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_nylas_invalid_extras_name_the_field(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], problem: str
) -> None:
    set_conn(monkeypatch, "nylas_default", nylas_connection(extra))
    with pytest.raises(ConnectionConfigError, match=problem):
        NylasHook().get_conn()


def test_nylas_without_an_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "nylas_default", {"conn_type": "nylas", "host": "api.us.nylas.com"})
    with pytest.raises(ConnectionConfigError, match="API key"):
        NylasHook().get_conn()


def test_dataverse_settings_from_a_generic_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(
        monkeypatch,
        "dataverse_default",
        {
            **dataverse_connection({"timeout": "45"}),
            "conn_type": "generic",
            "host": "contoso.crm.dynamics.com/",
        },
    )
    hook = DataverseHook()
    settings = hook.settings
    assert settings.env_url == "https://contoso.crm.dynamics.com"
    assert hook.api_url == "https://contoso.crm.dynamics.com/api/data/v9.2/"
    assert settings.scope == "https://contoso.crm.dynamics.com/.default"
    assert settings.authority == f"{AUTHORITY_HOST}/{TENANT_ID}"
    assert (settings.timeout_s, settings.max_concurrency) == (45.0, 52)
    assert CLIENT_SECRET not in repr(settings)


def test_dataverse_default_authority_is_microsoft(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(
        monkeypatch,
        "dataverse_default",
        {**dataverse_connection(), "extra": {"extra__dataverse__tenant_id": TENANT_ID}},
    )
    assert DataverseHook().settings.authority == f"https://login.microsoftonline.com/{TENANT_ID}"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"extra": {"authority_host": AUTHORITY_HOST}}, "tenant_id"),
        ({"login": None}, "client"),
        ({"password": None}, "client secret"),
        ({"host": None}, "environment URL"),
        ({"host": "https://contoso.crm.dynamics.com/api/data/v9.2"}, "without the /api/data"),
        ({"extra": {"tenant_id": TENANT_ID, "max_concurrency": 0}}, "max_concurrency"),
        ({"extra": {"tenant_id": TENANT_ID, "client_secret": "x"}}, "unknown extra"),
    ],
)
def test_dataverse_connection_problems_are_clear(
    monkeypatch: pytest.MonkeyPatch, change: dict[str, Any], problem: str
) -> None:
    set_conn(monkeypatch, "dataverse_default", {**dataverse_connection(), **change})
    with pytest.raises(ConnectionConfigError, match=problem):
        DataverseHook().get_conn()


def test_no_request_is_sent_when_the_connection_is_invalid(
    monkeypatch: pytest.MonkeyPatch,
    rsps: responses.RequestsMock,
    make_dataverse_hook: Callable[..., DataverseHook],
) -> None:
    set_conn(
        monkeypatch,
        "dataverse_default",
        {**dataverse_connection(), "extra": {"authority_host": AUTHORITY_HOST}},
    )
    with pytest.raises(ConnectionConfigError):
        make_dataverse_hook().whoami()
    assert len(rsps.calls) == 0


@pytest.mark.parametrize(
    ("host", "port", "problem"),
    [
        ("http://127.0.0.1:8801", 9000, "names port 8801 but the Port field says 9000"),
        ("https://api.us.nylas.com", 70000, "between 1 and 65535"),
        ("https://api.us.nylas.com", -1, "between 1 and 65535"),
    ],
)
def test_a_port_that_cannot_be_right_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, host: str, port: int, problem: str
) -> None:
    set_conn(monkeypatch, "nylas_default", nylas_connection(host=host, port=port))
    with pytest.raises(ConnectionConfigError, match=problem):
        NylasHook().get_conn()


def test_dataverse_with_port_443_asks_entra_for_the_plain_environment_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The form asks for the port; ":443" must not leak into the token scope or the API URL.
    set_conn(monkeypatch, "dataverse_default", dataverse_connection(port=443))
    settings = DataverseHook().settings
    assert settings.scope == f"{DATAVERSE_URL}/.default"
    assert settings.api_url == f"{DATAVERSE_URL}/api/data/v9.2/"


@pytest.mark.parametrize(
    "tenant", ["https://login.microsoftonline.com/contoso.onmicrosoft.com", "my tenant", "/" + TENANT_ID]
)
def test_dataverse_tenant_that_is_not_an_id_or_domain_is_named(
    monkeypatch: pytest.MonkeyPatch, tenant: str
) -> None:
    set_conn(monkeypatch, "dataverse_default", dataverse_connection({"tenant_id": tenant}))
    with pytest.raises(ConnectionConfigError, match="tenant_id' must be the Entra ID tenant"):
        DataverseHook().get_conn()


def test_dataverse_tenant_may_be_the_tenant_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(
        monkeypatch, "dataverse_default", dataverse_connection({"tenant_id": " contoso.onmicrosoft.com "})
    )
    assert DataverseHook().settings.authority == f"{AUTHORITY_HOST}/contoso.onmicrosoft.com"


def test_test_connection_explains_a_bad_connection_without_the_temporary_id(
    monkeypatch: pytest.MonkeyPatch, rsps: responses.RequestsMock
) -> None:
    # The UI's Test button runs the hook under a random connection id; the text must make sense anyway.
    set_conn(
        monkeypatch, "xqzvbnwtrm", {**dataverse_connection(), "extra": {"authority_host": AUTHORITY_HOST}}
    )
    set_conn(monkeypatch, "kdjfhgurie", nylas_connection({"page_size": 500}))

    dataverse_ok, dataverse_text = DataverseHook("xqzvbnwtrm").test_connection()
    nylas_ok, nylas_text = NylasHook("kdjfhgurie").test_connection()

    assert (dataverse_ok, nylas_ok) == (False, False)
    assert dataverse_text.startswith("This connection has no extra 'tenant_id'")
    assert nylas_text.startswith("This connection: extra 'page_size' must be an integer between 1 and 200")
    assert "xqzvbnwtrm" not in dataverse_text
    assert "kdjfhgurie" not in nylas_text
    assert len(rsps.calls) == 0


def test_test_connection_with_a_wrong_api_key_says_what_to_check(
    monkeypatch: pytest.MonkeyPatch, rsps: responses.RequestsMock
) -> None:
    host = "https://nylas.sandbox.test"
    set_conn(monkeypatch, "qpwoeirutz", nylas_connection(host=host, port=443))
    rsps.get(
        f"{host}/v3/grants",
        status=401,
        json={"request_id": "r-1", "error": {"type": "unauthorized", "message": "Unauthorized"}},
    )

    ok, text = NylasHook("qpwoeirutz").test_connection()

    assert ok is False
    assert "rejected the API key of this connection" in text
    assert "check the key" in text
    assert NYLAS_API_KEY not in text
    assert "qpwoeirutz" not in text
