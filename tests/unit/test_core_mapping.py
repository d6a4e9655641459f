from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nylas_dataverse.core import mapping
from nylas_dataverse.core.identity import activity_id, synthetic_message_id
from nylas_dataverse.core.mapping import MappingContext, decode_subject
from nylas_dataverse.core.messages import BadMessage, NylasMessage, parse_message
from nylas_dataverse.core.policy import FolderRoles
from nylas_dataverse.core.resolution import Directory, DirectoryRow
from nylas_dataverse.core.text import utf16_len
from nylas_dataverse.hooks.dataverse_tables import email_complete_body, email_create_body

MessageFactory = Callable[..., NylasMessage]


class Payload:
    """The mapping as Dataverse receives it: the record rendered into the POST and the completing PATCH."""

    def __init__(self, mapped: mapping.MappedEmail) -> None:
        record = mapped.record
        self.record = record
        self.create = email_create_body(record)
        self.complete = email_complete_body(record)
        self.activity_id = record.activity_id
        self.message_id = record.internet_message_id
        self.message_id_source = record.message_id_source
        self.outgoing = record.outgoing
        self.unresolved = mapped.unresolved
        self.ambiguous = mapped.ambiguous

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Payload) and (self.record, self.unresolved, self.ambiguous) == (
            other.record,
            other.unresolved,
            other.ambiguous,
        )

    __hash__ = None  # type: ignore[assignment]


def map_message(msg: NylasMessage, directory: Directory, ctx: MappingContext) -> Payload:
    return Payload(mapping.map_message(msg, directory, ctx))


ALICE_USER = "00000000-0000-0000-0000-0000000000a1"
BOB_USER = "00000000-0000-0000-0000-0000000000b0"
CAROL_CONTACT = "11111111-1111-1111-1111-111111111111"
FABRIKAM_ACCOUNT = "22222222-2222-2222-2222-222222222222"
NORTHWIND_LEAD = "33333333-3333-3333-3333-333333333333"
DAN_CONTACT = "44444444-4444-4444-4444-444444444444"

DIRECTORY = Directory.from_rows(
    [
        DirectoryRow("systemuser", ALICE_USER, "internalemailaddress", "alice@contoso.example"),
        DirectoryRow("systemuser", BOB_USER, "internalemailaddress", "bob@contoso.example"),
        DirectoryRow("contact", CAROL_CONTACT, "emailaddress1", "carol@fabrikam.example"),
        DirectoryRow("account", FABRIKAM_ACCOUNT, "emailaddress1", "info@fabrikam.example"),
        DirectoryRow("lead", NORTHWIND_LEAD, "emailaddress1", "nina@northwind.example"),
        DirectoryRow("contact", DAN_CONTACT, "emailaddress1", "dan@tailspin.example"),
        DirectoryRow(
            "contact", "99999999-9999-9999-9999-999999999999", "emailaddress2", "dan@tailspin.example"
        ),
    ]
)
CTX = MappingContext(
    grant_id="grant-alice",
    grant_email="alice@contoso.example",
    owner_systemuser_id=ALICE_USER,
    folder_roles=FolderRoles({"AAMk-sent": "sent"}),
    regarding_preference=("contact", "account"),
    org_domains=("contoso.example",),
)
BASE_KEYS = {
    "activityid",
    "subject",
    "description",
    "directioncode",
    "actualend",
    "messageid",
    "email_activity_parties",
}


