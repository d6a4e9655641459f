"""Transform: staged Nylas messages -> one ``Decision`` per message (an email to create, a skip, a failure).

All judgement lives in the pure core (policy, resolution, mapping); this module streams the staged file,
resolves the run's distinct addresses in bulk, and writes the decisions in extract's order. Two streaming
passes keep memory proportional to distinct addresses, not to messages:

1. parse every message and collect its addresses; resolve them all at once;
2. parse again, decide each message with the capture policy, and map only the ones to create.

In "first message of each thread" mode the thread rule needs the day's messages oldest first (Nylas lists
newest first), so pass 1 also keeps each message without its body and the policy decides them in date order
before pass 2; that mode's memory grows with the day's message count (headers only).

A message the core cannot parse is quarantined with its reason and recorded as failed, never dropped. A
message the policy skips is recorded as skipped even if it could not have been mapped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nylas_dataverse.core.attachments import DEFAULT_ORG_LIMIT_BYTES, plan_attachments
from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.identity import activity_id, dataverse_message_id
from nylas_dataverse.core.ledger import Outcome
from nylas_dataverse.core.mapping import MappingContext, map_message
from nylas_dataverse.core.messages import BadMessage, NylasMessage, parse_message
from nylas_dataverse.core.policy import FolderRoles, SkipReason, ThreadTracker, decide, party_addresses
from nylas_dataverse.core.records import Decision
from nylas_dataverse.core.resolution import Directory
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.directory import resolve_addresses
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

    def settle_threads(self, messages: list[NylasMessage]) -> None:
        """Decide the day's messages oldest first, so the thread rule keeps each thread's first one."""
        threads = ThreadTracker()
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
    for item in _parsed(staging, manifest):
        if item.message is not None:
            addresses.update(party_addresses(item.message))
            with_files = with_files or bool(item.message.attachments)
            if thread_mode:
                bodiless.append(dataclasses.replace(item.message, body=None, snippet=""))
    directory = resolve_addresses(addresses, dataverse)
    # The org's attachment limit, read once per run and only when a file could be uploaded.
    org_limit = (
        dataverse.max_upload_file_size() if with_files and grant.attachments else DEFAULT_ORG_LIMIT_BYTES
    )

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
        policy.settle_threads(bodiless)
        bodiless.clear()

    counts = {"to_load": 0, "skipped": 0, "failed": 0}
    unresolved: Counter[str] = Counter()  # address -> messages naming it
    ambiguous: set[str] = set()
    with staging.writer(layout.DECISIONS) as decisions, staging.writer(layout.QUARANTINE) as quarantine:
        for item in _parsed(staging, manifest):
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
                    org_limit=org_limit,
                )
            counts["to_load" if decision.pending else str(decision.outcome)] += 1
            decisions.write(decision.to_json())

    staging.write_json(
        layout.TRANSFORM_MANIFEST,
        {
            "format_version": FORMAT_VERSION,
            "files": {
                layout.DECISIONS: decisions.manifest_entry(),
                layout.QUARANTINE: quarantine.manifest_entry(),
            },
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
    try:
        mapped = map_message(message, directory, context)
    except Exception as exc:  # one bad message must never stop the run: record it and go on
        return Decision(
            message.id, grant.grant_id, Outcome.FAILED, reason=f"mapping_error: {type(exc).__name__}: {exc}"
        )
    unresolved.update(address.casefold() for address in mapped.unresolved)
    ambiguous.update(address.casefold() for address in mapped.ambiguous)
    record = mapped.record
    if message.attachments:
        files = plan_attachments(record.activity_id, message.attachments, grant.attachment_policy, org_limit)
        record = dataclasses.replace(record, attachments=files)
    return Decision.to_load(message.id, grant.grant_id, record)
