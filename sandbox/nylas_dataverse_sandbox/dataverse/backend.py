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

Where the real service is undocumented, ``DataverseBehaviour`` (``behaviour.py``) picks the answer: messageid
uniqueness, the sender-party restriction, attachments on closed emails, the security model's missing
privileges, and more. ``reset()`` puts rows, counters, limits, behaviour and faults back to what the backend
was configured with. Not modelled: alternate keys, duplicate-detection rules other than messageid, plug-ins.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import random
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.dataverse import errors, security
from nylas_dataverse_sandbox.dataverse.behaviour import DataverseBehaviour, DataverseFaults, changed
from nylas_dataverse_sandbox.dataverse.odata_filter import Predicate, equality_values
from nylas_dataverse_sandbox.dataverse.payload import Bind, PreparedParty, PreparedWrite, prepare_write
from nylas_dataverse_sandbox.dataverse.schema import EntitySchema, Schema, load_schema
from nylas_dataverse_sandbox.dataverse.store import Row, Store, casefold_key
from nylas_dataverse_sandbox.dataverse.throttle import (
    ServiceProtection,
    ServiceProtectionLimits,
    concurrency_limit_message,
    execution_limit_message,
    request_limit_message,
)
from nylas_dataverse_sandbox.entra.backend import EntraBackend

__all__ = ["Caller", "DataverseBackend", "DataverseBehaviour", "DataverseFaults", "QueryResult"]

LOOKUPS_KEY = "@lookups"
ORGANIZATION_ID = personas.stable_id("organization", "sandbox")
ORGANIZATION_NAME = "Contoso (sandbox)"
BUSINESS_UNIT_ID = personas.stable_id("businessunit", "sandbox")
_SEED_EPOCH = dt.datetime(2025, 1, 6, 9, 0, tzinfo=dt.UTC)
_PRIMARY_EMAIL = {"systemuser": "internalemailaddress"}  # others use emailaddress1


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def application_user_id(client_id: str) -> str:
    return personas.stable_id("systemuser", f"application:{client_id}")


@dataclass(frozen=True)
class Caller:
    client_id: str
    user_id: str


@dataclass(frozen=True)
class QueryResult:
    rows: list[Row]
    examined: int  # rows the query had to look at: the index hits, or the whole table when it scanned
    indexed: bool


_DUPLICATE_KEY_MESSAGES = {
    "sql": "Cannot insert duplicate key.",
    "matching-key": "A record with matching key values already exists.",
    "integrity": "Operation failed due to a SQL integrity violation.",
}
_THROTTLE_MESSAGES = {
    "0x80072322": request_limit_message,
    "0x80072321": execution_limit_message,
    "0x80072326": concurrency_limit_message,
}