def test_an_incoming_mail_from_a_known_contact(message: MessageFactory) -> None:
    payload = map_message(message(), DIRECTORY, CTX)
    assert payload.create == {
        "activityid": str(activity_id("<quote-40@fabrikam.example>")),
        "subject": "Quote for 40 chairs",
        "description": "<p>Hello Alice</p>",
        "sender": "carol@fabrikam.example",
        "torecipients": "alice@contoso.example",
        "directioncode": False,
        "actualend": "2026-11-02T10:30:00Z",
        "messageid": "<quote-40@fabrikam.example>",
        "email_activity_parties": [
            {
                "participationtypemask": 1,
                "partyid_contact@odata.bind": f"/contacts({CAROL_CONTACT})",
                "addressused": "carol@fabrikam.example",
            },
            {
                "participationtypemask": 2,
                "partyid_systemuser@odata.bind": f"/systemusers({ALICE_USER})",
                "addressused": "alice@contoso.example",
            },
        ],
        "regardingobjectid_contact_email@odata.bind": f"/contacts({CAROL_CONTACT})",
        "ownerid@odata.bind": f"/systemusers({ALICE_USER})",
    }
    assert payload.complete == {"statecode": 1, "statuscode": 4}
    assert payload.activity_id == payload.create["activityid"]
    assert payload.message_id == "<quote-40@fabrikam.example>"
    assert payload.message_id_source == "header"
    assert payload.outgoing is False
    assert payload.unresolved == ()
    assert payload.ambiguous == ()
    json.dumps(payload.create)  # the POST body must be plain JSON


def test_a_bare_message_produces_only_the_required_keys(message: MessageFactory) -> None:
    ctx = replace(CTX, owner_systemuser_id=None, regarding_preference=())
    payload = map_message(message(from_=[], to=[], cc=[]), Directory.from_rows([]), ctx)
    assert set(payload.create) == BASE_KEYS
    assert payload.create["email_activity_parties"] == []


def test_state_is_never_part_of_the_create(message: MessageFactory) -> None:
    for folders in (["INBOX"], ["AAMk-sent"]):
        create = map_message(message(folders=folders), DIRECTORY, CTX).create
        assert "statecode" not in create
        assert "statuscode" not in create


# ------------------------------------------------------------------------------------------------
# subject


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        pytest.param("Quote", "Quote", id="plain"),
        pytest.param(None, "", id="null"),
        pytest.param("", "", id="empty"),
        pytest.param("=?Windows-1252?Q?Re:_caf=E9?=", "Re: café", id="q-windows-1252"),
        pytest.param("=?UTF-8?B?w4Z0aGVs?=", "Æthel", id="b-utf8"),
        pytest.param("=?utf-8?q?a?= =?utf-8?q?b?=", "ab", id="space-between-words-dropped"),
        pytest.param("=?utf-8?q?=E2=82?=\r\n =?utf-8?q?=AC?=", "€", id="character-split-across-words"),
        pytest.param("Re: =?utf-8?q?caf=C3=A9?= tomorrow", "Re: café tomorrow", id="mixed"),
        pytest.param("Größe =?utf-8?q?=C3=A9?=", "Größe é", id="already-unicode-around-a-word"),
        pytest.param("=?x-unknown?q?abc?= z", "=?x-unknown?q?abc?= z", id="unknown-charset-kept"),
        pytest.param("50% =?off", "50% =?off", id="not-an-encoded-word"),
        pytest.param("Re:  two  spaces", "Re:  two  spaces", id="spacing-kept"),
    ],
)
def test_subjects_are_decoded(message: MessageFactory, subject: str | None, expected: str) -> None:
    assert map_message(message(subject=subject), DIRECTORY, CTX).create["subject"] == expected


@pytest.mark.parametrize(
    ("length", "expected_length", "truncated"),
    [(799, 799, False), (800, 800, False), (801, 800, True), (5000, 800, True)],
)
def test_subjects_are_cut_to_800_with_a_marker(
    message: MessageFactory, length: int, expected_length: int, truncated: bool
) -> None:
    subject = map_message(message(subject="s" * length), DIRECTORY, CTX).create["subject"]
    assert len(subject) == expected_length
    assert subject.endswith("…") is truncated
    if truncated:
        assert subject == "s" * 799 + "…"


