"""Attachments at the HTTP level: the Nylas download streamed into a file, the org's upload limit read once,
and a $batch carrying a file written block by block and sent from a spooled body."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import requests
import responses

from nylas_dataverse.core.attachments import AttachmentPolicy, plan_attachments
from nylas_dataverse.core.identity import MessageIdSource
from nylas_dataverse.core.mapping import MASK_FROM, EmailRecord, Party
from nylas_dataverse.core.messages import NylasAttachment
from nylas_dataverse.hooks._retry import RetryPolicy
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.dataverse_tables import (
    change_set_operations,
    email_change_sets,
    refused_attachment,
)
from nylas_dataverse.hooks.errors import DataverseError, NylasError, NylasNotFoundError
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.hooks.odata import (
    Base64File,
    BatchRequest,
    BatchResponse,
    ChangeSet,
    Headers,
    encode_batch,
    write_batch,
)

if TYPE_CHECKING:
    from conftest import DataverseEnv, NylasEnv

GRANT = "41009df5-bf11-4c97-aa18-b285b5f2e386"
EMAIL_ID = "5a1b2c3d-0000-4000-8000-00000000e001"
PAYLOAD = bytes(range(256)) * 1000 + b"tail"  # 256,004 bytes: not a multiple of 3, several blocks


def _file(data: bytes = PAYLOAD) -> Base64File:
    return Base64File("body", lambda: io.BytesIO(data), len(data))


class _Trickle(io.BytesIO):
    """A file whose reads return at most 1,000 bytes, as a network filesystem may."""

    def read(self, size: int | None = -1) -> bytes:
        return super().read(min(1000, size) if size and size > 0 else 1000)


def test_a_file_is_written_into_its_request_as_one_valid_base64_string() -> None:
    request = BatchRequest(
        "POST", "activitymimeattachments", {"filename": "a.bin"}, content_id="2", file=_file()
    )
    trickling = Base64File("body", lambda: _Trickle(PAYLOAD), len(PAYLOAD))
    slow = BatchRequest(
        "POST", "activitymimeattachments", {"filename": "b.bin"}, content_id="3", file=trickling
    )

    body, _ = encode_batch([ChangeSet([request, slow])], boundary="b")

    parts = [json.loads(line) for line in body.decode().split("\r\n") if line.startswith("{")]
    assert [part["filename"] for part in parts] == ["a.bin", "b.bin"]
    assert all(base64.b64decode(part["body"], validate=True) == PAYLOAD for part in parts)


def test_write_batch_gives_the_same_bytes_as_encode_batch() -> None:
    operations = [ChangeSet([BatchRequest("POST", "activitymimeattachments", {"x": 1}, file=_file(b"abcd"))])]
    sink = io.BytesIO()
    content_type = write_batch(operations, sink, boundary="b")
    assert (sink.getvalue(), content_type) == encode_batch(operations, boundary="b")


def test_a_file_shorter_or_longer_than_announced_is_an_error_not_a_wrong_attachment() -> None:
    wrong = Base64File("body", lambda: io.BytesIO(b"abc"), 4, describe="attachment x")
    with pytest.raises(ValueError, match="attachment x has 3 bytes, 4 were expected"):
        encode_batch([ChangeSet([BatchRequest("POST", "activitymimeattachments", {}, file=wrong)])])


def _record(files: int) -> EmailRecord:
    attachments = [NylasAttachment(f"n{i}", f"f{i}.pdf", "application/pdf", 10) for i in range(files)]
    return EmailRecord(
        activity_id=EMAIL_ID,
        internet_message_id="<m@x>",
        message_id_source=MessageIdSource.HEADER,
        subject="s",
        description="<p>d</p>",
        outgoing=False,
        actual_end="2026-11-03T10:00:00Z",
        parties=(Party(MASK_FROM, "a@x.example"),),
        attachments=plan_attachments(EMAIL_ID, attachments, AttachmentPolicy(), 5_242_880),
    )


def test_an_email_change_set_creates_the_email_then_its_files_then_completes_it() -> None:
    record = _record(2)
    files = {0: _file(b"0123456789"), 1: _file(b"abcdefghij")}
    second = _record(0)

    first_set, second_set = email_change_sets([record, second], files={EMAIL_ID: files})

    methods = [(r.method, r.url, r.content_id) for r in first_set.requests]
    assert methods == [
        ("POST", "emails", "1"),
        ("POST", "activitymimeattachments", "2"),
        ("POST", "activitymimeattachments", "3"),
        ("PATCH", "$1", "4"),
    ]
    body = first_set.requests[1].body
    assert isinstance(body, dict)
    assert body["objectid_email@odata.bind"] == "$1"
    assert body["objecttypecode"] == "email"
    assert body["activitymimeattachmentid"] == record.attachments[0].row_id
    assert [r.content_id for r in second_set.requests] == ["5", "6"]
    assert change_set_operations(record, files) == 4


def test_the_download_streams_into_the_sink_in_chunks_with_the_message_id(
    nylas: NylasEnv, rsps: responses.RequestsMock, make_nylas_hook: Callable[..., NylasHook]
) -> None:
    url = f"{nylas.url}/v3/grants/{GRANT}/attachments/att%2F1/download"
    rsps.get(url, body=PAYLOAD, headers={"Content-Length": str(len(PAYLOAD))})
    writes: list[int] = []

    class Sink(io.BytesIO):
        def write(self, data: Any) -> int:
            writes.append(len(data))
            return super().write(data)

    sink = Sink()
    assert make_nylas_hook().download_attachment(GRANT, "att/1", "msg-1", sink) == len(PAYLOAD)
    assert sink.getvalue() == PAYLOAD
    assert max(writes) <= NylasHook.DOWNLOAD_CHUNK_BYTES
    assert len(writes) > 1
    assert rsps.calls[0].request.url.endswith("download?message_id=msg-1")


def test_a_missing_attachment_is_a_not_found_error_and_a_short_body_an_error(
    nylas: NylasEnv, rsps: responses.RequestsMock, make_nylas_hook: Callable[..., NylasHook]
) -> None:
    base = f"{nylas.url}/v3/grants/{GRANT}/attachments"
    rsps.get(f"{base}/gone/download", status=404, json={"error": {"type": "not_found", "message": "no such"}})
    rsps.get(
        f"{base}/short/download",
        body=b"abc",
        headers={"Content-Length": "10"},
        auto_calculate_content_length=False,
    )
    hook = make_nylas_hook(retry_policy=RetryPolicy(max_attempts=1))
    with pytest.raises(NylasNotFoundError):
        hook.download_attachment(GRANT, "gone", "m", io.BytesIO())
    with pytest.raises((NylasError, requests.exceptions.ChunkedEncodingError)):
        hook.download_attachment(GRANT, "short", "m", io.BytesIO())


def test_the_org_upload_limit_is_read_once_per_hook(
    dataverse: DataverseEnv, make_dataverse_hook: Callable[..., DataverseHook]
) -> None:
    dataverse.issue_token("token-1")
    dataverse.rsps.get(f"{dataverse.api}organizations", json={"value": [{"maxuploadfilesize": 131_072_000}]})
    hook = make_dataverse_hook()

    assert hook.max_upload_file_size() == 131_072_000
    assert hook.max_upload_file_size() == 131_072_000
    calls = dataverse.api_calls()
    assert len(calls) == 1
    assert "$select=maxuploadfilesize" in calls[0].request.url


def test_a_batch_with_a_file_is_sent_from_a_spooled_body_whole_on_every_attempt(
    dataverse: DataverseEnv, make_dataverse_hook: Callable[..., DataverseHook]
) -> None:
    dataverse.issue_token("token-1")
    seen: list[tuple[str | None, bytes]] = []

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        body = request.body
        data = body.read() if hasattr(body, "read") else body
        assert isinstance(data, bytes)
        seen.append((request.headers.get("Content-Length"), data))
        if len(seen) == 1:
            return 503, {}, b""  # retried: the spooled body must be sent again from its start
        return 400, {"Content-Type": "application/json"}, b'{"error": {"code": "0x0", "message": "no"}}'

    dataverse.rsps.add_callback(responses.POST, f"{dataverse.api}$batch", callback=answer)
    operations = [
        ChangeSet([BatchRequest("POST", "activitymimeattachments", {"filename": "a"}, file=_file())])
    ]

    with pytest.raises(DataverseError):
        make_dataverse_hook(retry_policy=RetryPolicy(max_attempts=3)).execute_batch(operations)

    assert len(seen) == 2
    assert seen[0] == seen[1]
    length, data = seen[0]
    assert length == str(len(data))
    assert base64.b64encode(PAYLOAD) in data


def test_a_refusal_is_traced_to_the_file_it_names_by_content_id_or_by_the_size_code() -> None:
    record = _record(2)
    change_set = email_change_sets([record], files={EMAIL_ID: {0: _file(b"a"), 1: _file(b"b")}})[0]
    invalid = {"error": {"code": "0x80040203", "message": "Invalid value"}}
    about_second = BatchResponse(400, Headers(), invalid, content_id="3")
    about_email = BatchResponse(400, Headers(), invalid, content_id="1")
    too_big = BatchResponse(400, Headers(), {"error": {"code": "0x80044A02", "message": "too big"}})

    assert refused_attachment(change_set, about_second) == record.attachments[1].row_id
    assert refused_attachment(change_set, about_email) is None
    assert refused_attachment(change_set, too_big) is None  # two files: which one is unknown
    lone = email_change_sets([_record(1)], files={EMAIL_ID: {0: _file(b"a")}})[0]
    assert refused_attachment(lone, too_big) == _record(1).attachments[0].row_id
