"""Switches: where Nylas' behaviour is undocumented or contradictory, the sandbox can give each answer.

Each field is one open behaviour (the "open behaviours" table in docs/sandbox.md names the sources for
every answer). The defaults are the sandbox's long-standing answers, except where that answer was kinder
than a documented one (``retry_after``: Nylas documents ``Retry-After`` only for Microsoft and EWS
throttling). Pipelines must work under every combination; tests set them with
``NylasBackend.set_switches`` or ``POST /_sandbox/switches``, people with ``serve --nylas-...`` flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# field name -> the values it accepts (numbers are checked separately)
CHOICES: dict[str, tuple[str, ...]] = {
    "received_after": ("inclusive", "exclusive"),
    "received_before": ("exclusive", "inclusive"),
    "received_field": ("date", "created_at"),
    "list_body": ("included", "omitted"),
    "retry_after": ("microsoft", "always", "never"),
    "imap_headers": ("supported", "unsupported"),
    "cursor": ("normal", "cycle", "repeat"),
    "expired_grant_error": ("unauthorized", "refresh_token_invalid"),
    "download_content_type": ("octet-stream", "attachment"),
}
BAD_API_KEY_STATUSES = (401, 400)
# The most a message's created_at lags its date, in the seed and in bulk days (filters rely on it).
MAX_SYNC_LAG_S = 120


@dataclass(frozen=True)
class NylasSwitches:
    """One answer per open behaviour; see the module docstring and docs/sandbox.md."""

    # Row 3: is the lower time bound inclusive, the upper one, and which timestamp do they compare?
    received_after: str = "inclusive"
    received_before: str = "exclusive"
    received_field: str = "date"  # or created_at: "when Nylas first synced" the message, after date
    # Row 7: do list responses carry body (the single GET always does)?
    list_body: str = "included"
    # Row 8: lists with fields=include_headers and a larger limit answer 504 (0: never).
    headers_504_over_limit: int = 0
    # Row 11: which 429s carry Retry-After.
    retry_after: str = "microsoft"
    # Row 18: do IMAP (iCloud, Yahoo) grants return headers when asked?
    imap_headers: str = "supported"
    # Row 19 and cursor pathologies: next_cursor well-behaved, cycling A, B, A, B, or repeating itself.
    cursor: str = "normal"
    cursor_ttl_s: float = 0.0  # cursors older than this are refused (0: they never expire)
    # A rejected API key: 401 (the Nylas CLI's fixtures) or 400 (the error-type catalogue).
    bad_api_key_status: int = 401
    # An expired grant: the contract's 401 example (provider error inside) or the catalogue's type.
    expired_grant_error: str = "unauthorized"
    # Attachment downloads: the contract's application/octet-stream, or the attachment's own type.
    download_content_type: str = "octet-stream"

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"switch {name} must be one of {', '.join(allowed)}; got {value!r}")
        for name in ("headers_504_over_limit", "cursor_ttl_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"switch {name} must be a number >= 0, got {value!r}")
        if self.headers_504_over_limit != int(self.headers_504_over_limit):
            raise ValueError(
                f"switch headers_504_over_limit must be a whole number, got {self.headers_504_over_limit}"
            )
        if self.bad_api_key_status not in BAD_API_KEY_STATUSES or isinstance(self.bad_api_key_status, bool):
            raise ValueError(f"switch bad_api_key_status must be 401 or 400, got {self.bad_api_key_status!r}")

    def replace(self, values: dict[str, Any]) -> NylasSwitches:
        """A copy with some switches changed; unknown names are refused with the known ones."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown switch(es) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **values)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def changed(self) -> dict[str, Any]:
        """The switches that differ from the defaults (what a log line or a report should show)."""
        default = NylasSwitches()
        return {name: value for name, value in self.as_dict().items() if getattr(default, name) != value}
