from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from nylas_dataverse.core.config import PolicyConfig
from nylas_dataverse.core.messages import NylasMessage
from nylas_dataverse.core.policy import (
    AUTOMATED_LOCAL_PARTS,
    FolderRoles,
    KnownExternal,
    SkipReason,
    ThreadTracker,
    decide,
    detect_automated,
    is_outgoing,
)

MessageFactory = Callable[..., NylasMessage]

ORG = ("contoso.example",)
ALICE = "alice@contoso.example"
CAROL = "carol@fabrikam.example"
ROLES = FolderRoles(
    {"f-inbox": "inbox", "f-sent": "sent", "f-drafts": "drafts", "f-junk": "junk", "f-bin": "trash"}
)
# Everything optional switched off, so each test turns on only what it is about.
PERMISSIVE = PolicyConfig(internal_only="track", skip_automated=False)


def _decide(
    msg: NylasMessage,
    policy: PolicyConfig = PERMISSIVE,
    *,
    known: KnownExternal = frozenset(),
    threads: ThreadTracker | None = None,
    org_domains: tuple[str, ...] = ORG,
    grant_email: str | None = ALICE,
) -> SkipReason | None:
    return decide(
        msg,
        policy=policy,
        org_domains=org_domains,
        grant_email=grant_email,
        folder_roles=ROLES,
        known_external=known,
        threads=threads if threads is not None else ThreadTracker(),
    )


# ------------------------------------------------------------------------------------------------
# folder roles and direction


@pytest.mark.parametrize(
    ("folder", "role"),
    [
        ("f-sent", "sent"),
        ("f-inbox", "inbox"),
        ("SENT", "sent"),
        ("DRAFT", "drafts"),
        ("SPAM", "junk"),
        ("TRASH", "trash"),
        ("INBOX", "inbox"),
        ("sent", None),  # Google label ids are upper case
        ("CATEGORY_PERSONAL", None),
        ("unknown-folder", None),
    ],
)
def test_folder_roles_fall_back_to_google_system_labels(folder: str, role: str | None) -> None:
    assert ROLES.role(folder) == role


def test_the_grants_own_folder_list_wins_over_google_labels() -> None:
    assert FolderRoles({"SENT": "archive"}).role("SENT") == "archive"


def test_unknown_folder_roles_are_rejected() -> None:
    with pytest.raises(ValueError, match="outbox"):
        FolderRoles({"f1": "outbox"})


def test_folder_roles_are_read_from_nylas_folder_attributes() -> None:
    roles = FolderRoles.from_nylas_folders(
        [
            {"id": "AAMk-sent", "name": "Sent Items", "attributes": ["\\Sent"]},
            {"id": "AAMk-junk", "name": "Junk Email", "attributes": ["\\HasNoChildren", "\\Junk"]},
            {"id": "imap-trash", "attributes": ["\\TRASH"]},
            {"id": "plain", "attributes": []},
            {"id": "odd", "attributes": "\\Sent"},
            {"name": "no id", "attributes": ["\\Drafts"]},
            "not a folder",
        ]
    )
    assert dict(roles.roles) == {"AAMk-sent": "sent", "AAMk-junk": "junk", "imap-trash": "trash"}


@pytest.mark.parametrize(
    ("overrides", "grant_email", "expected"),
    [
        pytest.param({}, ALICE, False, id="incoming"),
        pytest.param({"folders": ["f-sent"]}, ALICE, True, id="in-sent-folder"),
        pytest.param({"folders": ["SENT", "IMPORTANT"]}, None, True, id="google-sent-label"),
        pytest.param({"from_": [ALICE], "folders": ["f-inbox"]}, ALICE, True, id="from-grant"),
        pytest.param({"from_": ["Alice@Contoso.Example"]}, " alice@contoso.example", True, id="casefold"),
        pytest.param({"from_": [CAROL, ALICE]}, ALICE, True, id="grant-among-several-from"),
        pytest.param({"from_": [ALICE]}, None, False, id="no-grant-email"),
        pytest.param({"from_": []}, ALICE, False, id="no-from"),
    ],
)
def test_is_outgoing(
    message: MessageFactory, overrides: dict[str, Any], grant_email: str | None, expected: bool
) -> None:
    assert is_outgoing(message(**overrides), grant_email, ROLES) is expected


