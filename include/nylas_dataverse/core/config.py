"""Parse and validate the grants file (YAML text in, `GrantConfig` values and `ConfigError`s out).

Shape::

    defaults:              # optional; every key optional
      nylas_conn_id: nylas_default
      dataverse_conn_id: dataverse_default
      org_domains: [contoso.example]
      headers_field: include_headers        # or include_basic_headers
      page_size: 200                        # messages per Nylas page, 1..200 (default: the Nylas connection's
                                            # page_size extra, else 200)
      max_failures: 0                       # a run fails when failed > max_failures
      batch_size: 50                        # emails per $batch request, 1..500
      max_concurrency: 4                    # optional cap on parallel $batch requests, 1..52 (default: the
                                            # Dataverse connection's max_concurrency extra)
      query_overlap_minutes: 60             # the Nylas query reaches this far into both neighbouring days
      verify_after_load: true               # look the created Message-IDs up again for second rows
      remove_race_duplicates: false         # and delete the copy this pipeline made when there is one
      attachments: on                       # on | off: files become activitymimeattachment rows
      max_attachment_mb: 20                 # optional: larger files are skipped (the org's limit applies too)
      inline_attachments: skip              # skip | keep: inline parts (signature logos, embedded images)
      blocked_attachment_types: [.exe, application/x-msdownload]   # extensions and/or content types
      retention_days: 30                    # optional, 1..3650: the staging retention DAG deletes message
                                            # bodies (messages, payloads) of days older than this; unset:
                                            # kept until deleted otherwise (docs/deployment.md)
      policy:
        internal_only: skip                 # skip | track
        skip_automated: true
        require_known_party: false
        first_message_of_thread_only: false
        excluded_addresses: []
        excluded_domains: []
        regarding_preference: [contact, account]   # order/subset of contact, account, lead
        create_contacts: off                # off | senders | all (core/contacts.py)
        role_address_patterns: [...]        # local parts never given a contact (ROLE_ADDRESS_PATTERNS)
    grants:
      - key: alice                          # slug ^[a-z0-9][a-z0-9_-]{0,63}$, unique
        grant_id: "..."
        start_date: 2026-11-02
        email: alice@contoso.example        # optional
        enabled: true                       # optional
        display_name: "Alice's mailbox"     # optional
        # any key of `defaults` may be overridden here; `policy` is merged key by key
    alerts:                # optional: Airflow notifiers for every grant's failures
      on_failure:          # a task of a grant's run failed and will not be retried
        - notifier: airflow.providers.smtp.notifications.smtp.SmtpNotifier   # any BaseNotifier, by class path
          kwargs: {to: data-platform@contoso.example}                       # its constructor's arguments
      grant_expired:       # instead of on_failure when the grant expired or was revoked
        - notifier: ...

Rules:

- A grant's value wins over `defaults`, which wins over the built-in defaults shown above. `policy` is
  merged one key at a time, so a grant can change one policy option and inherit the rest.
- Unknown keys are errors (a typo must never be silently ignored), with a "did you mean" hint when a
  known key is close. A key repeated inside one YAML mapping is an error too (YAML would keep only the
  last value), naming the lines of both; inside a grant's entry it is that grant's error.
- Invalid YAML, a bad top-level shape or a bad `defaults` section is one error for the whole file and no
  grant loads. A bad grant is one error naming that grant (by `key`, or `grants[<index>]` when the key
  itself is unusable) and the other grants still load. When two grants share a key, the later one is
  the error. When two enabled grants share a `grant_id` (one mailbox, two DAGs), both are errors, each
  naming the other and its line.
- Addresses and domains are casefolded (the same comparison every other module uses); domains match
  exactly, subdomains are not implied.
- Integers must be YAML integers (`true` is not 1); dates are YAML dates or `YYYY-MM-DD` strings.
- `alerts` is checked for shape here (event names, a dotted class path, a mapping of keyword arguments
  with string keys); a bad `alerts` section is an error for the whole file, like a bad `defaults`.
  Whether the class can be imported and takes those arguments is checked where Airflow is at hand
  (`pipeline/alerts.py`, reported by the config-check DAG).
"""

from __future__ import annotations

import datetime
import difflib
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import yaml

from nylas_dataverse.core.attachments import (
    DEFAULT_BLOCKED_TYPES,
    INLINE_CHOICES,
    AttachmentPolicy,
)
from nylas_dataverse.core.errors import FailureKind, PipelineError

