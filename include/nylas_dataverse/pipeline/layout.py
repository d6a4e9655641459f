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
    _preflight/<fingerprint>.json       the last passing privilege check of an application user (1 h)

A manifest is written only after its data file is complete and carries the data file's line count and
SHA-256, so a reader can tell a finished file from a missing, truncated or replaced one.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

FORMAT_VERSION = 1

EXTRACT_MANIFEST = "extract.json"
MESSAGES = "messages.jsonl.gz"
TRANSFORM_MANIFEST = "transform.json"
DECISIONS = "payloads.jsonl.gz"
QUARANTINE = "quarantine.jsonl.gz"
LOAD_PARTS = "load"
LOAD_MANIFEST = "load.json"
LEDGER = "ledger.jsonl"
REPORT = "report.json"
FAILURE = "failure.json"

INBOX_DIR = "_realtime"
PREFLIGHT_DIR = "_preflight"
REALTIME_LABEL_PREFIX = "realtime-"

# What each stage writes; rerunning a stage invalidates its own files and everything after it.
STAGES = ("extract", "transform", "load", "report")
STAGE_FILES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "extract": (MESSAGES, EXTRACT_MANIFEST),
        "transform": (DECISIONS, QUARANTINE, TRANSFORM_MANIFEST),
        "load": (LOAD_PARTS, LEDGER, LOAD_MANIFEST),
        "report": (REPORT,),
    }
)
STAGE_MANIFESTS: Mapping[str, str] = MappingProxyType(
    {"extract": EXTRACT_MANIFEST, "transform": TRANSFORM_MANIFEST, "load": LOAD_MANIFEST}
)


def load_part(index: int) -> str:
    """The resume point of load chunk ``index`` (relative to the run folder)."""
    return f"{LOAD_PARTS}/part-{index:06d}.json"


def after(stage: str) -> tuple[str, ...]:
    """The files of every stage after ``stage`` (what a rerun of ``stage`` must remove)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    later = STAGES[STAGES.index(stage) + 1 :]
    return tuple(name for name_of_stage in later for name in STAGE_FILES[name_of_stage])


def realtime_label(batch_id: str) -> str:
    return f"{REALTIME_LABEL_PREFIX}{batch_id}"
