"""Load: create the decided emails in Dataverse exactly once, resumably, within the throttling limits.

Exactly once rests on three things:

* every email has a deterministic ``activityid`` derived from its Message-ID, so a second create of the same
  message fails with a duplicate key instead of making a second row; that answer means another run or grant
  created it first and is recorded as ``already_present``;
* before creating, the chunk's Message-IDs are looked up in bulk, which also finds mail that server-side sync
  or the Outlook app tracked;
* each email is created and completed in one ``$batch`` change set, which Dataverse applies atomically; its
  files (``pipeline/attachments.py``) are created in that change set before it is completed, with ids derived
  from the email's, so an email never exists without its kept files and no file twice.

Threads (``core/threads.py``): the same lookup asks for the Message-IDs the chunk's replies answer, and a
reply whose parent Dataverse holds is created with ``parentactivityid`` bound to it (the ledger entry names
the parent). Decisions come wave by wave (parents first). A day that fits in one chunk is one chunk, its
waves together; a larger day's chunks never mix waves. A reply whose parent is created in the same chunk
is bound to the parent's deterministic ``activityid``: when the chunk's emails fit in one ``$batch`` they go
in that one batch, parents first (Dataverse runs a batch's operations in order), otherwise wave by wave, each
wave's batches after the one before. A chunk holding a later wave than a chunk still in progress waits for it,
so a parent created by an earlier chunk is found by the lookup. A reply refused while its parent was not
created (the parent failed transiently in the same round) is sent again after the parent at no cost, and
without the link once the parent ends failed or turns out to be another writer's row.

What a change set's answer means (whatever Dataverse does with the rest of the batch):

* 2xx for both requests: ``created``;
* a duplicate key, or a duplicate-detection rule on ``messageid``: ``already_present``;
* no answer (the service stopped the batch at an earlier failure): sent again at once, at no cost;
* 429 (honouring the part's ``Retry-After``) or 5xx: sent again, up to ``RETRY_ROUNDS`` attempts per email and
  ``RETRY_BUDGET_S`` seconds of waiting; what still fails then is ``failed`` with the last answer;
* a refusal of a contact, account or lead bound as the Sender (some orgs allow only users and queues there):
  sent again with the Sender as an address only, and so is every later email of the run; the ledger says so;
* any other 4xx: ``failed`` with Dataverse's code and message.

A ``$batch`` that times out is split in half and each half sent on its own (a timed-out batch may have been
applied; the duplicate-key rule keeps that safe), so a batch too big for the client timeout shrinks instead of
timing out forever. Before that, batches are sized from the time per email the load has observed so far
(``core/pacing.py`` ``planned_batch_size``): one batch is planned to take at most half the client timeout; a
load small enough to be a burst (``burst_batch_size``) uses batches of half the grant's ``batch_size``.

A chunk's batches go out together through one pool per load (a thread per batch that may be in flight); the
hook's pacing gate decides how many are in flight at once (a burst on a fresh window, then the refill rate).

Decisions are processed in fixed chunks; when a chunk is finished its ledger entries are written to
``load/part-NNNNNN.json``. A retry or rerun skips chunks whose part has no failure and loads again the failed
entries of the others, keeping what their part already recorded. A crash at any point costs at most the chunks
in flight, and those converge through the lookup and the duplicate-key rule. Before anything is created the
decisions file is read once in full against its manifest, so a file changed after transform creates nothing,
and the application user's privileges are checked (``preflight.py``), so a missing one fails the load once.

After the last chunk the created Message-IDs are looked up again: a second row with the same Message-ID
(server-side sync tracking the message between our lookup and our create) is reported, and with the grant's
``remove_race_duplicates`` the copy this run made is deleted and recorded as ``already_present``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from nylas_dataverse.core.attachments import (
    DEFAULT_BATCH_BYTE_BUDGET,
    DEFAULT_ORG_LIMIT_BYTES,
    AttachmentEntry,
    plan_batches,
)
from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.identity import lookup_values, message_id_key
from nylas_dataverse.core.ledger import LedgerEntry, Outcome
from nylas_dataverse.core.mapping import EmailRecord
from nylas_dataverse.core.pacing import burst_batch_size, observed_seconds_per_email, planned_batch_size
from nylas_dataverse.core.records import Decision
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.dataverse_tables import (
    EMAILS,
    MESSAGE_ID_COLUMNS,
    change_set_operations,
    email_change_sets,
    is_duplicate_detection,
    is_duplicate_key,
    is_sender_refused,
    is_too_many_operations,
    refused_attachment,
    sender_binding_matters,
)
from nylas_dataverse.hooks.errors import DataverseError, DataverseTimeoutError
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.hooks.odata import BatchOutcome, BatchResponse, ChangeSet
from nylas_dataverse.pipeline import attachments as files_module
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.attachments import AttachmentDownloadError, AttachmentFiles
from nylas_dataverse.pipeline.preflight import ensure_privileges
from nylas_dataverse.pipeline.present import present_emails
from nylas_dataverse.pipeline.staging import FORMAT_VERSION, RunStaging, StagingError, open_binary

log = logging.getLogger(__name__)

# Decisions per chunk: one Message-ID lookup (the hook splits it if the URL would get too long) and one resume
# point each.
CHUNK_SIZE = 250
RETRY_ROUNDS = 6
RETRY_BUDGET_S = 300.0
# Chunks in progress at once (each holds its decisions in memory; their batches share the load's batch pool).
CHUNK_WORKERS = 4
_BACKOFF_BASE_S = 1.0
_BACKOFF_MAX_S = 30.0

# What an email's JSON weighs in a $batch besides its description (parties, headers of its part).
_EMAIL_OVERHEAD_BYTES = 4096
SENDER_UNBOUND = "sender_unbound: Dataverse refused a contact, account or lead as Sender; kept as address"


@dataclass
class _Chunk:
    index: int
    decisions: list[Decision]


@dataclass
class _Attempt:
    """Where one email stands after a round: final (outcome) or to be sent again (after ``retry_after``)."""

    outcome: Outcome | None
    reason: str | None
    retry_after: float | None = None
    not_applied: bool = False


@dataclass
class _LoadState:
    """What every chunk of one load shares (guarded by ``lock``)."""

    bind_external_sender: bool = True
    sender_refusal_seen: bool = False
    batch_limit: int = 1_000_000
    seconds_per_email: float = 0.0  # observed server time per email (see planned_batch_size)
    batches: ThreadPoolExecutor | None = None
    done: Counter[str] = field(default_factory=Counter)
    chunks_done: int = 0
    emails_done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _reason(response: BatchResponse) -> str:
    detail = f"{response.error_code or ''} {response.error_message or ''}".strip()
    return f"dataverse_{response.status}: {detail}" if detail else f"dataverse_{response.status}"


def _retry_after(response: BatchResponse) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def classify(outcome: BatchOutcome) -> _Attempt:
    """What one change set's answer means (see the module docstring)."""
    if outcome.ok:
        return _Attempt(Outcome.CREATED, None)
    failed = [response for response in outcome.responses if response.status >= 400]
    if not failed:
        return _Attempt(
            None, "dataverse_batch_not_applied: an earlier failure stopped the batch", not_applied=True
        )
    first = failed[0]
    if is_duplicate_key(first):
        return _Attempt(Outcome.ALREADY_PRESENT, "activityid_exists")
    if is_duplicate_detection(first):
        return _Attempt(Outcome.ALREADY_PRESENT, "messageid_duplicate_rule")
    if first.status == 429 or first.status >= 500:
        return _Attempt(None, _reason(first), _retry_after(first))
    return _Attempt(Outcome.FAILED, _reason(first))


