"""Microsoft's PowerPlatform-Dataverse-Client against the sandbox over HTTPS, authenticated by azure-identity
against the Entra stand-in: the client resolves tables through EntityDefinitions, creates, reads, updates and
queries contacts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from azure.identity import ClientSecretCredential
from PowerPlatform.Dataverse.client import DataverseClient
from PowerPlatform.Dataverse.core.errors import HttpError
from PowerPlatform.Dataverse.models import col

from nylas_dataverse_sandbox import personas

if TYPE_CHECKING:
    from conftest import Stack


@pytest.fixture
def client(stack: Stack) -> Iterator[DataverseClient]:
    credential = ClientSecretCredential(
        personas.TENANT_ID,
        personas.CLIENT_ID,
        personas.CLIENT_SECRET,
        authority=stack.entra_server.url,  # the sandbox's Entra, never login.microsoftonline.com
        disable_instance_discovery=True,
    )
    with credential, DataverseClient(stack.dataverse_url, credential) as dataverse:
        yield dataverse


def test_official_client_creates_reads_updates_and_queries_contacts(
    client: DataverseClient, stack: Stack
) -> None:
    contact_id = client.records.create(
        "contact", {"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@analytical.example"}
    )

    read = client.records.retrieve("contact", contact_id, select=["fullname", "emailaddress1"])
    client.records.update("contact", contact_id, {"jobtitle": "Analyst", "emailaddress2": "ada@home.example"})
    listed = client.records.list(
        "contact", filter="emailaddress1 eq 'ADA@analytical.example'", select=["fullname", "jobtitle"]
    )
    built = client.query.builder("contact").select("fullname").where(col("lastname") == "Lovelace").execute()

    assert read is not None
    assert read["fullname"] == "Ada Lovelace"
    assert read["emailaddress1"] == "ada@analytical.example"
    assert [(r["fullname"], r["jobtitle"]) for r in listed] == [("Ada Lovelace", "Analyst")]
    assert [r["fullname"] for r in built] == ["Ada Lovelace"]
    stored = stack.dataverse.retrieve(stack.dataverse.entity_for_set("contacts"), contact_id)
    assert stored["emailaddress2"] == "ada@home.example"
    assert stack.entra.token_requests >= 1


def test_official_client_sees_missing_rows_as_none_and_pages_through_results(client: DataverseClient) -> None:
    missing = client.records.retrieve("contact", "00000000-0000-0000-0000-0000000000ff")
    pages = list(client.records.list_pages("contact", select=["fullname"], page_size=4))

    assert missing is None
    assert [len(page) for page in pages] == [4, 4, 3]  # 9 active and 2 inactive contacts


def test_official_client_reads_a_missing_privilege_as_a_403_with_the_service_code(
    client: DataverseClient, stack: Stack
) -> None:
    client.records.list("contact", select=["fullname"], top=1)  # resolve the table while still allowed
    stack.dataverse.set_behaviour(missing_privileges=["prvCreateContact"])

    with pytest.raises(HttpError) as refused:
        client.records.create("contact", {"lastname": "Nobody"})

    assert refused.value.status_code == 403
    assert refused.value.details["service_error_code"] == "0x80040220"
    assert "is missing prvCreateContact privilege" in str(refused.value)
