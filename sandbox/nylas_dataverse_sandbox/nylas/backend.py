"""State of the Nylas stand-in: grants, folders, messages, fault knobs and counters. No HTTP here.

Choices where Nylas' behaviour is undocumented (see nylas.md §11), made so a client that relies on the
undocumented side breaks here rather than in production:

- ``limit`` above 200 is rejected with 400 rather than clamped.
- ``received_after`` / ``received_before``: by default inclusive (``date >= after``) and exclusive
  (``date < before``) on ``date``; the switches (``switches.py``) give the other answers, including a
  filter on ``created_at``.
- ``page_token`` is an opaque base64url cursor that remembers the position after the last message
  served (date, source, index) and a hash of the grant and filters; sending it with other filters, or
  for another grant, is a 400. Mail that arrives while a client pages is not shown on later pages.
  Switches make cursors cycle, repeat themselves or expire.
- An unknown folder id in ``in`` is a 400 naming it, like a provider rejecting a label it does not know.
- ``GET /v3/grants/{id}`` of an expired grant answers 200 with ``grant_status: invalid``; data calls
  on it answer 401.
- ``add_copies`` puts seeded messages in their mailbox a second time under new ids, as one RFC message
  arrives twice in production (a reply's client Sent copy and the provider's copy; IMAP folders).

``reset()`` returns to the configured state: seed, switches and faults as given to the constructor.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import datetime as dt
import hashlib
import heapq
import hmac
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas import attachments, errors, folders, ids, seed
from nylas_dataverse_sandbox.nylas.bulk import BulkDay
from nylas_dataverse_sandbox.nylas.switches import MAX_SYNC_LAG_S, NylasSwitches
from nylas_dataverse_sandbox.personas import GrantPersona

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
_GRANT_CREATED_AT = 1_767_225_600  # 2026-01-01T00:00:00Z
_SCOPES = {
    "google": (
        "https://www.googleapis.com/auth/gmail.readonly",
        "https://www.googleapis.com/auth/userinfo.email",
        "openid",
    ),
    "microsoft": ("Mail.Read", "User.Read", "offline_access"),
    "imap": (),
}
# Microsoft Graph cannot combine these filter groups (nylas.md §2.1).
_MS_GROUP_ONE = ("thread_id", "unread", "starred")
_MS_GROUP_TWO = ("subject", "to", "cc", "bcc", "any_email")
# Bulk days are sources 1 ... ids.MAX_BULK_SOURCES; each add_copies call is a source numbered after them.
_COPY_SOURCE_BASE = ids.MAX_BULK_SOURCES + 1
FAILING_MESSAGE_STATUSES = frozenset({400, 504})


@dataclass
class NylasFaults:
    """Fault knobs. ``*_every = N`` fails every Nth ``/v3`` request counted since the knobs last changed."""

    rate_limit_every: int = 0
    retry_after_s: float = 1
    html_502_every: int = 0
    timeout_504_every: int = 0
    timeout_504_over_limit: int = 0  # list requests with a larger ``limit`` time out (0: off)
    latency_s: float = 0
    expired_grants: set[str] = field(default_factory=set)  # grant keys, ids or email addresses
    # Message id -> the status every GET of that one message answers: 400 (a request Nylas refuses for
    # it) or 504 (a provider timing out on it, say a huge message); other messages are unaffected.
    failing_messages: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["expired_grants"] = sorted(self.expired_grants)
        return values

    def copy(self) -> NylasFaults:
        return dataclasses.replace(
            self, expired_grants=set(self.expired_grants), failing_messages=dict(self.failing_messages)
        )


@dataclass
class NylasStats:
    """Request counters; ``route`` is the route template, e.g. ``GET /v3/grants/{grant}/messages``."""

    by_route: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)

    def record(self, route: str, status: int) -> None:
        self.by_route[route] += 1
        self.by_status[status] += 1

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_route": dict(sorted(self.by_route.items())),
            "by_status": {str(status): n for status, n in sorted(self.by_status.items())},
        }


@dataclass(frozen=True)
class MessageFilters:
    """The list filters of ``GET /messages``; scalar values, as the API keeps one of repeated params."""

    received_after: int | None = None
    received_before: int | None = None
    in_folder: str | None = None
    subject: str | None = None
    any_email: tuple[str, ...] | None = None
    from_: str | None = None
    to: str | None = None
    cc: str | None = None
    bcc: str | None = None
    unread: bool | None = None
    starred: bool | None = None
    has_attachment: bool | None = None
    thread_id: str | None = None
    metadata_pair: str | None = None

    @property
    def only_time(self) -> bool:
        """True when only the time window filters (sources turn it into an index range)."""
        return all(
            getattr(self, f.name) is None
            for f in dataclasses.fields(self)
            if f.name not in ("received_after", "received_before")
        )

    def fingerprint(self, grant_id: str) -> str:
        canonical = json.dumps([grant_id, dataclasses.asdict(self)], sort_keys=True, default=list)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def matches(self, message: dict[str, Any]) -> bool:
        """Every filter but the time window (the backend applies that, as its switches say)."""
        if self.in_folder is not None and self.in_folder not in message["folders"]:
            return False
        if self.subject is not None and self.subject not in message.get("subject", ""):
            return False
        if self.thread_id is not None and message["thread_id"] != self.thread_id:
            return False
        for flag, value in (("unread", self.unread), ("starred", self.starred)):
            if value is not None and message[flag] != value:
                return False
        if self.has_attachment is not None and bool(message["attachments"]) != self.has_attachment:
            return False
        for field_name, wanted in (("from", self.from_), ("to", self.to), ("cc", self.cc), ("bcc", self.bcc)):
            if wanted is not None and wanted.lower() not in _emails(message, field_name):
                return False
        if self.any_email is not None:
            everyone = set().union(*(_emails(message, name) for name in ("from", "to", "cc", "bcc")))
            if not everyone.intersection(address.lower() for address in self.any_email):
                return False
        if self.metadata_pair is not None:
            meta_key, _, meta_value = self.metadata_pair.partition(":")
            if message.get("metadata", {}).get(meta_key) != meta_value:
                return False
        return True


def _emails(message: dict[str, Any], field_name: str) -> set[str]:
    return {participant["email"].lower() for participant in message.get(field_name, [])}


@dataclass(frozen=True)
class TimeWindow:
    """The messages a ``received_after``/``received_before`` pair selects: ``low <= t < high``."""

    low: int | None  # inclusive
    high: int | None  # exclusive
    field: str  # "date" or "created_at"

    @classmethod
    def of(cls, filters: MessageFilters, switches: NylasSwitches) -> TimeWindow:
        low = filters.received_after
        if low is not None and switches.received_after == "exclusive":
            low += 1
        high = filters.received_before
        if high is not None and switches.received_before == "inclusive":
            high += 1
        return cls(low, high, switches.received_field)

    def admits(self, value: int) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value < self.high)


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


class _Source(Protocol):
    @property
    def source_no(self) -> int: ...

    def __len__(self) -> int: ...

    def date_at(self, index: int) -> int: ...

    def created_at_at(self, index: int) -> int: ...


@dataclass(frozen=True)
class _SeedSource:
    messages: tuple[dict[str, Any], ...]
    dates: tuple[int, ...]
    created: tuple[int, ...]
    source_no: int = 0

    def __len__(self) -> int:
        return len(self.messages)

    def date_at(self, index: int) -> int:
        return self.dates[index]

    def created_at_at(self, index: int) -> int:
        return self.created[index]


def _has_message_id(message: dict[str, Any]) -> bool:
    return any(header["name"].lower() == "message-id" for header in message.get("headers", []))


def _copy_id(grant: GrantPersona, original: dict[str, Any], salt: int) -> str:
    """A new id in the provider's shape for a second copy of ``original`` (a pure function of its args)."""
    seed_bytes = ids.digest("copy", grant.grant_id, original["id"], salt)
    if grant.provider == "google":
        # Seeded Gmail ids use milliseconds 500..999 and bulk ids 1..499 (their source): copies take 0.
        return ids.google_id(original["date"], 0, int.from_bytes(seed_bytes[:3], "big"))
    if grant.provider == "microsoft":
        # Graph's prefix and the mailbox's tag of the original, a mark of its own, then filler; retried
        # until the base64 shows both "/" and "+", as the other Graph-shaped ids do.
        raw = base64.b64decode(original["id"])
        head = raw[:20] + b"C"
        for attempt in itertools.count():
            stem = seed_bytes + attempt.to_bytes(4, "big")
            filler = b"".join(hashlib.sha256(stem + bytes([block])).digest() for block in range(4))
            encoded = base64.b64encode((head + filler)[: len(raw)]).decode()
            if "/" in encoded and "+" in encoded:
                return encoded
    return ids.base36(seed_bytes, 25)