InternalOnly = Literal["skip", "track"]
HeadersField = Literal["include_headers", "include_basic_headers"]

INTERNAL_ONLY_CHOICES: tuple[InternalOnly, ...] = ("skip", "track")
HEADERS_FIELD_CHOICES: tuple[HeadersField, ...] = ("include_headers", "include_basic_headers")
REGARDING_ENTITIES = ("contact", "account", "lead")
# policy.create_contacts (core/contacts.py): which unresolved external addresses get a new contact.
CreateContacts = Literal["off", "senders", "all"]
CREATE_CONTACTS_CHOICES: tuple[CreateContacts, ...] = ("off", "senders", "all")
ROLE_ADDRESS_PATTERNS = (
    "no-reply*",
    "noreply*",
    "donotreply*",
    "do-not-reply*",
    "mailer-daemon",
    "postmaster",
    "bounce*",
    "notification*",
    "newsletter*",
    "info",
    "sales",
    "support",
    "help",
    "admin",
    "billing",
    "accounts",
    "contact",
    "hello",
    "office",
    "team",
)
DAG_ID_PREFIX = "nylas_to_dataverse__"

_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# Keys whose DAG id another DAG of the project already uses (nylas_to_dataverse__realtime).
RESERVED_KEYS = frozenset({"realtime"})
REALTIME_DAG_ID = f"{DAG_ID_PREFIX}realtime"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_DOMAIN = re.compile(r"[^@\s]+\.[^@\s]+")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CLASS_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


@dataclass(frozen=True)
class PolicyConfig:
    internal_only: InternalOnly = "skip"
    skip_automated: bool = True
    require_known_party: bool = False
    first_message_of_thread_only: bool = False
    excluded_addresses: tuple[str, ...] = ()
    excluded_domains: tuple[str, ...] = ()
    regarding_preference: tuple[str, ...] = ("contact", "account")
    create_contacts: CreateContacts = "off"
    role_address_patterns: tuple[str, ...] = ROLE_ADDRESS_PATTERNS


@dataclass(frozen=True)
class GrantConfig:
    key: str
    grant_id: str
    start_date: datetime.date
    email: str | None = None
    enabled: bool = True
    display_name: str | None = None
    nylas_conn_id: str = "nylas_default"
    dataverse_conn_id: str = "dataverse_default"
    org_domains: tuple[str, ...] = ()
    headers_field: HeadersField = "include_headers"
    page_size: int | None = None
    max_failures: int = 0
    batch_size: int = 50
    max_concurrency: int | None = None
    query_overlap_minutes: int = 60
    verify_after_load: bool = True
    remove_race_duplicates: bool = False
    attachments: bool = True
    max_attachment_mb: int | None = None
    inline_attachments: str = "skip"
    blocked_attachment_types: tuple[str, ...] = DEFAULT_BLOCKED_TYPES
    retention_days: int | None = None
    policy: PolicyConfig = field(default_factory=PolicyConfig)

    @property
    def attachment_policy(self) -> AttachmentPolicy:
        return AttachmentPolicy(
            enabled=self.attachments,
            max_attachment_mb=self.max_attachment_mb,
            keep_inline=self.inline_attachments == "keep",
            blocked_types=self.blocked_attachment_types,
        )

    @property
    def dag_id(self) -> str:
        return f"{DAG_ID_PREFIX}{self.key}"

    @property
    def query_overlap(self) -> datetime.timedelta:
        return datetime.timedelta(minutes=self.query_overlap_minutes)


class ConfigError(PipelineError):
    """One problem in the grants file, naming the file, the grant (if any) and the key (if any)."""

    KIND = FailureKind.CONFIG

    def __init__(self, source: str, grant: str | None, key: str | None, message: str) -> None:
        self.source = source
        self.grant = grant
        self.key = key
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [self.source]
        if self.grant is not None:
            parts.append(self.grant if self.grant.startswith("grants[") else f"grant '{self.grant}'")
        if self.key is not None:
            parts.append(f"key '{self.key}'")
        parts.append(self.message)
        return ": ".join(parts)

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str | None, str | None, str]]:
        # Exceptions pickle via their args; ours are built from four parts (workers pass errors around).
        return (type(self), (self.source, self.grant, self.key, self.message))


ALERT_EVENTS = ("on_failure", "grant_expired")


