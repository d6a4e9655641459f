from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nylas_dataverse.core.messages import MAX_DATE, BadMessage, NylasMessage, Participant, parse_message

RawFactory = Callable[..., dict[str, Any]]


def test_a_complete_message_keeps_every_field_it_needs(raw_message: RawFactory) -> None:
    msg = parse_message(
        raw_message(
            cc=[{"name": None, "email": "dan@contoso.example"}],
            bcc=["eve@contoso.example"],
            reply_to=[{"email": "sales@fabrikam.example"}],
            headers=[("Message-ID", "<a@b>"), ("Received", "x"), ("received", "y")],
        )
    )
    assert msg == NylasMessage(
        id="18d5a4b2c3e4f567",
        grant_id="grant-alice",
        thread_id="thread-1",
        subject="Quote for 40 chairs",
        from_=(Participant("carol@fabrikam.example", "Carol Customer"),),
        to=(Participant("alice@contoso.example", "Alice Adams"),),
        cc=(Participant("dan@contoso.example", ""),),
        bcc=(Participant("eve@contoso.example", ""),),
        reply_to=(Participant("sales@fabrikam.example", ""),),
        date=1_793_615_400,
        folders=("INBOX",),
        body="<p>Hello Alice</p>",
        snippet="Hello Alice",
        headers=(("Message-ID", "<a@b>"), ("Received", "x"), ("received", "y")),
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(None, "not_an_object: got NoneType", id="none"),
        pytest.param([], "not_an_object: got list", id="list"),
        pytest.param("{}", "not_an_object: got str", id="json-text"),
        pytest.param(7, "not_an_object: got int", id="number"),
    ],
)
def test_only_objects_are_messages(raw: object, reason: str) -> None:
    with pytest.raises(BadMessage) as caught:
        parse_message(raw)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"id": None}, "missing_id", id="id-null"),
        pytest.param({"id": ""}, "missing_id", id="id-empty"),
        pytest.param({"id": "   "}, "missing_id", id="id-blank"),
        pytest.param({"id": 42}, "bad_id: must be a string, got int", id="id-number"),
        pytest.param({"date": None}, "missing_date", id="date-null"),
        pytest.param({"date": "yesterday"}, "bad_date: 'yesterday'", id="date-word"),
        pytest.param({"date": True}, "bad_date: True", id="date-bool"),
        pytest.param({"date": 1.5}, "bad_date: 1.5", id="date-fraction"),
        pytest.param({"date": math.inf}, "bad_date: inf", id="date-infinite"),
        pytest.param({"date": math.nan}, "bad_date: nan", id="date-nan"),
        pytest.param({"date": -1}, "bad_date: -1", id="date-negative"),
        pytest.param({"date": "-1"}, "bad_date: '-1'", id="date-negative-text"),
        pytest.param({"date": MAX_DATE + 1}, f"bad_date: {MAX_DATE + 1}", id="date-after-year-9999"),
        pytest.param({"date": "１２３"}, "bad_date: '１２３'", id="date-non-ascii-digits"),
        pytest.param({"date": "1e9"}, "bad_date: '1e9'", id="date-exponent-text"),
        pytest.param({"date": [1]}, "bad_date: [1]", id="date-list"),
        pytest.param({"date": "9" * 100}, "bad_date: '" + "9" * 56 + "...", id="date-huge-text-truncated"),
        pytest.param({"subject": 3}, "bad_field: 'subject' must be a string, got int", id="subject-number"),
        pytest.param(
            {"grant_id": ["g"]}, "bad_field: 'grant_id' must be a string, got list", id="grant-list"
        ),
        pytest.param(
            {"thread_id": {}}, "bad_field: 'thread_id' must be a string, got dict", id="thread-dict"
        ),
        pytest.param(
            {"snippet": False}, "bad_field: 'snippet' must be a string, got bool", id="snippet-bool"
        ),
        pytest.param({"body": 1}, "bad_field: 'body' must be a string, got int", id="body-number"),
        pytest.param({"from": "carol@x"}, "bad_field: 'from' must be a list, got str", id="from-text"),
        pytest.param({"to": {"email": "a@b"}}, "bad_field: 'to' must be a list, got dict", id="to-object"),
        pytest.param({"folders": "INBOX"}, "bad_field: 'folders' must be a list, got str", id="folders-text"),
        pytest.param(
            {"headers": {"Message-ID": "x"}}, "bad_field: 'headers' must be a list, got dict", id="hdr"
        ),
        pytest.param({"id": "ab\ud800"}, "bad_encoding: 'id' is not valid Unicode", id="id-lone-surrogate"),
        pytest.param(
            {"subject": "\udfff"}, "bad_encoding: 'subject' is not valid Unicode", id="subject-surrogate"
        ),
    ],
)
def test_unusable_values_are_reported_with_a_reason(
    raw_message: RawFactory, overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(BadMessage) as caught:
        parse_message(raw_message(**overrides))
    assert caught.value.reason == reason
    assert caught.value.code == reason.split(":")[0]


def test_a_missing_id_or_date_key_is_reported(raw_message: RawFactory) -> None:
    without_id = raw_message()
    del without_id["id"]
    without_date = raw_message()
    del without_date["date"]
    with pytest.raises(BadMessage, match=r"^missing_id$"):
        parse_message(without_id)
    with pytest.raises(BadMessage, match=r"^missing_date$"):
        parse_message(without_date)


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        (1_793_615_400, 1_793_615_400),
        (0, 0),
        (MAX_DATE, MAX_DATE),
        ("1793615400", 1_793_615_400),
        (" 1793615400\n", 1_793_615_400),
        (1_793_615_400.0, 1_793_615_400),
    ],
)
def test_integer_like_dates_are_accepted(raw_message: RawFactory, date: object, expected: int) -> None:
    assert parse_message(raw_message(date=date)).date == expected


