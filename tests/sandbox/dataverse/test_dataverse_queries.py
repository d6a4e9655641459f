"""Queries, paging and metadata as the pipeline and the official client use them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

import requests

from nylas_dataverse_sandbox import personas

if TYPE_CHECKING:
    from conftest import DataverseApi, EmailFactory

ALICE = personas.stable_id("systemuser", "alice")


def error_of(response: requests.Response) -> tuple[str, str]:
    error = response.json()["error"]
    return error["code"], error["message"]


def walk(api: DataverseApi, path: str, page_size: int) -> tuple[list[dict[str, Any]], int]:
    """All rows of a query following @odata.nextLink unchanged; also the number of pages."""
    headers = {"Prefer": f"odata.maxpagesize={page_size}"}
    response = api.get(path, headers=headers)
    rows, pages = [], 0
    while True:
        assert response.status_code == 200, response.text
        assert response.headers["Preference-Applied"] == f"odata.maxpagesize={page_size}"
        body = response.json()
        assert len(body["value"]) <= page_size
        rows.extend(body["value"])
        pages += 1
        if "@odata.nextLink" not in body:
            return rows, pages
        assert "$skiptoken=" in body["@odata.nextLink"]
        response = api.get(body["@odata.nextLink"], headers=headers)


def test_paging_with_maxpagesize_returns_every_row_exactly_once(
    api: DataverseApi, received_email: EmailFactory
) -> None:
    for _ in range(12):
        api.create_email(received_email())

    rows, pages = walk(api, "emails?$select=messageid", page_size=5)

    assert pages == 3
    assert len({row["activityid"] for row in rows}) == 12
    assert all(set(row) == {"@odata.etag", "messageid", "activityid"} for row in rows)


def test_paging_keeps_the_filter_and_an_ordering(api: DataverseApi) -> None:
    rows, pages = walk(api, "contacts?$select=fullname&$filter=statecode eq 0&$orderby=fullname desc", 4)

    names = [row["fullname"] for row in rows]
    assert pages == 3
    assert len(names) == len(personas.CONTACTS)
    assert names == sorted(names, key=str.casefold, reverse=True)


def test_messageid_lookup_with_in_and_parameter_aliases(
    api: DataverseApi, received_email: EmailFactory
) -> None:
    wanted = [received_email(messageid=f"<m{i}+x@mail.example>") for i in range(3)]
    for body in [*wanted, received_email(messageid="<other@mail.example>")]:
        api.create_email(body)
    values = ",".join(f"'{b['messageid']}'" for b in wanted[:2])

    response = api.get(
        "emails",
        params={
            "$select": "activityid,messageid",
            "$filter": "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)",
            "@p1": "'messageid'",
            "@p2": f"[{values}]",
        },
    )

    assert response.status_code == 200, response.text
    assert sorted(r["messageid"] for r in response.json()["value"]) == sorted(
        b["messageid"] for b in wanted[:2]
    )


def test_string_filters_are_case_insensitive_and_quotes_are_doubled(api: DataverseApi) -> None:
    response = api.get("contacts", params={"$select": "fullname", "$filter": "lastname eq 'o''BRIEN'"})
    by_domain = api.get("contacts", params={"$filter": "endswith(emailaddress1,'@FABRIKAM.example')"})

    assert [r["fullname"] for r in response.json()["value"]] == ["Tom O'Brien"]
    # María, Jonas and the inactive Hannah Weber: a filter does not hide inactive rows.
    assert len(by_domain.json()["value"]) == 3


def test_unterminated_literal_is_a_400(api: DataverseApi) -> None:
    response = api.get("contacts", params={"$filter": "lastname eq 'O'Brien'"})

    assert response.status_code == 400


def test_unknown_columns_in_select_and_filter_name_the_type(api: DataverseApi) -> None:
    selected = api.get("contacts?$select=fullname,Name")
    filtered = api.get("contacts", params={"$filter": "parentcustomerid eq null"})

    assert selected.status_code == 400
    assert error_of(selected) == (
        "0x80060888",
        "Could not find a property named 'Name' on type 'Microsoft.Dynamics.CRM.contact'.",
    )
    assert filtered.status_code == 400
    assert "'parentcustomerid'" in error_of(filtered)[1]


def test_lookup_values_are_filterable_and_selectable(api: DataverseApi) -> None:
    fabrikam = personas.stable_id("account", "fabrikam")

    response = api.get(
        f"contacts?$select=fullname,_parentcustomerid_value&$filter=_parentcustomerid_value eq {fabrikam}"
    )

    assert {r["_parentcustomerid_value"] for r in response.json()["value"]} == {fabrikam}
    assert len(response.json()["value"]) == 3  # two active contacts and the inactive Hannah Weber


def test_unknown_entity_set_and_query_option(api: DataverseApi) -> None:
    unknown = api.get("Contacts")
    skip = api.get("contacts?$skip=2")

    assert unknown.status_code == 404
    assert error_of(unknown) == ("0x8006088a", "Resource not found for the segment 'Contacts'.")
    assert skip.status_code == 400


def test_top_limits_rows_without_paging(api: DataverseApi) -> None:
    response = api.get("contacts?$select=fullname&$top=2")

    assert len(response.json()["value"]) == 2
    assert "@odata.nextLink" not in response.json()


def test_systemusers_expose_internal_addresses_and_the_application_user(api: DataverseApi) -> None:
    response = api.get("systemusers?$select=fullname,internalemailaddress,isdisabled,applicationid")

    users = response.json()["value"]
    humans = [u for u in users if u["applicationid"] is None]
    assert {u["internalemailaddress"] for u in humans} == {p.emails[0] for p in personas.SYSTEM_USERS}
    assert any(u["applicationid"] == personas.CLIENT_ID for u in users)
    assert ALICE in {u["systemuserid"] for u in users}


def test_whoami_names_the_application_user_and_rate_headers_are_present(api: DataverseApi) -> None:
    response = api.get("WhoAmI")

    body = response.json()
    users = api.get(f"systemusers({body['UserId']})?$select=applicationid").json()
    assert users["applicationid"] == personas.CLIENT_ID
    assert set(body) == {"@odata.context", "BusinessUnitId", "UserId", "OrganizationId"}
    assert int(response.headers["x-ms-ratelimit-burst-remaining-xrm-requests"]) < 6000
    assert response.headers["x-ms-ratelimit-time-remaining-xrm-requests"]
    assert int(response.headers["x-ms-dop-hint"]) >= 1


def test_service_document_and_metadata_describe_the_hosted_tables(api: DataverseApi) -> None:
    service = api.get("").json()
    csdl = ET.fromstring(api.get("$metadata").content)  # noqa: S314 - our own sandbox's answer

    assert {"emails", "contacts", "accounts", "leads", "systemusers", "activityparties"} <= {
        s["name"] for s in service["value"]
    }
    edm = "{http://docs.oasis-open.org/odata/ns/edm}"
    email = next(t for t in csdl.iter(f"{edm}EntityType") if t.get("Name") == "email")
    navs = {n.get("Name") for n in email.iter(f"{edm}NavigationProperty")}
    assert {"regardingobjectid_contact_email", "email_activity_parties"} <= navs
    assert "regardingobjectid_contact" not in navs


def test_entity_definitions_answer_the_official_clients_lookups(api: DataverseApi) -> None:
    resolved = api.get(
        "EntityDefinitions",
        params={
            "$select": "LogicalName,EntitySetName,PrimaryIdAttribute",
            "$filter": "LogicalName eq 'email'",
        },
    ).json()["value"]
    picklists = api.get(
        "EntityDefinitions(LogicalName='email')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
        "?$select=LogicalName&$expand=OptionSet($select=Options)"
    ).json()["value"]

    assert [(d["LogicalName"], d["EntitySetName"], d["PrimaryIdAttribute"]) for d in resolved] == [
        ("email", "emails", "activityid")
    ]
    priority = next(p for p in picklists if p["LogicalName"] == "prioritycode")
    labels = {o["Value"]: o["Label"]["LocalizedLabels"][0]["Label"] for o in priority["OptionSet"]["Options"]}
    assert labels == {0: "Low", 1: "Normal", 2: "High"}
    assert all(p["@odata.type"] == "#Microsoft.Dynamics.CRM.PicklistAttributeMetadata" for p in picklists)
