"""Switches for what the real Dataverse leaves open, and the drill faults. Plain data, validated; no I/O.

``DataverseBehaviour`` picks one answer for every behaviour the sources do not settle (docs/sandbox.md,
"Open behaviours", lists each with its sources). Defaults are the sandbox's historic answers, except where
the sandbox was kinder than a documented limit. ``DataverseFaults`` are drill knobs, all off by default.
Both are set at start (``SandboxConfig``, CLI flags), at run time (``DataverseBackend.set_behaviour`` /
``set_faults``, ``POST /_sandbox/behaviour`` / ``/_sandbox/faults``) and restored by ``reset()``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Privileges the sandbox's security model knows (real names; the Activity privileges cover email, its
# activity parties and its attachments). The application user holds all of them unless told otherwise.
KNOWN_PRIVILEGES: tuple[str, ...] = (
    "prvCreateActivity",
    "prvReadActivity",
    "prvWriteActivity",
    "prvDeleteActivity",
    "prvAppendActivity",
    "prvAppendToActivity",
    "prvAssignActivity",
    "prvCreateContact",
    "prvReadContact",
    "prvWriteContact",
    "prvAppendToContact",
    "prvCreateAccount",
    "prvReadAccount",
    "prvWriteAccount",
    "prvAppendToAccount",
    "prvCreateLead",
    "prvReadLead",
    "prvWriteLead",
    "prvAppendToLead",
    "prvReadUser",
    "prvAppendToUser",
    "prvReadOrganization",
    "prvOverrideCreatedOnCreatedBy",
)

MESSAGEID_DUPLICATES = ("allowed", "rejected", "rejected-when-detection-on")
CLOSED_EMAIL_ATTACHMENTS = ("rejected", "allowed")
LENGTH_UNITS = ("utf16", "codepoints")
DUPLICATE_KEY_MESSAGES = ("sql", "matching-key", "integrity")
CONTENT_ID_SCOPES = ("changeset", "batch")
DESCRIPTION_FILTERS = ("rejected", "allowed")
CHANGESET_FAULT_STATUSES = (429, 500, 503)
THROTTLE_CODES = ("0x80072322", "0x80072321", "0x80072326")
GATEWAY_STATUSES = (0, 502, 504)  # 0: the connection is dropped without an answer


def _choice(name: str, value: object, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


def _fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")


@dataclass(frozen=True)
class DataverseBehaviour:
    """One answer per open behaviour. See docs/sandbox.md for the sources of every field."""

    # $batch (uncertain-behaviours rows 1, 16, 17)
    batch_stop_on_failed_changeset: bool = False  # True: #2735, later parts not run, outer 200
    batch_require_crlf: bool = False
    content_id_scope: str = "changeset"  # "batch": Content-IDs unique across the whole batch (OData 4.01)
    max_batch_operations: int = 1000  # 250: the intermittent cap reported in powerapps-docs #1890
    # Activity parties (row 9): mask-1 (From) parties only to the PartyList's targets (queue, systemuser)
    sender_party_restricted: bool = False
    # Security model (row 6): privileges the sandbox's application user lacks
    missing_privileges: tuple[str, ...] = ()
    # messageid uniqueness (row 13)
    messageid_duplicates: str = "allowed"
    # messageid lookups served by an index (row 5 / performance); False: every lookup scans the table
    messageid_indexed: bool = True
    # Attachments (dataverse.md section 4, open question 4)
    max_upload_file_size: int = 5_242_880  # organization.maxuploadfilesize, bytes of Base64 text
    attachments_on_closed_email: str = "rejected"
    # Seeds (row 22): inactive contacts/accounts and disqualified leads
    seed_inactive_rows: bool = True
    # Requests (row 14)
    max_url_length: int = 32_768  # GET URL; inside $batch twice that
    description_filter: str = "rejected"
    # Validation (rows 4 and 12)
    length_unit: str = "utf16"
    duplicate_key_status: int = 412
    duplicate_key_message: str = "sql"

    def validate(self) -> None:
        if self.max_batch_operations < 1:
            raise ValueError(f"max_batch_operations must be positive, got {self.max_batch_operations}")
        unknown = sorted(set(self.missing_privileges) - set(KNOWN_PRIVILEGES))
        if unknown:
            raise ValueError(f"unknown privileges {unknown}; known: {list(KNOWN_PRIVILEGES)}")
        _choice("content_id_scope", self.content_id_scope, CONTENT_ID_SCOPES)
        _choice("messageid_duplicates", self.messageid_duplicates, MESSAGEID_DUPLICATES)
        _choice("attachments_on_closed_email", self.attachments_on_closed_email, CLOSED_EMAIL_ATTACHMENTS)
        _choice("description_filter", self.description_filter, DESCRIPTION_FILTERS)
        _choice("length_unit", self.length_unit, LENGTH_UNITS)
        _choice("duplicate_key_message", self.duplicate_key_message, DUPLICATE_KEY_MESSAGES)
        _choice("duplicate_key_status", self.duplicate_key_status, (400, 412, 500))
        if not 1 <= self.max_upload_file_size <= 131_072_000:
            raise ValueError(
                f"max_upload_file_size must be between 1 and 131072000 bytes, got {self.max_upload_file_size}"
            )
        if self.max_url_length < 256:
            raise ValueError(f"max_url_length must be at least 256, got {self.max_url_length}")


@dataclass(frozen=True)
class DataverseFaults:
    """Drill knobs, all off by default. Fractions are probabilities (one seeded RNG for all of them).

    Per request: injected 429s use the request-count code ``0x80072322`` with ``Retry-After`` 1, 2, 3, ...
    (capped at 10) for consecutive injections; injected 5xx are 500 or 503 at random with code
    ``0x80040216``; ``expire_tokens_every_s`` invalidates every issued token on that period, so clients
    see 401 and must fetch a new token (MSAL's cache would otherwise hand back the dead one).

    Per change set inside a ``$batch`` that itself answers 200: a random fraction of change sets (429 or
    5xx), the ``changeset_fault_nth`` change set of every batch, or the change sets whose operations mention
    one of ``changeset_fault_match`` (a messageid or activityid, say) the first ``changeset_fault_times``
    times each, are answered with a ``changeset_fault_status`` part and rolled back.

    After the work: every ``gateway_after_apply_every``-th write (POST, PATCH, DELETE; a ``$batch`` is a
    POST) is applied and committed, then answered by the gateway with ``gateway_after_apply_status`` (502,
    504, or 0 to drop the connection without an answer).
    """

    throttle_fraction: float = 0.0
    error_5xx_fraction: float = 0.0
    latency_s: float = 0.0
    expire_tokens_every_s: float | None = None
    seed: int = 0
    changeset_throttle_fraction: float = 0.0
    changeset_5xx_fraction: float = 0.0
    changeset_fault_nth: int = 0
    changeset_fault_match: tuple[str, ...] = field(default=())
    changeset_fault_times: int = 1
    changeset_fault_status: int = 429
    changeset_throttle_code: str = "0x80072322"
    gateway_after_apply_every: int = 0
    gateway_after_apply_status: int = 504

    def validate(self) -> None:
        for name in (
            "throttle_fraction",
            "error_5xx_fraction",
            "changeset_throttle_fraction",
            "changeset_5xx_fraction",
        ):
            _fraction(name, getattr(self, name))
        if self.latency_s < 0:
            raise ValueError(f"latency_s must not be negative, got {self.latency_s}")
        if self.expire_tokens_every_s is not None and self.expire_tokens_every_s <= 0:
            raise ValueError(
                f"expire_tokens_every_s must be positive or null, got {self.expire_tokens_every_s}"
            )
        for name in ("changeset_fault_nth", "gateway_after_apply_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.changeset_fault_times < 1:
            raise ValueError(f"changeset_fault_times must be at least 1, got {self.changeset_fault_times}")
        _choice("changeset_fault_status", self.changeset_fault_status, CHANGESET_FAULT_STATUSES)
        _choice("changeset_throttle_code", self.changeset_throttle_code, THROTTLE_CODES)
        _choice("gateway_after_apply_status", self.gateway_after_apply_status, GATEWAY_STATUSES)
        if any(not isinstance(m, str) or not m for m in self.changeset_fault_match):
            raise ValueError("changeset_fault_match must be a list of non-empty strings")


_TUPLE_FIELDS = {"missing_privileges", "changeset_fault_match"}


def changed(current: Any, changes: dict[str, Any]) -> Any:
    """A validated copy of ``current`` (a behaviour or faults object) with ``changes`` applied."""
    kind = type(current)
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown {kind.__name__} fields {unknown}; known: {sorted(known)}")
    values = {**asdict(current), **changes}
    for name in _TUPLE_FIELDS & set(values):
        raw = values[name]
        if isinstance(raw, str):
            raw = [raw]
        values[name] = tuple(raw or ())
    candidate = kind(**values)
    candidate.validate()
    return candidate


def as_json(value: Any) -> dict[str, Any]:
    data = asdict(value)
    for name in _TUPLE_FIELDS & set(data):
        data[name] = list(data[name])
    return data
