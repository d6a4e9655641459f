"""Transform: staged Nylas messages -> one ``Decision`` per message (an email to create, a skip, a failure).

All judgement lives in the pure core (policy, resolution, mapping); this module streams the staged file,
resolves the run's distinct addresses in bulk, and writes the decisions in extract's order. Two streaming
passes keep memory proportional to distinct addresses, not to messages:

1. parse every message and collect its addresses; resolve them all at once;
2. parse again, decide each message with the capture policy, and map only the ones to create.

In "first message of each thread" mode the thread rule needs the day's messages oldest first (Nylas lists
newest first), so pass 1 also keeps each message without its body and the policy decides them in date order
before pass 2; that mode's memory grows with the day's message count (headers only). That mode also asks
Dataverse, in one bulk lookup, which of the Message-IDs the day's replies name it already holds: a thread
tracked there counts as tracked.

Threads (``core/threads.py``): pass 1 also keeps each message's Message-ID and the one it answers (two short
strings per message) to give every message its wave; pass 2 runs once per wave present (at most
``threads.MAX_WAVE`` + 1, usually one or two), so a reply is decided after the email it answers and can take
that email's regarding record, and the decisions file lists wave 0 first.

A message the core cannot parse is quarantined with its reason and recorded as failed, never dropped. A
message the policy skips is recorded as skipped even if it could not have been mapped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from nylas_dataverse.core import threads
from nylas_dataverse.core.attachments import DEFAULT_ORG_LIMIT_BYTES, plan_attachments
from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.contacts import WithNewContacts, new_contacts
from nylas_dataverse.core.identity import (
    activity_id,
    dataverse_message_id,
    message_id_key,
    referenced_message_ids,
    reply_parent_message_id,
)
from nylas_dataverse.core.ledger import Outcome
from nylas_dataverse.core.mapping import MappingContext, RecordRef, map_message
from nylas_dataverse.core.messages import BadMessage, NylasMessage, parse_message
from nylas_dataverse.core.policy import FolderRoles, SkipReason, ThreadTracker, decide, party_addresses
from nylas_dataverse.core.records import Decision
from nylas_dataverse.core.resolution import Directory
from nylas_dataverse.core.unresolved import UnresolvedTally
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline import unresolved as unresolved_files
from nylas_dataverse.pipeline.directory import resolve_addresses
from nylas_dataverse.pipeline.present import present_emails, regarding_of_emails
from nylas_dataverse.pipeline.staging import FORMAT_VERSION, RunStaging

log = logging.getLogger(__name__)

_KNOWN_ENTITIES = frozenset({"contact", "account", "lead"})
UNRESOLVED_TOP = 200


@dataclass(frozen=True)
class _Parsed:
    raw: Any
    message: NylasMessage | None
    error: BadMessage | None
    line: int

    @property
    def nylas_id(self) -> str:
        raw_id = self.raw.get("id") if isinstance(self.raw, dict) else None
        return raw_id if isinstance(raw_id, str) and raw_id else f"<unparseable line {self.line}>"


def _parsed(staging: RunStaging, manifest: dict[str, Any]) -> Iterator[_Parsed]:
    for line, raw in enumerate(staging.read_lines(layout.MESSAGES, manifest, "extract"), start=1):
        try:
            yield _Parsed(raw, parse_message(raw), None, line)
        except BadMessage as exc:
            yield _Parsed(raw, None, exc, line)


class _Policy:
    """The grant's capture policy over this run's directory; the thread rule decided oldest first."""

    def __init__(self, grant: GrantConfig, directory: Directory, context: MappingContext) -> None:
        self.grant = grant
        self.directory = directory
        self.context = context
        self._thread_verdicts: dict[str, SkipReason | None] | None = None

    def _known_external(self, address: str) -> bool:
        resolution = self.directory.resolve(address)
        return resolution is not None and resolution.entity in _KNOWN_ENTITIES

    def _decide(self, message: NylasMessage, threads: ThreadTracker) -> SkipReason | None:
        return decide(
            message,
            policy=self.grant.policy,
            org_domains=self.grant.org_domains,
            grant_email=self.context.grant_email,
            folder_roles=self.context.folder_roles,
            known_external=self._known_external,
            threads=threads,
        )

    def settle_threads(self, messages: list[NylasMessage], tracked_in_dataverse: Iterable[str]) -> None:
        """Decide the day's messages oldest first, so the thread rule keeps each thread's first one; a reply
        to a Message-ID Dataverse holds belongs to a tracked thread."""
        threads = ThreadTracker(tracked_in_dataverse)
        self._thread_verdicts = {
            message.id: self._decide(message, threads)
            for message in sorted(messages, key=lambda message: (message.date, message.id))
        }

    def skip_reason(self, message: NylasMessage) -> SkipReason | None:
        if self._thread_verdicts is not None and message.id in self._thread_verdicts:
            return self._thread_verdicts[message.id]
        return self._decide(message, ThreadTracker())


def transform_window(grant: GrantConfig, staging: RunStaging, dataverse: DataverseHook) -> RunStaging:
    started = time.monotonic()
    requests_before = dataverse.request_count
    manifest = staging.read_manifest("extract")
    staging.clear_after("extract")
    grant_email: str | None = manifest.get("grant_email")
    folder_roles = FolderRoles(manifest.get("folder_roles", {}))
    thread_mode = grant.policy.first_message_of_thread_only

    addresses: set[str] = {grant_email} if grant_email else set()
    bodiless: list[NylasMessage] = []
    with_files = False
    links: dict[str, str | None] = {}  # message key -> key of the message it answers
    keys: dict[str, str] = {}  # nylas id -> message key
    referenced: set[str] = set()
    for item in _parsed(staging, manifest):
        if item.message is not None:
            addresses.update(party_addresses(item.message))
            with_files = with_files or bool(item.message.attachments)
            key = message_id_key(dataverse_message_id(item.message)[0])
            parent = reply_parent_message_id(item.message)
            links.setdefault(key, message_id_key(parent) if parent else None)
            keys[item.message.id] = key
            if thread_mode:
                bodiless.append(dataclasses.replace(item.message, body=None, snippet=""))
                referenced.update(referenced_message_ids(item.message))
    directory = resolve_addresses(addresses, dataverse)
    # The org's attachment limit, read once per run and only when a file could be uploaded.
    org_limit = (
        dataverse.max_upload_file_size() if with_files and grant.attachments else DEFAULT_ORG_LIMIT_BYTES
    )
    wave_of = threads.waves(links)
    answered = {parent for parent in links.values() if parent is not None}
    # Regarding follows the thread to parents outside this run too (an earlier run, server-side sync).
    parent_regarding = regarding_of_emails(dataverse, sorted(answered - set(links)))

    owner = directory.resolve(grant_email) if grant_email else None
    context = MappingContext(
        grant_id=grant.grant_id,
        grant_email=grant_email,
        owner_systemuser_id=owner.id if owner is not None and owner.entity == "systemuser" else None,
        folder_roles=folder_roles,
        regarding_preference=grant.policy.regarding_preference,
        org_domains=grant.org_domains,
    )
    if context.owner_systemuser_id is None:
        log.warning(
            "Mailbox owner %s is not a Dataverse system user; emails keep the default owner.", grant_email
        )
    policy = _Policy(grant, directory, context)
    if thread_mode:
        policy.settle_threads(bodiless, present_emails(dataverse, referenced))
        bodiless.clear()

    counts = {"to_load": 0, "skipped": 0, "failed": 0}
    unresolved: Counter[str] = Counter()  # address -> messages naming it
    tally = UnresolvedTally()
    ambiguous: set[str] = set()
    # What each of this run's messages that others answer is regarding (not its record: a day of 100,000
    # messages answered in threads of three would otherwise hold a third of its bodies until the end).
    in_run_regarding: dict[str, RecordRef | None] = {}
    per_wave: Counter[int] = Counter()
    with staging.writer(layout.DECISIONS) as decisions, staging.writer(layout.QUARANTINE) as quarantine:
        for wave in sorted(set(wave_of.values()) | {0}):
            for item in _parsed(staging, manifest):
                own = keys.get(item.message.id) if item.message is not None else None
                if wave_of.get(own or "", 0) != wave:
                    continue
                if item.message is None:
                    quarantine.write({"line": item.line, "reason": str(item.error), "message": item.raw})
                    decision = Decision(
                        item.nylas_id, grant.grant_id, Outcome.FAILED, reason=f"invalid_message: {item.error}"
                    )
                else:
                    decision = _decision(
                        item.message,
                        grant,
                        policy,
                        directory,
                        context,
                        unresolved,
                        ambiguous,
                        tally,
                        org_limit=org_limit,
                    )
                if decision.email is not None and own is not None:
                    parent_key = links.get(own) or ""
                    # A parent in the run was decided in an earlier wave; one outside it was looked up.
                    in_run = parent_key in in_run_regarding
                    email = threads.follow_thread(
                        decision.email,
                        in_run_regarding[parent_key] if in_run else parent_regarding.get(parent_key),
                    )
                    decision = dataclasses.replace(decision, email=email)
                    if own in answered:
                        in_run_regarding[own] = email.regarding
                decision = dataclasses.replace(decision, thread_wave=wave)
                counts["to_load" if decision.pending else str(decision.outcome)] += 1
                per_wave[wave] += 1
                decisions.write(decision.to_json())
    unresolved_files.write_run(staging, tally)

    staging.write_json(
        layout.TRANSFORM_MANIFEST,
        {
            "format_version": FORMAT_VERSION,
            "files": {
                layout.DECISIONS: decisions.manifest_entry(),
                layout.QUARANTINE: quarantine.manifest_entry(),
            },
            "unresolved_file": layout.UNRESOLVED,
            "thread_waves": {str(wave): n for wave, n in sorted(per_wave.items())},
            "counts": counts,
            "unresolved_addresses": len(unresolved),
            # The most frequent ones, for the health page's list of addresses to add to Dataverse.
            "unresolved_top": [[address, n] for address, n in unresolved.most_common(UNRESOLVED_TOP)],
            "ambiguous_addresses": len(ambiguous),
            "directory_addresses": len(addresses),
            "owner_systemuser_id": context.owner_systemuser_id,
            "max_upload_bytes": org_limit,
            "requests": {"dataverse": dataverse.request_count - requests_before},
            "duration_s": round(time.monotonic() - started, 3),
        },
    )
    log.info(
        "Transformed %d messages: %d to load, %d skipped, %d failed (quarantined: %d); "
        "%d distinct addresses, %d unresolved, %d ambiguous (%.1f s)",
        decisions.count,
        counts["to_load"],
        counts["skipped"],
        counts["failed"],
        quarantine.count,
        len(addresses),
        len(unresolved),
        len(ambiguous),
        time.monotonic() - started,
    )
    return staging


def _decision(
    message: NylasMessage,
    grant: GrantConfig,
    policy: _Policy,
    directory: Directory,
    context: MappingContext,
    unresolved: Counter[str],
    ambiguous: set[str],
    tally: UnresolvedTally,
    *,
    org_limit: int = DEFAULT_ORG_LIMIT_BYTES,
) -> Decision:
    skip = policy.skip_reason(message)
    if skip is not None:
        internet_id, _ = dataverse_message_id(message)
        return Decision(
            message.id,
            grant.grant_id,
            Outcome.SKIPPED,
            reason=skip.value,
            internet_message_id=internet_id,
            activity_id=str(activity_id(internet_id)),
        )
    contacts = new_contacts(
        message,
        directory,
        mode=grant.policy.create_contacts,
        org_domains=grant.org_domains,
        grant_email=context.grant_email,
        excluded_addresses=grant.policy.excluded_addresses,
        excluded_domains=grant.policy.excluded_domains,
        role_patterns=grant.policy.role_address_patterns,
    )
    try:
        mapped = map_message(
            message, WithNewContacts(directory, contacts) if contacts else directory, context
        )
    except Exception as exc:  # one bad message must never stop the run: record it and go on
        return Decision(
            message.id, grant.grant_id, Outcome.FAILED, reason=f"mapping_error: {type(exc).__name__}: {exc}"
        )
    unresolved.update(address.casefold() for address in mapped.unresolved)
    tally.add_message(message, mapped.unresolved, outgoing=mapped.record.outgoing)
    ambiguous.update(address.casefold() for address in mapped.ambiguous)
    record = dataclasses.replace(mapped.record, new_contacts=contacts) if contacts else mapped.record
    if message.attachments:
        files = plan_attachments(record.activity_id, message.attachments, grant.attachment_policy, org_limit)
        record = dataclasses.replace(record, attachments=files)
    return Decision.to_load(message.id, grant.grant_id, record)
