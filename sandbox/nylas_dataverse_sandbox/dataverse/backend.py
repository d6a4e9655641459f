"""Dataverse state: the rows, the rules a write must pass, service protection and fault knobs. No HTTP.

Rows live in ``Store`` (SQLite + memory) keyed by entity set. A row is the Web API's JSON shape (lookups as
``_x_value``) plus one private key, ``@lookups`` (lookup attribute -> table of the bound row), which the
serializer turns into ``@Microsoft.Dynamics.CRM.lookuplogicalname`` annotations and never shows otherwise.

State rules (``statecode``/``statuscode``), from the real metadata and documented behaviour:

- create ignores ``statecode``; a ``statuscode`` must belong to the default state (Open/Active), else
  ``InvalidStateTransitionError`` (400, 0x80048408);
- update: the (new) state and status must form a valid pair; ``statecode`` alone takes that state's default
  status; ``statuscode`` alone must belong to the current state;
- a completed or canceled activity (``statecode`` != 0) is read-only: any PATCH is ``RecordReadOnlyError``.

Not modelled (documented, UNCERTAIN in the real service): ``messageid`` uniqueness, duplicate detection,
alternate keys, plug-ins.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.dataverse import errors
from nylas_dataverse_sandbox.dataverse.payload import PreparedParty, PreparedWrite, prepare_write
from nylas_dataverse_sandbox.dataverse.schema import EntitySchema, Schema, load_schema
from nylas_dataverse_sandbox.dataverse.store import Row, Store
from nylas_dataverse_sandbox.dataverse.throttle import (
    ServiceProtection,
    ServiceProtectionLimits,
    request_limit_message,
)
from nylas_dataverse_sandbox.entra.backend import EntraBackend

LOOKUPS_KEY = "@lookups"
ORGANIZATION_ID = personas.stable_id("organization", "sandbox")
BUSINESS_UNIT_ID = personas.stable_id("businessunit", "sandbox")
_SEED_EPOCH = dt.datetime(2025, 1, 6, 9, 0, tzinfo=dt.UTC)
_PRIMARY_EMAIL = {"systemuser": "internalemailaddress"}  # others use emailaddress1


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def application_user_id(client_id: str) -> str:
    return personas.stable_id("systemuser", f"application:{client_id}")


@dataclass
class DataverseFaults:
    """Drill knobs, all off by default. Fractions are probabilities per HTTP request (seeded RNG).

    Injected 429s use the request-count code ``0x80072322`` with ``Retry-After`` 1, 2, 3, ... (capped at 10)
    for consecutive injections; injected 5xx are 500 or 503 at random with code ``0x80040216``;
    ``expire_tokens_every_s`` invalidates every issued token on that period, so clients see 401 and must
    fetch a new token (MSAL's cache would otherwise hand back the dead one).
    """

    throttle_fraction: float = 0.0
    error_5xx_fraction: float = 0.0
    latency_s: float = 0.0
    expire_tokens_every_s: float | None = None
    seed: int = 0

    def validate(self) -> None:
        for name in ("throttle_fraction", "error_5xx_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.latency_s < 0:
            raise ValueError(f"latency_s must not be negative, got {self.latency_s}")
        if self.expire_tokens_every_s is not None and self.expire_tokens_every_s <= 0:
            raise ValueError(
                f"expire_tokens_every_s must be positive or null, got {self.expire_tokens_every_s}"
            )


@dataclass(frozen=True)
class Caller:
    client_id: str
    user_id: str


class DataverseBackend:
    def __init__(
        self,
        *,
        db_path: Path,
        entra: EntraBackend,
        limits: ServiceProtectionLimits = ServiceProtectionLimits(),  # noqa: B008 - frozen, shared safely
    ) -> None:
        self.schema: Schema = load_schema()
        self.store = Store(Path(db_path), indexes=(("activityparties", "_activityid_value"),))
        self.entra = entra
        self.protection = ServiceProtection(limits)
        self.faults = DataverseFaults()
        self.authorization_uri: str | None = None  # advertised in 401 WWW-Authenticate when set
        self._fault_lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._injected_streak = 0
        self._last_token_expiry = time.monotonic()
        if self.store.meta("seeded") is None:
            self._seed()

    # --- configuration --------------------------------------------------------------------------------
    @property
    def limits(self) -> ServiceProtectionLimits:
        return self.protection.limits

    def set_limits(self, limits: ServiceProtectionLimits) -> None:
        self.protection.configure(limits)

    def set_faults(self, **changes: Any) -> DataverseFaults:
        known = {f.name for f in fields(DataverseFaults)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault knobs {unknown}; known: {sorted(known)}")
        candidate = DataverseFaults(**{**asdict(self.faults), **changes})
        candidate.validate()
        with self._fault_lock:
            self.faults = candidate
            self._rng = random.Random(candidate.seed)
            self._injected_streak = 0
            self._last_token_expiry = time.monotonic()
        return candidate

    def inject_fault(self) -> errors.DataverseError | None:
        """The error a drill wants for this request, if any (called once per HTTP request)."""
        faults = self.faults
        with self._fault_lock:
            roll = self._rng.random()
            if roll < faults.throttle_fraction:
                self._injected_streak += 1
                self.count("faults.throttle")
                return errors.ThrottledError(
                    "0x80072322", request_limit_message(self.limits), min(self._injected_streak, 10)
                )
            self._injected_streak = 0
            if roll < faults.throttle_fraction + faults.error_5xx_fraction:
                self.count("faults.5xx")
                if self._rng.random() < 0.5:
                    return errors.ServerError(503, "The service is temporarily unavailable. Try again later.")
                return errors.ServerError(500)
        return None

    # --- identity -------------------------------------------------------------------------------------
    def authenticate(self, authorization: str | None, audience: str) -> Caller:
        every = self.faults.expire_tokens_every_s
        if every is not None:
            with self._fault_lock:
                if time.monotonic() - self._last_token_expiry >= every:
                    self._last_token_expiry = time.monotonic()
                    self.entra.expire_all()
                    self.count("faults.token_expiry")
        scheme, _, token = (authorization or "").partition(" ")
        info = self.entra.validate(token.strip(), audience) if scheme.lower() == "bearer" and token else None
        if info is None:
            self.count("unauthenticated")
            headers = {}
            if self.authorization_uri:
                headers["WWW-Authenticate"] = (
                    f"Bearer authorization_uri={self.authorization_uri}, resource_id={audience.rstrip('/')}/"
                )
            raise errors.NotAuthenticatedError("", headers=headers)
        user = self.store.get("systemusers", application_user_id(info.client_id))
        if user is None or user.get("isdisabled"):
            raise errors.NotAMemberError()
        return Caller(info.client_id, user["systemuserid"])

    def whoami(self, caller: Caller) -> dict[str, str]:
        return {
            "BusinessUnitId": BUSINESS_UNIT_ID,
            "UserId": caller.user_id,
            "OrganizationId": ORGANIZATION_ID,
        }

    # --- rows -----------------------------------------------------------------------------------------
    def entity_for_set(self, entity_set: str) -> EntitySchema:
        entity = self.schema.by_set(entity_set)
        if entity is None:
            raise errors.ResourceNotFoundError(entity_set)
        return entity

    def exists(self, logical: str, row_id: str) -> bool:
        entity = self.schema.entities.get(logical)
        return entity is not None and self.store.get(entity.entity_set, row_id) is not None

    @contextmanager
    def atomic(self) -> Iterator[None]:
        with self.store.atomic():
            yield

    def retrieve(self, entity: EntitySchema, row_id: str) -> Row:
        row = self.store.get(entity.entity_set, row_id)
        if row is None:
            raise errors.RecordNotFoundError(entity.logical_name, row_id)
        return row

    def query(self, entity: EntitySchema, keep: Any = None) -> list[Row]:
        return self.store.scan(entity.entity_set, keep)

    def parties_of(self, activity_id: str) -> list[Row]:
        return self.store.find("activityparties", "_activityid_value", activity_id)

    def create(self, entity: EntitySchema, payload: Any, caller: Caller, row_id: str | None = None) -> Row:
        """Insert one row (and its deep-inserted parties); ``row_id`` comes from an upsert URL."""
        if entity.logical_name == "activityparty":
            raise errors.MethodNotAllowedError("Create", entity.logical_name)
        prepared = prepare_write(self.schema, entity, payload, creating=True, exists=self.exists)
        supplied = prepared.columns.pop(entity.primary_id, None)
        new_id = row_id or supplied or str(uuid.uuid4())
        row: Row = {entity.primary_id: new_id}
        row.update(prepared.columns)
        self._apply_create_state(entity, row, new_id)
        stamp = now_iso()
        row.update(createdon=stamp, modifiedon=stamp)
        row["_createdby_value"] = row["_modifiedby_value"] = caller.user_id
        lookups: dict[str, str] = {"createdby": "systemuser", "modifiedby": "systemuser"}
        if "ownerid" in entity.attributes:
            row["_ownerid_value"] = caller.user_id
            lookups["ownerid"] = "systemuser"
        if entity.is_activity:
            row["activitytypecode"] = entity.logical_name
        self._apply_binds(row, lookups, prepared)
        self._derive_names(entity, row)
        with self.store.atomic():
            if self.store.get(entity.entity_set, new_id) is not None:
                raise errors.DuplicateRecordError("Cannot insert duplicate key.")
            if prepared.parties is not None:
                self._write_parties(entity, row, lookups, new_id, prepared.parties, caller)
            row[LOOKUPS_KEY] = lookups
            self._save(entity, row)
        return row

    def update(
        self,
        entity: EntitySchema,
        row_id: str,
        payload: Any,
        caller: Caller,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> tuple[Row, bool]:
        """PATCH semantics: update, or create when missing (upsert). Returns (row, created)."""
        if entity.logical_name == "activityparty":
            raise errors.MethodNotAllowedError("Update", entity.logical_name)
        with self.store.atomic():
            current = self.store.get(entity.entity_set, row_id)
            if current is None:
                if if_match is not None:
                    raise errors.RecordNotFoundError(entity.logical_name, row_id)
                return self.create(entity, payload, caller, row_id=row_id), True
            if if_none_match == "*":
                raise errors.DuplicateRecordError()
            if if_match not in (None, "*") and if_match != etag(current):
                raise errors.VersionMismatchError()
            prepared = prepare_write(self.schema, entity, payload, creating=False, exists=self.exists)
            if entity.is_activity and current.get("statecode", 0) != 0:
                label = (
                    entity.states[current["statecode"]].label
                    if current["statecode"] in entity.states
                    else "?"
                )
                raise errors.RecordReadOnlyError(entity.logical_name, row_id, label)
            row = dict(current)
            row.update(prepared.columns)
            self._apply_update_state(entity, current, row, prepared, row_id)
            lookups = dict(current.get(LOOKUPS_KEY, {}))
            self._apply_binds(row, lookups, prepared)
            self._derive_names(entity, row)
            row["modifiedon"] = now_iso()
            row["_modifiedby_value"] = caller.user_id
            if prepared.parties is not None:
                for party in self.parties_of(row_id):
                    self.store.delete("activityparties", party["activitypartyid"])
                self._write_parties(entity, row, lookups, row_id, prepared.parties, caller)
            row[LOOKUPS_KEY] = lookups
            self._save(entity, row)
        return row, False

    def delete(self, entity: EntitySchema, row_id: str) -> None:
        if entity.logical_name == "activityparty":
            raise errors.MethodNotAllowedError("Delete", entity.logical_name)
        with self.store.atomic():
            self.retrieve(entity, row_id)
            for party in self.parties_of(row_id) if entity.is_activity else []:
                self.store.delete("activityparties", party["activitypartyid"])
            self.store.delete(entity.entity_set, row_id)

    # --- write helpers --------------------------------------------------------------------------------
    def _save(self, entity: EntitySchema, row: Row) -> None:
        row["versionnumber"] = self.store.increment("_versionnumber")
        self.store.put(entity.entity_set, row[entity.primary_id], row)

    def _apply_create_state(self, entity: EntitySchema, row: Row, row_id: str) -> None:
        default = entity.default_state
        if default is None:
            return
        row["statecode"] = default.value
        status = row.get("statuscode")
        if status is None:
            row["statuscode"] = default.default_status
        elif status not in entity.statuses or entity.statuses[status].state != default.value:
            raise errors.InvalidStateTransitionError(
                status, entity.state_type, default.invariant, entity.logical_name, row_id
            )

    def _apply_update_state(
        self, entity: EntitySchema, current: Row, row: Row, prepared: PreparedWrite, row_id: str
    ) -> None:
        if not entity.states or (
            "statecode" not in prepared.columns and "statuscode" not in prepared.columns
        ):
            return
        state = prepared.columns.get("statecode", current.get("statecode", 0))
        if not isinstance(state, int) or state not in entity.states:
            raise errors.OptionOutOfRangeError("statecode", entity.logical_name, state, sorted(entity.states))
        status = prepared.columns.get("statuscode")
        if status is None:
            status = entity.states[state].default_status
        if status not in entity.statuses or entity.statuses[status].state != state:
            raise errors.InvalidStateTransitionError(
                status, entity.state_type, entity.states[state].invariant, entity.logical_name, row_id
            )
        row["statecode"], row["statuscode"] = state, status
        if entity.is_activity and state != 0:
            row.setdefault("actualend", now_iso())

    def _apply_binds(self, row: Row, lookups: dict[str, str], prepared: PreparedWrite) -> None:
        for attribute, bind in prepared.binds.items():
            row[f"_{attribute}_value"] = bind.target_id
            lookups[attribute] = bind.target

    def _derive_names(self, entity: EntitySchema, row: Row) -> None:
        if entity.logical_name in {"contact", "lead", "systemuser"} and (
            "firstname" in row or "lastname" in row
        ):
            row["fullname"] = f"{row.get('firstname') or ''} {row.get('lastname') or ''}".strip()

    def _write_parties(
        self,
        entity: EntitySchema,
        row: Row,
        lookups: dict[str, str],
        activity_id: str,
        parties: list[PreparedParty],
        caller: Caller,
    ) -> None:
        sender_targets = (
            entity.attributes["emailsender"].targets if "emailsender" in entity.attributes else ()
        )
        for party in parties:
            party_row: Row = {"activitypartyid": str(uuid.uuid4()), **party.columns}
            party_row["_activityid_value"] = activity_id
            party_row["ispartydeleted"] = False
            party_lookups = {"activityid": entity.logical_name}
            if party.bind is not None:
                party_row["_partyid_value"] = party.bind.target_id
                party_lookups["partyid"] = party.bind.target
                bound = self.retrieve(self.schema.entities[party.bind.target], party.bind.target_id)
                if not party_row.get("addressused"):
                    party_row["addressused"] = bound.get(
                        _PRIMARY_EMAIL.get(party.bind.target, "emailaddress1")
                    )
                sender = party_row.get("participationtypemask") == 1 and party.bind.target in sender_targets
                if sender:
                    row["_emailsender_value"] = party.bind.target_id
                    lookups["emailsender"] = party.bind.target
            party_row["_ownerid_value"] = caller.user_id
            party_row[LOOKUPS_KEY] = party_lookups
            party_row["versionnumber"] = self.store.increment("_versionnumber")
            self.store.put("activityparties", party_row["activitypartyid"], party_row)

    # --- seeding, inspection, admin -------------------------------------------------------------------
    def _seed(self) -> None:
        with self.store.atomic():
            for index, row in enumerate(_seed_rows(self.entra)):
                entity_set = row.pop("@set")
                stamp = (_SEED_EPOCH + dt.timedelta(hours=index)).strftime("%Y-%m-%dT%H:%M:%SZ")
                row.setdefault("createdon", stamp)
                row.setdefault("modifiedon", stamp)
                row["versionnumber"] = self.store.increment("_versionnumber")
                primary = self.schema.by_set(entity_set)
                assert primary is not None
                self.store.put(entity_set, row[primary.primary_id], row)
            self.store.set_meta("seeded", now_iso())

    def reset(self) -> None:
        """Wipe every row and counter and seed again, as on a first start."""
        self.store.wipe()
        self._seed()
        self.protection.reset()

    def count(self, name: str, amount: int = 1) -> None:
        self.store.increment(name, amount)

    def count_request(self, status: int) -> None:
        with self.store.atomic():
            self.store.increment("requests")
            self.store.increment(f"status.{status}")

    def counters(self) -> dict[str, int]:
        result = {k: v for k, v in self.store.counters().items() if not k.startswith("_")}
        for entity in self.schema.entities.values():
            result[f"rows.{entity.entity_set}"] = self.store.count(entity.entity_set)
        return dict(sorted(result.items()))

    def emails_with_parties(self) -> list[dict[str, Any]]:
        """Every email with its ``email_activity_parties``, oldest first (for people and tests to inspect)."""
        emails = []
        for email in self.store.scan("emails"):
            email.pop(LOOKUPS_KEY, None)
            parties = [
                {k: v for k, v in p.items() if k != LOOKUPS_KEY} for p in self.parties_of(email["activityid"])
            ]
            email["email_activity_parties"] = sorted(
                parties, key=lambda p: (p.get("participationtypemask", 0), p.get("addressused") or "")
            )
            emails.append(email)
        return sorted(emails, key=lambda e: (e.get("createdon", ""), e.get("versionnumber", 0)))

    def close(self) -> None:
        self.store.close()


def etag(row: Mapping[str, Any]) -> str:
    return f'W/"{row.get("versionnumber", 0)}"'


def _person(prefix: str, key: str, first: str, last: str) -> Row:
    return {
        f"{prefix}id": personas.stable_id(prefix, key),
        "firstname": first,
        "lastname": last,
        "fullname": f"{first} {last}".strip(),
    }


def _emails(addresses: tuple[str, ...]) -> Row:
    return {f"emailaddress{i}": address for i, address in enumerate(addresses[:3], start=1)}


def _seed_rows(entra: EntraBackend) -> list[Row]:
    """The personas as Dataverse rows; ``@set`` names the entity set."""
    owner = personas.stable_id("systemuser", personas.SYSTEM_USERS[0].key)
    owned = {"_ownerid_value": owner, LOOKUPS_KEY: {"ownerid": "systemuser"}}
    active = {"statecode": 0, "statuscode": 1}
    rows: list[Row] = []
    for person in personas.SYSTEM_USERS:
        row = _person("systemuser", person.key, person.first, person.last)
        row.update(internalemailaddress=person.emails[0], isdisabled=False, applicationid=None, accessmode=0)
        rows.append({"@set": "systemusers", **row, "_businessunitid_value": BUSINESS_UNIT_ID})
    for client_id in entra.clients:
        rows.append(
            {
                "@set": "systemusers",
                "systemuserid": application_user_id(client_id),
                "firstname": "#",
                "lastname": "Nylas Dataverse Sync",
                "fullname": "# Nylas Dataverse Sync",
                "internalemailaddress": f"app-{client_id[:8]}@{personas.ORG_DOMAINS[0]}",
                "applicationid": client_id,
                "isdisabled": False,
                "accessmode": 4,
                "_businessunitid_value": BUSINESS_UNIT_ID,
            }
        )
    for account in personas.ACCOUNTS:
        rows.append(
            {
                "@set": "accounts",
                "accountid": personas.stable_id("account", account.key),
                "name": account.name,
                "websiteurl": f"https://{account.domain}",
                **_emails(account.emails),
                **active,
                **owned,
            }
        )
    for person, account_key in personas.CONTACTS:
        row = _person("contact", person.key, person.first, person.last)
        row.update(_emails(person.emails))
        row["_parentcustomerid_value"] = personas.stable_id("account", account_key)
        rows.append(
            {
                "@set": "contacts",
                **row,
                **active,
                **owned,
                LOOKUPS_KEY: {"ownerid": "systemuser", "parentcustomerid": "account"},
            }
        )
    for person in personas.LEADS:
        row = _person("lead", person.key, person.first, person.last)
        row.update(_emails(person.emails), subject=f"Enquiry from {person.full_name}")
        rows.append({"@set": "leads", **row, **active, **owned})
    return rows