# ------------------------------------------------------------------------------------------------
# automated mail


@pytest.mark.parametrize(
    ("headers", "sender", "expected"),
    [
        pytest.param([], CAROL, False, id="person"),
        pytest.param([("Auto-Submitted", "auto-generated")], CAROL, True, id="auto-generated"),
        pytest.param([("auto-submitted", "auto-replied; owner-email=x")], CAROL, True, id="auto-replied"),
        pytest.param([("Auto-Submitted", "no")], CAROL, False, id="auto-submitted-no"),
        pytest.param([("Auto-Submitted", " No ")], CAROL, False, id="auto-submitted-No"),
        pytest.param([("Auto-Submitted", "no; comment")], CAROL, False, id="auto-submitted-no-params"),
        pytest.param([("Precedence", "bulk")], CAROL, True, id="precedence-bulk"),
        pytest.param([("Precedence", "List")], CAROL, True, id="precedence-list"),
        pytest.param([("PRECEDENCE", "junk")], CAROL, True, id="precedence-junk"),
        pytest.param([("Precedence", "first-class")], CAROL, False, id="precedence-other"),
        pytest.param([("List-Unsubscribe", "<mailto:u@x>")], CAROL, True, id="list-unsubscribe"),
        pytest.param([("List-Id", "<team.lists.x>")], CAROL, True, id="list-id"),
        pytest.param([("List-Id", "")], CAROL, True, id="list-id-present-but-empty"),
        pytest.param([("X-Mailer", "bulk")], CAROL, False, id="unrelated-header"),
        pytest.param([], "NoReply@fabrikam.example", True, id="noreply-any-case"),
        pytest.param([], "no-reply+invoices@fabrikam.example", True, id="plus-tag-ignored"),
        pytest.param([], "newsroom@fabrikam.example", False, id="prefix-is-not-enough"),
        pytest.param([], "sales@news.fabrikam.example", False, id="domain-is-not-local-part"),
    ],
)
def test_detect_automated(
    message: MessageFactory, headers: list[tuple[str, str]], sender: str, expected: bool
) -> None:
    assert detect_automated(message(headers=headers, from_=[sender])) is expected


@pytest.mark.parametrize("local_part", sorted(AUTOMATED_LOCAL_PARTS))
def test_every_documented_automated_sender_is_detected(message: MessageFactory, local_part: str) -> None:
    assert detect_automated(message(headers=[], from_=[f"{local_part}@fabrikam.example"]))


def test_the_documented_automated_senders_are_exactly_these() -> None:
    assert {
        "noreply",
        "no-reply",
        "donotreply",
        "do-not-reply",
        "mailer-daemon",
        "postmaster",
        "notifications",
        "newsletter",
        "news",
        "bounce",
        "bounces",
    } == AUTOMATED_LOCAL_PARTS


# ------------------------------------------------------------------------------------------------
# decide: each rule on its own