@pytest.mark.parametrize("field", ["grant_id", "thread_id", "subject", "snippet"])
def test_missing_or_null_text_fields_become_empty(raw_message: RawFactory, field: str) -> None:
    missing = raw_message()
    del missing[field]
    attribute = field
    assert getattr(parse_message(missing), attribute) == ""
    assert getattr(parse_message(raw_message(**{field: None})), attribute) == ""


def test_a_missing_or_null_body_stays_none_and_empty_body_stays_empty(raw_message: RawFactory) -> None:
    missing = raw_message()
    del missing["body"]
    assert parse_message(missing).body is None
    assert parse_message(raw_message(body=None)).body is None
    assert parse_message(raw_message(body="")).body == ""


@pytest.mark.parametrize("field", ["from", "to", "cc", "bcc", "reply_to"])
def test_missing_or_null_participant_lists_are_empty(raw_message: RawFactory, field: str) -> None:
    attribute = "from_" if field == "from" else field
    missing = raw_message()
    del missing[field]
    assert getattr(parse_message(missing), attribute) == ()
    assert getattr(parse_message(raw_message(**{field: None})), attribute) == ()


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        pytest.param(
            {"email": "carol@fabrikam.example"}, Participant("carol@fabrikam.example", ""), id="no-name"
        ),
        pytest.param({"email": "a@b.example", "name": None}, Participant("a@b.example", ""), id="null-name"),
        pytest.param({"email": "a@b.example", "name": 5}, Participant("a@b.example", ""), id="odd-name"),
        pytest.param(
            {"email": "  Carol@Fabrikam.Example \t"}, Participant("Carol@Fabrikam.Example", ""), id="ws"
        ),
        pytest.param(
            {"email": "a@b.example", "name": " Ann "}, Participant("a@b.example", " Ann "), id="name-kept"
        ),
        pytest.param({"email": None, "name": "Ghost"}, None, id="null-email-dropped"),
        pytest.param({"email": "", "name": "Ghost"}, None, id="empty-email-dropped"),
        pytest.param({"email": "   "}, None, id="blank-email-dropped"),
        pytest.param({"email": 12}, None, id="non-text-email-dropped"),
        pytest.param({"name": "Nobody"}, None, id="no-email-dropped"),
        pytest.param("carol@fabrikam.example", None, id="bare-text-dropped"),
        pytest.param(None, None, id="null-entry-dropped"),
    ],
)
def test_participants_without_a_usable_email_are_dropped(
    raw_message: RawFactory, entry: object, expected: Participant | None
) -> None:
    raw = raw_message()
    raw["to"] = [entry, {"email": "last@x.example"}]  # set directly: the builder expands bare strings
    msg = parse_message(raw)
    kept = (expected,) if expected else ()
    assert msg.to == (*kept, Participant("last@x.example", ""))


