"""$batch wire format: encoding (checked with the stdlib MIME parser), parsing and alignment."""

from __future__ import annotations

import email
import email.policy
import json
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest

from nylas_dataverse.hooks.odata import (
    BatchRequest,
    ChangeSet,
    align_batch_outcomes,
    assign_content_ids,
    boundary_from_content_type,
    encode_batch,
    parse_batch_response,
)

if TYPE_CHECKING:
    from conftest import SampleBatchAnswer

BASE = "https://contoso.crm.dynamics.com/api/data/v9.2/"
EMAIL_ID = "7d3f1a52-0000-4000-8000-000000000001"
CONTACT_ID = "7d3f1a52-0000-4000-8000-000000000002"


def parse_mime(body: bytes, content_type: str) -> EmailMessage:
    message = email.message_from_bytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body, policy=email.policy.HTTP
    )
    assert isinstance(message, EmailMessage)
    assert message.defects == []
    return message


def http_of(part: EmailMessage) -> tuple[str, dict[str, str], str]:
    raw = part.get_payload(decode=True)  # the bytes as sent (Content-Transfer-Encoding: binary)
    assert isinstance(raw, bytes)
    payload = raw.decode("utf-8")
    head, _, body = payload.partition("\r\n\r\n")
    request_line, *header_lines = head.split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return request_line, headers, body


def operations() -> list[BatchRequest | ChangeSet]:
    return [
        ChangeSet(
            [
                BatchRequest("POST", "contacts", {"emailaddress1": "o'brien+x@example.com"}, content_id="1"),
                BatchRequest(
                    "POST",
                    "emails",
                    {"subject": "Zoë's “quote”", "regardingobjectid_contact_email@odata.bind": "$1"},
                    content_id="2",
                ),
            ]
        ),
        ChangeSet(
            [
                BatchRequest("PATCH", f"emails({EMAIL_ID})", {"statecode": 1}, headers={"If-Match": "*"}),
                BatchRequest("DELETE", f"{BASE}contacts({CONTACT_ID})"),
            ]
        ),
        BatchRequest("GET", "WhoAmI"),
    ]


def test_encode_batch_is_valid_multipart_with_crlf_change_sets_and_content_ids() -> None:
    body, content_type = encode_batch(operations(), base_url=BASE)

    assert content_type.startswith("multipart/mixed; boundary=batch_")
    assert body.count(b"\n") == body.count(b"\r\n")
    message = parse_mime(body, content_type)
    top = list(message.iter_parts())
    assert [p.get_content_type() for p in top] == ["multipart/mixed", "multipart/mixed", "application/http"]

    first = list(top[0].iter_parts())
    assert [p["Content-ID"] for p in first] == ["1", "2"]
    assert all(p["Content-Transfer-Encoding"] == "binary" for p in first)
    line, headers, payload = http_of(first[1])
    assert line == f"POST {BASE}emails HTTP/1.1"
    assert headers == {"Content-Type": "application/json; type=entry"}
    assert json.loads(payload) == {
        "subject": "Zoë's “quote”",
        "regardingobjectid_contact_email@odata.bind": "$1",
    }

    second = list(top[1].iter_parts())
    assert [p["Content-ID"] for p in second] == ["3", "4"]  # automatic, not clashing with 1 and 2
    line, headers, _ = http_of(second[0])
    assert line == f"PATCH {BASE}emails({EMAIL_ID}) HTTP/1.1"
    assert headers["If-Match"] == "*"
    assert http_of(second[1])[0] == f"DELETE {BASE}contacts({CONTACT_ID}) HTTP/1.1"

    assert top[2]["Content-ID"] is None
    assert http_of(top[2]) == (f"GET {BASE}WhoAmI HTTP/1.1", {}, "")


def test_encode_batch_keeps_dollar_references_in_the_request_line() -> None:
    batch = [
        ChangeSet(
            [
                BatchRequest("POST", "contacts", {"a": 1}, content_id="1"),
                BatchRequest("PATCH", "$1", {"b": 2}),
            ]
        )
    ]
    body, content_type = encode_batch(batch, "batch_fixed")

    assert content_type == "multipart/mixed; boundary=batch_fixed"
    inner = list(next(parse_mime(body, content_type).iter_parts()).iter_parts())
    assert http_of(inner[0])[0] == "POST /api/data/v9.2/contacts HTTP/1.1"
    assert http_of(inner[1])[0] == "PATCH $1 HTTP/1.1"
    assert encode_batch(batch, "batch_fixed") == (body, content_type)