def test_truncation_counts_decoded_characters(message: MessageFactory) -> None:
    encoded = "=?utf-8?b?" + "w6k=" + "?= " + "x" * 799  # "é" + space + 799 x = 801 characters decoded
    subject = map_message(message(subject=encoded), DIRECTORY, CTX).create["subject"]
    assert subject == "é " + "x" * 797 + "…"


def test_decode_subject_is_exposed_for_reuse() -> None:
    assert decode_subject("=?iso-8859-1?q?=E9t=E9?=") == "été"


# ------------------------------------------------------------------------------------------------
# description


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("<p>Hi <b>there</b></p>", "<p>Hi <b>there</b></p>", id="formatting-kept"),
        pytest.param("<p>a</p><script>alert(1)</script>", "<p>a</p>", id="script-removed-with-content"),
        pytest.param("<style>p{color:red}</style><p>a</p>", "<p>a</p>", id="style-removed-with-content"),
        pytest.param('<p onclick="steal()">a</p>', "<p>a</p>", id="event-handler-removed"),
        pytest.param('<img src="x.png" onerror="steal()">', '<img src="x.png">', id="img-handler-removed"),
        pytest.param(
            '<a href="https://fabrikam.example/q">quote</a>',
            '<a href="https://fabrikam.example/q" rel="noopener noreferrer">quote</a>',
            id="link-gets-rel",
        ),
        pytest.param(
            '<a href="javascript:steal()">x</a>', '<a rel="noopener noreferrer">x</a>', id="javascript-url"
        ),
        pytest.param(
            "<html><head><title>T</title></head><body><p>a</p></body></html>", "<p>a</p>", id="document"
        ),
        pytest.param("<iframe src='https://evil.example'></iframe><p>a</p>", "<p>a</p>", id="iframe"),
        pytest.param("<p>a</p><!-- tracking -->", "<p>a</p>", id="comment"),
        pytest.param(
            "<table><tr><td>1</td></tr></table>",
            "<table><tbody><tr><td>1</td></tr></tbody></table>",
            id="table",
        ),
        pytest.param("", "", id="empty-body"),
    ],
)
def test_bodies_are_sanitised(message: MessageFactory, body: str, expected: str) -> None:
    assert map_message(message(body=body), DIRECTORY, CTX).create["description"] == expected


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("Hello Alice", "<p>Hello Alice</p>"),
        ("<script>x</script> & co", "<p>&lt;script&gt;x&lt;/script&gt; &amp; co</p>"),
        (None, "<p></p>"),
    ],
)
def test_without_a_body_the_snippet_is_escaped_into_a_paragraph(
    message: MessageFactory, snippet: str | None, expected: str
) -> None:
    assert map_message(message(body=None, snippet=snippet), DIRECTORY, CTX).create["description"] == expected


# ------------------------------------------------------------------------------------------------
# sender, torecipients, direction, date


def test_sender_is_the_first_from_address_cut_to_250(message: MessageFactory) -> None:
    assert map_message(message(from_=["First@X.example", "second@x.example"]), DIRECTORY, CTX).create[
        "sender"
    ] == ("First@X.example")
    long_address = "a" * 300 + "@x.example"
    assert map_message(message(from_=[long_address]), DIRECTORY, CTX).create["sender"] == long_address[:250]
    assert "sender" not in map_message(message(from_=[]), DIRECTORY, CTX).create


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        pytest.param(["a@x.example"], "a@x.example", id="one"),
        pytest.param(["a@x.example", "b@y.example"], "a@x.example;b@y.example", id="two"),
        pytest.param(["a@x.example", "A@X.example", "b@y.example"], "a@x.example;b@y.example", id="dedupe"),
        pytest.param(
            ["a" * 488 + "@x.example", "b@y.example"], "a" * 488 + "@x.example", id="second-does-not-fit"
        ),
        pytest.param(["a" * 484 + "@x.example", "b@y.c"], "a" * 484 + "@x.example;b@y.c", id="exactly-500"),
        pytest.param(
            ["a" * 480 + "@x.example", "b" * 10 + "@y.example", "c@y.e"],
            "a" * 480 + "@x.example",
            id="stops-at-the-first-that-does-not-fit",
        ),
        pytest.param(["a" * 495 + "@x.example"], None, id="single-too-long"),
        pytest.param([], None, id="none"),
    ],
)
def test_torecipients_holds_whole_addresses_within_500(
    message: MessageFactory, to: list[str], expected: str | None
) -> None:
    create = map_message(message(to=to), DIRECTORY, CTX).create
    assert create.get("torecipients") == expected
    assert len(create.get("torecipients", "")) <= 500