@dataclass(frozen=True)
class NotifierConfig:
    """One notifier of the ``alerts`` section: an Airflow ``BaseNotifier`` subclass and its arguments."""

    class_path: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertsConfig:
    on_failure: tuple[NotifierConfig, ...] = ()
    grant_expired: tuple[NotifierConfig, ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.on_failure or self.grant_expired)

    def notifiers(self) -> tuple[NotifierConfig, ...]:
        return (*self.on_failure, *self.grant_expired)


@dataclass(frozen=True)
class ConfigResult:
    grants: tuple[GrantConfig, ...]
    errors: tuple[ConfigError, ...]
    alerts: AlertsConfig = field(default_factory=AlertsConfig)


class _InvalidValueError(Exception):
    """A validator's complaint; `key` is the dotted path relative to the mapping being checked."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


# ---------------------------------------------------------------------------------------------------
# value validators: each returns the normalised value or raises _InvalidValueError(None, message)


def _describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, datetime.datetime):
        return f"{value.isoformat(sep=' ')} (a date and time)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value) if isinstance(value, str | int | float | datetime.date) else type(value).__name__


def _fail(expected: str, value: object) -> _InvalidValueError:
    return _InvalidValueError(None, f"{expected} (got {_describe(value)})")


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail("must be a non-empty string", value)
    return value.strip()


def _conn_id(value: object) -> str:
    text = _text(value)
    if any(ch.isspace() for ch in text):
        raise _fail("must be an Airflow connection id without spaces", value)
    return text


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _email(value: object) -> str:
    if not isinstance(value, str) or not _EMAIL.fullmatch(value.strip()):
        raise _fail("must be an email address like someone@example.com", value)
    return value.strip()


def _optional_email(value: object) -> str | None:
    return None if value is None else _email(value)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise _fail("must be true or false", value)
    return value


def _integer(low: int, high: int | None) -> Callable[[object], int]:
    expected = f"must be a whole number from {low} to {high}" if high else f"must be a whole number >= {low}"

    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(expected, value)
        if value < low or (high is not None and value > high):
            raise _fail(expected, value)
        return value

    return check


def _choice(choices: tuple[str, ...]) -> Callable[[object], str]:
    def check(value: object) -> str:
        if not isinstance(value, str) or value not in choices:
            raise _fail(f"must be one of {', '.join(choices)}", value)
        return value

    return check


def _start_date(value: object) -> datetime.date:
    if isinstance(value, datetime.datetime):
        raise _fail("must be a date like 2026-11-02, without a time", value)
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _fail("must be a date like 2026-11-02", value)


def _string_list(value: object, item: Callable[[object], str], what: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _fail(f"must be a list of {what}", value)
    kept: list[str] = []
    for index, entry in enumerate(value):
        try:
            normalised = item(entry)
        except _InvalidValueError as exc:
            raise _InvalidValueError(None, f"entry {index + 1}: {exc.message}") from None
        if normalised not in kept:
            kept.append(normalised)
    return tuple(kept)


def _address_item(value: object) -> str:
    return _email(value).casefold()


def _domain_item(value: object) -> str:
    if not isinstance(value, str) or not _DOMAIN.fullmatch(value.strip()):
        raise _fail("must be a domain like contoso.example (no '@')", value)
    return value.strip().casefold()


def _addresses(value: object) -> tuple[str, ...]:
    return _string_list(value, _address_item, "email addresses")


def _domains(value: object) -> tuple[str, ...]:
    return _string_list(value, _domain_item, "domains")


def _regarding(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _fail(f"must be a list drawn from {', '.join(REGARDING_ENTITIES)}", value)
    seen: list[str] = []
    for entry in value:
        if not isinstance(entry, str) or entry not in REGARDING_ENTITIES:
            raise _fail(f"entries must be {', '.join(REGARDING_ENTITIES)}", entry)
        if entry in seen:
            raise _InvalidValueError(None, f"'{entry}' is listed twice")
        seen.append(entry)
    return tuple(seen)


def _on_off(value: object) -> bool:
    # YAML 1.1 reads a bare on/off as true/false; both spellings mean the same here.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("on", "off"):
        return value.strip().lower() == "on"
    raise _fail("must be on or off", value)


def _file_type_item(value: object) -> str:
    if isinstance(value, str):
        entry = value.strip().casefold()
        if re.fullmatch(r"\.[a-z0-9_+-]{1,32}", entry) or re.fullmatch(r"[a-z0-9.+-]+/[a-z0-9.+*-]+", entry):
            return entry
    raise _fail("must be a file extension like .exe or a content type like application/x-msdownload", value)


def _file_types(value: object) -> tuple[str, ...]:
    return _string_list(value, _file_type_item, "file extensions or content types")


def _create_contacts(value: object) -> str:
    # YAML 1.1 reads a bare `off` as false; both mean off.
    return "off" if value is False else _choice(CREATE_CONTACTS_CHOICES)(value)


def _pattern_item(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or "@" in value:
        raise _fail("must be a pattern for the part before '@', like 'no-reply*' or 'info'", value)
    return value.strip().casefold()


def _patterns(value: object) -> tuple[str, ...]:
    return _string_list(value, _pattern_item, "patterns")


Validator = Callable[[object], object]

_POLICY_KEYS: dict[str, Validator] = {
    "internal_only": _choice(INTERNAL_ONLY_CHOICES),
    "skip_automated": _flag,
    "require_known_party": _flag,
    "first_message_of_thread_only": _flag,
    "excluded_addresses": _addresses,
    "excluded_domains": _domains,
    "regarding_preference": _regarding,
    "create_contacts": _create_contacts,
    "role_address_patterns": _patterns,
}

# Keys `defaults` may set and a grant may override (besides `policy`).
_SETTING_KEYS: dict[str, Validator] = {
    "nylas_conn_id": _conn_id,
    "dataverse_conn_id": _conn_id,
    "org_domains": _domains,
    "headers_field": _choice(HEADERS_FIELD_CHOICES),
    "page_size": _integer(1, 200),
    "max_failures": _integer(0, None),
    "batch_size": _integer(1, 500),
    "max_concurrency": _integer(1, 52),
    "query_overlap_minutes": _integer(0, 1440),
    "verify_after_load": _flag,
    "remove_race_duplicates": _flag,
    "attachments": _on_off,
    "max_attachment_mb": _integer(1, 128),
    "inline_attachments": _choice(INLINE_CHOICES),
    "blocked_attachment_types": _file_types,
    "retention_days": _integer(1, 3650),
}

_GRANT_OWN_KEYS: dict[str, Validator] = {
    "key": lambda value: value,  # checked before anything else, see _grant_name
    "grant_id": _text,
    "start_date": _start_date,
    "email": _optional_email,
    "enabled": _flag,
    "display_name": _optional_text,
}
_REQUIRED_GRANT_KEYS = ("key", "grant_id", "start_date")
_TOP_LEVEL_KEYS = ("defaults", "grants", "alerts")
_DEFAULTS_KEYS = (*_SETTING_KEYS, "policy")
_GRANT_KEYS = (*_GRANT_OWN_KEYS, *_SETTING_KEYS, "policy")
# Every field of a valid grant is replaced from validated values; this only supplies the type.
_PLACEHOLDER_GRANT = GrantConfig(key="", grant_id="", start_date=datetime.date.min)


@dataclass(frozen=True)
class _Overrides:
    """Validated values a mapping sets explicitly: settings and policy options, by name."""

    settings: Mapping[str, Any]
    policy: Mapping[str, Any]


# ---------------------------------------------------------------------------------------------------
# YAML loading


@dataclass(frozen=True)
class _RepeatedKey:
    """A key given twice in one YAML mapping: where both are (1-based lines) and where the second is."""

    key: object
    first_line: int
    line: int
    column: int
    index: int  # character offset of the second one, to find the grant entry that holds it


class _Strict:
    """Loader behaviour on top of SafeLoader: record repeated keys, leave impossible dates
    (2026-13-45) as strings."""

    repeated: list[_RepeatedKey]

    def __init__(self, stream: str) -> None:
        super().__init__(stream)  # type: ignore[call-arg]
        self.repeated = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: list[tuple[object, int]] = []
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)  # type: ignore[attr-defined]
            first = next((line for earlier, line in seen if earlier == key), None)
            mark = key_node.start_mark
            if first is not None:
                self.repeated.append(_RepeatedKey(key, first, mark.line + 1, mark.column + 1, mark.index))
            else:
                seen.append((key, mark.line + 1))
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc, no-any-return]

    def construct_lenient_timestamp(self, node: yaml.ScalarNode) -> object:
        try:
            return self.construct_yaml_timestamp(node)  # type: ignore[attr-defined]
        except ValueError:
            return self.construct_scalar(node)  # type: ignore[attr-defined]


class _StrictLoader(_Strict, yaml.SafeLoader):
    pass


# libyaml reads a large file about five times faster; its error messages differ, so a file it rejects
# is read again by the pure-Python loader, whose messages the errors quote.
_LOADERS: tuple[type[_Strict], ...] = (_StrictLoader,)
if getattr(yaml, "__with_libyaml__", False):

    class _FastStrictLoader(_Strict, yaml.CSafeLoader):
        pass

    _LOADERS = (_FastStrictLoader, _StrictLoader)

for _loader in _LOADERS:
    _loader.add_constructor("tag:yaml.org,2002:timestamp", _Strict.construct_lenient_timestamp)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _Document:
    """The grants file as YAML values, where each `grants` entry starts and ends, and its repeated keys."""

    data: object
    entry_spans: tuple[tuple[int, int, int], ...]  # (start offset, end offset, first line) per entry
    repeated: tuple[_RepeatedKey, ...]

    def entry_line(self, index: int) -> int | None:
        return self.entry_spans[index][2] if index < len(self.entry_spans) else None

    def entry_of(self, repeated: _RepeatedKey) -> int | None:
        """The index of the `grants` entry holding this repeated key, or None when it is outside them."""
        for index, (start, end, _) in enumerate(self.entry_spans):
            if start <= repeated.index < end:
                return index
        return None


def _entry_spans(root: yaml.Node | None) -> tuple[tuple[int, int, int], ...]:
    if not isinstance(root, yaml.MappingNode):
        return ()
    spans: tuple[tuple[int, int, int], ...] = ()
    for key_node, value_node in root.value:  # the last `grants` wins, as in the constructed mapping
        if key_node.value == "grants" and isinstance(value_node, yaml.SequenceNode):
            spans = tuple(
                (item.start_mark.index, item.end_mark.index, item.start_mark.line + 1)
                for item in value_node.value
            )
    return spans


def _repeated_message(repeated: _RepeatedKey) -> str:
    what = "" if isinstance(repeated.key, str) else f"key {repeated.key!r} "  # else the error names it
    return (
        f"{what}given twice, at lines {repeated.first_line} and {repeated.line};"
        " YAML would silently keep only the last value, so remove one of them"
    )


def _compose(loader_class: type[_Strict], text: str) -> _Document:
    loader: Any = None
    try:
        loader = loader_class(text)  # reads the first characters already
        root = loader.get_single_node()
        data = None if root is None else loader.construct_document(root)
        return _Document(data, _entry_spans(root), tuple(loader.repeated))
    finally:
        if loader is not None:
            loader.dispose()


def _load_yaml(text: str) -> _Document:
    try:
        try:
            document = _compose(_LOADERS[0], text)
        except (yaml.YAMLError, RecursionError):
            if len(_LOADERS) == 1:
                raise
            document = _compose(_LOADERS[-1], text)  # raises the error with its usual message
    except yaml.MarkedYAMLError as exc:
        where = ""
        if exc.problem_mark is not None:
            where = f" at line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}"
        raise _InvalidValueError(None, f"invalid YAML{where}: {exc.problem or exc.context}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise _InvalidValueError(None, f"invalid YAML: {' '.join(str(exc).split())}") from None
    # A key repeated outside the grant entries (top level, defaults, alerts) concerns every grant.
    for repeated in document.repeated:
        if document.entry_of(repeated) is None:
            raise _InvalidValueError(
                None,
                f"invalid YAML at line {repeated.line}, column {repeated.column}:"
                f" found duplicate key {repeated.key!r} (first at line {repeated.first_line});"
                " YAML would silently keep only the last value",
            )
    return document


# ---------------------------------------------------------------------------------------------------
# sections


def _unknown_key(key: object, allowed: tuple[str, ...], prefix: str) -> _InvalidValueError:
    shown = f"{prefix}{key}"
    close = difflib.get_close_matches(str(key), allowed, n=1) if isinstance(key, str) else []
    if close:
        return _InvalidValueError(shown, f"unknown key; did you mean '{prefix}{close[0]}'?")
    return _InvalidValueError(shown, f"unknown key; allowed keys are {', '.join(allowed)}")


def _check_keys(mapping: dict[Any, Any], allowed: tuple[str, ...], prefix: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise _unknown_key(key, allowed, prefix)


def _validate(mapping: dict[Any, Any], validators: Mapping[str, Validator], prefix: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, validator in validators.items():
        if name in mapping:
            try:
                values[name] = validator(mapping[name])
            except _InvalidValueError as exc:
                raise _InvalidValueError(f"{prefix}{name}", exc.message) from None
    return values


def _policy_overrides(value: object, prefix: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _InvalidValueError(
            prefix.rstrip("."), f"must be a mapping of policy options (got {_describe(value)})"
        )
    _check_keys(value, tuple(_POLICY_KEYS), prefix)
    return _validate(value, _POLICY_KEYS, prefix)


def _section_overrides(mapping: dict[Any, Any], allowed: tuple[str, ...], prefix: str) -> _Overrides:
    _check_keys(mapping, allowed, prefix)
    return _Overrides(
        settings=_validate(mapping, _SETTING_KEYS, prefix),
        policy=_policy_overrides(mapping.get("policy"), f"{prefix}policy."),
    )


def _defaults(value: object) -> _Overrides:
    if value is None:
        return _Overrides(settings={}, policy={})
    if not isinstance(value, dict):
        raise _InvalidValueError("defaults", f"must be a mapping (got {_describe(value)})")
    return _section_overrides(value, _DEFAULTS_KEYS, "defaults.")


def _notifier(value: object, prefix: str) -> NotifierConfig:
    if not isinstance(value, dict):
        raise _InvalidValueError(
            prefix.rstrip("."),
            f"must be a mapping with 'notifier' and optional 'kwargs' (got {_describe(value)})",
        )
    _check_keys(value, ("notifier", "kwargs"), prefix)
    path = value.get("notifier")
    if not isinstance(path, str) or not _CLASS_PATH.fullmatch(path.strip()):
        raise _InvalidValueError(
            f"{prefix}notifier",
            "must be the class path of an Airflow notifier, like "
            f"airflow.providers.smtp.notifications.smtp.SmtpNotifier (got {_describe(path)})",
        )
    kwargs = value.get("kwargs", {})
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict) or not all(isinstance(name, str) and name for name in kwargs):
        raise _InvalidValueError(
            f"{prefix}kwargs", f"must be a mapping of argument names to values (got {_describe(kwargs)})"
        )
    return NotifierConfig(path.strip(), dict(kwargs))


def _alerts(value: object) -> AlertsConfig:
    if value is None:
        return AlertsConfig()
    if not isinstance(value, dict):
        raise _InvalidValueError(
            "alerts",
            f"must be a mapping of {' and '.join(ALERT_EVENTS)} to notifiers (got {_describe(value)})",
        )
    _check_keys(value, ALERT_EVENTS, "alerts.")
    events: dict[str, tuple[NotifierConfig, ...]] = {}
    for event in ALERT_EVENTS:
        entries = value.get(event)
        if entries is None:
            events[event] = ()
            continue
        if not isinstance(entries, list):
            raise _InvalidValueError(
                f"alerts.{event}", f"must be a list of notifiers (got {_describe(entries)})"
            )
        events[event] = tuple(
            _notifier(entry, f"alerts.{event}[{index}].") for index, entry in enumerate(entries)
        )
    return AlertsConfig(on_failure=events["on_failure"], grant_expired=events["grant_expired"])


def _grant_name(entry: object) -> str | None:
    """The grant's key if it is a usable slug, else None (the grant is then named by its index)."""
    if isinstance(entry, dict):
        key = entry.get("key")
        if isinstance(key, str) and _SLUG.fullmatch(key):
            return key
    return None


