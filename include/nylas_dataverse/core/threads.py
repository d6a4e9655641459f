"""Threads: the email a reply answers, the order a run creates them in, regarding that follows the thread.

- **Parent**: a reply answers ``identity.reply_parent_message_id`` (``In-Reply-To``, else the last
  ``References`` id). Load binds ``parentactivityid`` to the row Dataverse holds with that Message-ID, found
  in the same bulk lookup as the chunk's own Message-IDs, whoever created it (this run, an earlier run,
  server-side sync). A parent that is nowhere in Dataverse leaves the reply unbound; it is still created.
- **Waves**: a message whose parent is in the same run is created after it. ``waves`` gives every message
  its depth among the run's messages (0: its parent is not in the run; 1 + the parent's otherwise), capped
  at ``MAX_WAVE``; transform writes decisions wave by wave, and load sends a parent before its replies: in
  the same ``$batch`` (bound by the parent's deterministic ``activityid``) when their chunk fits one, else
  in an earlier batch or chunk, whose parent the reply's lookup then finds. Deeper replies share the
  last wave; one whose parent is in that same wave may be created before it and then stays unbound.
  A cycle of ``In-Reply-To`` headers (forged or broken mail) ends at the message where it closes.
- **Regarding follows the thread**, as server-side sync's correlation does: a reply for which no party
  resolved to a regarding record (``mapping``'s ``counterpart`` / ``other_party`` rules chose nothing) takes
  the regarding record of its parent: the parent's record when the parent is in the run, else the regarding
  record Dataverse holds for the parent (transform looks it up); the rule is then ``thread_parent``.
- **Referenced ids** (``identity.referenced_message_ids``): every Message-ID in ``In-Reply-To`` and
  ``References``, for the "first message of each thread only" policy, which asks Dataverse whether any of
  them is tracked there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from nylas_dataverse.core.mapping import EmailRecord, RecordRef

MAX_WAVE = 7
REGARDING_THREAD_PARENT = "thread_parent"


def waves(parents: Mapping[str, str | None]) -> dict[str, int]:
    """``message key -> parent key`` (``identity.message_id_key``) -> each message's wave."""
    result: dict[str, int] = {}
    for start in parents:
        chain: list[str] = []
        key: str | None = start
        while key is not None and key in parents and key not in result and key not in chain:
            chain.append(key)
            key = parents[key]
        base = result[key] + 1 if key is not None and key in result else 0
        for depth, member in enumerate(reversed(chain)):
            result[member] = min(MAX_WAVE, base + depth)
    return result


def follow_thread(record: EmailRecord, parent_regarding: RecordRef | None) -> EmailRecord:
    """``record`` with its parent's regarding when none of its own parties gave it one. The caller passes
    what the parent is regarding: its record's regarding when the parent is in the run (transform keeps
    only that, not the parent's record, so a big day's bodies are not held in memory), else what Dataverse
    says the parent is regarding."""
    if record.regarding is not None or parent_regarding is None:
        return record
    return replace(record, regarding=parent_regarding, regarding_rule=REGARDING_THREAD_PARENT)