@pytest.mark.parametrize(
    ("overrides", "policy", "expected"),
    [
        pytest.param({}, PERMISSIVE, None, id="plain-incoming-tracked"),
        pytest.param({"folders": ["f-drafts"]}, PERMISSIVE, SkipReason.DRAFT, id="draft"),
        pytest.param({"folders": ["DRAFT"]}, PERMISSIVE, SkipReason.DRAFT, id="google-draft"),
        pytest.param({"folders": ["f-junk"]}, PERMISSIVE, SkipReason.SPAM, id="spam"),
        pytest.param({"folders": ["SPAM"]}, PERMISSIVE, SkipReason.SPAM, id="google-spam"),
        pytest.param({"folders": ["f-bin"]}, PERMISSIVE, SkipReason.TRASH, id="trash"),
        pytest.param({"folders": ["TRASH"]}, PERMISSIVE, SkipReason.TRASH, id="google-trash"),
        pytest.param(
            {"cc": ["Boss@Fabrikam.Example"]},
            replace(PERMISSIVE, excluded_addresses=("boss@fabrikam.example",)),
            SkipReason.EXCLUDED_ADDRESS,
            id="excluded-address-in-cc",
        ),
        pytest.param(
            {"bcc": ["hr@contoso.example"]},
            replace(PERMISSIVE, excluded_addresses=("HR@contoso.example",)),
            SkipReason.EXCLUDED_ADDRESS,
            id="excluded-address-in-bcc-policy-not-casefolded",
        ),
        pytest.param(
            {"reply_to": ["boss@fabrikam.example"]},
            replace(PERMISSIVE, excluded_addresses=("boss@fabrikam.example",)),
            None,
            id="reply-to-is-not-a-party",
        ),
        pytest.param(
            {},
            replace(PERMISSIVE, excluded_domains=("FABRIKAM.example",)),
            SkipReason.EXCLUDED_DOMAIN,
            id="domain",
        ),
        pytest.param(
            {"from_": ["carol@sub.fabrikam.example"]},
            replace(PERMISSIVE, excluded_domains=("fabrikam.example",)),
            None,
            id="subdomain-not-implied",
        ),
        pytest.param(
            {"from_": ["bob@contoso.example"], "cc": ["dan@Contoso.Example"]},
            replace(PERMISSIVE, internal_only="skip"),
            SkipReason.INTERNAL_ONLY,
            id="internal-only",
        ),
        pytest.param(
            {"from_": ["bob@contoso.example"]},
            replace(PERMISSIVE, internal_only="track"),
            None,
            id="internal-tracked-when-policy-says-track",
        ),
        pytest.param(
            {}, replace(PERMISSIVE, internal_only="skip"), None, id="external-party-is-not-internal"
        ),
        pytest.param(
            {"from_": [], "to": []},
            replace(PERMISSIVE, internal_only="skip"),
            None,
            id="no-parties-is-not-internal",
        ),
        pytest.param(
            {"headers": [("List-Id", "<x>")]},
            replace(PERMISSIVE, skip_automated=True),
            SkipReason.AUTOMATED,
            id="auto",
        ),
        pytest.param(
            {"headers": [("List-Id", "<x>")]}, PERMISSIVE, None, id="automated-tracked-when-allowed"
        ),
        pytest.param(
            {"headers": [("In-Reply-To", "<q@x>")]},
            replace(PERMISSIVE, first_message_of_thread_only=True),
            SkipReason.NOT_FIRST_IN_THREAD,
            id="reply-header",
        ),
        pytest.param(
            {"headers": [("references", "<q@x> <r@x>")]},
            replace(PERMISSIVE, first_message_of_thread_only=True),
            SkipReason.NOT_FIRST_IN_THREAD,
            id="references-header",
        ),
        pytest.param(
            {"headers": [("In-Reply-To", "  ")]},
            replace(PERMISSIVE, first_message_of_thread_only=True),
            None,
            id="blank-reply-header-ignored",
        ),
        pytest.param(
            {"headers": [("In-Reply-To", "<q@x>")]}, PERMISSIVE, None, id="replies-tracked-by-default"
        ),
    ],
)
def test_decide_single_rules(
    message: MessageFactory, overrides: dict[str, Any], policy: PolicyConfig, expected: SkipReason | None
) -> None:
    assert _decide(message(**overrides), policy) == expected


def test_without_org_domains_nothing_is_internal(message: MessageFactory) -> None:
    msg = message(from_=["bob@contoso.example"])
    assert _decide(msg, replace(PERMISSIVE, internal_only="skip"), org_domains=()) is None


