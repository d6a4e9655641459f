"""The seeded mailboxes: realistic, provider-shaped, complete in their edge cases, and deterministic."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas import seed

START_DAY, DAYS = seed.DEFAULT_START_DAY, seed.DEFAULT_DAYS
SPECIAL_DAY = START_DAY + dt.timedelta(days=seed.SPECIAL_DAY_OFFSET)
ACTIVE = ("alice", "bob", "carol")


def _box(grant_key: str) -> tuple[seed.SeedMessage, ...]:
    return seed.mailboxes(START_DAY, DAYS)[grant_key]


def _header(message: dict[str, Any], name: str) -> str | None:
    return next((h["value"] for h in message.get("headers", []) if h["name"].lower() == name.lower()), None)


def _mime_header(seeded: seed.SeedMessage, name: str) -> str | None:
    """From the stored MIME headers, which Microsoft hides from the API for Sent Items."""
    return next((value for key, value in seeded.mime_headers if key.lower() == name.lower()), None)


def _days() -> list[dt.date]:
    return [START_DAY + dt.timedelta(days=n) for n in range(DAYS)]


@pytest.mark.parametrize("grant_key", ACTIVE)
def test_every_day_holds_a_working_days_worth_of_mail(grant_key: str) -> None:
    counts = seed.expected_counts(START_DAY, DAYS)[grant_key]

    assert list(counts) == _days()
    assert all(27 <= n <= 45 for n in counts.values()), counts
    assert sum(counts.values()) == len(_box(grant_key))


@pytest.mark.parametrize("grant_key", ACTIVE)
def test_each_mailbox_has_every_kind_of_mail_the_pipeline_must_handle(grant_key: str) -> None:
    box = _box(grant_key)
    kinds = Counter(s.kind for s in box)
    roles = Counter(s.role for s in box)

    for kind in ("contact", "account", "lead", "unknown", "newsletter", "automated", "internal", "spam"):
        assert kinds[kind] > 0, kind
    for role in ("inbox", "archive", "sent", "draft", "spam", "trash"):
        assert roles[role] > 0, role
    for day in _days():
        on_day = {s.role for s in box if s.day == day}
        assert {"inbox", "sent", "draft", "spam", "trash"} <= on_day, day
        assert any(s.kind == "no_message_id" for s in box if s.day == day)


@pytest.mark.parametrize("grant_key", ACTIVE)
def test_threads_reference_earlier_messages_of_the_same_thread(grant_key: str) -> None:
    box = _box(grant_key)
    by_message_id = {_mime_header(s, "Message-ID"): s.message for s in box}
    replies = [s for s in box if _mime_header(s, "In-Reply-To")]

    linked = [(s.message, by_message_id.get(_mime_header(s, "In-Reply-To"))) for s in replies]
    found = [(m, parent) for m, parent in linked if parent is not None]
    assert len(found) >= 20
    assert all(m["thread_id"] == parent["thread_id"] and parent["date"] < m["date"] for m, parent in found)
    assert any(parent["date"] < seed.day_bounds(seed.utc_day(m["date"]))[0] for m, parent in found), (
        "some threads continue on a later day"
    )


def test_sent_mail_is_in_the_sent_folder_and_from_the_owner() -> None:
    sent_folder = {"alice": "SENT", "carol": "Sent"}
    for grant_key in ("alice", "carol"):
        grant = personas.grant_by_key(grant_key)
        sent = [s.message for s in _box(grant_key) if s.role == "sent"]
        assert len(sent) > 20
        assert all(sent_folder[grant_key] in m["folders"] for m in sent)
        assert all(m["from"] == [{"name": m["from"][0]["name"], "email": grant.email}] for m in sent)
        assert all(m["unread"] is False for m in sent)


def test_internal_only_mail_stays_within_the_org() -> None:
    internal = [s.message for s in _box("carol") if s.kind == "internal"]

    assert len(internal) > 10
    for m in internal:
        everyone = [p["email"] for f in ("from", "to", "cc", "bcc") for p in m[f]]
        assert all(address.endswith("@contoso.example") for address in everyone)


def test_newsletters_and_automated_mail_say_so_in_their_headers() -> None:
    box = _box("alice")
    newsletters = [s.message for s in box if s.kind == "newsletter"]
    automated = [s.message for s in box if s.kind == "automated"]

    assert all(_header(m, "List-Unsubscribe") and _header(m, "Precedence") == "bulk" for m in newsletters)
    assert all(_header(m, "Auto-Submitted") == "auto-generated" for m in automated)
    assert all(m["from"][0]["email"].startswith("no-reply@") for m in automated)
    assert any("CATEGORY_PROMOTIONS" in m["folders"] for m in newsletters)


def test_correspondents_come_from_the_personas() -> None:
    senders = {s.message["from"][0]["email"] for s in _box("alice") if s.role == "inbox"}
    contacts = {e for person, _ in personas.CONTACTS for e in person.emails}
    accounts = {e for account in personas.ACCOUNTS for e in account.emails}

    assert senders & contacts
    assert senders & accounts
    assert senders & {e for lead in personas.LEADS for e in lead.emails}
    assert senders & set(personas.UNKNOWN_SENDERS)


def test_one_message_id_in_two_grants_has_two_nylas_ids() -> None:
    alice_sent = {_header(s.message, "Message-ID"): s.message for s in _box("alice") if s.role == "sent"}
    bob_inbox = {_header(s.message, "Message-ID"): s.message for s in _box("bob") if s.role != "sent"}

    shared = (set(alice_sent) & set(bob_inbox)) - {None}
    assert len(shared) >= DAYS
    message_id = sorted(shared, key=str)[0]
    assert alice_sent[message_id]["id"] != bob_inbox[message_id]["id"]
    assert alice_sent[message_id]["subject"] == bob_inbox[message_id]["subject"]


def test_some_messages_have_no_message_id() -> None:
    for grant_key in ACTIVE:
        without = [
            s for s in _box(grant_key) if s.message["headers"] and not _header(s.message, "Message-ID")
        ]
        assert len(without) >= DAYS


def test_microsoft_quirks_no_headers_in_sent_items_and_a_missing_from() -> None:
    box = _box("bob")
    sent = [s.message for s in box if s.role == "sent"]

    assert sent
    assert all(m["headers"] == [] for m in sent)
    assert all(len(s.message["folders"]) == 1 for s in box)
    assert any("from" not in s.message for s in box)
    assert all(s.mime_headers for s in box if s.role == "sent")


def test_ids_have_their_providers_shapes() -> None:
    google = [s.message for s in _box("alice")]
    microsoft = [s.message for s in _box("bob")]
    imap = [s.message for s in _box("carol")]

    assert all(re.fullmatch(r"[0-9a-f]{16}", m["id"]) for m in google)
    assert all(re.fullmatch(r"[0-9a-f]{16}", m["thread_id"]) for m in google)
    assert {m["thread_id"] for m in google} <= {m["id"] for m in google}, "a Gmail thread id is a message id"
    for m in microsoft:
        assert len(m["id"]) > 100
        assert {"/", "+", "="} <= set(m["id"])
        base64.b64decode(m["id"], validate=True)
    assert all(re.fullmatch(r"[0-9a-z]{25}", m["id"]) for m in imap)
    multi_label = [m for m in google if len(m["folders"]) > 1]
    assert multi_label
    assert any("INBOX" in m["folders"] and "UNREAD" in m["folders"] for m in multi_label)


def test_the_second_day_holds_alices_edge_cases() -> None:
    special = {s.kind: s.message for s in _box("alice") if s.day == SPECIAL_DAY}
    non_ascii = [s.message for s in _box("alice") if s.kind == "non_ascii"]

    assert len(special["large_body"]["body"].encode()) >= 2 * 1024 * 1024
    assert len(special["long_subject"]["subject"]) == 900
    assert re.fullmatch(r"=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?=", special["encoded_subject"]["subject"])
    invite = special["many_recipients"]
    assert len(invite["to"]) + len(invite["cc"]) == 60
    assert len({p["email"] for p in invite["to"] + invite["cc"]}) == 60
    body = special["script_body"]["body"]
    assert "<script>" in body
    assert "onclick=" in body
    assert len(non_ascii) == 3
    assert all(not m["subject"].isascii() and not m["from"][0]["name"].isascii() for m in non_ascii)
    assert all(_header(m, "Subject").startswith("=?utf-8?") for m in non_ascii)


def test_the_sixty_recipient_message_reaches_every_grant_in_it() -> None:
    shared = [
        s.message
        for key in ("alice", "bob", "carol")
        for s in seed.mailboxes(START_DAY, DAYS)[key]
        if s.kind == "many_recipients"
    ]

    assert len(shared) == 3
    assert len({_header(m, "Message-ID") for m in shared}) == 1


def test_snippets_are_short_plain_text() -> None:
    for grant_key in ACTIVE:
        for s in _box(grant_key):
            snippet = s.message["snippet"]
            assert 0 < len(snippet) <= 100
            assert "<" not in snippet
            assert "\n" not in snippet


def _digest_in_subprocess(hash_seed: str) -> str:
    code = (
        "import hashlib, json; from nylas_dataverse_sandbox.nylas import seed; "
        "boxes = seed.mailboxes(seed.DEFAULT_START_DAY, seed.DEFAULT_DAYS); "
        "print(hashlib.sha256(json.dumps({k: [s.message for s in v] for k, v in boxes.items()}, "
        "sort_keys=True).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return result.stdout.strip()


def test_seed_is_identical_across_processes_and_hash_seeds() -> None:
    boxes = seed.mailboxes(START_DAY, DAYS)
    here = hashlib.sha256(
        json.dumps({k: [s.message for s in v] for k, v in boxes.items()}, sort_keys=True).encode()
    ).hexdigest()

    assert _digest_in_subprocess("1") == _digest_in_subprocess("4242") == here


def test_messages_match_the_openapi_message_schema(
    openapi_validator: Callable[[str], jsonschema.Draft202012Validator],
) -> None:
    validator = openapi_validator("#/components/schemas/message")
    sample = [
        s.message for key in ("alice", "bob", "carol", "dave") for s in _box(key) if s.day == SPECIAL_DAY
    ]

    problems = [
        f"{m['id']} {list(e.absolute_path)}: {e.message}"
        for m in sample
        for e in validator.iter_errors(m)
        if not _documented_google_empty_content_type(m, e)
    ]
    assert len(sample) > 100
    assert problems == []


def _documented_google_empty_content_type(message: dict[str, Any], error: jsonschema.ValidationError) -> bool:
    """The contract says minLength 1, yet documents that Google sends "" for non-ASCII file names."""
    path = list(error.absolute_path)
    if len(path) != 3 or path[0] != "attachments" or path[2] != "content_type":
        return False
    return not message["attachments"][path[1]]["filename"].isascii()


def test_the_contracts_own_exception_is_exercised() -> None:
    attachments = [a for s in _box("alice") for a in s.message["attachments"]]

    assert any(a["content_type"] == "" and not a["filename"].isascii() for a in attachments)
    assert all(a["content_type"] for a in attachments if a["filename"].isascii())


def test_folders_and_grants_match_the_openapi_schemas(
    openapi_validator: Callable[[str], jsonschema.Draft202012Validator],
) -> None:
    from nylas_dataverse_sandbox.nylas import folders
    from nylas_dataverse_sandbox.nylas.backend import NylasBackend

    backend = NylasBackend(api_key="k", start_day=START_DAY, days=DAYS)
    folder_validator = openapi_validator("#/components/schemas/folder")
    grant_validator = openapi_validator("#/components/schemas/GrantObject")

    for grant in personas.GRANTS:
        for folder in folders.folder_objects(grant, include_hidden=True):
            assert list(folder_validator.iter_errors(folder)) == []
        assert list(grant_validator.iter_errors(backend.grant_object(grant))) == []


# The window's edges, replies whose parent is elsewhere, attachments -------------------------------------


def test_every_mailbox_has_mail_on_both_edges_of_every_day() -> None:
    for grant in personas.GRANTS:
        for day in _days():
            start, end = seed.day_bounds(day)
            on_day = [s.message for s in _box(grant.key) if s.day == day]
            at_start = [m for m in on_day if m["date"] == start]
            at_end = [m for m in on_day if m["date"] == end - 1]
            assert at_start, (grant.key, day)
            assert at_end, (grant.key, day)
            # The last one was synced after midnight: a created_at filter puts it on the next day.
            assert all(m["created_at"] >= end for m in at_end)
            assert all(_header(m, "Message-ID") for m in at_start + at_end)


def _message_ids(grant_key: str) -> dict[str, seed.SeedMessage]:
    """Every RFC Message-ID in a mailbox, from the stored MIME (Microsoft hides Sent Items' headers)."""
    return {mid: s for s in _box(grant_key) if (mid := _mime_header(s, "Message-ID"))}


def test_a_reply_can_have_its_parent_in_another_grants_mailbox_only() -> None:
    [reply] = [s for s in _box("carol") if s.kind == "reply_cross_grant"]
    parent_id = _mime_header(reply, "In-Reply-To")

    assert parent_id is not None
    assert parent_id not in _message_ids("carol")
    parent = _message_ids("bob")[parent_id]
    assert parent.role == "sent"
    assert parent.message["headers"] == []  # Microsoft Sent Items: only raw_mime shows its Message-ID
    assert parent.message["date"] < reply.message["date"]
    [bobs_copy] = [s for s in _box("bob") if s.kind == "reply_cross_grant"]
    assert bobs_copy.message["thread_id"] == parent.message["thread_id"]


def test_a_reply_can_have_a_parent_that_is_in_no_mailbox() -> None:
    [reply] = [s for s in _box("alice") if s.kind == "reply_orphan"]
    parent_id = _mime_header(reply, "In-Reply-To")

    assert parent_id is not None
    assert _mime_header(reply, "References") == parent_id
    assert all(parent_id not in _message_ids(grant.key) for grant in personas.GRANTS)
    assert reply.message["thread_id"] == reply.message["id"], "Gmail: a thread of one starts at its reply"


def _attachments_of(grant_key: str, kind: str) -> list[dict[str, Any]]:
    [seeded] = [s for s in _box(grant_key) if s.kind == kind]
    return list(seeded.message["attachments"])


def test_the_attachment_mix_across_providers() -> None:
    inline, pdf = _attachments_of("alice", "attachments_inline")
    [large] = _attachments_of("bob", "attachments_large")
    many = _attachments_of("bob", "attachments_many")
    exe = _attachments_of("carol", "attachments_blocked")[0]
    [inline_message] = [s.message for s in _box("alice") if s.kind == "attachments_inline"]

    assert inline["is_inline"] is True
    assert pdf["is_inline"] is False
    assert inline["content_id"].startswith("<")
    assert inline["content_id"].endswith(">")
    assert f"cid:{inline['content_id'][1:-1]}" in inline_message["body"]
    assert inline["content_disposition"].startswith("inline;")
    assert pdf["content_type"] == "application/pdf"
    assert large["size"] == 25 * 1024 * 1024
    assert [a["filename"] for a in many].count("scan.pdf") == 2
    assert len({a["id"] for a in many}) == len(many)
    assert all("content_disposition" not in a for a in many), "Microsoft does not report it"
    assert exe["filename"].endswith(".exe")
    assert exe["content_type"] == "application/x-msdownload"
    [imap_inline] = [a for a in _attachments_of("carol", "attachments_inline") if a["is_inline"]]
    assert imap_inline["content_id"] == inline["content_id"]  # the same part in an IMAP mailbox
    assert all(not a["filename"].endswith(".exe") for s in _box("alice") for a in s.message["attachments"]), (
        "Gmail refuses executables"
    )


def test_every_attachment_id_is_unique_within_its_message_and_names_its_grant() -> None:
    for grant in personas.GRANTS:
        for s in _box(grant.key):
            attachments = s.message["attachments"]
            assert len({a["id"] for a in attachments}) == len(attachments)
            assert all(a["grant_id"] == grant.grant_id for a in attachments)