def _grant(entry: object, defaults: _Overrides) -> GrantConfig:
    if not isinstance(entry, dict):
        raise _InvalidValueError(
            None, f"must be a mapping with at least key, grant_id and start_date (got {_describe(entry)})"
        )
    _check_keys(entry, _GRANT_KEYS, "")
    for required in _REQUIRED_GRANT_KEYS:
        if entry.get(required) is None:
            raise _InvalidValueError(required, "required key is missing")
    if _grant_name(entry) is None:
        raise _InvalidValueError(
            "key",
            "must be a slug: 1 to 64 lowercase letters, digits, '_' or '-', starting with a letter or digit"
            f" (got {_describe(entry['key'])})",
        )
    if entry["key"] in RESERVED_KEYS:
        raise _InvalidValueError(
            "key", f"{entry['key']!r} is reserved for the project's real-time DAG; choose another key"
        )
    own = _validate(entry, _GRANT_OWN_KEYS, "")
    overrides = _section_overrides(entry, _GRANT_KEYS, "")
    policy = replace(PolicyConfig(), **{**defaults.policy, **overrides.policy})
    return replace(_PLACEHOLDER_GRANT, **{**own, **defaults.settings, **overrides.settings}, policy=policy)


# ---------------------------------------------------------------------------------------------------