@pytest.mark.parametrize("folder", ["f-drafts", "f-junk", "f-bin"])
def test_drafts_spam_and_trash_are_never_tracked_whatever_the_policy(
    message: MessageFactory, folder: str
) -> None:
    most_permissive = PolicyConfig(internal_only="track", skip_automated=False, regarding_preference=())
    assert _decide(message(folders=[folder]), most_permissive) is not None


# ------------------------------------------------------------------------------------------------
# decide: known party (Dynamics' "only mail with a known contact, account or lead")

KNOWN_ONLY = replace(PERMISSIVE, require_known_party=True)


@pytest.mark.parametrize(
    ("overrides", "known", "expected"),
    [
        pytest.param({}, frozenset({"carol@fabrikam.example"}), None, id="sender-known-set"),
        pytest.param(
            {"from_": ["Carol@Fabrikam.Example"]}, {"carol@fabrikam.example"}, None, id="casefolded-lookup"
        ),
        pytest.param({}, frozenset(), SkipReason.NO_KNOWN_PARTY, id="nobody-known"),
        pytest.param({"cc": ["lead@northwind.example"]}, {"lead@northwind.example"}, None, id="known-in-cc"),
        pytest.param(
            {"from_": ["bob@contoso.example"]},
            {"bob@contoso.example"},
            SkipReason.NO_KNOWN_PARTY,
            id="internal-address-does-not-count",
        ),
        pytest.param({}, lambda address: address.endswith("@fabrikam.example"), None, id="predicate"),
        pytest.param({}, lambda address: False, SkipReason.NO_KNOWN_PARTY, id="predicate-false"),
    ],
)
def test_require_known_party(
    message: MessageFactory, overrides: dict[str, Any], known: KnownExternal, expected: SkipReason | None
) -> None:
    assert _decide(message(**overrides), KNOWN_ONLY, known=known) == expected


def test_the_grants_own_address_is_not_an_external_party(message: MessageFactory) -> None:
    # a personal mailbox outside the org's domains: its owner never counts as the known party
    msg = message(from_=["me@gmail.example"], to=["stranger@x.example"])
    known = {"me@gmail.example"}
    assert _decide(msg, KNOWN_ONLY, known=known, grant_email="Me@Gmail.Example") == SkipReason.NO_KNOWN_PARTY
    assert _decide(msg, KNOWN_ONLY, known=known, grant_email=None) is None


def test_the_predicate_receives_casefolded_external_addresses_only(message: MessageFactory) -> None:
    asked: list[str] = []

    def known(address: str) -> bool:
        asked.append(address)
        return False

    _decide(
        message(from_=["Carol@Fabrikam.Example"], to=[ALICE], cc=["Dan@Northwind.Example"]),
        KNOWN_ONLY,
        known=known,
    )
    assert asked == ["carol@fabrikam.example", "dan@northwind.example"]


# ------------------------------------------------------------------------------------------------
# decide: order of the rules (first wins)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({"folders": ["f-drafts", "f-junk", "f-bin"]}, SkipReason.DRAFT, id="draft-before-spam"),
        pytest.param({"folders": ["f-junk", "f-bin"]}, SkipReason.SPAM, id="spam-before-trash"),
        pytest.param(
            {"folders": ["f-bin"], "from_": ["boss@fabrikam.example"]},
            SkipReason.TRASH,
            id="trash-before-excluded",
        ),
        pytest.param(
            {"from_": ["boss@fabrikam.example"]}, SkipReason.EXCLUDED_ADDRESS, id="address-before-domain"
        ),
        pytest.param({"from_": ["x@spam.example"]}, SkipReason.EXCLUDED_DOMAIN, id="domain-before-automated"),
        pytest.param(
            {"from_": ["noreply@contoso.example"], "to": [ALICE]},
            SkipReason.INTERNAL_ONLY,
            id="internal-before-automated",
        ),
        pytest.param(
            {"from_": ["noreply@fabrikam.example"]}, SkipReason.AUTOMATED, id="automated-before-known-party"
        ),
        pytest.param(
            {"from_": ["carol@fabrikam.example"]}, SkipReason.NO_KNOWN_PARTY, id="known-party-before-thread"
        ),
        pytest.param({"from_": ["dan@northwind.example"]}, SkipReason.NOT_FIRST_IN_THREAD, id="thread-last"),
    ],
)
def test_the_first_matching_rule_wins(
    message: MessageFactory, overrides: dict[str, Any], expected: SkipReason
) -> None:
    strict = PolicyConfig(
        internal_only="skip",
        skip_automated=True,
        require_known_party=True,
        first_message_of_thread_only=True,
        excluded_addresses=("boss@fabrikam.example",),
        excluded_domains=("spam.example",),
    )
    msg = message(headers=[("References", "<earlier@x>")], **overrides)
    assert _decide(msg, strict, known={"dan@northwind.example"}) == expected