@pytest.mark.parametrize(
    ("overrides", "outgoing", "statuscode"),
    [
        pytest.param({}, False, 4, id="received"),
        pytest.param({"folders": ["AAMk-sent"]}, True, 3, id="sent-folder"),
        pytest.param({"folders": ["SENT"]}, True, 3, id="google-sent-label"),
        pytest.param({"from_": ["Alice@Contoso.example"], "folders": []}, True, 3, id="from-grant-address"),
    ],
)
def test_direction(
    message: MessageFactory, overrides: dict[str, Any], outgoing: bool, statuscode: int
) -> None:
    payload = map_message(message(**overrides), DIRECTORY, CTX)
    assert payload.outgoing is outgoing
    assert payload.create["directioncode"] is outgoing
    assert payload.complete == {"statecode": 1, "statuscode": statuscode}


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_793_615_400, "2026-11-02T10:30:00Z"),
        (253_402_300_799, "9999-12-31T23:59:59Z"),
    ],
)
def test_actualend_is_utc(message: MessageFactory, date: int, expected: str) -> None:
    assert map_message(message(date=date), DIRECTORY, CTX).create["actualend"] == expected


# ------------------------------------------------------------------------------------------------
# message id and activity id


def test_a_message_without_message_id_gets_a_synthetic_one(message: MessageFactory) -> None:
    payload = map_message(message(headers=[]), DIRECTORY, CTX)
    expected = synthetic_message_id("grant-alice", "18d5a4b2c3e4f567")
    assert payload.message_id == payload.create["messageid"] == expected
    assert payload.message_id_source == "synthetic"
    assert payload.activity_id == str(activity_id(expected))
    assert map_message(message(headers=[]), DIRECTORY, CTX) == payload  # a rerun maps identically


def test_an_overlong_message_id_is_hashed(message: MessageFactory) -> None:
    payload = map_message(message(headers=[("Message-ID", "<" + "x" * 400 + "@x>")]), DIRECTORY, CTX)
    assert payload.message_id_source == "hashed"
    assert len(payload.create["messageid"]) <= 320


def test_two_grants_map_a_shared_message_to_the_same_row(message: MessageFactory) -> None:
    received = map_message(message(), DIRECTORY, CTX)
    bob_ctx = replace(
        CTX, grant_id="grant-bob", grant_email="bob@contoso.example", owner_systemuser_id=BOB_USER
    )
    bobs_copy = message(
        id="bob-copy", grant_id="grant-bob", to=["alice@contoso.example"], cc=["bob@contoso.example"]
    )
    assert map_message(bobs_copy, DIRECTORY, bob_ctx).activity_id == received.activity_id


# ------------------------------------------------------------------------------------------------
# activity parties


