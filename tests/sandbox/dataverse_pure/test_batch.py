"""The sandbox reads `$batch` requests and writes `$batch` responses in Dataverse's wire format.

The decisive checks use Microsoft's own Python client (`powerplatform-dataverse-client`): its batch encoder
produces request bodies we must parse, and its response parser must read what we write.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from email.message import Message

import pytest
import requests
from PowerPlatform.Dataverse.data._batch_base import _BatchBase, _ChangeSet, _ChangeSetBatchItem
from PowerPlatform.Dataverse.data._odata import _ODataClient
from PowerPlatform.Dataverse.data._raw_request import _RawRequest

from nylas_dataverse_sandbox.dataverse.batch import (
    BatchFormatError,
    BatchRequestPart,
    ChangeSetPart,
    ChangeSetResponse,
    ResponsePart,
    parse_batch,
    resolve_content_id_references,
    serialize_batch_response,
)

ORG = "https://contoso.crm.dynamics.com/api/data/v9.2"
ACCOUNT = "a1b2c3d4-0000-4000-8000-000000000001"
CONTACT = "c0ffee00-1111-4222-8333-444455556666"

# The request example of the Dataverse documentation, line for line (reference dataverse.md section 7.1).
DOCUMENTED_REQUEST = f"""--batch_AAA123
Content-Type: application/http
Content-Transfer-Encoding: binary

POST /api/data/v9.2/tasks HTTP/1.1
Content-Type: application/json; type=entry

{{"subject":"Task 1 in batch","regardingobjectid_account_task@odata.bind":"accounts({ACCOUNT})"}}
--batch_AAA123
Content-Type: multipart/mixed; boundary="changeset_BBB456"

--changeset_BBB456
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

POST /api/data/v9.2/contacts HTTP/1.1
Content-Type: application/json

{{"firstname":"A"}}
--changeset_BBB456
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 2

PATCH $1 HTTP/1.1
Content-Type: application/json

{{"lastname":"B"}}
--changeset_BBB456--
--batch_AAA123
Content-Type: application/http
Content-Transfer-Encoding: binary

GET /api/data/v9.2/accounts({ACCOUNT})/Account_Tasks?$select=subject HTTP/1.1