def _first_index_below(source: _Source, bound: int) -> int:
    """The first index whose date is below ``bound`` (dates never increase with the index)."""
    low, high = 0, len(source)
    while low < high:
        middle = (low + high) // 2
        if source.date_at(middle) < bound:
            high = middle
        else:
            low = middle + 1
    return low


def _encode_cursor(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(token: str, fingerprint: str) -> dict[str, Any]:
    """The payload of a cursor this API issued for this query (not yet checked for expiry)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise errors.InvalidRequestError(
            "page_token is not a cursor this API issued: pass the previous response's next_cursor unchanged"
        ) from exc
    if not isinstance(payload, dict) or payload.get("v") != 1:
        raise errors.InvalidRequestError(
            "page_token is not a cursor this API issued: pass the previous response's next_cursor unchanged"
        )
    if payload.get("h") != fingerprint:
        raise errors.InvalidRequestError(
            "page_token belongs to a different query: repeat exactly the grant and filters of the request "
            "that returned it (only limit, fields and select may change)"
        )
    return payload


class NylasBackend:
    def __init__(
        self,
        *,
        api_key: str,
        start_day: dt.date = seed.DEFAULT_START_DAY,
        days: int = seed.DEFAULT_DAYS,
        list_includes_body: bool | None = None,
        switches: NylasSwitches | None = None,
        faults: NylasFaults | None = None,
        extra_grants: int = 0,
    ) -> None:
        """``switches`` and ``faults`` are the configured state that ``reset()`` returns to.

        ``extra_grants=N`` adds N synthetic mailboxes (``personas.extra_grants``) to the three seeded
        ones, for load tests: no seeded mail (only bulk days), otherwise served like the others.

        ``list_includes_body=False`` is the older spelling of the switch ``list_body="omitted"``.
        """
        switches = switches or NylasSwitches()
        if list_includes_body is not None:
            switches = switches.replace({"list_body": "included" if list_includes_body else "omitted"})
        faults = faults.copy() if faults is not None else NylasFaults()
        self._init_args: dict[str, Any] = {
            "api_key": api_key,
            "start_day": start_day,
            "days": days,
            "switches": switches,
            "faults": faults.copy(),
            "extra_grants": extra_grants,
        }
        self.api_key = api_key
        self.start_day = start_day
        self.days = days
        self.switches = switches
        self.faults = faults
        self.grants: tuple[GrantPersona, ...] = personas.GRANTS + personas.extra_grants(extra_grants)
        self.stats = NylasStats()
        self.clock: Callable[[], float] = time.time  # cursor lifetimes are measured with it
        self._cursor_generation = 0
        self._fault_sequence = 0
        self._mailboxes = dict(seed.mailboxes(start_day, days))  # a copy: the seed is shared
        self._seed_sources: dict[str, _SeedSource] = {}
        self._by_id: dict[str, dict[str, seed.SeedMessage]] = {}
        for grant in self.grants:
            box = self._mailboxes.setdefault(grant.key, ())  # synthetic mailboxes have no seeded mail
            messages = tuple(seeded.message for seeded in box)
            self._seed_sources[grant.key] = _SeedSource(
                messages, tuple(m["date"] for m in messages), tuple(m["created_at"] for m in messages)
            )
            self._by_id[grant.key] = {seeded.message["id"]: seeded for seeded in box}
        self._bulk: dict[str, list[BulkDay]] = {grant.key: [] for grant in self.grants}
        # Seeded messages added a second time (add_copies): one source per call, and by id with the
        # original's id.
        self._copy_sources: dict[str, list[_SeedSource]] = {grant.key: [] for grant in self.grants}
        self._copies: dict[str, dict[str, tuple[seed.SeedMessage, str]]] = {
            grant.key: {} for grant in self.grants
        }
        self._folder_counts = {grant.key: self._count_folders(grant) for grant in self.grants}

    def reset(self) -> None:
        """Back to the configured state: seed, switches and faults as constructed; bulk days, copies and
        counters are dropped."""
        args = self._init_args
        self.__dict__.clear()
        self.__init__(**args)  # type: ignore[misc]

    # Switches -------------------------------------------------------------------------------------------

    def set_switches(self, values: dict[str, Any]) -> NylasSwitches:
        """Change some switches (the others keep their value); unknown names and values are refused."""
        self.switches = self.switches.replace(values)
        return self.switches

    @property
    def list_includes_body(self) -> bool:
        return self.switches.list_body == "included"

    @list_includes_body.setter
    def list_includes_body(self, value: bool) -> None:
        self.set_switches({"list_body": "included" if value else "omitted"})

    def expire_cursors(self) -> None:
        """Every cursor issued so far becomes an expired page_token (row 19 without waiting)."""
        self._cursor_generation += 1

    # Requests: faults and auth --------------------------------------------------------------------------

    def set_faults(self, values: dict[str, Any]) -> NylasFaults:
        """Change some fault knobs (others keep their value) and restart the request count."""
        known = {f.name: f for f in dataclasses.fields(NylasFaults)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown fault setting(s) {unknown}; known: {sorted(known)}")
        updated = dataclasses.replace(self.faults)
        for name, value in values.items():
            if name == "failing_messages":
                if not isinstance(value, dict) or not all(
                    isinstance(k, str) and v in FAILING_MESSAGE_STATUSES for k, v in value.items()
                ):
                    raise ValueError(
                        "failing_messages must map message ids to a status in"
                        f' {sorted(FAILING_MESSAGE_STATUSES)}, e.g. {{"<message id>": 504}}'
                    )
                updated.failing_messages = dict(value)
                continue
            if name == "expired_grants":
                if not isinstance(value, list | tuple | set) or not all(isinstance(v, str) for v in value):
                    raise ValueError("expired_grants must be a list of grant keys, ids or email addresses")
                updated.expired_grants = set(value)
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"fault setting {name} must be a number >= 0, got {value!r}")
            if name.endswith(("_every", "_over_limit")):
                if value != int(value):
                    raise ValueError(f"fault setting {name} must be a whole number, got {value!r}")
                value = int(value)
            setattr(updated, name, value)
        self.faults = updated
        self._fault_sequence = 0
        return updated

    def take_fault(self, grant_identifier: str | None = None) -> errors.NylasError | None:
        """Count one ``/v3`` request and return the fault it should fail with, if any.

        ``grant_identifier`` (the path's grant, if any) decides whether a 429 carries ``Retry-After``
        under ``retry_after="microsoft"``.
        """
        self._fault_sequence += 1
        n = self._fault_sequence
        faults = self.faults
        if faults.html_502_every and n % faults.html_502_every == 0:
            return errors.GatewayHtmlError()
        if faults.rate_limit_every and n % faults.rate_limit_every == 0:
            return errors.RateLimitError(self._retry_after(grant_identifier))
        if faults.timeout_504_every and n % faults.timeout_504_every == 0:
            return errors.ProviderTimeoutError()
        return None

    def _retry_after(self, grant_identifier: str | None) -> float | None:
        mode = self.switches.retry_after
        if mode == "always":
            return self.faults.retry_after_s
        if mode == "never" or grant_identifier is None:
            return None
        try:
            provider = self.resolve_grant(grant_identifier).provider
        except errors.NotFoundError:
            return None
        return self.faults.retry_after_s if provider == "microsoft" else None

    def authenticate(self, authorization: str | None) -> None:
        status = self.switches.bad_api_key_status
        if not authorization:
            raise errors.InvalidApiKeyError(
                "Bearer token missing: send the header 'Authorization: Bearer <NYLAS_API_KEY>'", status=status
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self.api_key.encode()
        ):
            raise errors.InvalidApiKeyError(status=status)

    # Grants ---------------------------------------------------------------------------------------------

    def resolve_grant(self, identifier: str) -> GrantPersona:
        """A grant by id or email address (``grant:``/``email:`` prefixes accepted)."""
        wanted = identifier.removeprefix("grant:").removeprefix("email:").strip().lower()
        for grant in self.grants:
            if wanted in (grant.grant_id.lower(), grant.email.lower()):
                return grant
        raise errors.NotFoundError(f"grant not found: no grant has the id or email address {identifier!r}")

    def grant_by_any(self, identifier: str) -> GrantPersona:
        """A grant by persona key, id or email (for the admin routes and tests)."""
        for grant in self.grants:
            if identifier == grant.key:
                return grant
        return self.resolve_grant(identifier)

    def is_expired(self, grant: GrantPersona) -> bool:
        marks = self.faults.expired_grants
        return grant.status != "valid" or bool({grant.key, grant.grant_id, grant.email} & marks)

    def require_valid(self, grant: GrantPersona) -> None:
        if self.is_expired(grant):
            raise errors.GrantExpiredError(grant, style=self.switches.expired_grant_error)

    def grant_object(self, grant: GrantPersona) -> dict[str, Any]:
        owner = personas.person_by_key(grant.owner_key)
        return {
            "id": grant.grant_id,
            "provider": grant.provider,
            "grant_status": "invalid" if self.is_expired(grant) else "valid",
            "email": grant.email,
            "name": owner.full_name,
            "scope": list(grant.scope or _SCOPES[grant.provider]),
            "created_at": _GRANT_CREATED_AT,
            "updated_at": _GRANT_CREATED_AT + 86_400 * 30,
            "provider_user_id": ids.base36(ids.digest("provider-user", grant.grant_id), 21),
            "settings": {},
            "state": "",
            "blocked": False,
            "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
            "ip": "198.51.100.24",
        }

    # Messages ---------------------------------------------------------------------------------------------

    def check_filters(self, grant: GrantPersona, filters: MessageFilters) -> MessageFilters:
        """Reject what the API rejects; returns the filters with the folder id normalised."""
        if filters.in_folder is not None:
            folder = filters.in_folder
            if ":" in folder:
                raise errors.InvalidRequestError(
                    f"in={folder!r}: 'in' takes one folder or label id from GET /folders (for example "
                    "INBOX), not a search keyword"
                )
            known = {str(f["id"]) for f in folders.folder_objects(grant, include_hidden=True)}
            if grant.provider == "imap" and folder.upper() == "INBOX":
                folder = "INBOX"  # IMAP treats INBOX case-insensitively
            if folder not in known:
                raise errors.InvalidRequestError(
                    f"in={folder!r}: no folder with this id in grant {grant.grant_id}; "
                    "use an id from GET /folders"
                )
            filters = dataclasses.replace(filters, in_folder=folder)
        if filters.any_email is not None and len(filters.any_email) > 25:
            raise errors.InvalidRequestError(
                f"any_email lists {len(filters.any_email)} addresses; at most 25 are allowed"
            )
        if grant.provider == "microsoft":
            first = [name for name in _MS_GROUP_ONE if getattr(filters, name) is not None]
            second = [name for name in _MS_GROUP_TWO if getattr(filters, name) is not None]
            if first and second:
                raise errors.InvalidRequestError(
                    f"Microsoft grants cannot combine {', '.join(first)} with {', '.join(second)} "
                    "in one query"
                )
        return filters

    def _sources(self, grant: GrantPersona) -> list[_Source]:
        return [self._seed_sources[grant.key], *self._bulk[grant.key], *self._copy_sources[grant.key]]

    def _message_at(self, source: _Source, index: int, *, with_body: bool) -> dict[str, Any]:
        if isinstance(source, _SeedSource):
            return source.messages[index]
        assert isinstance(source, BulkDay)
        return source.message_at(index, with_body=with_body)

    def _stream(
        self,
        source: _Source,
        filters: MessageFilters,
        window: TimeWindow,
        after: tuple[int, int, int] | None,
    ) -> Iterator[tuple[int, int, int]]:
        """Sort keys ``(-date, source_no, index)`` of the matching messages of one source, in order.

        Dates never increase with the index, so the window becomes an index range; filtering on
        ``created_at`` (never more than ``MAX_SYNC_LAG_S`` after ``date``) widens the range and checks
        each candidate.
        """
        start, stop = 0, len(source)
        by_date = window.field == "date"
        if window.high is not None:
            start = _first_index_below(source, window.high)
        if window.low is not None:
            stop = _first_index_below(source, window.low if by_date else window.low - MAX_SYNC_LAG_S)
        if after is not None:
            last_date, last_source, last_index = after
            if source.source_no < last_source:
                start = max(start, _first_index_below(source, last_date))
            elif source.source_no == last_source:
                start = max(start, last_index + 1)
            else:
                start = max(start, _first_index_below(source, last_date + 1))
        check_time = not by_date and (window.low is not None or window.high is not None)
        only_time = filters.only_time
        for index in range(start, stop):
            if check_time and not window.admits(source.created_at_at(index)):
                continue
            if only_time or filters.matches(self._message_at(source, index, with_body=False)):
                yield (-source.date_at(index), source.source_no, index)

    def list_messages(
        self,
        grant: GrantPersona,
        filters: MessageFilters,
        *,
        limit: int,
        page_token: str | None,
        fields: str = "standard",
    ) -> Page:
        """One page, newest first; ``next_cursor`` is None on the last page."""
        self.require_valid(grant)
        filters = self.check_filters(grant, filters)
        if self.faults.timeout_504_over_limit and limit > self.faults.timeout_504_over_limit:
            raise errors.ProviderTimeoutError()
        headers_limit = self.switches.headers_504_over_limit
        if headers_limit and fields == "include_headers" and limit > headers_limit:
            raise errors.ProviderTimeoutError()
        fingerprint = filters.fingerprint(grant.grant_id)
        after: tuple[int, int, int] | None = None
        payload: dict[str, Any] = {}
        if page_token:
            payload = self._open_cursor(page_token, fingerprint)
            try:
                after = (int(payload["d"]), int(payload["s"]), int(payload["i"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise errors.InvalidRequestError("page_token is not a cursor this API issued") from exc
        window = TimeWindow.of(filters, self.switches)
        sources = {source.source_no: source for source in self._sources(grant)}
        streams = [self._stream(source, filters, window, after) for source in sources.values()]
        chosen = list(islice(heapq.merge(*streams), limit + 1))
        page = chosen[:limit]
        items = [self._message_at(sources[source_no], index, with_body=True) for _, source_no, index in page]
        next_cursor = None
        if len(chosen) > limit:
            negative_date, source_no, index = page[-1]
            position = {"h": fingerprint, "d": -negative_date, "s": source_no, "i": index}
            next_cursor = self._next_cursor(position, page_token, payload)
        return Page(items, next_cursor)

    # Cursors ----------------------------------------------------------------------------------------------

    def _issue_cursor(self, position: dict[str, Any], *, issued: float | None = None, **extra: Any) -> str:
        stamp = round(self.clock() if issued is None else issued, 3)
        return _encode_cursor({"v": 1, **position, "t": stamp, "g": self._cursor_generation, **extra})

    def _open_cursor(self, token: str, fingerprint: str) -> dict[str, Any]:
        """A page_token's payload, or the errors Nylas-like APIs answer for foreign and expired ones."""
        payload = _decode_cursor(token, fingerprint)
        if payload.get("g", 0) != self._cursor_generation:
            raise errors.CursorExpiredError()
        ttl = self.switches.cursor_ttl_s
        issued = payload.get("t")
        if ttl and (not isinstance(issued, int | float) or self.clock() - issued > ttl):
            raise errors.CursorExpiredError()
        return payload

    def _next_cursor(self, position: dict[str, Any], page_token: str | None, payload: dict[str, Any]) -> str:
        """The cursor after a page, as the ``cursor`` switch says.

        - ``normal``: a fresh cursor for the position after this page.
        - ``repeat``: from the second page on, the same token that was sent (a client that follows it
          reads the second page forever).
        - ``cycle``: the cursors go A, B, A, B ...: the third page's cursor is the first one again, so
          pages two and three alternate forever. Cursors of a cycling walk keep the first one's
          timestamp, so A and B are the same strings each time round.
        """
        mode = self.switches.cursor
        page_no = int(payload.get("n", 0)) if page_token else 0
        if mode == "repeat" and page_token:
            return page_token
        if mode == "cycle" and page_token:
            if page_no >= 2 and isinstance(payload.get("a"), str):
                return str(payload["a"])
            return self._issue_cursor(position, issued=payload.get("t"), n=page_no + 1, a=page_token)
        return self._issue_cursor(position, n=page_no + 1)

    def get_message(self, grant: GrantPersona, message_id: str) -> dict[str, Any]:
        self.require_valid(grant)
        status = self.faults.failing_messages.get(message_id)
        if status == 400:
            raise errors.InvalidRequestError(f"message {message_id!r} cannot be returned")
        if status == 504:
            raise errors.ProviderTimeoutError()
        return self.find_message(grant, message_id)

    def find_message(self, grant: GrantPersona, message_id: str) -> dict[str, Any]:
        """A message by id, whatever the grant's state (webhook deliveries use it)."""
        seeded = self._seeded_or_copy(grant, message_id)
        if seeded is not None:
            return seeded.message
        for bulk_day in self._bulk[grant.key]:
            index = bulk_day.index_of(message_id)
            if index is not None:
                return bulk_day.message_at(index)
        raise errors.NotFoundError(f"message not found: grant {grant.grant_id} has no message {message_id!r}")

    def _seeded_or_copy(self, grant: GrantPersona, message_id: str) -> seed.SeedMessage | None:
        seeded = self._by_id[grant.key].get(message_id)
        if seeded is None and (added := self._copies[grant.key].get(message_id)) is not None:
            seeded = added[0]
        return seeded

    # Attachments and threads -----------------------------------------------------------------------------

    def get_attachment(
        self, grant: GrantPersona, message_id: str | None, attachment_id: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(message, attachment)``; ``message_id`` is required, as in the contract."""
        self.require_valid(grant)
        if not message_id:
            raise errors.InvalidRequestError(
                "message_id is required: pass the id of the message the attachment belongs to"
            )
        message = self.find_message(grant, message_id)
        attachment = attachments.find(message, attachment_id)
        if attachment is None:
            raise errors.NotFoundError(
                f"attachment not found: message {message_id!r} has no attachment {attachment_id!r}"
            )
        return message, attachment

    def get_thread(self, grant: GrantPersona, thread_id: str) -> dict[str, Any]:
        """A thread object built from the seeded messages and their copies that carry ``thread_id`` (bulk
        days excluded)."""
        self.require_valid(grant)
        members = [m for m in self._seed_sources[grant.key].messages if m["thread_id"] == thread_id]
        members += [
            s.message for s, _ in self._copies[grant.key].values() if s.message["thread_id"] == thread_id
        ]
        members.sort(key=lambda m: -m["date"])  # newest first; a copy after its original
        if not members:
            raise errors.NotFoundError(
                f"thread not found: grant {grant.grant_id} has no thread {thread_id!r}"
            )
        return _thread_object(grant, thread_id, members)

    def raw_mime(self, grant: GrantPersona, message: dict[str, Any]) -> str:
        """The message as base64url RFC 822 text (headers as stored in the mailbox, HTML part)."""
        seeded = self._seeded_or_copy(grant, message["id"])
        if seeded is not None:
            headers = list(seeded.mime_headers)
        else:
            headers = []
            for bulk_day in self._bulk[grant.key]:
                index = bulk_day.index_of(message["id"])
                if index is not None:
                    full = bulk_day.message_at(index, mime_headers=True)
                    headers = [(h["name"], h["value"]) for h in full["headers"]]
                    break
        lines = [f"{name}: {value}" for name, value in headers if name != "Content-Type"]
        lines.append('Content-Type: text/html; charset="UTF-8"')
        lines.append("Content-Transfer-Encoding: 8bit")
        text = "\r\n".join(lines) + "\r\n\r\n" + message.get("body", "")
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    # Folders ----------------------------------------------------------------------------------------------

    def _count_folders(self, grant: GrantPersona) -> dict[str, tuple[int, int]]:
        counts: dict[str, list[int]] = {}
        for seeded in self._mailboxes[grant.key]:
            for folder_id in seeded.message["folders"]:
                total_unread = counts.setdefault(folder_id, [0, 0])
                total_unread[0] += 1
                total_unread[1] += int(seeded.message["unread"])
        return {folder_id: (total, unread) for folder_id, (total, unread) in counts.items()}

    def list_folders(
        self,
        grant: GrantPersona,
        *,
        limit: int,
        page_token: str | None,
        include_hidden: bool = False,
        parent_id: str | None = None,
    ) -> Page:
        self.require_valid(grant)
        fingerprint = hashlib.sha256(f"{grant.grant_id}|{include_hidden}|{parent_id}".encode()).hexdigest()[
            :16
        ]
        offset = 0
        if page_token:
            payload = self._open_cursor(page_token, fingerprint)
            offset = int(payload.get("o", 0))
        objects = folders.folder_objects(grant, include_hidden=include_hidden)
        if parent_id is not None:
            objects = [folder for folder in objects if folder.get("parent_id") == parent_id]
        counts = self._folder_counts[grant.key]
        for folder in objects:
            total, unread = counts.get(str(folder["id"]), (0, 0))
            folder["total_count"], folder["unread_count"] = total, unread
        page = objects[offset : offset + limit]
        more = offset + limit < len(objects)
        next_cursor = self._issue_cursor({"h": fingerprint, "o": offset + limit}) if more else None
        return Page(page, next_cursor)

    # For the admin routes, benchmarks and tests -------------------------------------------------------------

    def add_bulk_day(self, grant_key: str, day: dt.date, count: int, body_bytes: int = 4000) -> BulkDay:
        """Register ``count`` lazily generated messages for the grant on ``day`` (see ``bulk``)."""
        grant = self.grant_by_any(grant_key)
        existing = self._bulk[grant.key]
        bulk_day = BulkDay(grant, day, count, body_bytes, source_no=len(existing) + 1)
        existing.append(bulk_day)
        return bulk_day

    def add_copies(self, grant_key: str, day: dt.date, count: int) -> list[dict[str, Any]]:
        """The first ``count`` seeded messages of the grant on ``day`` that have a ``Message-ID`` header
        (newest first, as ``messages_for`` lists them) appear a second time in the mailbox, each under a
        new id in the provider's shape; everything else (headers, body, dates, folders, thread) is the
        original's. Returns the copies. Calling it again adds further copies (third ids, and so on).
        """
        grant = self.grant_by_any(grant_key)
        candidates = [s for s in self.seed_messages(grant.key, day) if _has_message_id(s.message)]
        if not 1 <= count <= len(candidates):
            raise ValueError(
                f"count must be between 1 and {len(candidates)} (the messages with a Message-ID header "
                f"in {grant.key}'s mailbox on {day.isoformat()}), got {count}"
            )
        added = self._copies[grant.key]
        copies: list[seed.SeedMessage] = []
        for original in candidates[:count]:
            made = sum(1 for _, of in added.values() if of == original.message["id"])
            for salt in itertools.count(made):
                copy_id = _copy_id(grant, original.message, salt)
                if copy_id not in self._by_id[grant.key] and copy_id not in added:
                    break
            message = copy.deepcopy(original.message)
            message["id"] = copy_id
            copies.append(dataclasses.replace(original, message=message))
            added[copy_id] = (copies[-1], original.message["id"])
        copies.sort(key=lambda seeded: (-seeded.message["date"], seeded.message["id"]))
        sources = self._copy_sources[grant.key]
        messages = tuple(seeded.message for seeded in copies)
        sources.append(
            _SeedSource(
                messages,
                tuple(m["date"] for m in messages),
                tuple(m["created_at"] for m in messages),
                source_no=_COPY_SOURCE_BASE + len(sources),
            )
        )
        counts = self._folder_counts[grant.key]
        for message in messages:
            for folder_id in message["folders"]:
                total, unread = counts.get(folder_id, (0, 0))
                counts[folder_id] = (total + 1, unread + int(message["unread"]))
        return [copy.deepcopy(message) for message in messages]

    def copy_of(self, grant_key: str, message_id: str) -> str | None:
        """The id of the message that ``message_id`` is a copy of (``add_copies``), or None."""
        added = self._copies[self.grant_by_any(grant_key).key].get(message_id)
        return added[1] if added is not None else None

    def seed_messages(self, grant_key: str, day: dt.date) -> list[seed.SeedMessage]:
        grant = self.grant_by_any(grant_key)
        return [seeded for seeded in self._mailboxes[grant.key] if seeded.day == day]

    def messages_for(self, grant_key: str, day: dt.date) -> list[dict[str, Any]]:
        """The seeded messages of one grant and UTC day: full objects with headers, newest first."""
        return seed.messages_for(self.start_day, self.days, self.grant_by_any(grant_key).key, day)

    def message_count(self, grant_key: str, day: dt.date) -> int:
        """Seeded, bulk and copied messages of the grant on ``day`` (what an unfiltered day listing
        returns)."""
        grant = self.grant_by_any(grant_key)
        bulk = sum(b.count for b in self._bulk[grant.key] if b.day == day)
        copies = sum(1 for seeded, _ in self._copies[grant.key].values() if seeded.day == day)
        return len(self.seed_messages(grant.key, day)) + bulk + copies


def _thread_object(grant: GrantPersona, thread_id: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    """Nylas' thread shape from its members (newest first, as stored); drafts are counted apart."""
    sent = folders.folder_id(grant, folders.role_folder_name(grant.provider, "sent"))
    draft = folders.folder_id(grant, folders.role_folder_name(grant.provider, "draft"))
    drafts = [m for m in members if draft in m["folders"]]
    messages = [m for m in members if draft not in m["folders"]]
    outgoing = [m for m in messages if sent in m["folders"]]
    incoming = [m for m in messages if sent not in m["folders"]]
    participants: dict[str, dict[str, str]] = {}
    for message in reversed(members):
        for name in ("from", "to", "cc", "bcc"):
            for person in message.get(name, []):
                participants.setdefault(person["email"].lower(), dict(person))
    latest = members[0]
    thread: dict[str, Any] = {
        "grant_id": grant.grant_id,
        "id": thread_id,
        "object": "thread",
        "latest_draft_or_message": {key: value for key, value in latest.items() if key != "headers"},
        "has_attachments": any(m["attachments"] for m in members),
        "has_drafts": bool(drafts),
        "earliest_message_date": min(m["date"] for m in members),
        "participants": list(participants.values()),
        "snippet": latest["snippet"],
        "starred": any(m["starred"] for m in members),
        "subject": members[-1]["subject"],
        "unread": any(m["unread"] for m in members),
        "message_ids": [m["id"] for m in messages],
        "draft_ids": [m["id"] for m in drafts],
        "folders": sorted({f for m in members for f in m["folders"]}),
    }
    if incoming:
        thread["latest_message_received_date"] = max(m["date"] for m in incoming)
    if outgoing:
        thread["latest_message_sent_date"] = max(m["date"] for m in outgoing)
    return thread