class DataverseBackend:
    def __init__(
        self,
        *,
        db_path: Path,
        entra: EntraBackend,
        limits: ServiceProtectionLimits = ServiceProtectionLimits(),  # noqa: B008 - frozen, shared safely
        behaviour: DataverseBehaviour | None = None,
        faults: DataverseFaults | None = None,
    ) -> None:
        self.schema: Schema = load_schema()
        self.store = Store(
            Path(db_path),
            indexes=(
                ("activityparties", "_activityid_value"),
                ("activitymimeattachments", "_objectid_value"),
                ("emails", "messageid", casefold_key),
            ),
        )
        self.entra = entra
        self.protection = ServiceProtection(limits)
        self.authorization_uri: str | None = None  # advertised in 401 WWW-Authenticate when set
        self._fault_lock = threading.Lock()
        self._configured = (limits, behaviour or DataverseBehaviour(), faults or DataverseFaults())
        self._configured[1].validate()
        self._configured[2].validate()
        self.behaviour = self._configured[1]
        self.faults = self._configured[2]
        self._restart_fault_state()
        if self.store.meta("seeded") is None:
            self._seed()

    # --- configuration --------------------------------------------------------------------------------
    @property
    def limits(self) -> ServiceProtectionLimits:
        return self.protection.limits

    def set_limits(self, limits: ServiceProtectionLimits) -> None:
        self.protection.configure(limits)

    def configure_defaults(
        self,
        *,
        limits: ServiceProtectionLimits | None = None,
        behaviour: DataverseBehaviour | None = None,
        faults: DataverseFaults | None = None,
    ) -> None:
        """Change what ``reset()`` returns to (and apply it now)."""
        current_limits, current_behaviour, current_faults = self._configured
        for value in (behaviour, faults):
            if value is not None:
                value.validate()
        self._configured = (
            limits or current_limits,
            behaviour or current_behaviour,
            faults or current_faults,
        )
        self.set_limits(self._configured[0])
        self._apply_behaviour(self._configured[1])
        with self._fault_lock:
            self.faults = self._configured[2]
            self._restart_fault_state()

    def _restart_fault_state(self) -> None:
        self._rng = random.Random(self.faults.seed)
        self._injected_streak = 0
        self._changeset_streak = 0
        self._match_failures: dict[str, int] = {}
        self._writes_seen = 0
        self._last_token_expiry = time.monotonic()

    def set_faults(self, **changes: Any) -> DataverseFaults:
        candidate: DataverseFaults = changed(self.faults, changes)
        with self._fault_lock:
            self.faults = candidate
            self._restart_fault_state()
        return candidate

    def set_behaviour(self, **changes: Any) -> DataverseBehaviour:
        candidate: DataverseBehaviour = changed(self.behaviour, changes)
        self._apply_behaviour(candidate)
        return candidate

    def _apply_behaviour(self, behaviour: DataverseBehaviour) -> None:
        previous = self.behaviour
        self.behaviour = behaviour
        with self.store.atomic():
            if behaviour.seed_inactive_rows != previous.seed_inactive_rows:
                self._toggle_inactive_rows(behaviour.seed_inactive_rows)
            organization = self.store.get("organizations", ORGANIZATION_ID)
            if organization is not None and (
                organization.get("maxuploadfilesize") != behaviour.max_upload_file_size
            ):
                organization["maxuploadfilesize"] = behaviour.max_upload_file_size
                self._save(self.schema.entities["organization"], organization)

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

    def changeset_fault(self, index: int, bodies: list[str]) -> errors.DataverseError | None:
        """The error a drill wants for the ``index``-th (1-based) change set of a ``$batch``, whose
        operations' URLs and bodies are ``bodies``; None lets it run."""
        faults = self.faults
        with self._fault_lock:
            status: int | None = None
            if faults.changeset_fault_nth and index == faults.changeset_fault_nth:
                status = faults.changeset_fault_status
            for needle in faults.changeset_fault_match:
                if any(needle in body for body in bodies):
                    if self._match_failures.get(needle, 0) < faults.changeset_fault_times:
                        self._match_failures[needle] = self._match_failures.get(needle, 0) + 1
                        status = faults.changeset_fault_status
                    break
            if status is None and (faults.changeset_throttle_fraction or faults.changeset_5xx_fraction):
                roll = self._rng.random()
                if roll < faults.changeset_throttle_fraction:
                    status = 429
                elif roll < faults.changeset_throttle_fraction + faults.changeset_5xx_fraction:
                    status = 500 if self._rng.random() < 0.5 else 503
            if status is None:
                self._changeset_streak = 0
                return None
            if status == 429:
                self._changeset_streak += 1
                self.count("faults.changeset_throttle")
                code = faults.changeset_throttle_code
                return errors.ThrottledError(
                    code, _THROTTLE_MESSAGES[code](self.limits), min(self._changeset_streak, 10)
                )
            self.count("faults.changeset_5xx")
            if status == 503:
                return errors.ServerError(503, "The service is temporarily unavailable. Try again later.")
            return errors.ServerError(500)

    def gateway_fault_after(self, method: str) -> int | None:
        """For a write that was just applied: the gateway status to answer instead (0 = drop), or None."""
        every = self.faults.gateway_after_apply_every
        if not every or method.upper() not in {"POST", "PATCH", "PUT", "DELETE"}:
            return None
        with self._fault_lock:
            self._writes_seen += 1
            if self._writes_seen % every:
                return None
        self.count("faults.gateway_after_apply")
        return self.faults.gateway_after_apply_status

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

    def principal(self, caller: Caller) -> security.Principal:
        return security.Principal(
            caller.user_id,
            BUSINESS_UNIT_ID,
            personas.stable_id("service-principal", caller.client_id),
            self.privileges_of(caller.user_id),
        )

    def privileges_of(self, user_id: str) -> frozenset[str]:
        """Privileges a system user holds: the application users lack ``missing_privileges``."""
        user = self.store.get("systemusers", user_id)
        if user is None:
            raise errors.RecordNotFoundError("systemuser", user_id)
        if user.get("applicationid"):
            return security.granted(self.behaviour.missing_privileges)
        return security.granted(())

    def user_privileges(self, user_id: str) -> list[dict[str, object]]:
        return security.role_privileges(self.privileges_of(user_id), BUSINESS_UNIT_ID)

    # --- rows -----------------------------------------------------------------------------------------
    def entity_for_set(self, entity_set: str) -> EntitySchema:
        entity = self.schema.by_set(entity_set)
        if entity is None:
            raise errors.ResourceNotFoundError(entity_set)
        return entity

    def exists(self, logical: str, row_id: str) -> bool:
        return self._locate(logical, row_id) is not None

    def _locate(self, logical: str, row_id: str) -> EntitySchema | None:
        """The hosted table that holds ``row_id`` for a bind to ``logical`` (``activitypointer``: any
        activity table)."""
        candidates = (
            [e for e in self.schema.entities.values() if e.is_activity]
            if logical == "activitypointer"
            else [self.schema.entities[logical]]
            if logical in self.schema.entities
            else []
        )
        return next((e for e in candidates if self.store.get(e.entity_set, row_id) is not None), None)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        with self.store.atomic():
            yield

    def retrieve(self, entity: EntitySchema, row_id: str) -> Row:
        row = self.store.get(entity.entity_set, row_id)
        if row is None:
            raise errors.RecordNotFoundError(entity.logical_name, row_id)
        return row

    def query(self, entity: EntitySchema, predicate: Predicate | None = None) -> QueryResult:
        """Rows matching ``predicate``, ordered by id. A ``messageid`` filter on emails is served by the
        index (``messageid_indexed``); everything else scans the table, as SQL without an index would."""
        if predicate is not None and self.store.has_index(entity.entity_set, "messageid"):
            values = equality_values(predicate, "messageid") if self.behaviour.messageid_indexed else None
            if values is not None:
                hits = self.store.find_any(entity.entity_set, "messageid", values)
                return QueryResult([row for row in hits if predicate(row)], len(hits), True)
        rows = self.store.scan(entity.entity_set, predicate)
        examined = self.store.count(entity.entity_set) if predicate is not None else len(rows)
        return QueryResult(rows, examined, False)

    def parties_of(self, activity_id: str) -> list[Row]:
        return self.store.find("activityparties", "_activityid_value", activity_id)

    def create(
        self,
        entity: EntitySchema,
        payload: Any,
        caller: Caller,
        row_id: str | None = None,
        *,
        duplicate_detection: bool = False,
    ) -> Row:
        """Insert one row (and its deep-inserted parties); ``row_id`` comes from an upsert URL.
        ``duplicate_detection``: the request sent ``MSCRM.SuppressDuplicateDetection: false``."""
        if entity.logical_name == "activityparty":
            raise errors.MethodNotAllowedError("Create", entity.logical_name)
        principal = self.principal(caller)
        principal.require("Create", entity.logical_name)
        prepared = self._prepare(entity, payload, creating=True)
        supplied = prepared.columns.pop(entity.primary_id, None)
        new_id = row_id or supplied or str(uuid.uuid4())
        row: Row = {entity.primary_id: new_id}
        row.update(prepared.columns)
        self._apply_create_state(entity, row, new_id)
        stamp = now_iso()
        row.update(createdon=stamp, modifiedon=stamp)
        if "overriddencreatedon" in prepared.columns:
            principal.require_named("prvOverrideCreatedOnCreatedBy", entity.logical_name)
        row["_createdby_value"] = row["_modifiedby_value"] = caller.user_id
        lookups: dict[str, str] = {"createdby": "systemuser", "modifiedby": "systemuser"}
        if "ownerid" in entity.attributes:
            row["_ownerid_value"] = caller.user_id
            lookups["ownerid"] = "systemuser"
        if entity.is_activity:
            row["activitytypecode"] = entity.logical_name
        self._authorize_binds(principal, entity, prepared, caller)
        self._apply_binds(row, lookups, prepared)
        self._derive_names(entity, row)
        with self.store.atomic():
            if self.store.get(entity.entity_set, new_id) is not None:
                raise self._duplicate_key()
            if entity.logical_name == "email":
                self._check_messageid(row, duplicate_detection)
            if entity.logical_name == "activitymimeattachment":
                self._attach(row, lookups, prepared)
            if prepared.parties is not None:
                self._write_parties(entity, row, lookups, new_id, prepared.parties, caller)
            row[LOOKUPS_KEY] = lookups
            self._save(entity, row)
            self.count(f"writes.create.{entity.entity_set}")
        return row

    def _prepare(self, entity: EntitySchema, payload: Any, *, creating: bool) -> PreparedWrite:
        prepared = prepare_write(
            self.schema,
            entity,
            payload,
            creating=creating,
            exists=self.exists,
            length_unit=self.behaviour.length_unit,
        )
        if self.behaviour.sender_party_restricted and prepared.parties and entity.party_lists:
            for party in prepared.parties:
                mask = party.columns.get("participationtypemask")
                allowed = entity.party_lists.get(mask) if isinstance(mask, int) else None
                if party.bind is not None and allowed is not None and party.bind.target not in allowed:
                    raise errors.ActivityPartyObjectTypeNotAllowedError()
        return prepared

    def _authorize_binds(
        self, principal: security.Principal, entity: EntitySchema, prepared: PreparedWrite, caller: Caller
    ) -> None:
        """Append on the row that points, AppendTo on each row pointed at, Assign to give it away."""
        binds: list[Bind] = [b for a, b in prepared.binds.items() if a != "ownerid"]
        binds += [p.bind for p in prepared.parties or [] if p.bind is not None]
        for bind in binds:
            principal.require("Append", entity.logical_name)
            principal.require("AppendTo", bind.target)
        owner = prepared.binds.get("ownerid")
        if owner is not None and owner.target_id != caller.user_id:
            principal.require("Assign", entity.logical_name)

    def _duplicate_key(self) -> errors.DuplicateRecordError:
        error = errors.DuplicateRecordError(_DUPLICATE_KEY_MESSAGES[self.behaviour.duplicate_key_message])
        error.status = self.behaviour.duplicate_key_status
        return error

    def _check_messageid(self, row: Row, duplicate_detection: bool) -> None:
        mode = self.behaviour.messageid_duplicates
        messageid = row.get("messageid")
        if not messageid or mode == "allowed" or (mode != "rejected" and not duplicate_detection):
            return
        if self.store.find("emails", "messageid", messageid):
            raise errors.DuplicateRecordsFoundError()

    def _attach(self, row: Row, lookups: dict[str, str], prepared: PreparedWrite) -> None:
        """Rules for a new activitymimeattachment: an existing, open (or allowed) parent, a valid Base64
        body within ``organization.maxuploadfilesize``, the parent's ``attachmentcount``."""
        bind = prepared.binds.get("objectid")
        if bind is None:
            raise errors.InvalidValueError(
                "The 'objectid' of an attachment is required: bind 'objectid_email@odata.bind' (or "
                "'objectid_activitypointer@odata.bind') to the email."
            )
        parent_entity = self._locate(bind.target, bind.target_id)
        if parent_entity is None:
            raise errors.RecordNotFoundError(bind.target, bind.target_id)
        lookups["objectid"] = parent_entity.logical_name
        typecode = row.setdefault("objecttypecode", parent_entity.logical_name)
        if typecode != parent_entity.logical_name:
            raise errors.InvalidValueError(
                f"The objecttypecode '{typecode}' does not match the type of the attachment's object "
                f"('{parent_entity.logical_name}')."
            )
        parent = self.retrieve(parent_entity, bind.target_id)
        if parent.get("statecode", 0) != 0 and self.behaviour.attachments_on_closed_email == "rejected":
            state = parent_entity.states.get(parent["statecode"])
            raise errors.RecordReadOnlyError(
                parent_entity.logical_name, bind.target_id, state.label if state else "?"
            )
        body = row.get("body") or ""
        organization = self.store.get("organizations", ORGANIZATION_ID) or {}
        if len(body) > int(organization.get("maxuploadfilesize") or self.behaviour.max_upload_file_size):
            raise errors.AttachmentTooLargeError()
        try:
            row["filesize"] = len(base64.b64decode("".join(body.split()), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise errors.InvalidValueError(
                "The attachment 'body' is not valid Base64 text. SANDBOX CHOICE: rejected."
            ) from exc
        siblings = self.store.find("activitymimeattachments", "_objectid_value", bind.target_id)
        row.setdefault("attachmentnumber", len(siblings))
        if "attachmentcount" in parent_entity.attributes:
            parent["attachmentcount"] = len(siblings) + 1
            self._save(parent_entity, parent)

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
            principal = self.principal(caller)
            principal.require("Write", entity.logical_name)
            prepared = self._prepare(entity, payload, creating=False)
            self._authorize_binds(principal, entity, prepared, caller)
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
            self.count(f"writes.update.{entity.entity_set}")
        return row, False

    def delete(self, entity: EntitySchema, row_id: str, caller: Caller | None = None) -> None:
        if entity.logical_name == "activityparty":
            raise errors.MethodNotAllowedError("Delete", entity.logical_name)
        if caller is not None:
            self.principal(caller).require("Delete", entity.logical_name)
        with self.store.atomic():
            self.retrieve(entity, row_id)
            for party in self.parties_of(row_id) if entity.is_activity else []:
                self.store.delete("activityparties", party["activitypartyid"])
            for attachment in self.attachments_of(row_id) if entity.is_activity else []:
                self.store.delete("activitymimeattachments", attachment["activitymimeattachmentid"])
            self.store.delete(entity.entity_set, row_id)
            self.count(f"writes.delete.{entity.entity_set}")

    def attachments_of(self, activity_id: str) -> list[Row]:
        return self.store.find("activitymimeattachments", "_objectid_value", activity_id)

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
        rows = _seed_rows(self.entra, self.behaviour.max_upload_file_size)
        if self.behaviour.seed_inactive_rows:
            rows += _inactive_rows()
        with self.store.atomic():
            for row in rows:
                self._put_seed_row(row)
            self.store.set_meta("seeded", now_iso())

    def _put_seed_row(self, row: Row) -> None:
        row = dict(row)
        entity_set = row.pop("@set")
        index = row.pop("@index")
        stamp = (_SEED_EPOCH + dt.timedelta(hours=index)).strftime("%Y-%m-%dT%H:%M:%SZ")
        row.setdefault("createdon", stamp)
        row.setdefault("modifiedon", stamp)
        row["versionnumber"] = self.store.increment("_versionnumber")
        primary = self.schema.by_set(entity_set)
        assert primary is not None
        self.store.put(entity_set, row[primary.primary_id], row)

    def _toggle_inactive_rows(self, present: bool) -> None:
        for row in _inactive_rows():
            primary = self.schema.by_set(row["@set"])
            assert primary is not None
            if present:
                self._put_seed_row(row)
            elif self.store.get(row["@set"], row[primary.primary_id]) is not None:
                self.store.delete(row["@set"], row[primary.primary_id])

    def reset(self) -> None:
        """Back to a first start: every row and counter seeded again, and limits, behaviour and faults as
        configured (``configure_defaults``, else the constructor's), whatever was changed since."""
        limits, behaviour, faults = self._configured
        self.behaviour = behaviour
        with self._fault_lock:
            self.faults = faults
            self._restart_fault_state()
        self.protection.configure(limits)
        self.store.wipe()
        self._seed()
        self.protection.reset()

    def bulk_emails(self, count: int, *, prefix: str = "bulk") -> list[str]:
        """Insert ``count`` minimal received emails fast (no validation, one transaction) and return their
        messageids, for measurements on big tables. Ids and messageids are deterministic."""
        owner = self.store.get("systemusers", personas.stable_id("systemuser", personas.SYSTEM_USERS[0].key))
        assert owner is not None
        start = self.store.count("emails")
        rows: list[tuple[str, Row]] = []
        messageids = []
        for number in range(start, start + count):
            activity_id = str(uuid.UUID(int=(0xB0 << 120) + number))
            messageid = f"<{prefix}-{number:08d}@mail.example>"
            messageids.append(messageid)
            rows.append(
                (
                    activity_id,
                    {
                        "activityid": activity_id,
                        "subject": f"Bulk message {number}",
                        "messageid": messageid,
                        "directioncode": False,
                        "statecode": 1,
                        "statuscode": 4,
                        "activitytypecode": "email",
                        "_ownerid_value": owner["systemuserid"],
                        "versionnumber": number + 1,
                        LOOKUPS_KEY: {"ownerid": "systemuser"},
                    },
                )
            )
        self.store.put_many("emails", rows)
        return messageids

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


def _seed_rows(entra: EntraBackend, max_upload_file_size: int) -> list[Row]:
    """The personas as Dataverse rows; ``@set`` names the entity set, ``@index`` orders ``createdon``."""
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
    rows.append(
        {
            "@set": "organizations",
            "organizationid": ORGANIZATION_ID,
            "name": ORGANIZATION_NAME,
            "maxuploadfilesize": max_upload_file_size,
        }
    )
    return [{**row, "@index": index} for index, row in enumerate(rows)]


_INACTIVE_INDEX = 1000  # inactive rows are seeded after the active ones (later createdon)


def _inactive_rows() -> list[Row]:
    """personas.INACTIVE_ACCOUNTS / INACTIVE_CONTACTS (statecode 1) and DISQUALIFIED_LEADS (statecode 2)."""
    owner = personas.stable_id("systemuser", personas.SYSTEM_USERS[0].key)
    inactive = {"statecode": 1, "statuscode": 2, "_ownerid_value": owner}
    rows: list[Row] = []
    for account in personas.INACTIVE_ACCOUNTS:
        rows.append(
            {
                "@set": "accounts",
                "accountid": personas.stable_id("account", account.key),
                "name": account.name,
                "websiteurl": f"https://{account.domain}",
                **_emails(account.emails),
                **inactive,
                LOOKUPS_KEY: {"ownerid": "systemuser"},
            }
        )
    for person, account_key in personas.INACTIVE_CONTACTS:
        row = _person("contact", person.key, person.first, person.last)
        row.update(_emails(person.emails))
        row["_parentcustomerid_value"] = personas.stable_id("account", account_key)
        rows.append(
            {
                "@set": "contacts",
                **row,
                **inactive,
                LOOKUPS_KEY: {"ownerid": "systemuser", "parentcustomerid": "account"},
            }
        )
    for person in personas.DISQUALIFIED_LEADS:
        row = _person("lead", person.key, person.first, person.last)
        row.update(_emails(person.emails), subject=f"Enquiry from {person.full_name}")
        rows.append(
            {
                "@set": "leads",
                **row,
                **inactive,
                "statecode": 2,
                "statuscode": 6,
                LOOKUPS_KEY: {"ownerid": "systemuser"},
            }
        )
    return [{**row, "@index": _INACTIVE_INDEX + index} for index, row in enumerate(rows)]
