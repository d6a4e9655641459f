"""Attachments: metadata and streamed downloads over HTTP, as the contract and the SDK expect them."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jsonschema
import nylas
import pytest
import requests
from nylas.models.errors import NylasApiError

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas import attachments, seed
from nylas_dataverse_sandbox.nylas.backend import NylasBackend

if TYPE_CHECKING:
    from conftest import NylasApi

START_DAY, DAYS = seed.DEFAULT_START_DAY, seed.DEFAULT_DAYS
LARGE = 25 * 1024 * 1024


def _find(grant_key: str, kind: str, filename: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(message, attachment) of the seeded message of that kind (its first attachment unless named)."""
    message = next(s.message for s in seed.mailboxes(START_DAY, DAYS)[grant_key] if s.kind == kind)
    attachment = next(a for a in message["attachments"] if filename in (None, a["filename"]))
    return message, attachment


def _path(grant: personas.GrantPersona, attachment: dict[str, Any], suffix: str = "") -> str:
    return f"/v3/grants/{grant.grant_id}/attachments/{quote(attachment['id'], safe='')}{suffix}"


def _download(api: NylasApi, grant_key: str, kind: str, filename: str | None = None) -> requests.Response:
    grant = personas.grant_by_key(grant_key)
    message, attachment = _find(grant_key, kind, filename)
    return api.get(_path(grant, attachment, "/download"), {"message_id": message["id"]})


@pytest.mark.parametrize(
    ("grant_key", "kind"),
    [("alice", "attachments_inline"), ("bob", "attachments_many"), ("carol", "attachments_blocked")],
)
def test_metadata_is_the_messages_attachment_object_and_matches_the_contract(
    api: NylasApi,
    openapi_validator: Callable[[str], jsonschema.Draft202012Validator],
    grant_key: str,
    kind: str,
) -> None:
    grant = personas.grant_by_key(grant_key)
    message, _ = _find(grant_key, kind)
    validator = openapi_validator("#/components/responses/attachment/content/application~1json/schema")

    for attachment in message["attachments"]:
        response = api.get(_path(grant, attachment), {"message_id": message["id"]})
        assert response.status_code == 200, response.text
        assert response.json()["data"] == attachment
        assert [e.message for e in validator.iter_errors(response.json())] == []


def test_metadata_needs_the_message_id_and_answers_404_for_what_is_not_there(
    api: NylasApi, bob: personas.GrantPersona
) -> None:
    message, attachment = _find("bob", "attachments_many")
    other, _ = _find("bob", "attachments_large")
    assert "/" in attachment["id"], "Graph-shaped ids need URL-encoding"

    missing_message_id = api.get(_path(bob, attachment))
    unknown_attachment = api.get(
        f"/v3/grants/{bob.grant_id}/attachments/not-an-attachment", {"message_id": message["id"]}
    )
    wrong_message = api.get(_path(bob, attachment), {"message_id": other["id"]})
    unknown_message = api.get(_path(bob, attachment), {"message_id": "no-such-message"})
    unencoded = api.get(
        f"/v3/grants/{bob.grant_id}/attachments/{attachment['id']}", {"message_id": message["id"]}
    )

    assert missing_message_id.status_code == 400
    assert "message_id" in missing_message_id.json()["error"]["message"]
    for response in (unknown_attachment, wrong_message, unknown_message, unencoded):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize(
    ("grant_key", "kind", "filename", "head", "tail"),
    [
        ("alice", "attachments_inline", "Angebot_2026-118.pdf", b"%PDF-", b"%%EOF\n"),
        ("alice", "attachments_inline", "image001.png", b"\x89PNG\r\n\x1a\n", b""),
        ("carol", "attachments_blocked", "Invoice_88213.exe", b"MZ", b""),
        ("carol", "attachments_inline", "Angebot_2026-118.pdf", b"%PDF-", b"%%EOF\n"),
    ],
)
def test_downloads_are_the_files_bytes_with_their_length(
    api: NylasApi, grant_key: str, kind: str, filename: str, head: bytes, tail: bytes
) -> None:
    _, attachment = _find(grant_key, kind, filename)

    response = _download(api, grant_key, kind, filename)
    again = _download(api, grant_key, kind, filename)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert "Content-Encoding" not in response.headers
    assert int(response.headers["Content-Length"]) == len(response.content) == attachment["size"]
    assert response.content.startswith(head)
    assert response.content.endswith(tail)
    assert response.content == again.content
    assert response.headers["x-request-id"]


def test_microsoft_sizes_count_the_mime_headers_so_downloads_are_smaller(api: NylasApi) -> None:
    _, attachment = _find("bob", "attachments_many", "Pricing_Q1.xlsx")

    response = _download(api, "bob", "attachments_many", "Pricing_Q1.xlsx")

    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert 0 < attachment["size"] - len(response.content) < 600
    assert response.content.startswith(b"PK\x03\x04")


def test_two_files_with_one_name_are_two_attachments(api: NylasApi, bob: personas.GrantPersona) -> None:
    message, _ = _find("bob", "attachments_many")
    scans = [a for a in message["attachments"] if a["filename"] == "scan.pdf"]

    bodies = [api.get(_path(bob, scan, "/download"), {"message_id": message["id"]}).content for scan in scans]

    assert len(scans) == 2
    assert bodies[0] != bodies[1]
    assert [len(b) for b in bodies] == [attachments.file_length(bob, scan) for scan in scans]