class _ChunkLoader:
    def __init__(
        self,
        dataverse: DataverseHook,
        batch_size: int,
        state: _LoadState,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        files: AttachmentFiles | None = None,
        byte_budget: int = DEFAULT_BATCH_BYTE_BUDGET,
    ) -> None:
        self.dataverse = dataverse
        self.batch_size = batch_size
        self.state = state
        self.files = files
        self.byte_budget = byte_budget
        self._sent: dict[str, ChangeSet] = {}  # the last change set sent for an email with files
        self._sleep = sleep
        self._rng = rng or random.Random()

    def existing_message_ids(self, records: Sequence[EmailRecord]) -> dict[str, str]:
        """The chunk's and their parents' Message-IDs Dataverse holds (key -> activityid), in one lookup."""
        asked = [r.internet_message_id for r in records]
        asked += [r.parent_message_id for r in records if r.parent_message_id]
        return present_emails(self.dataverse, asked)

    def load(self, chunk: _Chunk, earlier: list[LedgerEntry] | None) -> list[LedgerEntry]:
        entries: dict[int, LedgerEntry] = {}
        pending: list[tuple[int, Decision]] = []
        for position, decision in enumerate(chunk.decisions):
            kept = earlier[position] if earlier is not None else None
            if not decision.pending:
                entries[position] = decision.entry()
            elif kept is not None and kept.outcome is not Outcome.FAILED:
                entries[position] = kept
            else:
                pending.append((position, decision))
        if pending:
            present = self.existing_message_ids([d.email for _, d in pending if d.email])
            to_create: list[tuple[int, Decision]] = []
            # Two Nylas ids for one message (a reply's client and provider copies) share the deterministic
            # activityid: only the first is sent, and the others take its outcome.
            copies: list[tuple[int, Decision, Decision]] = []
            first_of: dict[str, Decision] = {}
            for position, decision in pending:
                assert decision.email is not None
                if message_id_key(decision.email.internet_message_id) in present:
                    entries[position] = decision.entry(Outcome.ALREADY_PRESENT, "messageid_exists")
                elif (first := first_of.get(decision.email.activity_id.lower())) is not None:
                    copies.append((position, decision, first))
                elif (problem := self._fetch_files(decision)) is not None:
                    entries[position] = decision.entry(Outcome.FAILED, problem)
                else:
                    first_of[decision.email.activity_id.lower()] = decision
                    to_create.append((position, decision))
            parents = _parents([decision.email for _, decision in to_create if decision.email], present)
            parents.update(_in_chunk_parents([decision for _, decision in to_create], parents))
            results = self.create([decision.email for _, decision in to_create if decision.email], parents)
            for position, decision in to_create:
                assert decision.email is not None
                outcome, reason = results[decision.email.activity_id]
                parent = parents.get(decision.email.activity_id) if outcome is Outcome.CREATED else None
                entries[position] = decision.entry(outcome, reason, parent)
                self._sent.pop(decision.email.activity_id, None)
            for position, decision, first in copies:
                assert first.email is not None
                outcome, reason = results[first.email.activity_id]
                if outcome is Outcome.FAILED:
                    entries[position] = decision.entry(Outcome.FAILED, f"{reason} (as {first.nylas_id})")
                else:
                    same = f"same_message_in_run: as {first.nylas_id}"
                    entries[position] = decision.entry(Outcome.ALREADY_PRESENT, same)
        return [entries[position] for position in range(len(chunk.decisions))]

    def _fetch_files(self, decision: Decision) -> str | None:
        """Download the email's kept files before its change set is built; the reason if that failed."""
        if self.files is None:
            return None
        try:
            self.files.fetch(decision)
        except AttachmentDownloadError as exc:
            return str(exc)
        return None

    def _batches(self, records: list[EmailRecord]) -> Iterator[list[EmailRecord]]:
        """Consecutive groups within ``batch_size`` emails, 1,000 operations and the byte budget."""
        own = self.files.files_by_email(records) if self.files is not None else {}
        weights = [
            (
                change_set_operations(record, own.get(record.activity_id)),
                len(record.description)
                + _EMAIL_OVERHEAD_BYTES
                + sum(file.encoded_length for file in own.get(record.activity_id, {}).values()),
            )
            for record in records
        ]
        for group in plan_batches(weights, self._planned_size(), self.byte_budget):
            yield records[group.start : group.stop]

    def _attachment_refused(self, answer: BatchOutcome, record: EmailRecord) -> bool:
        """Dataverse refused one of the email's files: it is recorded as failed and the email sent again
        without it (the email still gets created)."""
        email = self.files.of(record.activity_id) if self.files is not None else None
        refused = [r for r in answer.responses if r.status >= 400]
        if email is None or not refused:
            return False
        change_set = self._sent.get(record.activity_id)
        row_id = refused_attachment(change_set, refused[0]) if change_set is not None else None
        return row_id is not None and email.refuse(row_id, _reason(refused[0]))

    def create(
        self, records: list[EmailRecord], parents: dict[str, str] | None = None
    ) -> dict[str, tuple[Outcome, str | None]]:
        """Create ``records``; every one ends with a final outcome (see the module docstring).

        Each email may fail transiently ``RETRY_ROUNDS`` times; a change set the service did not run (it
        stopped the batch earlier) costs nothing against that and is sent again at once. ``parents`` may
        bind a reply to another of ``records`` (listed before it); when that parent ends without a row of its
        ``activityid`` the binding is removed from ``parents`` and the reply sent without it.
        """
        results: dict[str, tuple[Outcome, str | None]] = {}
        failures: Counter[str] = Counter()
        last_reason: dict[str, str] = {}
        pending = list(records)
        waited = 0.0
        stalled = 0
        parents = {} if parents is None else parents
        # Replies bound to a parent created in this call: the binding holds only once the parent's row exists.
        ours = {record.activity_id.lower() for record in records}
        awaiting = {reply: parent for reply, parent in parents.items() if parent in ours}

        def give_up(record: EmailRecord, why: str) -> None:
            reason = last_reason.get(record.activity_id, "dataverse_batch_not_applied")
            results[record.activity_id] = (Outcome.FAILED, f"{reason} ({why})")

        def parent_row(reply: EmailRecord) -> bool | None:
            """Whether the row the reply is bound to exists: None while its parent (in this call) is pending;
            always True for a binding to a row Dataverse already held."""
            parent = awaiting.get(reply.activity_id)
            if parent is None:
                return True
            result = results.get(by_id[parent].activity_id)
            if result is None:
                return None
            return result[0] is Outcome.CREATED or result[1] == "activityid_exists"

        by_id = {record.activity_id.lower(): record for record in records}
        while pending:
            retry: list[EmailRecord] = []
            waits: list[float] = []
            progressed = failed_transiently = False
            bind = self.state.bind_external_sender
            for batch, answers in self._send_round(pending, bind, parents):
                for record, answer in zip(batch, answers, strict=True):
                    attempt = classify(answer)
                    if attempt.outcome is not Outcome.CREATED and not parent_row(record):
                        retry.append(record)  # sent again after its parent, at no cost
                        continue
                    if attempt.outcome is Outcome.FAILED and bind and self._sender_refused(answer, record):
                        retry.append(record)  # sent again at once, without the binding
                        progressed = True
                        continue
                    # A refused file (or one whose row exists without its email) fails alone.
                    refusable = attempt.outcome in (Outcome.FAILED, Outcome.ALREADY_PRESENT)
                    if refusable and self._attachment_refused(answer, record):
                        retry.append(record)  # sent again at once, without the refused file
                        progressed = True
                        continue
                    if attempt.outcome is not None:
                        unbound = (
                            attempt.outcome is Outcome.CREATED and not bind and sender_binding_matters(record)
                        )
                        results[record.activity_id] = (
                            attempt.outcome,
                            SENDER_UNBOUND if unbound else attempt.reason,
                        )
                        progressed = True
                        continue
                    retry.append(record)
                    if attempt.not_applied:
                        continue
                    progressed = failed_transiently = True
                    failures[record.activity_id] += 1
                    last_reason[record.activity_id] = attempt.reason or "dataverse_transient"
                    if attempt.retry_after is not None:
                        waits.append(attempt.retry_after)
            pending = []
            for record in retry:
                if failures[record.activity_id] >= RETRY_ROUNDS:
                    give_up(record, f"still failing after {RETRY_ROUNDS} attempts")
                else:
                    pending.append(record)
            for reply in list(awaiting):
                if parent_row(by_id[reply.lower()]) is False:
                    # The parent ended failed, or as another writer's row: the reply goes without the link.
                    del awaiting[reply], parents[reply]
            if not pending:
                break
            stalled = 0 if progressed else stalled + 1
            if stalled >= RETRY_ROUNDS:
                for record in pending:
                    give_up(record, "Dataverse ran none of these change sets, however often they were sent")
                break
            if not failed_transiently:
                continue  # only change sets that did not run, or the Sender fallback: send again at once
            delay = max(waits) if waits else self._backoff(max(failures[r.activity_id] for r in pending))
            if waited + delay > RETRY_BUDGET_S:
                for record in pending:
                    give_up(record, f"still failing after {waited:.0f} s of waiting")
                break
            log.info(
                "%d of %d emails to send again in %.1f s: %s",
                len(pending),
                len(records),
                delay,
                "; ".join(sorted({last_reason.get(r.activity_id, "not applied") for r in pending})[:3]),
            )
            self._sleep(delay)
            waited += delay
        return results

    def _backoff(self, round_number: int) -> float:
        return self._rng.uniform(0.0, min(_BACKOFF_MAX_S, _BACKOFF_BASE_S * 2 ** (round_number - 1)))

    def _sender_refused(self, answer: BatchOutcome, record: EmailRecord) -> bool:
        refused = [r for r in answer.responses if r.status >= 400]
        if not refused or not is_sender_refused(refused[0]) or not sender_binding_matters(record):
            return False
        with self.state.lock:
            if self.state.bind_external_sender:
                self.state.bind_external_sender = False
                self.state.sender_refusal_seen = True
                log.warning(
                    "Dataverse refused a contact, account or lead bound as the Sender (%s). The Sender of"
                    " this and every later email of the run is kept as its address only; the regarding link"
                    " still names the record.",
                    _reason(refused[0]),
                )
        return True

    def _send_round(
        self, pending: list[EmailRecord], bind: bool, parents: dict[str, str]
    ) -> list[tuple[list[EmailRecord], list[BatchOutcome]]]:
        """Every pending record once, in batches planned by ``_batches``, sent together.

        Records that fit in one batch go in it as listed (parents before their replies: Dataverse runs a
        batch's operations in order). Otherwise a reply whose parent is pending too waits for the batches of
        the parent's level, since batches sent together run in any order.
        """
        levels = _dependency_levels(pending, parents)
        batches = list(self._batches(pending))
        if len(levels) > 1 and len(batches) > 1:
            return [sent for level in levels for sent in self._send_round(level, bind, parents)]
        pool = self.state.batches
        if pool is None or len(batches) == 1:
            return [(batch, self._send(batch, bind, parents)) for batch in batches]
        answers = pool.map(lambda batch: self._send(batch, bind, parents), batches)
        return list(zip(batches, answers, strict=True))

    def _planned_size(self) -> int:
        return planned_batch_size(
            self.batch_size,
            timeout_s=self.dataverse.settings.timeout_s,
            seconds_per_email=self.state.seconds_per_email,
        )

    def _observe(self, seconds: float, emails: int) -> None:
        with self.state.lock:
            self.state.seconds_per_email = observed_seconds_per_email(
                self.state.seconds_per_email, seconds, emails
            )

    def _send(self, records: list[EmailRecord], bind: bool, parents: dict[str, str]) -> list[BatchOutcome]:
        """One ``$batch`` for ``records``; a timed-out batch is split in half, each half sent on its own, and
        so is one Dataverse refuses as holding too many operations (the rest of the load then sends batches
        no larger than the half that was accepted)."""
        cut = min(
            self.state.batch_limit, self._planned_size()
        )  # the plan may have shrunk since the round began
        if len(records) > cut:
            return self._send(records[:cut], bind, parents) + self._send(records[cut:], bind, parents)
        try:
            files = self.files.files_by_email(records) if self.files is not None else None
            change_sets = email_change_sets(records, bind_external_sender=bind, files=files, parents=parents)
            if files:
                with self.state.lock:
                    self._sent.update(
                        (record.activity_id, change_set)
                        for record, change_set in zip(records, change_sets, strict=True)
                        if record.activity_id in files
                    )
            answers = self.dataverse.execute_batch(change_sets, continue_on_error=True)
            self._observe(self.dataverse.last_send_seconds(), len(records))
            return answers
        except DataverseTimeoutError:
            # It took longer than the timeout, by how much nobody knows: plan as if twice, and never send a
            # batch this large again in this load.
            self._observe(2 * self.dataverse.settings.timeout_s, len(records))
            with self.state.lock:
                self.state.batch_limit = min(self.state.batch_limit, max(1, len(records) // 2))
            if len(records) == 1:
                return [BatchOutcome(ok=False, responses=())]
            half = len(records) // 2
            log.warning(
                "A $batch of %d emails timed out; sending it as two of %d and %d",
                len(records),
                half,
                len(records) - half,
            )
            return self._send(records[:half], bind, parents) + self._send(records[half:], bind, parents)
        except DataverseError as exc:
            if not is_too_many_operations(exc) or len(records) == 1:
                raise
            with self.state.lock:
                self.state.batch_limit = min(self.state.batch_limit, max(1, len(records) // 2))
            log.warning(
                "Dataverse refused a $batch of %d emails as too large (%s); sending at most %d per $batch",
                len(records),
                exc.message[:200],
                self.state.batch_limit,
            )
            return self._send(records, bind, parents)


class _Progress:
    def __init__(self, label: str, total_chunks: int, total_emails: int, dataverse: DataverseHook) -> None:
        self.label = label
        self.total_chunks = total_chunks
        self.total_emails = total_emails
        self.dataverse = dataverse
        self.base = dataverse.counters()
        self.started = time.monotonic()
        self._last = float("-inf")

    def line(self, state: _LoadState) -> str:
        elapsed = time.monotonic() - self.started
        percent = 100.0 * state.chunks_done / self.total_chunks if self.total_chunks else 100.0
        rate = state.emails_done / elapsed if elapsed > 0 else 0.0
        done = state.done
        requests = self.dataverse.request_count - self.base["requests"]
        throttled = self.dataverse.throttled_count - self.base["throttled"]
        waited = self.dataverse.throttle_wait_s - self.base["throttle_wait_s"]
        # Short enough for the task log panel: progress, then outcomes, then what Dataverse cost.
        return (
            f"{self.label}: {percent:.0f}% ({state.chunks_done}/{self.total_chunks} chunks,"
            f" {state.emails_done}/{self.total_emails} msgs, {rate:.0f}/s) | created {done['created']}"
            f" present {done['already_present']} skipped {done['skipped']} failed {done['failed']}"
            f" | {requests:.0f} req, {throttled:.0f} throttled, {waited:.1f} s throttle wait"
        )

    def maybe_log(self, state: _LoadState, *, force: bool = False, every_s: float = 10.0) -> None:
        now = time.monotonic()
        if force or now - self._last >= every_s:
            self._last = now
            log.info("%s", self.line(state))


def _parents(records: Sequence[EmailRecord], present: dict[str, str]) -> dict[str, str]:
    """activity_id -> the activityid of the email it answers, for the replies whose parent Dataverse holds."""
    parents: dict[str, str] = {}
    for record in records:
        if record.parent_message_id:
            parent = present.get(message_id_key(record.parent_message_id))
            if parent and parent != record.activity_id.lower():
                parents[record.activity_id] = parent
    return parents


def _in_chunk_parents(to_create: Sequence[Decision], bound: dict[str, str]) -> dict[str, str]:
    """activity_id -> the deterministic activityid of the email it answers, for the replies (not bound to a
    row Dataverse holds) whose parent is created with them, in an earlier wave (so sent before them)."""
    created_here = {
        message_id_key(d.email.internet_message_id): (d.email.activity_id.lower(), d.thread_wave)
        for d in to_create
        if d.email is not None
    }
    parents: dict[str, str] = {}
    for decision in to_create:
        reply = decision.email
        if reply is None or not reply.parent_message_id or reply.activity_id in bound:
            continue
        parent = created_here.get(message_id_key(reply.parent_message_id))
        if parent is not None and parent[1] < decision.thread_wave:
            parents[reply.activity_id] = parent[0]
    return parents


def _dependency_levels(records: list[EmailRecord], parents: dict[str, str]) -> list[list[EmailRecord]]:
    """``records`` by how many of their ancestors are among them (0: none), keeping their order; a parent
    is listed before its replies, so one pass is enough."""
    level_of: dict[str, int] = {}
    levels: list[list[EmailRecord]] = []
    for record in records:
        parent = parents.get(record.activity_id)
        level = level_of[parent] + 1 if parent in level_of else 0
        level_of[record.activity_id.lower()] = level
        if level == len(levels):
            levels.append([])
        levels[level].append(record)
    return levels


def _chunk_count(manifest: dict[str, Any], total: int) -> int:
    """How many chunks ``_chunks`` will make, for the progress lines (transform counts decisions per wave;
    a manifest without those counts gets an estimate, and the load counts the chunks it made)."""
    per_wave = manifest.get("thread_waves")
    if total <= CHUNK_SIZE or not isinstance(per_wave, dict) or sum(per_wave.values()) != total:
        return -(-total // CHUNK_SIZE)
    return sum(-(-int(count) // CHUNK_SIZE) for count in per_wave.values())


def _chunks(staging: RunStaging, manifest: dict[str, Any], total: int) -> Iterator[_Chunk]:
    """Up to ``CHUNK_SIZE`` decisions each, in the decisions file's order (wave by wave).

    A day that fits in one chunk is one chunk, all its waves together (one lookup, one ``$batch`` when it
    fits in one). A larger day's chunks never mix waves: a chunk holding a later wave than one in progress
    waits for it, so mixed chunks would load one after another; one wave's chunks load side by side (a
    1,000-email day in three waves: 17 batches in flight at most, 10 when every chunk waited for the last).
    """
    chunk: list[Decision] = []
    index = 0
    split_waves = total > CHUNK_SIZE
    for line in staging.read_lines(layout.DECISIONS, manifest, "transform"):
        decision = Decision.from_json(line)
        if chunk and (
            len(chunk) == CHUNK_SIZE or (split_waves and decision.thread_wave != chunk[-1].thread_wave)
        ):
            yield _Chunk(index, chunk)
            index, chunk = index + 1, []
        chunk.append(decision)
    if chunk:
        yield _Chunk(index, chunk)


def _earlier_part(staging: RunStaging, index: int, expected: int) -> list[LedgerEntry] | None:
    """A part from an earlier attempt, if complete and readable; anything else is loaded again."""
    part = staging.file(layout.load_part(index))
    if not part.exists():
        return None
    try:
        entries = [LedgerEntry.from_json(entry) for entry in json.loads(part.read_bytes())]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        log.warning("%s is damaged; its chunk is loaded again (idempotently).", part)
        return None
    return entries if len(entries) == expected else None


def load_window(
    grant: GrantConfig, staging: RunStaging, dataverse: DataverseHook, nylas: NylasHook | None = None
) -> RunStaging:
    """Load the run's decisions; ``nylas`` downloads attachments (a hook for the grant's connection is made on
    first use when not given)."""
    started = time.monotonic()
    before = dataverse.counters()
    manifest = staging.read_manifest("transform")
    total = staging.verify(layout.DECISIONS, manifest, "transform")
    if manifest.get("counts", {}).get("to_load", 1):
        ensure_privileges(grant, dataverse, staging.root)
    staging.clear_after("load")
    staging.file(layout.LOAD_PARTS).mkdir(parents=True, exist_ok=True)
    state = _LoadState()
    batch_size = burst_batch_size(grant.batch_size, int(manifest.get("counts", {}).get("to_load", total)))
    downloads: list[NylasHook] = [] if nylas is None else [nylas]

    def nylas_hook() -> NylasHook:
        if not downloads:
            downloads.append(NylasHook(grant.nylas_conn_id))
        return downloads[0]

    files = AttachmentFiles(
        staging,
        nylas_hook,
        grant.attachment_policy,
        int(manifest.get("max_upload_bytes") or DEFAULT_ORG_LIMIT_BYTES),
    )
    loader = _ChunkLoader(dataverse, batch_size, state, files=files)
    total_chunks = _chunk_count(manifest, total)  # an estimate until the chunks are made
    progress = _Progress(f"Load {grant.key} {staging.label}", total_chunks, total, dataverse)
    resumed = retried = 0

    def run(chunk: _Chunk, earlier: list[LedgerEntry] | None) -> None:
        entries = loader.load(chunk, earlier)
        _write_attachment_part(staging, chunk, entries, files)
        staging.write_json(layout.load_part(chunk.index), [entry.to_json() for entry in entries])
        with state.lock:
            state.done.update(entry.outcome.value for entry in entries)
            state.chunks_done += 1
            state.emails_done += len(entries)
        progress.maybe_log(state)

    parallel = (
        dataverse.max_concurrency
        if grant.max_concurrency is None
        else min(grant.max_concurrency, dataverse.max_concurrency)
    )
    workers = min(parallel, CHUNK_WORKERS)
    log.info(
        "%s: %d messages in %d chunks, %d at a time, up to %d $batch requests at once, %d emails per $batch",
        progress.label,
        total,
        total_chunks,
        workers,
        parallel,
        batch_size,
    )
    in_flight: dict[Future[None], int] = {}  # a chunk in progress -> its first wave
    with (
        ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="batch") as batches,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load") as pool,
    ):
        state.batches = batches
        made = 0
        for chunk in _chunks(staging, manifest, total):
            made = chunk.index + 1
            # Its replies to mail of a chunk in progress wait for that chunk (their lookup must find it).
            if in_flight and chunk.decisions[-1].thread_wave > min(in_flight.values()):
                for future in in_flight:
                    future.result()
                in_flight = {}
            earlier = _earlier_part(staging, chunk.index, len(chunk.decisions))
            if earlier is not None and all(entry.outcome is not Outcome.FAILED for entry in earlier):
                resumed += 1
                with state.lock:
                    state.done.update(entry.outcome.value for entry in earlier)
                    state.chunks_done += 1
                    state.emails_done += len(earlier)
                continue
            retried += earlier is not None
            in_flight[pool.submit(run, chunk, earlier)] = chunk.decisions[0].thread_wave
            # Chunks are read lazily and at most 2 x workers are in flight, so memory stays bounded.
            if len(in_flight) >= 2 * workers:
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()
                    del in_flight[future]
        for future in in_flight:
            future.result()
    # The parts to read are the chunks made: a transform manifest without per-wave counts (an older
    # release's) makes the estimate miss the chunks split at wave changes.
    total_chunks = progress.total_chunks = made

    removed, second_rows = _check_second_rows(grant, dataverse, _iter_parts(staging, total_chunks))
    outcomes, ledger_count = _write_ledger(staging, _iter_parts(staging, total_chunks), removed)
    attachment_summary = files_module.write_ledger(staging, total_chunks, removed)
    progress.maybe_log(state, force=True)
    used = {name: value - before.get(name, 0) for name, value in dataverse.counters().items()}
    staging.write_json(
        layout.LOAD_MANIFEST,
        {
            "format_version": FORMAT_VERSION,
            "chunks": total_chunks,
            "chunks_resumed": resumed,
            "chunks_with_failures_retried": retried,
            "ledger_entries": ledger_count,
            "sender_unbound": state.sender_refusal_seen,
            "attachments": {**attachment_summary, "bytes_downloaded": files.bytes_downloaded},
            "second_rows": second_rows,
            "requests": {
                "dataverse": used["requests"],
                "dataverse_retries": used["retries"],
                "dataverse_throttled": used["throttled"],
                "token": used["token_requests"],
            },
            "throttle_wait_s": round(used["throttle_wait_s"], 3),
            "duration_s": round(time.monotonic() - started, 3),
        },
    )
    log.info(
        "Load finished: %d chunks (%d resumed, %d with earlier failures sent again), outcomes %s, "
        "%d Dataverse requests (%d throttled, %.1f s waiting), %.1f s",
        total_chunks,
        resumed,
        retried,
        dict(outcomes),
        used["requests"],
        used["throttled"],
        used["throttle_wait_s"],
        time.monotonic() - started,
    )
    return staging


def _write_attachment_part(
    staging: RunStaging, chunk: _Chunk, entries: list[LedgerEntry], files: AttachmentFiles
) -> None:
    """The chunk's attachment outcomes, written before its resume point (so a resumed chunk has both)."""
    records = [decision.email for decision in chunk.decisions if decision.email is not None]
    if not any(record.attachments for record in records):
        return
    earlier = {entry.row_id: entry for entry in files_module.read_part(staging, chunk.index)}
    lines: list[AttachmentEntry] = []
    for decision, entry in zip(chunk.decisions, entries, strict=True):
        email = files.of(decision.email.activity_id) if decision.email is not None else None
        lines.extend(files_module.entries_for(decision, entry, email, earlier))
    files_module.write_part(staging, chunk.index, lines)
    files.forget(records)


def _iter_parts(staging: RunStaging, total_chunks: int) -> Iterator[list[LedgerEntry]]:
    for index in range(total_chunks):
        part = staging.file(layout.load_part(index))
        if not part.exists():
            raise StagingError(f"{part} is missing after load; rerun 'load' for this run.")
        yield [LedgerEntry.from_json(entry) for entry in json.loads(part.read_bytes())]


def _check_second_rows(
    grant: GrantConfig, dataverse: DataverseHook, parts: Iterator[list[LedgerEntry]]
) -> tuple[set[str], list[dict[str, Any]]]:
    """Message-IDs this run created that Dataverse now holds twice (one lookup per part); optionally remove
    the copy this run made. Returns the Nylas ids whose copy was removed, and what was found."""
    removed: set[str] = set()
    found: list[dict[str, Any]] = []
    if not grant.verify_after_load:
        return removed, found
    for entries in parts:
        created = {
            message_id_key(entry.internet_message_id): entry
            for entry in entries
            if entry.outcome is Outcome.CREATED and entry.internet_message_id
        }
        if not created:
            continue
        values = [
            value for entry in created.values() for value in lookup_values(str(entry.internet_message_id))
        ]
        rows_by_key: dict[str, set[str]] = defaultdict(set)
        for row in dataverse.query_in(EMAILS, "messageid", values, select=list(MESSAGE_ID_COLUMNS)):
            if row.get("messageid"):
                rows_by_key[message_id_key(str(row["messageid"]))].add(str(row.get("activityid", "")).lower())
        for key, activity_ids in rows_by_key.items():
            entry = created.get(key)
            if entry is None or len(activity_ids) < 2:
                continue
            ours = (entry.activity_id or "").lower()
            copy_removed = grant.remove_race_duplicates and ours in activity_ids
            if copy_removed:
                dataverse.delete(EMAILS, ours)
                removed.add(entry.nylas_id)
            found.append(
                {"nylas_id": entry.nylas_id, "rows": len(activity_ids), "our_copy_removed": copy_removed}
            )
    if found:
        log.warning(
            "%d message(s) this run created are now in Dataverse twice (another writer, such as server-side"
            " sync, tracked them between our lookup and our create)%s.",
            len(found),
            "; our copies were removed"
            if grant.remove_race_duplicates
            else "; set remove_race_duplicates: true in the grants file to remove the copies this"
            " pipeline makes",
        )
    return removed, found


def _write_ledger(
    staging: RunStaging, parts: Iterator[list[LedgerEntry]], removed: set[str]
) -> tuple[Counter[str], int]:
    # Streamed: load.json, written after it, records the entry count and the report checks it.
    outcomes: Counter[str] = Counter()
    with open_binary(staging.file(layout.LEDGER), "wb") as ledger:
        _write_entries(ledger, parts, removed, outcomes)
    return outcomes, sum(outcomes.values())


def _write_entries(
    ledger: Any, parts: Iterator[list[LedgerEntry]], removed: set[str], outcomes: Counter[str]
) -> None:
    for entries in parts:
        for entry in entries:
            if entry.nylas_id in removed:
                entry = LedgerEntry(
                    nylas_id=entry.nylas_id,
                    grant_id=entry.grant_id,
                    internet_message_id=entry.internet_message_id,
                    outcome=Outcome.ALREADY_PRESENT,
                    reason="second_row_removed: another writer created the message at the same time",
                    activity_id=entry.activity_id,
                )
            outcomes[entry.outcome.value] += 1
            ledger.write(json.dumps(entry.to_json(), ensure_ascii=False).encode() + b"\n")
