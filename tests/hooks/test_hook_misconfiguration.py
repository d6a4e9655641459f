"""Mistakes a person makes in a connection, a grants file or a security role, against the sandbox: each one
is named where it is, not blamed on something else.

- a Nylas host with a path (``https://api.us.nylas.com/v3``, as Nylas' own examples write URLs) is refused
  before any request, instead of every call ending in a 404 that blames the grant;
- a Nylas host pointing at another server says to check the host;
- an unknown grant id says to check the grant_id in the grants file;
- a privilege missing for a GET part of a ``$batch`` is a permission error, as for a request on its own.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from nylas_dataverse.hooks.dataverse import DataverseHook, InLookup
from nylas_dataverse.hooks.errors import (
    ConnectionConfigError,
    DataversePermissionError,
    NylasError,
    NylasNotFoundError,
)
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.pipeline.directory import resolve_addresses
from nylas_dataverse_sandbox import personas

FIX = "https://api.us.nylas.com or https://api.eu.nylas.com (no /v3"


def _nylas_at(
    monkeypatch: pytest.MonkeyPatch, sandbox: Any, host: str, conn_id: str = "nylas_typo"
) -> NylasHook:
    connection = {**sandbox.nylas_connection(), "host": host}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    return NylasHook(conn_id)


@pytest.mark.parametrize("path", ["/v3", "/v3/", "/v3/grants"])
def test_a_nylas_host_with_a_path_is_refused_before_any_request(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    host = sandbox.nylas_url + path
    hook = _nylas_at(monkeypatch, sandbox, host)
    alice = personas.grant_by_key("alice")

    with pytest.raises(ConnectionConfigError) as caught:
        hook.get_grant(alice.grant_id)

    text = str(caught.value)
    assert "Connection 'nylas_typo'" in text
    assert repr(host) in text
    assert FIX in text
    assert "no such object" not in text
    assert caught.value.kind == "config"
    assert hook.request_count == 0


def test_the_test_button_names_the_path_instead_of_blaming_the_grants(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = sandbox.nylas_url + "/v3"

    ok, message = _nylas_at(monkeypatch, sandbox, host).test_connection()

    assert ok is False
    assert message.startswith("This connection: host must be the Nylas API base URL")
    assert FIX in message
    assert repr(host) in message
    assert "no such object" not in message


def test_a_nylas_host_at_another_server_says_to_check_the_host(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sandbox's Entra ID is a web server that is not Nylas: its 404s carry no Nylas error envelope.
    hook = _nylas_at(monkeypatch, sandbox, sandbox.entra_url)
    alice = personas.grant_by_key("alice")

    with pytest.raises(NylasError) as caught:
        hook.get_grant(alice.grant_id)
    ok, message = _nylas_at(monkeypatch, sandbox, sandbox.entra_url).test_connection()

    error = caught.value
    assert not isinstance(error, NylasNotFoundError)  # callers read that as "the message is gone"
    assert error.status == 404
    assert error.kind == "service_refused"
    assert "check the host of connection 'nylas_typo'" in str(error)
    assert FIX in str(error)
    assert "no such object" not in str(error)
    assert ok is False
    assert "check the host of this connection" in message
    assert "no such object" not in message


def test_an_unknown_grant_id_says_to_check_the_grants_file(sandbox: Any) -> None:
    with pytest.raises(NylasNotFoundError) as caught:
        NylasHook().get_grant("0f0f0f0f-no-such-grant")

    text = str(caught.value)
    assert "Nylas has no grant '0f0f0f0f-no-such-grant'" in text
    assert "check the grant_id in the grants file" in text
    assert "grant not found" in text  # Nylas' own answer stays in the message
    assert caught.value.kind == "service_refused"


def test_an_unknown_message_still_reads_as_an_object_nylas_does_not_have(sandbox: Any) -> None:
    alice = personas.grant_by_key("alice")
    with pytest.raises(NylasNotFoundError, match="Nylas found no such object while reading message"):
        NylasHook().get_message(alice.grant_id, "no-such-message")


def _contacts_and_accounts(address: str) -> list[InLookup]:
    return [
        InLookup("contacts", "emailaddress1", [address], select=["contactid"]),
        InLookup("accounts", "emailaddress1", [address], select=["accountid"]),
    ]


def test_a_privilege_missing_for_a_batched_get_is_a_permission_error_naming_it(sandbox: Any) -> None:
    sandbox.dataverse.set_behaviour(missing_privileges=["prvReadContact"])
    hook = DataverseHook()

    contacts, accounts = hook.query_in_batched(_contacts_and_accounts("someone@example.com"))

    assert accounts == []
    assert isinstance(contacts, DataversePermissionError)
    text = str(contacts)
    assert "it lacks prvReadContact on table 'contact'" in text
    assert "connection 'dataverse_default'" in text
    assert "Edit security roles" in text
    assert contacts.status == 403
    assert contacts.code == "0x80040220"
    assert contacts.kind == "permissions"
    assert contacts.retryable is False


def test_a_batched_and_a_single_lookup_refused_alike(sandbox: Any) -> None:
    sandbox.dataverse.set_behaviour(missing_privileges=["prvReadContact"])
    hook = DataverseHook()

    [batched, _] = hook.query_in_batched(_contacts_and_accounts("someone@example.com"))
    with pytest.raises(DataversePermissionError) as single:
        list(hook.query_in("contacts", "emailaddress1", ["someone@example.com"], select=["contactid"]))

    assert isinstance(batched, DataversePermissionError)
    lead = "Dataverse refused looking up contacts by emailaddress1 for the application user"
    assert str(batched).startswith(lead)
    assert str(single.value).startswith(lead)
    assert str(batched).split("Dataverse said:")[0] == str(single.value).split("Dataverse said:")[0]


def test_the_transform_directory_lookup_fails_as_permissions(sandbox: Any) -> None:
    sandbox.dataverse.set_behaviour(missing_privileges=["prvReadContact"])
    alice = personas.grant_by_key("alice")

    with pytest.raises(DataversePermissionError, match="prvReadContact") as caught:
        resolve_addresses(["someone@example.com", alice.email], DataverseHook())

    assert caught.value.kind == "permissions"