def test_the_download_content_type_can_be_the_attachments_own(
    api: NylasApi, nylas_backend: NylasBackend
) -> None:
    nylas_backend.set_switches({"download_content_type": "attachment"})

    png = _download(api, "alice", "attachments_inline", "image001.png")
    pdf = _download(api, "alice", "attachments_inline", "Angebot_2026-118.pdf")

    assert png.headers["Content-Type"] == 'image/png; name="image001.png"'
    assert pdf.headers["Content-Type"] == "application/pdf"


@pytest.mark.parametrize("grant_key", ["alice", "bob"])
def test_a_25_mb_attachment_streams_in_chunks_of_its_exact_length(api: NylasApi, grant_key: str) -> None:
    grant = personas.grant_by_key(grant_key)
    message, attachment = _find(grant_key, "attachments_large")
    digest = hashlib.sha256()
    received = 0
    chunks = 0

    with requests.get(
        f"{api.url}{_path(grant, attachment, '/download')}",
        params={"message_id": message["id"]},
        headers={"Authorization": f"Bearer {api.api_key}", "Accept-Encoding": "gzip"},
        verify=str(api.ca_pem),
        stream=True,
        timeout=120,
    ) as response:
        assert response.status_code == 200
        assert "Content-Encoding" not in response.headers
        length = int(response.headers["Content-Length"])
        for chunk in response.iter_content(256 * 1024):
            digest.update(chunk)
            received += len(chunk)
            chunks += 1

    expected = hashlib.sha256(b"".join(attachments.iter_bytes(grant, message["id"], attachment))).hexdigest()
    assert attachment["size"] == LARGE
    assert received == length == attachments.file_length(grant, attachment)
    assert (length == LARGE) is (grant_key == "alice")
    assert chunks > 50
    assert digest.hexdigest() == expected


def test_generating_a_25_mb_file_holds_one_chunk_at_a_time() -> None:
    bob = personas.grant_by_key("bob")
    message, attachment = _find("bob", "attachments_large")
    tracemalloc.start()
    try:
        sizes = [len(chunk) for chunk in attachments.iter_bytes(bob, message["id"], attachment)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert sum(sizes) == attachments.file_length(bob, attachment)
    assert max(sizes) == attachments.CHUNK_BYTES
    assert peak < 2 * 1024 * 1024


def test_chunk_boundaries_do_not_change_the_bytes() -> None:
    carol = personas.grant_by_key("carol")
    message, attachment = _find("carol", "attachments_inline", "Angebot_2026-118.pdf")

    whole = b"".join(attachments.iter_bytes(carol, message["id"], attachment, chunk_bytes=1 << 20))
    small = b"".join(attachments.iter_bytes(carol, message["id"], attachment, chunk_bytes=4096))

    assert whole == small
    assert whole.startswith(b"%PDF-")
    assert whole.endswith(b"%%EOF\n")


def test_attachments_of_an_expired_grant_answer_401(api: NylasApi) -> None:
    dave = personas.grant_by_key("dave")
    message = next(s.message for s in seed.mailboxes(START_DAY, DAYS)["dave"] if s.message["attachments"])
    attachment = message["attachments"][0]

    for suffix in ("", "/download"):
        response = api.get(_path(dave, attachment, suffix), {"message_id": message["id"]})
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "unauthorized"


def test_stats_name_the_attachment_routes(api: NylasApi, nylas_backend: NylasBackend) -> None:
    nylas_backend.stats.by_route.clear()
    alice = personas.grant_by_key("alice")
    message, attachment = _find("alice", "attachments_inline")

    api.get(_path(alice, attachment), {"message_id": message["id"]})
    api.get(_path(alice, attachment, "/download"), {"message_id": message["id"]})

    assert dict(nylas_backend.stats.by_route) == {
        "GET /v3/grants/{grant}/attachments/{attachment_id}": 1,
        "GET /v3/grants/{grant}/attachments/{attachment_id}/download": 1,
    }


# The official SDK as a judge ------------------------------------------------------------------------------


@pytest.fixture
def client(api: NylasApi, monkeypatch: pytest.MonkeyPatch) -> nylas.Client:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(api.ca_pem))
    return nylas.Client(personas.NYLAS_API_KEY, api_uri=api.url)


def test_the_sdk_reads_metadata_and_downloads_bytes(client: nylas.Client) -> None:
    alice = personas.grant_by_key("alice")
    message, attachment = _find("alice", "attachments_inline", "image001.png")

    found = client.attachments.find(alice.grant_id, attachment["id"], {"message_id": message["id"]}).data
    data = client.attachments.download_bytes(alice.grant_id, attachment["id"], {"message_id": message["id"]})

    assert (found.filename, found.is_inline, found.content_id) == (
        "image001.png",
        True,
        attachment["content_id"],
    )
    assert data == b"".join(attachments.iter_bytes(alice, message["id"], attachment))


def test_the_sdk_does_not_encode_attachment_ids_so_graph_ids_with_a_slash_are_not_found(
    client: nylas.Client,
) -> None:
    bob = personas.grant_by_key("bob")
    message, attachment = _find("bob", "attachments_many")
    assert "/" in attachment["id"]

    with pytest.raises(NylasApiError) as missing:
        client.attachments.find(bob.grant_id, attachment["id"], {"message_id": message["id"]})

    assert missing.value.status_code == 404