def test_parties_cover_every_role_deduplicated_per_role(message: MessageFactory) -> None:
    msg = message(
        from_=["carol@fabrikam.example"],
        to=["alice@contoso.example", "ALICE@contoso.example", "stranger@elsewhere.example"],
        cc=["alice@contoso.example", "info@fabrikam.example"],
        bcc=["Nina@Northwind.example"],
    )
    payload = map_message(msg, DIRECTORY, CTX)
    assert payload.create["email_activity_parties"] == [
        {
            "participationtypemask": 1,
            "partyid_contact@odata.bind": f"/contacts({CAROL_CONTACT})",
            "addressused": "carol@fabrikam.example",
        },
        {
            "participationtypemask": 2,
            "partyid_systemuser@odata.bind": f"/systemusers({ALICE_USER})",
            "addressused": "alice@contoso.example",
        },
        {"participationtypemask": 2, "addressused": "stranger@elsewhere.example"},
        {
            "participationtypemask": 3,
            "partyid_systemuser@odata.bind": f"/systemusers({ALICE_USER})",
            "addressused": "alice@contoso.example",
        },
        {
            "participationtypemask": 3,
            "partyid_account@odata.bind": f"/accounts({FABRIKAM_ACCOUNT})",
            "addressused": "info@fabrikam.example",
        },
        {
            "participationtypemask": 4,
            "partyid_lead@odata.bind": f"/leads({NORTHWIND_LEAD})",
            "addressused": "Nina@Northwind.example",
        },
    ]
    assert payload.unresolved == ("stranger@elsewhere.example",)


def test_unresolved_and_ambiguous_addresses_are_listed_once(message: MessageFactory) -> None:
    msg = message(
        from_=["Ghost@Nowhere.example"],
        to=["ghost@nowhere.example", "dan@tailspin.example"],
        cc=["dan@tailspin.example", "other@nowhere.example"],
    )
    payload = map_message(msg, DIRECTORY, CTX)
    assert payload.unresolved == ("Ghost@Nowhere.example", "other@nowhere.example")
    assert payload.ambiguous == ("dan@tailspin.example",)
    dan_parties = [
        p for p in payload.create["email_activity_parties"] if p["addressused"] == "dan@tailspin.example"
    ]
    assert all(p["partyid_contact@odata.bind"] == f"/contacts({DAN_CONTACT})" for p in dan_parties)


def test_overlong_unresolved_addresses_are_cut_to_320(message: MessageFactory) -> None:
    long_address = "x" * 400 + "@nowhere.example"
    parties = map_message(message(cc=[long_address]), DIRECTORY, CTX).create["email_activity_parties"]
    assert parties[-1] == {"participationtypemask": 3, "addressused": long_address[:320]}


def test_every_party_has_exactly_the_documented_keys(message: MessageFactory) -> None:
    msg = message(
        to=["alice@contoso.example", "x@nowhere.example"],
        cc=["info@fabrikam.example"],
        bcc=["bob@contoso.example"],
    )
    for party in map_message(msg, DIRECTORY, CTX).create["email_activity_parties"]:
        binds = [k for k in party if k.endswith("@odata.bind")]
        assert set(party) == {"participationtypemask", "addressused", *binds}
        assert len(binds) <= 1
        assert binds == [] or binds[0] in {
            "partyid_systemuser@odata.bind",
            "partyid_contact@odata.bind",
            "partyid_account@odata.bind",
            "partyid_lead@odata.bind",
        }


# ------------------------------------------------------------------------------------------------
# regarding


def _regarding(payload_create: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in payload_create.items() if k.startswith("regardingobjectid_")}