@pytest.mark.parametrize(
    ("batch", "problem"),
    [
        ([], "at least one request"),
        ([ChangeSet([])], "change set needs"),
        ([ChangeSet([BatchRequest("GET", "contacts")])], "GET is not allowed"),
        ([BatchRequest("TRACE", "contacts")], "unsupported method"),
        ([BatchRequest("GET", "contacts?$filter=name eq 'a b'")], "percent-encoded"),
        ([BatchRequest("POST", "contacts", {}, headers={"X": "a\r\nInjected: 1"})], "invalid header"),
        ([BatchRequest("GET", "contacts")] * 1001, "at most 1000"),
        (
            [
                ChangeSet([BatchRequest("POST", "a", {}, content_id="1")]),
                ChangeSet([BatchRequest("POST", "b", {}, content_id="1")]),
            ],
            "used twice",
        ),
    ],
)
def test_encode_batch_rejects_what_dataverse_would(
    batch: list[BatchRequest | ChangeSet], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        encode_batch(batch)


def test_assign_content_ids_keeps_given_ids_and_fills_the_rest() -> None:
    assigned = assign_content_ids(
        [ChangeSet([BatchRequest("POST", "a", {}), BatchRequest("POST", "b", {}, content_id="1")])]
    )
    change_set = assigned[0]
    assert isinstance(change_set, ChangeSet)
    assert [r.content_id for r in change_set.requests] == ["2", "1"]


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_parse_batch_response_reads_every_part(batch_answer: SampleBatchAnswer, newline: str) -> None:
    groups = parse_batch_response(batch_answer.body(newline), batch_answer.content_type)

    assert [[r.status for r in g] for g in groups] == [[204, 204], [400], [200]]
    created_contact, created_email = groups[0]
    assert (created_contact.content_id, created_contact.entity_id) == ("1", batch_answer.contact_id)
    assert (created_email.content_id, created_email.entity_id) == ("2", batch_answer.email_id)
    assert created_email.headers["OData-EntityId"] == created_email.headers["odata-entityid"]
    assert created_contact.json is None
    assert created_contact.body == b""
    failure = groups[1][0]
    assert (failure.content_id, failure.ok, failure.error_code) == ("4", False, batch_answer.error_code)
    assert failure.error_message == batch_answer.error_message
    assert failure.headers["req_id"] == "5ecd1cb3-1730-4ffc-909c-d44c22270026"
    whoami = groups[2][0].json
    assert isinstance(whoami, dict)
    assert whoami["UserId"] == "u-1"


def test_alignment_maps_a_failed_change_set_by_content_id(batch_answer: SampleBatchAnswer) -> None:
    ops = assign_content_ids(operations())
    outcomes = align_batch_outcomes(ops, parse_batch_response(batch_answer.body(), batch_answer.content_type))

    assert [o.ok for o in outcomes] == [True, False, True]
    assert [len(o.responses) for o in outcomes] == [2, 1, 1]
    assert outcomes[1].responses[0].error_code == batch_answer.error_code


def test_alignment_of_an_unwrapped_failing_part_after_which_processing_stopped() -> None:
    ops = assign_content_ids(operations())
    answer = "\r\n".join(
        [
            "--b",
            "Content-Type: multipart/mixed; boundary=cs",
            "",
            "--cs",
            "Content-Type: application/http",
            "Content-ID: 1",
            "",
            "HTTP/1.1 204 No Content",
            "",
            "--cs",
            "Content-Type: application/http",
            "Content-ID: 2",
            "",
            "HTTP/1.1 204 No Content",
            "",
            "--cs--",
            "--b",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "Content-ID: 3",
            "",
            "HTTP/1.1 412 Precondition Failed",
            "Content-Type: application/json",
            "",
            '{"error":{"code":"0x80040237","message":"A record with matching key values already exists."}}',
            "--b--",
            "",
        ]
    ).encode()

    outcomes = align_batch_outcomes(ops, parse_batch_response(answer, 'multipart/mixed; boundary="b"'))

    assert [(o.ok, len(o.responses)) for o in outcomes] == [(True, 2), (False, 1), (False, 0)]
    assert outcomes[1].responses[0].status == 412
    assert outcomes[1].responses[0].content_id == "3"


def test_alignment_refuses_more_parts_than_operations(batch_answer: SampleBatchAnswer) -> None:
    with pytest.raises(ValueError, match="more parts"):
        align_batch_outcomes(
            [BatchRequest("GET", "a")], parse_batch_response(batch_answer.body(), batch_answer.content_type)
        )


def test_parse_rejects_non_multipart_and_broken_parts() -> None:
    with pytest.raises(ValueError, match="not a multipart"):
        parse_batch_response(b'{"error":{}}', "application/json")
    with pytest.raises(ValueError, match="status line"):
        parse_batch_response(
            b"--b\r\nContent-Type: application/http\r\n\r\nnot http\r\n--b--\r\n",
            "multipart/mixed; boundary=b",
        )


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ("multipart/mixed; boundary=batchresponse_1", "batchresponse_1"),
        ('multipart/mixed;boundary="quoted value"', "quoted value"),
        ("Multipart/Mixed; charset=utf-8; BOUNDARY=x", "x"),
        ("application/json", None),
        ("multipart/mixed", None),
    ],
)
def test_boundary_from_content_type(content_type: str, boundary: str | None) -> None:
    assert boundary_from_content_type(content_type) == boundary