# ------------------------------------------------------------------------------------------------
# decide: first message of each thread


def test_only_the_first_tracked_message_of_a_thread_is_kept(message: MessageFactory) -> None:
    policy = replace(PERMISSIVE, first_message_of_thread_only=True)
    threads = ThreadTracker()
    first = message(id="m1", thread_id="t1", headers=[])
    second = message(id="m2", thread_id="t1", headers=[])
    other = message(id="m3", thread_id="t2", headers=[])
    assert _decide(first, policy, threads=threads) is None
    assert _decide(second, policy, threads=threads) == SkipReason.NOT_FIRST_IN_THREAD
    assert _decide(other, policy, threads=threads) is None


def test_a_skipped_message_does_not_claim_its_thread(message: MessageFactory) -> None:
    policy = replace(PERMISSIVE, first_message_of_thread_only=True, skip_automated=True)
    threads = ThreadTracker()
    automated = message(id="m1", thread_id="t1", headers=[("List-Id", "<l>")])
    person = message(id="m2", thread_id="t1", headers=[])
    assert _decide(automated, policy, threads=threads) == SkipReason.AUTOMATED
    assert _decide(person, policy, threads=threads) is None


def test_tracked_messages_mark_threads_even_when_the_thread_rule_is_off(message: MessageFactory) -> None:
    threads = ThreadTracker()
    assert _decide(message(thread_id="t9"), PERMISSIVE, threads=threads) is None
    assert threads.seen("t9")
    policy = replace(PERMISSIVE, first_message_of_thread_only=True)
    assert (
        _decide(message(thread_id="t9", headers=[]), policy, threads=threads)
        == SkipReason.NOT_FIRST_IN_THREAD
    )


def test_messages_without_a_thread_id_never_share_a_thread(message: MessageFactory) -> None:
    policy = replace(PERMISSIVE, first_message_of_thread_only=True)
    threads = ThreadTracker()
    assert _decide(message(id="m1", thread_id=None, headers=[]), policy, threads=threads) is None
    assert _decide(message(id="m2", thread_id="", headers=[]), policy, threads=threads) is None
    assert not threads.seen("")


def test_when_dataverse_was_consulted_a_reply_to_an_untracked_thread_is_its_first_tracked_message(
    message: MessageFactory,
) -> None:
    policy = replace(PERMISSIVE, first_message_of_thread_only=True)
    threads = ThreadTracker(tracked_message_ids=["<In-Dataverse@x>"])
    to_tracked = message(id="m1", thread_id="t1", headers=[("References", "<a@x> <in-dataverse@x>")])
    to_untracked = message(
        id="m2", thread_id="t2", headers=[("Message-ID", "<m2@x>"), ("In-Reply-To", "<nowhere@x>")]
    )
    to_today = message(id="m3", thread_id="t3", headers=[("In-Reply-To", "<m2@x>")])

    assert _decide(to_tracked, policy, threads=threads) == SkipReason.NOT_FIRST_IN_THREAD
    assert _decide(to_untracked, policy, threads=threads) is None
    assert _decide(to_today, policy, threads=threads) == SkipReason.NOT_FIRST_IN_THREAD