def parse_config(text: str, source: str) -> ConfigResult:
    """Validate the grants file `text`; `source` (a path, for messages) is never opened."""
    try:
        loaded = _load_yaml(text)
        document = loaded.data
        if not isinstance(document, dict):
            raise _InvalidValueError(
                None, f"must be a mapping with a 'grants' list (got {_describe(document)})"
            )
        _check_keys(document, _TOP_LEVEL_KEYS, "")
        defaults = _defaults(document.get("defaults"))
        alerts = _alerts(document.get("alerts"))
        entries = document.get("grants")
        if not isinstance(entries, list):
            raise _InvalidValueError("grants", f"must be a list of grants (got {_describe(entries)})")
    except _InvalidValueError as exc:
        return ConfigResult(grants=(), errors=(ConfigError(source, None, exc.key, exc.message),))

    repeated_in: dict[int, _RepeatedKey] = {}
    for repeated in loaded.repeated:  # those outside every entry were a whole-file error above
        entry = loaded.entry_of(repeated)
        if entry is not None:
            repeated_in.setdefault(entry, repeated)

    def line_of(index: int) -> str:
        line = loaded.entry_line(index)
        return f" (line {line})" if line is not None else ""

    valid: dict[int, GrantConfig] = {}
    errors: list[tuple[int, ConfigError]] = []
    first_index_of_key: dict[str, int] = {}
    for index, entry in enumerate(entries):
        name = _grant_name(entry)
        if name is not None and name in first_index_of_key:
            first = first_index_of_key[name]
            message = (
                f"duplicate key '{name}', already used by grants[{first}]{line_of(first)};"
                " every grant needs its own key"
            )
            errors.append((index, ConfigError(source, f"grants[{index}]", "key", message)))
            continue
        if name is not None:
            first_index_of_key[name] = index
        if index in repeated_in:
            repeated = repeated_in[index]
            shown = repeated.key if isinstance(repeated.key, str) else None
            error = ConfigError(source, name or f"grants[{index}]", shown, _repeated_message(repeated))
            errors.append((index, error))
            continue
        try:
            valid[index] = _grant(entry, defaults)
        except _InvalidValueError as exc:
            errors.append((index, ConfigError(source, name or f"grants[{index}]", exc.key, exc.message)))
    errors.extend(_shared_grant_ids(valid, line_of, source))
    shared = {index for index, _ in errors}
    grants = [grant for index, grant in valid.items() if index not in shared]
    return ConfigResult(
        grants=tuple(sorted(grants, key=lambda g: g.key)),
        errors=tuple(error for _, error in sorted(errors, key=lambda pair: pair[0])),
        alerts=alerts,
    )


def _shared_grant_ids(
    valid: Mapping[int, GrantConfig], line_of: Callable[[int], str], source: str
) -> list[tuple[int, ConfigError]]:
    """An error for every enabled grant whose Nylas grant id another enabled grant also has: two DAGs would
    sync one mailbox, and which entry is meant cannot be told, so neither loads."""
    by_id: dict[str, list[int]] = {}
    for index, grant in valid.items():
        if grant.enabled:
            by_id.setdefault(grant.grant_id.casefold(), []).append(index)
    errors: list[tuple[int, ConfigError]] = []
    for indexes in by_id.values():
        if len(indexes) < 2:
            continue
        for index in indexes:
            others = ", ".join(f"grant '{valid[o].key}'{line_of(o)}" for o in indexes if o != index)
            message = (
                f"this entry{line_of(index)} has the same Nylas grant id as {others}; one mailbox is"
                " synced by one entry only, so remove the extra entry (or set enabled: false on it)"
            )
            errors.append((index, ConfigError(source, valid[index].key, "grant_id", message)))
    return errors