def test_folders_keep_only_text_entries_in_order(raw_message: RawFactory) -> None:
    msg = parse_message(raw_message(folders=["UNREAD", 3, None, "CATEGORY_PERSONAL", "INBOX"]))
    assert msg.folders == ("UNREAD", "CATEGORY_PERSONAL", "INBOX")


def test_headers_keep_order_and_duplicates_and_drop_unusable_entries(raw_message: RawFactory) -> None:
    msg = parse_message(
        raw_message(
            headers=[
                {"name": "Received", "value": "one"},
                {"name": "X-Empty", "value": None},
                {"name": None, "value": "no name"},
                {"value": "no name key"},
                {"name": "X-Number", "value": 5},
                "Subject: not an object",
                {"name": "Received", "value": "two"},
                {"name": "Subject", "value": "=?utf-8?q?caf=C3=A9?="},
            ]
        )
    )
    assert msg.headers == (
        ("Received", "one"),
        ("X-Empty", ""),
        ("Received", "two"),
        ("Subject", "=?utf-8?q?caf=C3=A9?="),
    )


def test_missing_headers_folders_are_empty(raw_message: RawFactory) -> None:
    raw = raw_message(headers=None)
    del raw["folders"]
    msg = parse_message(raw)
    assert msg.headers == ()
    assert msg.folders == ()


def test_the_id_is_kept_exactly(raw_message: RawFactory) -> None:
    assert parse_message(raw_message(id=" AAMkAGI2TG93AAA= ")).id == " AAMkAGI2TG93AAA= "


def test_a_real_json_document_parses(raw_message: RawFactory) -> None:
    text = json.dumps(raw_message(date="1793615400"))
    assert parse_message(json.loads(text)).date == 1_793_615_400


# ------------------------------------------------------------------------------------------------
# fuzzing: nothing JSON-like may raise anything but BadMessage

_any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=12)
_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | _any_text
_json_values = st.recursive(
    _json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_any_text, children, max_size=4),
    max_leaves=12,
)
_participant_like = st.dictionaries(st.sampled_from(["email", "name", "x"]), _json_values, max_size=3)
_header_like = st.dictionaries(st.sampled_from(["name", "value"]), _json_values, max_size=2)
_message_like = st.fixed_dictionaries(
    {},
    optional={
        "id": _json_scalars,
        "date": _json_scalars | st.integers(min_value=0, max_value=MAX_DATE + 10).map(str),
        "grant_id": _json_scalars,
        "thread_id": _json_scalars,
        "subject": _json_scalars,
        "body": _json_scalars,
        "snippet": _json_scalars,
        "folders": st.lists(_json_scalars, max_size=3) | _json_values,
        "headers": st.lists(_header_like | _json_scalars, max_size=3) | _json_values,
        **{
            field: st.lists(_participant_like | _json_scalars, max_size=3) | _json_values
            for field in ("from", "to", "cc", "bcc", "reply_to")
        },
    },
)


def _assert_machine_friendly(rejection: BadMessage) -> None:
    assert rejection.reason
    assert rejection.code.isidentifier()


def _parse_or_reject(raw: object) -> None:
    try:
        msg = parse_message(raw)
    except BadMessage as exc:
        _assert_machine_friendly(exc)
        return
    assert msg.id.strip()
    assert 0 <= msg.date <= MAX_DATE
    assert all(p.email and p.email == p.email.strip() for p in (*msg.from_, *msg.to, *msg.cc))


@settings(max_examples=300, deadline=None)
@given(_json_values)
def test_arbitrary_json_values_parse_or_raise_bad_message(raw: object) -> None:
    _parse_or_reject(raw)


@settings(max_examples=500, deadline=None)
@given(_message_like)
def test_message_shaped_json_parses_or_raises_bad_message(raw: dict[str, object]) -> None:
    _parse_or_reject(raw)