--batch_AAA123--
"""
DOCUMENTED_CONTENT_TYPE = 'multipart/mixed; boundary="batch_AAA123"'


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def operation(method: str, url: str, body: str = "", content_id: str | None = None) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: {content_id}")
    request = f"{method} {url} HTTP/1.1\n" + ("Content-Type: application/json\n\n" + body if body else "\n")
    return "\n".join(lines) + "\n\n" + request


def batch_of(*parts: str, boundary: str = "b") -> bytes:
    return crlf("".join(f"--{boundary}\n{part}\n" for part in parts) + f"--{boundary}--\n")


def change_set(*operations: str, boundary: str = "cs") -> str:
    inner = "".join(f"--{boundary}\n{op}\n" for op in operations) + f"--{boundary}--"
    return f"Content-Type: multipart/mixed; boundary={boundary}\n\n{inner}"


def test_the_documented_request_parses_into_its_operations_and_change_set() -> None:
    items = parse_batch(crlf(DOCUMENTED_REQUEST), DOCUMENTED_CONTENT_TYPE)

    assert [type(item) for item in items] == [BatchRequestPart, ChangeSetPart, BatchRequestPart]
    create_task, contacts, read_tasks = items
    assert isinstance(create_task, BatchRequestPart)
    assert (create_task.method, create_task.url, create_task.content_id) == (
        "POST",
        "/api/data/v9.2/tasks",
        None,
    )
    assert create_task.headers["content-type"] == "application/json; type=entry"
    assert create_task.headers.get("CONTENT-TYPE") == "application/json; type=entry"
    assert json.loads(create_task.body)["regardingobjectid_account_task@odata.bind"] == f"accounts({ACCOUNT})"

    assert isinstance(contacts, ChangeSetPart)
    assert [(r.method, r.url, r.content_id, r.body) for r in contacts.requests] == [
        ("POST", "/api/data/v9.2/contacts", "1", b'{"firstname":"A"}'),
        ("PATCH", "$1", "2", b'{"lastname":"B"}'),
    ]

    assert isinstance(read_tasks, BatchRequestPart)
    assert read_tasks.method == "GET"
    assert read_tasks.url == f"/api/data/v9.2/accounts({ACCOUNT})/Account_Tasks?$select=subject"
    assert read_tasks.body == b""
    assert len(read_tasks.headers) == 0


def test_lf_only_line_endings_parse_the_same_as_crlf() -> None:
    from_crlf = parse_batch(crlf(DOCUMENTED_REQUEST), DOCUMENTED_CONTENT_TYPE)
    from_lf = parse_batch(DOCUMENTED_REQUEST.encode(), DOCUMENTED_CONTENT_TYPE)
    assert from_lf == from_crlf


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/mixed; boundary=batch_AAA123",
        'multipart/mixed; boundary="batch_AAA123"',
        "Multipart/Mixed;Boundary=batch_AAA123",
        'multipart/mixed; charset=utf-8; boundary="batch_AAA123"',
        "multipart/mixed; boundary=batch_AAA123; charset=utf-8",
    ],
)
def test_the_boundary_is_read_quoted_or_not(content_type: str) -> None:
    assert len(parse_batch(crlf(DOCUMENTED_REQUEST), content_type)) == 3


def test_a_preamble_an_epilogue_and_transport_padding_are_ignored() -> None:
    body = b"This is a preamble.\r\n" + crlf(DOCUMENTED_REQUEST).replace(
        b"--batch_AAA123\r\n", b"--batch_AAA123  \r\n"
    )
    items = parse_batch(body + b"epilogue\r\n", DOCUMENTED_CONTENT_TYPE)
    assert len(items) == 3


def test_body_bytes_are_kept_exactly_including_unicode_and_inner_line_breaks() -> None:
    payload = '{"subject":"Grüße – 会议","description":"line1\\nline2"}\n{"not":"json, but kept"}'
    items = parse_batch(batch_of(operation("POST", f"{ORG}/emails", payload)), "multipart/mixed; boundary=b")
    request = items[0]
    assert isinstance(request, BatchRequestPart)
    assert request.url == f"{ORG}/emails"
    assert request.body == payload.replace("\n", "\r\n").encode()


def test_an_empty_batch_has_no_operations() -> None:
    assert parse_batch(b"--b--\r\n", "multipart/mixed; boundary=b") == []


def test_a_thousand_operations_are_accepted_and_one_more_is_rejected() -> None:
    get = operation("GET", "contacts?$select=fullname")
    assert len(parse_batch(batch_of(*[get] * 1000), "multipart/mixed; boundary=b")) == 1000

    with pytest.raises(BatchFormatError) as error:
        parse_batch(batch_of(*[get] * 1001), "multipart/mixed; boundary=b")
    assert "maximum number of '1000'" in error.value.message


def test_operations_inside_change_sets_count_towards_the_thousand() -> None:
    post = operation("POST", "contacts", '{"firstname":"A"}')
    body = batch_of(change_set(*[post] * 600, boundary="one"), change_set(*[post] * 401, boundary="two"))
    with pytest.raises(BatchFormatError):
        parse_batch(body, "multipart/mixed; boundary=b")


def test_a_change_set_of_more_than_a_thousand_is_rejected_with_the_change_set_message() -> None:
    post = operation("POST", "contacts", '{"firstname":"A"}')
    with pytest.raises(BatchFormatError) as error:
        parse_batch(batch_of(change_set(*[post] * 1001)), "multipart/mixed; boundary=b")
    assert error.value.message == (
        "The current change set contains too many operations. A maximum number of '1000' operations are "
        "allowed in a change set."
    )


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (
            batch_of(change_set(operation("GET", "contacts"))),
            "multipart/mixed; boundary=b",
            "An invalid HTTP method 'GET' was detected for a request in a change set. "
            "Requests in change sets only support the HTTP methods 'POST', 'PUT', 'DELETE', and 'PATCH'.",
        ),
        (
            batch_of(change_set(change_set(operation("POST", "contacts", "{}"), boundary="inner"))),
            "multipart/mixed; boundary=b",
            "Nested change sets in a batch payload are not supported.",
        ),
        (
            batch_of(
                change_set(operation("POST", "contacts", "{}", "1"), operation("POST", "contacts", "{}", "1"))
            ),
            "multipart/mixed; boundary=b",
            "The content ID '1' was found more than once in the same change set or same batch request. "
            "Content IDs have to be unique across all operations of a change set for OData V4.0 and have to "
            "be unique across all operations in the whole batch request for OData V4.01.",
        ),
        (
            batch_of(operation("GET", "contacts")).replace(b"--b--\r\n", b""),
            "multipart/mixed; boundary=b",
            "The $batch request body ends without its closing boundary '--b--'.",
        ),
        (
            batch_of(change_set(operation("POST", "contacts", "{}"))).replace(b"--cs--", b""),
            "multipart/mixed; boundary=b",
            "A change set ends without its closing boundary '--cs--'.",
        ),
        (
            crlf(DOCUMENTED_REQUEST),
            "multipart/mixed; boundary=some_other_boundary",
            "The $batch request body ends without its closing boundary '--some_other_boundary--'.",
        ),
        (
            b'{"requests":[]}',
            "application/json",
            "The $batch request has Content-Type 'application/json'; Dataverse accepts only "
            "'multipart/mixed; boundary=...' (OData 4.0 multipart batches).",
        ),
        (
            batch_of(operation("POST", "contacts", "{}")),
            "multipart/mixed",
            "The $batch request has Content-Type 'multipart/mixed'; Dataverse accepts only "
            "'multipart/mixed; boundary=...' (OData 4.0 multipart batches).",
        ),
        (
            batch_of(operation("POST", "contacts", "{}").replace("application/http", "application/json")),
            "multipart/mixed; boundary=b",
            "The batch part Content-Type 'application/json' is not valid: an operation must be "
            "'application/http' and a change set 'multipart/mixed' with a boundary.",
        ),
        (
            batch_of(operation("POST", "contacts", "{}").replace(" HTTP/1.1", "")),
            "multipart/mixed; boundary=b",
            "The request line 'POST contacts' of a batch operation is not of the form 'METHOD URL HTTP/1.1'.",
        ),
        (
            batch_of(operation("POST", "contacts", "{}").replace("HTTP/1.1", "HTTP/2")),
            "multipart/mixed; boundary=b",
            "The HTTP version 'HTTP/2' used in a batch operation request or response is not valid. "
            "The value must be 'HTTP/1.1'.",
        ),
        (
            batch_of(operation("MERGE", "contacts", "{}")),
            "multipart/mixed; boundary=b",
            "HTTP method 'MERGE' is not valid in a batch operation: use GET, POST, PATCH, PUT or DELETE.",
        ),
    ],
)
def test_malformed_batches_are_rejected_as_a_whole(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(BatchFormatError) as error:
        parse_batch(body, content_type)
    assert error.value.message == message


IDS = {"1": f"{ORG}/contacts({CONTACT})", "2": f"{ORG}/accounts({ACCOUNT})"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$1", f"{ORG}/contacts({CONTACT})"),
        ("$1/primarycontactid/$ref", f"{ORG}/contacts({CONTACT})/primarycontactid/$ref"),
        ("$2?$select=name", f"{ORG}/accounts({ACCOUNT})?$select=name"),
        (f"{ORG}/contacts", f"{ORG}/contacts"),
        (
            '{"parentcustomerid_account@odata.bind":"$2"}',
            f'{{"parentcustomerid_account@odata.bind":"{IDS["2"]}"}}',
        ),
        ('{"@odata.id": "$1"}', f'{{"@odata.id": "{IDS["1"]}"}}'),
        (
            '{"email_activity_parties":[{"partyid_contact@odata.bind":"$1","participationtypemask":1},'
            '{"partyid_account@odata.bind" : "$2"}]}',
            f'{{"email_activity_parties":[{{"partyid_contact@odata.bind":"{IDS["1"]}","participationtypemask":1}},'
            f'{{"partyid_account@odata.bind" : "{IDS["2"]}"}}]}}',
        ),
        # ordinary text that happens to look like a reference is data, not a reference
        ('{"subject":"$1","description":"costs $99"}', '{"subject":"$1","description":"costs $99"}'),
    ],
)
def test_content_id_references_become_entity_urls(text: str, expected: str) -> None:
    assert resolve_content_id_references(text, IDS) == expected


@pytest.mark.parametrize(
    "text", ["$3", "$3/primarycontactid/$ref", '{"parentcustomerid_contact@odata.bind":"$3"}']
)
def test_a_reference_to_an_undeclared_content_id_is_rejected_with_dataverses_message(text: str) -> None:
    with pytest.raises(BatchFormatError) as error:
        resolve_content_id_references(text, IDS)
    assert error.value.message == "Content-ID Reference: '$3' does not exist in the batch context."


def created(entity_set: str, guid: str, content_id: str | None = None) -> ResponsePart:
    url = f"{ORG}/{entity_set}({guid})"
    headers = [("OData-Version", "4.0"), ("Location", url), ("OData-EntityId", url)]
    return ResponsePart(204, headers, content_id=content_id)


def failed(message: str, content_id: str | None = None) -> ResponsePart:
    body = json.dumps({"error": {"code": "0x80044331", "message": message}}, separators=(",", ":")).encode()
    headers = [
        ("REQ_ID", "0b3c4a1e-5f6d-4e7a-8b9c-0d1e2f3a4b5c"),
        ("Content-Type", "application/json; odata.metadata=minimal"),
        ("OData-Version", "4.0"),
    ]
    return ResponsePart(400, headers, body, content_id)


def test_a_response_is_laid_out_line_for_line_like_the_documented_one() -> None:
    body, content_type = serialize_batch_response(
        [created("tasks", ACCOUNT), ChangeSetResponse([created("contacts", CONTACT, content_id="1")])]
    )

    boundary = re.fullmatch(r"multipart/mixed; boundary=(batchresponse_[0-9a-f-]{36})", content_type)
    assert boundary is not None
    change_set = re.search(rb"boundary=(changesetresponse_[0-9a-f-]{36})\r\n", body)
    assert change_set is not None
    expected = (
        f"--{boundary[1]}\n"
        "Content-Type: application/http\n"
        "Content-Transfer-Encoding: binary\n"
        "\n"
        "HTTP/1.1 204 No Content\n"
        "OData-Version: 4.0\n"
        f"Location: {ORG}/tasks({ACCOUNT})\n"
        f"OData-EntityId: {ORG}/tasks({ACCOUNT})\n"
        "\n"
        "\n"
        f"--{boundary[1]}\n"
        f"Content-Type: multipart/mixed; boundary={change_set[1].decode()}\n"
        "\n"
        f"--{change_set[1].decode()}\n"
        "Content-Type: application/http\n"
        "Content-Transfer-Encoding: binary\n"
        "Content-ID: 1\n"
        "\n"
        "HTTP/1.1 204 No Content\n"
        "OData-Version: 4.0\n"
        f"Location: {ORG}/contacts({CONTACT})\n"
        f"OData-EntityId: {ORG}/contacts({CONTACT})\n"
        "\n"
        "\n"
        f"--{change_set[1].decode()}--\n"
        f"--{boundary[1]}--\n"
    )
    assert body == crlf(expected)


def test_a_json_part_ends_its_body_right_before_the_next_boundary() -> None:
    page = {"@odata.context": f"{ORG}/$metadata#contacts(fullname)", "value": [{"fullname": "Zoë Ångström"}]}
    json_body = json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode()
    headers = [
        ("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true"),
        ("OData-Version", "4.0"),
    ]
    body, content_type = serialize_batch_response([ResponsePart(200, headers, json_body)])
    boundary = content_type.split("boundary=")[1]
    assert body.endswith(b"\r\n\r\n" + json_body + f"\r\n--{boundary}--\r\n".encode())
    assert b"\nHTTP/1.1 200 OK\r\n" in body


def test_the_response_is_well_formed_mime_for_a_generic_parser() -> None:
    items: list[ResponsePart | ChangeSetResponse] = [
        created("emails", CONTACT),
        ChangeSetResponse([failed("A validation error occurred.", content_id="7")]),
        ResponsePart(429, [("Retry-After", "3")]),
    ]
    body, content_type = serialize_batch_response(items)
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    assert message.is_multipart()
    outer = [part for part in message.iter_parts() if isinstance(part, Message)]
    assert [part.get_content_type() for part in outer] == [
        "application/http",
        "multipart/mixed",
        "application/http",
    ]
    inner = [part for part in outer[1].iter_parts() if isinstance(part, Message)]
    assert len(inner) == 1
    assert inner[0]["Content-ID"] == "7"
    http = http_payload(inner[0])
    assert http.startswith("HTTP/1.1 400 Bad Request\r\nREQ_ID: ")
    assert json.loads(http.split("\r\n\r\n", 1)[1])["error"]["message"] == "A validation error occurred."
    assert http_payload(outer[2]).startswith("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\n")


def http_payload(part: Message) -> str:
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


# --- Fidelity judged by Microsoft's own client -------------------------------------------------------------


def test_the_official_clients_batch_body_parses_with_its_change_set_and_references() -> None:
    # The client's own request builders, used offline: no string values, so no picklist metadata lookups.
    client = _ODataClient(None, "https://contoso.crm.dynamics.com")
    references = _ChangeSet()  # allocates Content-IDs and `$n` references exactly as the client does
    account_ref = references.add_create("account", {})
    contact_ref = references.add_create("contact", {})
    in_change_set = [
        client._build_create("accounts", "account", {"numberofemployees": 12}, content_id=1),
        client._build_create(
            "contacts", "contact", {"parentcustomerid_account@odata.bind": account_ref}, content_id=2
        ),
        client._build_update("contact", contact_ref, {"numberofchildren": 3}, content_id=3),
    ]
    outside = client._build_create("contacts", "contact", {"numberofchildren": 1})
    # Shaped like the client's `_build_list` output, which needs a live metadata lookup to build itself.
    query = _RawRequest(
        "GET",
        f"{client.api}/contacts?$select=fullname&$filter=emailaddress1 eq 'o''bryan@x.com'",
        headers={"Prefer": "odata.maxpagesize=50"},
    )
    boundary = "batch_5d0d7f60-3c2b-4a59-9d8c-2f2b6f1a7e10"
    sdk_body = _BatchBase(None)._build_batch_body(  # type: ignore[arg-type]
        [outside, _ChangeSetBatchItem(in_change_set), query], boundary
    )

    items = parse_batch(sdk_body.encode("utf-8"), f'multipart/mixed; boundary="{boundary}"')

    first, group, last = items
    assert isinstance(first, BatchRequestPart)
    assert (first.method, first.url, first.content_id) == ("POST", f"{ORG}/contacts", None)
    assert json.loads(first.body) == {"numberofchildren": 1}
    assert first.headers["Content-Type"] == "application/json; type=entry"
    assert isinstance(group, ChangeSetPart)
    assert [(r.method, r.url, r.content_id) for r in group.requests] == [
        ("POST", f"{ORG}/accounts", "1"),
        ("POST", f"{ORG}/contacts", "2"),
        ("PATCH", "$2", "3"),
    ]
    assert group.requests[2].headers["if-match"] == "*"
    created_so_far = {"1": f"{ORG}/accounts({ACCOUNT})", "2": f"{ORG}/contacts({CONTACT})"}
    bound = resolve_content_id_references(group.requests[1].body.decode(), created_so_far)
    assert json.loads(bound) == {"parentcustomerid_account@odata.bind": f"{ORG}/accounts({ACCOUNT})"}
    assert (
        resolve_content_id_references(group.requests[2].url, created_so_far) == f"{ORG}/contacts({CONTACT})"
    )
    assert isinstance(last, BatchRequestPart)
    assert (last.method, last.body, last.headers["Prefer"]) == ("GET", b"", "odata.maxpagesize=50")
    # The client does not percent-encode $filter inside a batch; the URL must survive with its spaces.
    assert last.url == f"{ORG}/contacts?$select=fullname&$filter=emailaddress1 eq 'o''bryan@x.com'"


def test_the_official_client_reads_our_response_statuses_content_ids_entity_ids_and_errors() -> None:
    page = {"@odata.context": f"{ORG}/$metadata#contacts(fullname)", "value": [{"fullname": "Ada"}]}
    items: list[ResponsePart | ChangeSetResponse] = [
        created("emails", ACCOUNT),
        ChangeSetResponse(
            [created("contacts", CONTACT, content_id="1"), ResponsePart(204, [], content_id="2")]
        ),
        ResponsePart(
            200,
            [("Content-Type", "application/json; odata.metadata=minimal"), ("OData-Version", "4.0")],
            json.dumps(page, separators=(",", ":")).encode(),
        ),
        ChangeSetResponse([failed("The length of the 'subject' attribute was exceeded.", content_id="3")]),
    ]
    body, content_type = serialize_batch_response(items)
    response = requests.Response()
    response.status_code = 200
    response.headers["Content-Type"] = content_type
    response.headers["OData-Version"] = "4.0"
    response._content = body
    response.encoding = "utf-8"

    result = _BatchBase(None)._parse_batch_response(response)  # type: ignore[arg-type]

    assert [(r.status_code, r.content_id, r.entity_id) for r in result.responses] == [
        (204, None, ACCOUNT),
        (204, "1", CONTACT),
        (204, "2", None),
        (200, None, None),
        (400, "3", None),
    ]
    assert result.responses[3].data == page
    assert result.responses[4].error_code == "0x80044331"
    assert result.responses[4].error_message == "The length of the 'subject' attribute was exceeded."
    assert len(result.succeeded) == 4
    assert result.entity_ids == [ACCOUNT, CONTACT]
