"""Transform: staged Nylas messages -> one decision per message (a Dataverse payload, a skip, a failure).

All judgement lives in the pure core (policy, resolution, mapping); this module streams the staged file,
resolves the run's distinct addresses in bulk, and writes the decisions. Three streaming passes keep
memory proportional to distinct addresses and threads, not to messages:

1. collect every address;
2. (only in "first message of each thread" mode) find each thread's earliest trackable message;
3. decide and map every message.

A message the core cannot parse is quarantined with its reason and recorded as failed, never dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.identity import header_value
from nylas_dataverse.core.ledger import Outcome
from nylas_dataverse.core.mapping import MappingContext, map_message
from nylas_dataverse.core.messages import BadMessage, NylasMessage, parse_message
from nylas_dataverse.core.policy import FolderRoles, SkipReason, ThreadTracker, decide
from nylas_dataverse.core.resolution import Directory
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.pipeline import extract
from nylas_dataverse.pipeline.directory import resolve_addresses
from nylas_dataverse.pipeline.staging import FORMAT_VERSION, RunStaging

log = logging.getLogger(__name__)

PAYLOADS_FILE = "payloads.jsonl.gz"
QUARANTINE_FILE = "quarantine.jsonl.gz"
MANIFEST = "transform.json"
# Everything downstream of transform is invalidated when transform reruns.
DOWNSTREAM = ("load", "load.json", "ledger.jsonl", "report.json")

_KNOWN_ENTITIES = frozenset({"contact", "account", "lead"})


def _addresses(message: NylasMessage) -> Iterator[str]:
    for participants in (message.from_, message.to, message.cc, message.bcc):
        for participant in participants:
            yield participant.email


@dataclass(frozen=True)
class _Parsed:
    raw: dict[str, Any]
    message: NylasMessage | None
    error: BadMessage | None
    line: int


def _parsed(staging: RunStaging, manifest: dict[str, Any]) -> Iterator[_Parsed]:
    for line, raw in enumerate(staging.read_lines(extract.MESSAGES_FILE, manifest, "extract"), start=1):
        try:
            yield _Parsed(raw, parse_message(raw), None, line)
        except BadMessage as exc:
            yield _Parsed(raw, None, exc, line)


def _ledger_id(item: _Parsed) -> str:
    raw_id = item.raw.get("id") if isinstance(item.raw, dict) else None
    return raw_id if isinstance(raw_id, str) and raw_id else f"<unparseable line {item.line}>"


def transform_window(grant: GrantConfig, staging: RunStaging, dataverse: DataverseHook) -> str:
    started = time.monotonic()
    manifest = staging.read_manifest(extract.MANIFEST, "extract")
    staging.clear_from(DOWNSTREAM)
    grant_email: str | None = manifest.get("grant_email")
    folder_roles = FolderRoles(manifest.get("folder_roles", {}))

    addresses: set[str] = set()
    if grant_email:
        addresses.add(grant_email)
    for item in _parsed(staging, manifest):
        if item.message is not None:
            addresses.update(_addresses(item.message))
    directory = resolve_addresses(addresses, dataverse)

    def known_external(address: str) -> bool:
        resolution = directory.resolve(address)
        return resolution is not None and resolution.entity in _KNOWN_ENTITIES

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

    # The thread rule needs the whole run (Nylas lists newest first), so it is applied separately below.
    per_message_policy = dataclasses.replace(grant.policy, first_message_of_thread_only=False)

    def decision(message: NylasMessage) -> SkipReason | None:
        return decide(
            message,
            policy=per_message_policy,
            org_domains=grant.org_domains,
            grant_email=grant_email,
            folder_roles=folder_roles,
            known_external=known_external,
            threads=ThreadTracker(),
        )

    first_in_thread = (
        _first_trackable_in_threads(staging, manifest, decision)
        if grant.policy.first_message_of_thread_only
        else None
    )

    counts: dict[str, int] = {"to_load": 0, "skipped": 0, "failed": 0}
    unresolved: set[str] = set()
    ambiguous: set[str] = set()
    with staging.writer(PAYLOADS_FILE) as payloads, staging.writer(QUARANTINE_FILE) as quarantine:
        for item in _parsed(staging, manifest):
            record = _decide_and_map(item, grant, directory, context, decision, first_in_thread)
            if item.error is not None:
                quarantine.write({"line": item.line, "reason": str(item.error), "message": item.raw})
            if record["outcome"] is None:
                counts["to_load"] += 1
                unresolved.update(record.pop("_unresolved"))
                ambiguous.update(record.pop("_ambiguous"))
            else:
                counts[str(record["outcome"])] += 1
            payloads.write(record)

    staging.write_json(
        MANIFEST,
        {
            "format_version": FORMAT_VERSION,
            "files": {
                PAYLOADS_FILE: {"count": payloads.count, "sha256": payloads.sha256},
                QUARANTINE_FILE: {"count": quarantine.count, "sha256": quarantine.sha256},
            },
            "counts": counts,
            "unresolved_addresses": len(unresolved),
            "ambiguous_addresses": len(ambiguous),
            "directory_addresses": len(addresses),
            "owner_systemuser_id": context.owner_systemuser_id,
            "requests": {"dataverse": dataverse.request_count},
            "duration_s": round(time.monotonic() - started, 3),
        },
    )
    log.info(
        "Transformed %d messages: %d to load, %d skipped, %d failed (quarantined: %d); "
        "%d distinct addresses, %d unresolved",
        payloads.count,
        counts["to_load"],
        counts["skipped"],
        counts["failed"],
        quarantine.count,
        len(addresses),
        len(unresolved),
    )
    return str(staging.folder)


def _first_trackable_in_threads(
    staging: RunStaging,
    manifest: dict[str, Any],
    decision: Callable[[NylasMessage], SkipReason | None],
) -> dict[str, tuple[int, str]]:
    """Each thread's earliest message that every other rule would track and that is not a reply."""
    first: dict[str, tuple[int, str]] = {}
    for item in _parsed(staging, manifest):
        message = item.message
        if message is None or decision(message) is not None:
            continue
        if header_value(message.headers, "In-Reply-To") or header_value(message.headers, "References"):
            continue
        key = (message.date, message.id)
        if message.thread_id not in first or key < first[message.thread_id]:
            first[message.thread_id] = key
    return first