@pytest.mark.parametrize(
    ("overrides", "preference", "expected"),
    [
        pytest.param(
            {},
            ("contact", "account"),
            {"regardingobjectid_contact_email@odata.bind": f"/contacts({CAROL_CONTACT})"},
            id="incoming-sender",
        ),
        pytest.param(
            {"from_": ["info@fabrikam.example"], "cc": ["carol@fabrikam.example"]},
            ("contact", "account"),
            {"regardingobjectid_contact_email@odata.bind": f"/contacts({CAROL_CONTACT})"},
            id="preference-beats-party-order",
        ),
        pytest.param(
            {"from_": ["info@fabrikam.example"], "cc": ["carol@fabrikam.example"]},
            ("account", "contact"),
            {"regardingobjectid_account_email@odata.bind": f"/accounts({FABRIKAM_ACCOUNT})"},
            id="account-preferred",
        ),
        pytest.param(
            {"from_": ["nina@northwind.example"]},
            ("contact", "account"),
            {},
            id="lead-not-in-preference",
        ),
        pytest.param(
            {"from_": ["nina@northwind.example"]},
            ("contact", "account", "lead"),
            {"regardingobjectid_lead_email@odata.bind": f"/leads({NORTHWIND_LEAD})"},
            id="lead",
        ),
        pytest.param({}, (), {}, id="empty-preference-means-no-regarding"),
        pytest.param(
            {"from_": ["bob@contoso.example"], "to": ["alice@contoso.example"]},
            ("contact", "account", "lead"),
            {},
            id="system-users-are-never-regarding",
        ),
        pytest.param(
            {
                "from_": ["ghost@nowhere.example"],
                "to": ["alice@contoso.example", "dan@tailspin.example"],
                "cc": ["carol@fabrikam.example"],
            },
            ("contact",),
            {"regardingobjectid_contact_email@odata.bind": f"/contacts({DAN_CONTACT})"},
            id="then-external-parties-in-from-to-cc-order",
        ),
        pytest.param(
            {"from_": ["ghost@nowhere.example"], "bcc": ["carol@fabrikam.example"]},
            ("contact",),
            {},
            id="bcc-is-not-considered",
        ),
        pytest.param(
            {
                "folders": ["AAMk-sent"],
                "from_": ["alice@contoso.example"],
                "to": ["dan@tailspin.example", "carol@fabrikam.example"],
            },
            ("contact",),
            {"regardingobjectid_contact_email@odata.bind": f"/contacts({DAN_CONTACT})"},
            id="outgoing-first-recipient",
        ),
        pytest.param(
            {
                "folders": ["AAMk-sent"],
                "from_": ["alice@contoso.example"],
                "to": ["ghost@nowhere.example"],
                "cc": ["carol@fabrikam.example"],
            },
            ("contact",),
            {"regardingobjectid_contact_email@odata.bind": f"/contacts({CAROL_CONTACT})"},
            id="outgoing-unknown-recipient-then-cc",
        ),
    ],
)
def test_regarding_rule(
    message: MessageFactory, overrides: dict[str, Any], preference: tuple[str, ...], expected: dict[str, str]
) -> None:
    ctx = replace(CTX, regarding_preference=preference)
    assert _regarding(map_message(message(**overrides), DIRECTORY, ctx).create) == expected


def test_an_internal_counterpart_resolving_to_a_contact_is_still_considered_first(
    message: MessageFactory,
) -> None:
    # the counterpart is considered whatever its domain; only the other parties must be external
    directory = Directory.from_rows(
        [
            DirectoryRow("contact", "c-internal", "emailaddress1", "ops@contoso.example"),
            DirectoryRow("contact", CAROL_CONTACT, "emailaddress1", "carol@fabrikam.example"),
        ]
    )
    msg = message(from_=["ops@contoso.example"], cc=["carol@fabrikam.example"])
    assert _regarding(map_message(msg, directory, CTX).create) == {
        "regardingobjectid_contact_email@odata.bind": "/contacts(c-internal)"
    }
    msg = message(from_=["ghost@nowhere.example"], cc=["ops@contoso.example"])
    assert _regarding(map_message(msg, directory, CTX).create) == {}


def test_owner_is_bound_only_when_known(message: MessageFactory) -> None:
    assert (
        map_message(message(), DIRECTORY, CTX).create["ownerid@odata.bind"] == f"/systemusers({ALICE_USER})"
    )
    assert (
        "ownerid@odata.bind"
        not in map_message(message(), DIRECTORY, replace(CTX, owner_systemuser_id=None)).create
    )


# ------------------------------------------------------------------------------------------------
# property: any message that parses maps to a payload within Dataverse's limits

