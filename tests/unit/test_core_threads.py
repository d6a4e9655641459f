from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from nylas_dataverse.core import threads
from nylas_dataverse.core.identity import MessageIdSource, referenced_message_ids
from nylas_dataverse.core.mapping import EmailRecord, RecordRef
from nylas_dataverse.core.messages import NylasMessage

RECORD = EmailRecord(
    activity_id="6f1c3a52-0d8e-5b7a-9c41-2e7d5f3b8a90",
    internet_message_id="<reply@x>",
    message_id_source=MessageIdSource.HEADER,
    subject="Re: quote",
    description="<p>ok</p>",
    outgoing=False,
    actual_end="2026-11-02T10:30:00Z",
    parties=(),
    parent_message_id="<parent@x>",
)
ACCOUNT = RecordRef("account", "0b5f2d3c-6a1e-4f7b-8c9d-1e2f3a4b5c6d")
CONTACT = RecordRef("contact", "a9e8d7c6-b5a4-4321-9fed-cba987654321")


def test_a_reply_comes_one_wave_after_the_mail_it_answers_in_the_same_run() -> None:
    waves = threads.waves({"a": None, "b": "a", "c": "b", "d": "elsewhere", "e": "a"})
    assert waves == {"a": 0, "b": 1, "c": 2, "d": 0, "e": 1}


def test_deep_threads_share_the_last_wave_and_a_cycle_ends() -> None:
    chain: dict[str, str | None] = {"m0": None}
    chain.update({f"m{i}": f"m{i - 1}" for i in range(1, 20)})
    waves = threads.waves(chain)
    assert waves["m19"] == waves["m7"] == threads.MAX_WAVE
    assert waves["m6"] == 6
    looped = threads.waves({"x": "y", "y": "x"})
    assert sorted(looped.values()) == [0, 1]


def test_a_reply_without_a_regarding_of_its_own_takes_its_parents() -> None:
    followed = threads.follow_thread(RECORD, ACCOUNT)
    assert (followed.regarding, followed.regarding_rule) == (ACCOUNT, threads.REGARDING_THREAD_PARENT)


def test_a_reply_keeps_the_regarding_its_own_parties_gave_it() -> None:
    own = replace(RECORD, regarding=CONTACT, regarding_rule="counterpart")
    assert threads.follow_thread(own, ACCOUNT) == own
    assert threads.follow_thread(RECORD, None) == RECORD


def test_referenced_ids_are_every_id_of_in_reply_to_and_references_once(
    message: Callable[..., NylasMessage],
) -> None:
    msg = message(headers=[("In-Reply-To", "<b@x>"), ("References", "<a@x>\r\n <B@x> <c@x>")])
    assert referenced_message_ids(msg) == ("<b@x>", "<a@x>", "<c@x>")
    assert referenced_message_ids(message(headers=[("In-Reply-To", "bare@x")])) == ("<bare@x>",)
    assert referenced_message_ids(message(headers=[])) == ()


def test_a_reply_to_mail_outside_the_run_takes_the_regarding_dataverse_holds_for_it() -> None:
    followed = threads.follow_thread(RECORD, CONTACT)
    assert (followed.regarding, followed.regarding_rule) == (CONTACT, threads.REGARDING_THREAD_PARENT)
