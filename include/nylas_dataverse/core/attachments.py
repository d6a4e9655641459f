"""Attachments: which of a message's files become ``activitymimeattachment`` rows, their ids, their outcomes,
and how emails with files are packed into ``$batch`` requests.

The policy (per grant, from the grants file; ``AttachmentPolicy``), applied to each entry of the message's
``attachments[]`` in order, first match wins:

1. ``attachments: off`` -> skipped, ``attachments_off``;
2. an entry that cannot be downloaded (no id, a size that is not a byte count) -> ``invalid_attachment``;
3. an inline part (``is_inline``) with ``inline_attachments: skip`` (the default) -> ``inline``;
4. a file name extension or content type in ``blocked_attachment_types`` -> ``blocked_type``;
5. more than ``max_attachment_mb`` MiB (as Nylas reports the size) -> ``over_grant_limit``;
6. a Base64 body longer than the org's ``maxuploadfilesize`` (Dataverse applies its limit to the Base64
   text) -> ``over_org_limit``;
7. beyond the ``MAX_FILES_PER_EMAIL``-th file kept -> ``too_many_files`` (one change set must fit in a
   ``$batch`` of 1,000 operations);
8. otherwise the file is uploaded.

An inline part keeps its Content-ID without the angle brackets, as the body's ``cid:`` links name it.
A skipped file never stops its email: the email is created without it and the attachment ledger says why.
Load checks the downloaded length again (Microsoft's ``size`` is an estimate that counts MIME headers).

Identity: ``attachment_row_id`` = uuid5(ATTACHMENT_NAMESPACE, "<activityid>/<position>/<casefolded file
name>"). The email's ``activityid`` comes from its Message-ID (the dedupe key), so a rerun, a retry or another
grant's copy of the message always names the same rows, and the file is created in the email's own change set
(before the email is completed), so Dataverse holds either the email with all its kept files or neither.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from nylas_dataverse.core.messages import NylasAttachment

ATTACHMENT_NAMESPACE = uuid.UUID("5f1f8f3e-7a2b-4c61-9d0e-2b7c4a9e1d30")
MIB = 1024 * 1024
# Every operation of a change set counts against the $batch limit of 1,000: the email's create and complete.
BATCH_MAX_OPERATIONS = 1000
OPERATIONS_PER_EMAIL = 2
MAX_FILES_PER_EMAIL = BATCH_MAX_OPERATIONS - OPERATIONS_PER_EMAIL
# What one $batch request body may weigh (the emails' JSON plus their Base64 files). Dataverse documents no
# request size limit for $batch; this keeps one request well inside client timeouts and proxies.
DEFAULT_BATCH_BYTE_BUDGET = 48 * MIB
# Dataverse's default organization.maxuploadfilesize (used when the org does not say).
DEFAULT_ORG_LIMIT_BYTES = 5_242_880
DEFAULT_BLOCKED_TYPES = (".exe", ".bat", ".cmd", ".com", ".js", ".vbs", ".ps1", ".msi", ".scr")
ON_OFF = ("on", "off")
INLINE_CHOICES = ("skip", "keep")


class AttachmentSkip(StrEnum):
    OFF = "attachments_off"
    INVALID = "invalid_attachment"
    INLINE = "inline"
    BLOCKED = "blocked_type"
    OVER_GRANT_LIMIT = "over_grant_limit"
    OVER_ORG_LIMIT = "over_org_limit"
    TOO_MANY = "too_many_files"


class AttachmentOutcome(StrEnum):
    CREATED = "created"
    ALREADY_PRESENT = "already_present"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class AttachmentPolicy:
    enabled: bool = True
    max_attachment_mb: int | None = None
    keep_inline: bool = False
    blocked_types: tuple[str, ...] = DEFAULT_BLOCKED_TYPES


def base64_length(size: int) -> int:
    """Characters of the Base64 text of ``size`` bytes (padded, no line breaks)."""
    return 4 * -(-size // 3)


def attachment_row_id(activity_id: str, position: int, filename: str) -> str:
    return str(uuid.uuid5(ATTACHMENT_NAMESPACE, f"{activity_id.lower()}/{position}/{filename.casefold()}"))


def blocked_type(attachment: NylasAttachment, blocked: Sequence[str]) -> str | None:
    """The entry of ``blocked`` that matches the file (an extension like ``.exe`` or a content type)."""
    name = attachment.filename.casefold()
    content_type = attachment.content_type.split(";", 1)[0].strip().casefold()
    for entry in blocked:
        if entry.startswith(".") and name.endswith(entry):
            return entry
        if "/" in entry and content_type == entry:
            return entry
    return None


@dataclass(frozen=True)
class AttachmentPlan:
    """One file of an email and what to do with it: upload it (``skip`` None) or skip it with the reason."""

    position: int
    row_id: str
    nylas_id: str
    filename: str
    content_type: str
    size: int
    is_inline: bool = False
    content_id: str = ""
    skip: str | None = None

    @property
    def upload(self) -> bool:
        return self.skip is None

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "row_id": self.row_id,
            "nylas_id": self.nylas_id,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "is_inline": self.is_inline,
            "content_id": self.content_id,
            "skip": self.skip,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AttachmentPlan:
        skip = data.get("skip")
        return cls(
            position=int(data["position"]),
            row_id=str(data["row_id"]),
            nylas_id=str(data["nylas_id"]),
            filename=str(data["filename"]),
            content_type=str(data["content_type"]),
            size=int(data["size"]),
            is_inline=bool(data.get("is_inline", False)),
            content_id=str(data.get("content_id", "")),
            skip=None if skip is None else str(skip),
        )


def _skip_reason(
    attachment: NylasAttachment, policy: AttachmentPolicy, org_limit_bytes: int, kept: int
) -> str | None:
    if not policy.enabled:
        return AttachmentSkip.OFF.value
    if attachment.problem is not None:
        return f"{AttachmentSkip.INVALID.value}: {attachment.problem}"
    if attachment.is_inline and not policy.keep_inline:
        return AttachmentSkip.INLINE.value
    matched = blocked_type(attachment, policy.blocked_types)
    if matched is not None:
        return f"{AttachmentSkip.BLOCKED.value}: {matched}"
    if policy.max_attachment_mb is not None and attachment.size > policy.max_attachment_mb * MIB:
        limit = policy.max_attachment_mb
        return f"{AttachmentSkip.OVER_GRANT_LIMIT.value}: {attachment.size} bytes > {limit} MiB"
    if base64_length(attachment.size) > org_limit_bytes:
        return over_org_limit(attachment.size, org_limit_bytes)
    if kept >= MAX_FILES_PER_EMAIL:
        return f"{AttachmentSkip.TOO_MANY.value}: more than {MAX_FILES_PER_EMAIL} files on one email"
    return None


def over_org_limit(size: int, org_limit_bytes: int) -> str:
    return (
        f"{AttachmentSkip.OVER_ORG_LIMIT.value}: {base64_length(size)} Base64 bytes > maxuploadfilesize"
        f" {org_limit_bytes}"
    )


def plan_attachments(
    activity_id: str,
    attachments: Sequence[NylasAttachment],
    policy: AttachmentPolicy,
    org_limit_bytes: int,
) -> tuple[AttachmentPlan, ...]:
    """What to do with each of an email's files, in the message's order (see the module docstring)."""
    plans: list[AttachmentPlan] = []
    kept = 0
    for position, attachment in enumerate(attachments):
        skip = _skip_reason(attachment, policy, org_limit_bytes, kept)
        kept += skip is None
        plans.append(
            AttachmentPlan(
                position=position,
                row_id=attachment_row_id(activity_id, position, attachment.filename),
                nylas_id=attachment.id,
                filename=attachment.filename or f"attachment-{position + 1}",
                content_type=attachment.content_type or "application/octet-stream",
                size=attachment.size,
                is_inline=attachment.is_inline,
                content_id=attachment.content_id.strip().strip("<>"),
                skip=skip,
            )
        )
    return tuple(plans)


@dataclass(frozen=True)
class AttachmentEntry:
    """One line of the attachment ledger: one file of one email and what became of it. No file names or
    content: the email's ids, the file's position, its row id, type, size and outcome."""

    nylas_message_id: str
    activity_id: str
    position: int
    row_id: str
    outcome: AttachmentOutcome
    reason: str | None = None
    content_type: str = ""
    size: int = 0
    bytes_moved: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", AttachmentOutcome(self.outcome))
        if self.outcome in (AttachmentOutcome.SKIPPED, AttachmentOutcome.FAILED) and not self.reason:
            raise ValueError(f"a {self.outcome} attachment entry needs a reason (row {self.row_id})")

    @property
    def reason_code(self) -> str | None:
        return None if self.reason is None else self.reason.split(":", 1)[0].strip()

    def to_json(self) -> dict[str, Any]:
        return {
            "nylas_message_id": self.nylas_message_id,
            "activity_id": self.activity_id,
            "position": self.position,
            "row_id": self.row_id,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "content_type": self.content_type,
            "size": self.size,
            "bytes_moved": self.bytes_moved,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AttachmentEntry:
        return cls(
            nylas_message_id=str(data["nylas_message_id"]),
            activity_id=str(data["activity_id"]),
            position=int(data["position"]),
            row_id=str(data["row_id"]),
            outcome=AttachmentOutcome(data["outcome"]),
            reason=data.get("reason"),
            content_type=str(data.get("content_type", "")),
            size=int(data.get("size", 0)),
            bytes_moved=int(data.get("bytes_moved", 0)),
        )

    @classmethod
    def of(
        cls,
        plan: AttachmentPlan,
        nylas_message_id: str,
        activity_id: str,
        outcome: AttachmentOutcome,
        reason: str | None = None,
        bytes_moved: int = 0,
    ) -> AttachmentEntry:
        return cls(
            nylas_message_id=nylas_message_id,
            activity_id=activity_id,
            position=plan.position,
            row_id=plan.row_id,
            outcome=outcome,
            reason=reason,
            content_type=plan.content_type,
            size=plan.size,
            bytes_moved=bytes_moved,
        )


def summarize(entries: Sequence[AttachmentEntry] | Any) -> dict[str, Any]:
    """Counts by outcome, skips and failures by reason code, and the bytes uploaded."""
    counts = {outcome.value: 0 for outcome in AttachmentOutcome}
    skipped: dict[str, int] = {}
    failed: dict[str, int] = {}
    moved = 0
    for entry in entries:
        counts[entry.outcome.value] += 1
        moved += entry.bytes_moved
        code = entry.reason_code or ""
        if entry.outcome is AttachmentOutcome.SKIPPED:
            skipped[code] = skipped.get(code, 0) + 1
        elif entry.outcome is AttachmentOutcome.FAILED:
            failed[code] = failed.get(code, 0) + 1
    return {
        "counts": counts,
        "skipped_by_reason": dict(sorted(skipped.items())),
        "failed_by_reason": dict(sorted(failed.items())),
        "bytes_moved": moved,
    }


def plan_batches(weights: Sequence[tuple[int, int]], max_emails: int, byte_budget: int) -> list[range]:
    """Split emails, in order, into consecutive ``$batch`` groups.

    ``weights`` holds (operations, bytes) per email. A group has at most ``max_emails`` emails, at most
    ``BATCH_MAX_OPERATIONS`` operations and at most ``byte_budget`` bytes; an email heavier than the budget on
    its own is sent alone (a change set cannot be split).
    """
    if max_emails < 1:
        raise ValueError(f"max_emails must be at least 1, got {max_emails}")
    groups: list[range] = []
    start = 0
    operations = size = 0
    for index, (ops, weight) in enumerate(weights):
        if ops > BATCH_MAX_OPERATIONS:
            raise ValueError(f"one change set of {ops} operations cannot fit in a $batch")
        count = index - start
        if count and (
            count >= max_emails or operations + ops > BATCH_MAX_OPERATIONS or size + weight > byte_budget
        ):
            groups.append(range(start, index))
            start, operations, size = index, 0, 0
        operations += ops
        size += weight
    if start < len(weights):
        groups.append(range(start, len(weights)))
    return groups