def _decide_and_map(
    item: _Parsed,
    grant: GrantConfig,
    directory: Directory,
    context: MappingContext,
    decision: Callable[[NylasMessage], SkipReason | None],
    first_in_thread: dict[str, tuple[int, str]] | None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "nylas_id": _ledger_id(item),
        "grant_id": grant.grant_id,
        "message_id": None,
        "activity_id": None,
        "outcome": None,
        "reason": None,
    }
    message = item.message
    if message is None:
        record.update(outcome=Outcome.FAILED.value, reason=f"invalid_message: {item.error}")
        return record
    skip = decision(message)
    if (
        skip is None
        and first_in_thread is not None
        and first_in_thread.get(message.thread_id) != (message.date, message.id)
    ):
        skip = SkipReason.NOT_FIRST_IN_THREAD
    try:
        payload = map_message(message, directory, context)
    except Exception as exc:  # one bad message must never stop the run: record it and go on
        record.update(outcome=Outcome.FAILED.value, reason=f"mapping_error: {type(exc).__name__}: {exc}")
        return record
    record["message_id"] = payload.message_id
    record["activity_id"] = payload.activity_id
    if skip is not None:
        record.update(outcome=Outcome.SKIPPED.value, reason=skip.value)
        return record
    record.update(
        create=payload.create,
        complete=payload.complete,
        outgoing=payload.outgoing,
        _unresolved=list(payload.unresolved),
        _ambiguous=list(payload.ambiguous),
    )
    return record
