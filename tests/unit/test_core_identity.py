from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable

import pytest

from nylas_dataverse.core.identity import (
    MESSAGE_ID_MAX_LENGTH,
    MessageIdSource,
    activity_id,
    canonical_message_id,
    dataverse_message_id,
    extract_message_id,
    header_value,
    lookup_values,
    message_id_key,
    reply_parent_message_id,
    synthetic_message_id,
)
from nylas_dataverse.core.messages import NylasMessage

MessageFactory = Callable[..., NylasMessage]
HEADERS = (("Received", "by mx1"), ("message-id", "<first@x>"), ("Message-ID", "<second@x>"), ("X-Blank", ""))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Message-ID", "<first@x>"),
        ("MESSAGE-ID", "<first@x>"),
        ("message-Id", "<first@x>"),
        ("received", "by mx1"),
        ("X-Blank", ""),
        ("In-Reply-To", None),
    ],
)
def test_header_value_is_case_insensitive_and_takes_the_first(name: str, expected: str | None) -> None:
    assert header_value(HEADERS, name) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param([("Message-ID", "<CH2PR21MB@outlook.com>")], "<CH2PR21MB@outlook.com>", id="as-sent"),
        pytest.param([("Message-Id", "  <a+b/c=d@x.example>\r\n")], "<a+b/c=d@x.example>", id="stripped"),
        pytest.param([("Message-ID", "no-brackets@x")], "<no-brackets@x>", id="brackets-added"),
        pytest.param([("Message-ID", "<folded\r\n @x>")], "<folded@x>", id="folding-removed"),
        pytest.param([("Message-ID", "<>")], None, id="empty-brackets"),
        pytest.param([("Message-ID", "<Case@X>")], "<Case@X>", id="case-kept"),
        pytest.param([("Message-ID", "   ")], None, id="blank"),
        pytest.param([("Message-ID", "")], None, id="empty"),
        pytest.param([("References", "<a@x>")], None, id="absent"),
        pytest.param([], None, id="no-headers"),
    ],
)
def test_extract_message_id(
    message: MessageFactory, headers: list[tuple[str, str]], expected: str | None
) -> None:
    assert extract_message_id(message(headers=headers)) == expected


def test_synthetic_message_id_has_the_documented_form() -> None:
    value = synthetic_message_id("grant-alice", "18d5a4b2c3e4f567")
    digest = hashlib.sha256(b"grant-alice\x0018d5a4b2c3e4f567").hexdigest()
    assert value == f"<{digest[:32]}@synthetic.nylas-dataverse.invalid>"
    assert re.fullmatch(r"<[0-9a-f]{32}@synthetic\.nylas-dataverse\.invalid>", value)


def test_synthetic_message_ids_differ_by_grant_and_by_message() -> None:
    base = synthetic_message_id("g1", "m1")
    assert synthetic_message_id("g1", "m1") == base
    assert synthetic_message_id("g2", "m1") != base
    assert synthetic_message_id("g1", "m2") != base
    # the separator keeps ("g", "1m") and ("g1", "m") apart
    assert synthetic_message_id("g", "1m") != synthetic_message_id("g1", "m")


def test_a_header_message_id_is_used_as_sent(message: MessageFactory) -> None:
    msg = message(headers=[("Message-ID", " <quote-40@fabrikam.example> ")])
    assert dataverse_message_id(msg) == ("<quote-40@fabrikam.example>", MessageIdSource.HEADER)


def test_without_a_header_the_id_is_synthetic_and_stable(message: MessageFactory) -> None:
    first = dataverse_message_id(message(headers=[]))
    rerun = dataverse_message_id(message(headers=[("Message-ID", "")]))
    assert first == rerun == (synthetic_message_id("grant-alice", "18d5a4b2c3e4f567"), "synthetic")


def _long_id(length: int, seed: str = "x") -> str:
    return "<" + seed * (length - len("<@x>")) + "@x>"


