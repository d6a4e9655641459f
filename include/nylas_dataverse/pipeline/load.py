"""Load: create the decided emails in Dataverse exactly once, resumably, within the throttling limits.

Exactly once rests on three things:

* every email has a deterministic ``activityid`` derived from its Message-ID, so a second create of
  the same message fails with a duplicate key instead of making a second row; that answer means
  another run or grant created it first and is recorded as ``already_present``;
* before creating, the chunk's Message-IDs are looked up in bulk, which also finds mail that
  server-side sync or the Outlook app tracked;
* each email is created and completed in one ``$batch`` change set, which Dataverse applies atomically.

Payload lines are processed in fixed chunks; when a chunk is finished its ledger entries are written to
``load/part-NNNNNN.json``. A retry or rerun skips finished chunks, so a crash at any point costs at
most the chunks in flight, and those converge through the lookup and the duplicate-key rule.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.ledger import LedgerEntry, Outcome
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.odata import BatchOutcome, BatchRequest, BatchResponse, ChangeSet
from nylas_dataverse.pipeline import transform
from nylas_dataverse.pipeline.staging import FORMAT_VERSION, RunStaging, StagingError

log = logging.getLogger(__name__)

LEDGER_FILE = "ledger.jsonl"
MANIFEST = "load.json"
PARTS_DIR = "load"
# Message-IDs looked up per query; the hook splits further if the URL would get too long.
CHUNK_SIZE = 250

_DUPLICATE_KEY_CODES = frozenset({"0x80040237", "0x80060892"})


def _is_duplicate_key(response: BatchResponse) -> bool:
    """Dataverse's answer to a second create with the same primary key (its status is undocumented)."""
    code = (response.error_code or "").lower()
    message = (response.error_message or "").lower()
    return (
        code in _DUPLICATE_KEY_CODES
        or "duplicate key" in message
        or "matching key values already exist" in message
    )


def _error_reason(outcome: BatchOutcome) -> str:
    for response in outcome.responses:
        if response.status >= 400:
            detail = f"{response.error_code or ''} {response.error_message or ''}".strip()
            return f"dataverse_{response.status}: {detail}" if detail else f"dataverse_{response.status}"
    return "dataverse_batch_not_applied: an earlier failure stopped the batch"


@dataclass
class _Chunk:
    index: int
    records: list[dict[str, Any]]


def _chunks(staging: RunStaging, manifest: dict[str, Any]) -> Iterator[_Chunk]:
    lines = staging.read_lines(transform.PAYLOADS_FILE, manifest, "transform")
    for index in itertools.count():
        records = list(itertools.islice(lines, CHUNK_SIZE))
        if not records:
            return
        yield _Chunk(index, records)


def _entry(record: dict[str, Any], outcome: Outcome, reason: str | None) -> LedgerEntry:
    return LedgerEntry(
        nylas_id=record["nylas_id"],
        grant_id=record["grant_id"],
        message_id=record.get("message_id"),
        outcome=outcome,
        reason=reason,
        activity_id=record.get("activity_id"),
    )


def _create_and_complete(number: int, record: dict[str, Any]) -> ChangeSet:
    """Create the email (Open) and complete it in one atomic change set.

    Dataverse ignores ``statecode`` on create and rejects a Completed status there, hence the PATCH
    that refers to the new row by its Content-ID (unique across the whole batch).
    """
    create_id = str(2 * number + 1)
    return ChangeSet(
        requests=[
            BatchRequest("POST", "emails", body=record["create"], content_id=create_id),
            BatchRequest("PATCH", f"${create_id}", body=record["complete"], content_id=str(2 * number + 2)),
        ]
    )