_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=30)
_address = st.one_of(
    st.sampled_from(["carol@fabrikam.example", "alice@contoso.example", "dan@tailspin.example", "x@y"]),
    _text,
    st.text(min_size=300, max_size=600),
)
_participants = st.lists(st.fixed_dictionaries({"email": _address}, optional={"name": _text}), max_size=4)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {"id": _text, "date": st.integers(-5, 260_000_000_000)},
        optional={
            "grant_id": _text,
            "subject": _text | st.text(min_size=790, max_size=900),
            "body": st.none() | _text,
            "snippet": _text,
            "folders": st.lists(st.sampled_from(["INBOX", "SENT", "AAMk-sent", "x"]), max_size=2),
            "headers": st.lists(
                st.fixed_dictionaries(
                    {"name": st.sampled_from(["Message-ID", "message-id", "X"]), "value": _text}
                ),
                max_size=2,
            ),
            "from": _participants,
            "to": _participants,
            "cc": _participants,
            "bcc": _participants,
        },
    )
)
def test_every_parsed_message_maps_within_dataverse_limits(raw: dict[str, Any]) -> None:
    try:
        msg = parse_message(raw)
    except BadMessage:
        return
    payload = map_message(msg, DIRECTORY, CTX)
    create = payload.create
    json.dumps(create, ensure_ascii=False).encode("utf-8")
    assert set(create) - BASE_KEYS <= {
        "sender",
        "torecipients",
        "ownerid@odata.bind",
        "regardingobjectid_contact_email@odata.bind",
        "regardingobjectid_account_email@odata.bind",
    }
    assert len(create["subject"]) <= 800
    assert len(create.get("sender", "")) <= 250
    assert len(create.get("torecipients", "")) <= 500
    assert len(create["messageid"]) <= 320
    assert all(len(p["addressused"]) <= 320 for p in create["email_activity_parties"])


# ------------------------------------------------------------------------------------------------
# lengths in UTF-16 code units, as Dataverse counts them


def test_a_long_subject_full_of_emoji_fits_dataverse(message: MessageFactory) -> None:
    subject = map_message(message(subject="😀" * 500), DIRECTORY, CTX).create["subject"]
    assert utf16_len(subject) <= 800
    assert subject == "😀" * 399 + "…"


def test_recipients_and_addresses_are_counted_in_code_units(message: MessageFactory) -> None:
    astral = "😀" * 100 + "@x.example"  # 110 characters, 210 code units
    payload = map_message(
        message(to=[astral, astral.replace("@", "1@"), astral.replace("@", "2@")]), DIRECTORY, CTX
    )
    assert payload.create["torecipients"].count(";") == 1  # two fit in 500 units, three would not
    long_cc = "😀" * 300 + "@x.example"
    party = next(
        p
        for p in map_message(message(cc=[long_cc]), DIRECTORY, CTX).create["email_activity_parties"]
        if p["participationtypemask"] == 3
    )
    assert utf16_len(party["addressused"]) <= 320
    sender = map_message(message(from_=["😀" * 200 + "@x.example"]), DIRECTORY, CTX).create["sender"]
    assert utf16_len(sender) <= 250


def test_the_regarding_rule_that_chose_the_record_is_recorded(message: MessageFactory) -> None:
    incoming = mapping.map_message(message(from_=["carol@fabrikam.example"]), DIRECTORY, CTX).record
    assert (incoming.regarding, incoming.regarding_rule) == (
        mapping.RecordRef("contact", CAROL_CONTACT),
        "counterpart",
    )
    via_cc = mapping.map_message(
        message(from_=["nobody@nowhere.example"], to=["alice@contoso.example"], cc=["info@fabrikam.example"]),
        DIRECTORY,
        CTX,
    ).record
    assert (via_cc.regarding, via_cc.regarding_rule) == (
        mapping.RecordRef("account", FABRIKAM_ACCOUNT),
        "other_party",
    )