@pytest.mark.parametrize("length", [MESSAGE_ID_MAX_LENGTH - 1, MESSAGE_ID_MAX_LENGTH])
def test_message_ids_up_to_320_characters_are_kept(message: MessageFactory, length: int) -> None:
    value = _long_id(length)
    assert len(value) == length
    assert dataverse_message_id(message(headers=[("Message-ID", value)])) == (value, MessageIdSource.HEADER)


def test_longer_message_ids_are_hashed_from_the_real_value(message: MessageFactory) -> None:
    value = _long_id(MESSAGE_ID_MAX_LENGTH + 1)
    hashed, source = dataverse_message_id(message(headers=[("Message-ID", value)]))
    assert source == MessageIdSource.HASHED
    assert hashed == f"<{hashlib.sha256(value.encode()).hexdigest()[:40]}@long-id.nylas-dataverse.invalid>"
    assert len(hashed) <= MESSAGE_ID_MAX_LENGTH
    other_grant = message(grant_id="grant-bob", id="other", headers=[("Message-ID", value)])
    assert dataverse_message_id(other_grant) == (hashed, MessageIdSource.HASHED)
    different = message(headers=[("Message-ID", _long_id(MESSAGE_ID_MAX_LENGTH + 1, "y"))])
    assert dataverse_message_id(different)[0] != hashed


def test_activity_id_is_a_uuid5_that_never_changes() -> None:
    value = activity_id("<quote-40@fabrikam.example>")
    assert value.version == 5
    # Pinned: a different value means every message already loaded would be created a second time.
    assert value == uuid.UUID("1d7152f4-ab9d-51a3-95b7-c8b64a26317d")


def test_the_same_message_maps_to_the_same_activity_whichever_grant_sees_it(message: MessageFactory) -> None:
    alice = message(grant_id="grant-alice", id="a1")
    bob = message(grant_id="grant-bob", id="b7", folders=["SENT"])
    assert activity_id(dataverse_message_id(alice)[0]) == activity_id(dataverse_message_id(bob)[0])
    assert activity_id("<a@x>") != activity_id("<b@x>")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("<CAF+abc@mail.gmail.com>", "<caf+ABC@MAIL.GMAIL.COM>"),
        ("<a@x>", " <a@x>\r\n"),
        ("<a@x>", "a@x"),
        ("<long\r\n\t-id@x>", "<long-id@x>"),
    ],
)
def test_message_ids_compare_by_one_rule(first: str, second: str) -> None:
    assert message_id_key(first) == message_id_key(second)


def test_different_message_ids_stay_different() -> None:
    assert message_id_key("<a@x>") != message_id_key("<b@x>")


def test_the_deterministic_id_of_a_well_formed_message_id_is_unchanged_by_the_rule() -> None:
    # Rows loaded by earlier versions used the header as sent: the canonical form of a well-formed id is it.
    assert canonical_message_id("<quote-40@fabrikam.example>") == "<quote-40@fabrikam.example>"
    assert activity_id(canonical_message_id(" <quote-40@fabrikam.example> ") or "") == uuid.UUID(
        "1d7152f4-ab9d-51a3-95b7-c8b64a26317d"
    )


def test_lookups_ask_for_both_forms_other_writers_may_have_stored() -> None:
    assert lookup_values("<a@x>") == ("<a@x>", "a@x")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param([("In-Reply-To", "<parent@x>")], "<parent@x>", id="in-reply-to"),
        pytest.param([("In-Reply-To", "<p1@x> <p2@x>")], "<p1@x>", id="in-reply-to-first"),
        pytest.param([("References", "<root@x> <mid@x>\r\n <last@x>")], "<last@x>", id="references-last"),
        pytest.param(
            [("References", "<root@x>"), ("In-Reply-To", "<parent@x>")], "<parent@x>", id="in-reply-to-wins"
        ),
        pytest.param([("In-Reply-To", "parent@x")], "<parent@x>", id="bare-in-reply-to"),
        pytest.param([], None, id="not-a-reply"),
    ],
)
def test_the_message_a_reply_answers(
    message: MessageFactory, headers: list[tuple[str, str]], expected: str | None
) -> None:
    assert reply_parent_message_id(message(headers=headers)) == expected