class _ChunkLoader:
    def __init__(self, dataverse: DataverseHook, batch_size: int) -> None:
        self.dataverse = dataverse
        self.batch_size = batch_size

    def existing_message_ids(self, message_ids: list[str]) -> set[str]:
        rows = self.dataverse.query_in("emails", "messageid", message_ids, select=["activityid", "messageid"])
        return {str(row["messageid"]).casefold() for row in rows if row.get("messageid")}

    def load(self, chunk: _Chunk) -> list[LedgerEntry]:
        entries: dict[int, LedgerEntry] = {}
        candidates: list[tuple[int, dict[str, Any]]] = []
        for position, record in enumerate(chunk.records):
            if record["outcome"] is not None:
                entries[position] = _entry(record, Outcome(record["outcome"]), record["reason"])
            else:
                candidates.append((position, record))
        if candidates:
            present = self.existing_message_ids([record["message_id"] for _, record in candidates])
            to_create = []
            for position, record in candidates:
                if record["message_id"].casefold() in present:
                    entries[position] = _entry(record, Outcome.ALREADY_PRESENT, "messageid_exists")
                else:
                    to_create.append((position, record))
            for start in range(0, len(to_create), self.batch_size):
                batch = to_create[start : start + self.batch_size]
                outcomes = self.dataverse.execute_batch(
                    [_create_and_complete(number, record) for number, (_, record) in enumerate(batch)],
                    continue_on_error=True,
                )
                for (position, record), outcome in zip(batch, outcomes, strict=True):
                    entries[position] = self._classify(record, outcome)
        return [entries[position] for position in range(len(chunk.records))]

    @staticmethod
    def _classify(record: dict[str, Any], outcome: BatchOutcome) -> LedgerEntry:
        if outcome.ok:
            return _entry(record, Outcome.CREATED, None)
        failed = [response for response in outcome.responses if response.status >= 400]
        if failed and _is_duplicate_key(failed[0]):
            return _entry(record, Outcome.ALREADY_PRESENT, "activityid_exists")
        return _entry(record, Outcome.FAILED, _error_reason(outcome))


def load_window(grant: GrantConfig, staging: RunStaging, dataverse: DataverseHook) -> str:
    started = time.monotonic()
    manifest = staging.read_manifest(transform.MANIFEST, "transform")
    parts = staging.file(PARTS_DIR)
    parts.mkdir(parents=True, exist_ok=True)
    loader = _ChunkLoader(dataverse, grant.batch_size)
    resumed = 0
    done: Counter[str] = Counter()
    lock = threading.Lock()

    def run(chunk: _Chunk) -> None:
        entries = loader.load(chunk)
        part = parts / f"part-{chunk.index:06d}.json"
        # Written in place, not renamed: object stores have no rename (a move is a copy and a delete).
        # One PUT is all or nothing there; on a local disk a crash can cut the file short, which
        # _finished_part detects (a cut JSON array does not parse), so the chunk is loaded again.
        part.write_bytes(json.dumps([entry.to_json() for entry in entries]).encode())
        with lock:
            done.update(entry.outcome.value for entry in entries)

    # Chunks are produced lazily and at most 2 x workers are in flight, so memory stays bounded.
    workers = max(1, grant.max_concurrency)
    in_flight: set[Future[None]] = set()
    total_chunks = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load") as pool:
        for chunk in _chunks(staging, manifest):
            total_chunks += 1
            if _finished_part(parts / f"part-{chunk.index:06d}.json", len(chunk.records)):
                resumed += 1
                continue
            in_flight.add(pool.submit(run, chunk))
            if len(in_flight) >= 2 * workers:
                finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()
                log.info("Loaded chunks so far: %s", dict(done))
        for future in in_flight:
            future.result()

    ledger_count = _write_ledger(staging, total_chunks)
    staging.write_json(
        MANIFEST,
        {
            "format_version": FORMAT_VERSION,
            "chunks": total_chunks,
            "chunks_resumed": resumed,
            "ledger_entries": ledger_count,
            "requests": {
                "dataverse": dataverse.request_count,
                "dataverse_retries": dataverse.retry_count,
                "dataverse_throttled": dataverse.throttled_count,
                "token": dataverse.token_requests,
            },
            "throttle_wait_s": round(dataverse.throttle_wait_s, 3),
            "duration_s": round(time.monotonic() - started, 3),
        },
    )
    log.info(
        "Load finished: %d chunks (%d resumed from an earlier attempt), outcomes this attempt %s, "
        "%d Dataverse requests (%d throttled)",
        total_chunks,
        resumed,
        dict(done),
        dataverse.request_count,
        dataverse.throttled_count,
    )
    return str(staging.folder)


def _finished_part(part: Any, expected_entries: int) -> bool:
    """A part from an earlier attempt counts only if it is complete; anything else is redone."""
    if not part.exists():
        return False
    try:
        entries = json.loads(part.read_bytes())
    except (ValueError, UnicodeDecodeError):
        log.warning("%s is damaged; its chunk is loaded again (idempotently).", part)
        return False
    return isinstance(entries, list) and len(entries) == expected_entries


def _write_ledger(staging: RunStaging, total_chunks: int) -> int:
    count = 0
    with staging.file(LEDGER_FILE).open("wb") as ledger:
        for index in range(total_chunks):
            part = staging.file(PARTS_DIR) / f"part-{index:06d}.json"
            if not part.exists():
                raise StagingError(f"{part} is missing after load; rerun 'load' for this window.")
            for entry in json.loads(part.read_bytes()):
                ledger.write(json.dumps(entry, ensure_ascii=False).encode() + b"\n")
                count += 1
    return count
