"""Every name in the staging area, in one place (no I/O here; ``staging.py`` reads and writes).

Under the staging root (``NYLAS_DATAVERSE_STAGING``, any ``ObjectStoragePath`` URL)::

    <dag_id>/<run label>/               one run of one grant; the label is the UTC day (2026-11-04), or
                                        realtime-<batch id> for the real-time path
        extract.json                    manifest written last by extract: counts, checksum, folder roles
        messages.jsonl.gz               Nylas messages as received (bodies included)
        transform.json                  manifest written last by transform
        payloads.jsonl.gz               one Decision per message (core/records.py)
        quarantine.jsonl.gz             messages that could not be parsed, kept for inspection
        load/part-000000.json           ledger entries of each finished load chunk (resume points)
        load.json                       manifest written last by load
        ledger.jsonl                    one outcome per extracted message
        report.json                     run counts, request counts, durations
        failure.json                    the last failed attempt of a task: kind, message (removed by a rerun)
    _realtime/                          the webhook inbox (realtime/inbox.py documents its sub-layout)
        grant_status/<grant id>.json    the newest grant.expired notification of a grant (the receiver)
    _summary/                           what the health page reads (pipeline/summary.py)
        <grant key>.json                one grant's summary, rebuilt from its entries after each write
        <grant key>/daily/<day>~<stamp>.json              a daily run's entry, one file per version
        <grant key>/realtime/<day>/<label>~<stamp>.json   a real-time run's entry, by processing day
    _preflight/<fingerprint>.json       the last passing privilege check of an application user (1 h)

A manifest is written only after its data file is complete and carries the data file's line count and
SHA-256, so a reader can tell a finished file from a missing, truncated or replaced one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from types import MappingProxyType

FORMAT_VERSION = 1
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

EXTRACT_MANIFEST = "extract.json"
MESSAGES = "messages.jsonl.gz"
TRANSFORM_MANIFEST = "transform.json"
DECISIONS = "payloads.jsonl.gz"
QUARANTINE = "quarantine.jsonl.gz"
LOAD_PARTS = "load"
LOAD_MANIFEST = "load.json"
LEDGER = "ledger.jsonl"
ATTACHMENT_LEDGER = "attachments.jsonl"
REPORT = "report.json"
FAILURE = "failure.json"

INBOX_DIR = "_realtime"
PREFLIGHT_DIR = "_preflight"
REALTIME_LABEL_PREFIX = "realtime-"
GRANT_STATUS_DIR = "grant_status"  # under INBOX_DIR
SUMMARY_DIR = "_summary"
SUMMARY_DAILY = "daily"
SUMMARY_REALTIME = "realtime"

# What each stage writes; rerunning a stage invalidates its own files and everything after it.
STAGES = ("extract", "transform", "load", "report")
STAGE_FILES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "extract": (MESSAGES, EXTRACT_MANIFEST),
        "transform": (DECISIONS, QUARANTINE, TRANSFORM_MANIFEST),
        "load": (LOAD_PARTS, LEDGER, ATTACHMENT_LEDGER, LOAD_MANIFEST),
        "report": (REPORT,),
    }
)
STAGE_MANIFESTS: Mapping[str, str] = MappingProxyType(
    {"extract": EXTRACT_MANIFEST, "transform": TRANSFORM_MANIFEST, "load": LOAD_MANIFEST}
)


def load_part(index: int) -> str:
    """The resume point of load chunk ``index`` (relative to the run folder)."""
    return f"{LOAD_PARTS}/part-{index:06d}.json"


def attachment_part(index: int) -> str:
    """The attachment outcomes of load chunk ``index``, written just before its resume point."""
    return f"{LOAD_PARTS}/attachments-{index:06d}.json"


def attachment_file(row_id: str) -> str:
    """Where load streams one downloaded file (removed once its chunk is loaded)."""
    return f"{LOAD_PARTS}/files/{row_id}"


def after(stage: str) -> tuple[str, ...]:
    """The files of every stage after ``stage`` (what a rerun of ``stage`` must remove)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    later = STAGES[STAGES.index(stage) + 1 :]
    return tuple(name for name_of_stage in later for name in STAGE_FILES[name_of_stage])


def realtime_label(batch_id: str) -> str:
    return f"{REALTIME_LABEL_PREFIX}{batch_id}"


def summary_file(grant_key: str) -> str:
    """A grant's summary (relative to the staging root)."""
    return f"{SUMMARY_DIR}/{grant_key}.json"


def summary_entries(grant_key: str) -> str:
    """The folder of a grant's run entries (relative to the staging root)."""
    return f"{SUMMARY_DIR}/{grant_key}"


def grant_status_marker(grant_id: str) -> str:
    """Where the webhook receiver records a grant's ``grant.expired`` (relative to the staging root).

    Nylas grant ids are UUIDs; anything else is hashed so that the name is always one safe path segment.
    """
    safe = grant_id if _SAFE_NAME.fullmatch(grant_id) else hashlib.sha256(grant_id.encode()).hexdigest()
    return f"{INBOX_DIR}/{GRANT_STATUS_DIR}/{safe}.json"
