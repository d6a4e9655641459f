"""The OData side of the stand-in, free of any web framework: one request in, one response out.

``ODataService.handle`` serves a single Web API request (the HTTP app and each ``$batch`` operation both come
through here): it resolves the resource path, applies the query options, calls the backend and shapes the JSON
the way Dataverse does. Errors are serialized here, once. Every response carries the modelled execution cost
(``cost_ms``) that service protection charges and the server then spends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, unquote_plus, urlsplit

from nylas_dataverse_sandbox.dataverse import errors, metadata
from nylas_dataverse_sandbox.dataverse.backend import LOOKUPS_KEY, Caller, DataverseBackend, etag
from nylas_dataverse_sandbox.dataverse.batch import (
    BatchFormatError,
    BatchRequestPart,
    ChangeSetResponse,
    ResponsePart,
    parse_batch,
    resolve_content_id_references,
    serialize_batch_response,
)
from nylas_dataverse_sandbox.dataverse.odata_filter import ODataFilterError, Predicate, parse_filter
from nylas_dataverse_sandbox.dataverse.payload import parse_guid
from nylas_dataverse_sandbox.dataverse.schema import EntitySchema

API_PREFIX = "/api/data/v9.2"
MAX_PAGE_SIZE = 5000
JSON_TYPE = "application/json; odata.metadata=minimal"
_SEGMENT = re.compile(r"(?P<name>[^()/]+)(?:\((?P<key>[^()]*)\))?(?:/(?P<rest>.*))?")
_QUERY_OPTIONS = {"$select", "$filter", "$top", "$orderby", "$count", "$skiptoken", "$expand"}
_PAGE_NUMBER = re.compile(r'pagenumber="(\d+)"')
_PAGING_COOKIE = re.compile(r'pagingcookie="([^"]*)"')
_LAST_ID = re.compile(r'last="\{([0-9a-fA-F-]{36})\}"')
_BARE_LF = re.compile(rb"(?<!\r)\n")
_BOUND_FUNCTION = re.compile(r"Microsoft\.Dynamics\.CRM\.(?P<name>\w+)\(\)")


@dataclass(frozen=True)
class ODataRequest:
    method: str
    url: str  # absolute, "/api/data/v9.2/..." or relative to the service root, query string included
    headers: Mapping[str, str]  # case-insensitive
    body: bytes
    base_url: str  # scheme://host:port


@dataclass
class ODataResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    cost_ms: float = 0.0
    entity_url: str | None = None  # the row a create/upsert addressed, for $n references


def _json(
    status: int, payload: Any, cost_ms: float, extra: list[tuple[str, str]] | None = None
) -> ODataResponse:
    headers = [("Content-Type", JSON_TYPE), ("OData-Version", "4.0"), *(extra or [])]
    return ODataResponse(status, headers, json.dumps(payload, ensure_ascii=False).encode("utf-8"), cost_ms)


def parse_prefer(value: str) -> dict[str, str]:
    """``return=representation,odata.maxpagesize=10,odata.include-annotations="*"`` -> dict."""
    preferences: dict[str, str] = {}
    for item in re.findall(r'(?:[^,"]|"[^"]*")+', value or ""):
        name, _, setting = item.strip().partition("=")
        if name:
            preferences[name.strip().lower()] = setting.strip().strip('"')
    return preferences


def split_target(url: str) -> tuple[str, list[tuple[str, str]]]:
    """(resource path below the API root, decoded query parameters) of any form of request URL."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        parts = urlsplit(url)
        path, query = parts.path, parts.query
    else:
        path, _, query = url.partition("?")
    if not path.startswith("/"):
        path = f"{API_PREFIX}/{path}"
    if path.rstrip("/") == API_PREFIX:
        resource = ""
    elif path.startswith(API_PREFIX + "/"):
        resource = unquote(path[len(API_PREFIX) + 1 :])
    else:
        raise errors.ResourceNotFoundError(path.strip("/").split("/")[0] if path.strip("/") else path)
    params = []
    for pair in query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            params.append((unquote_plus(name), unquote_plus(value)))
    return resource, params


def _wants(preferences: Mapping[str, str], term: str) -> bool:
    pattern = preferences.get("odata.include-annotations", "")
    return any(
        p.strip() == "*"
        or p.strip() == term
        or (p.strip().endswith(".*") and term.startswith(p.strip()[:-1]))
        for p in pattern.split(",")
        if p.strip()
    )


class ODataService:
    def __init__(self, backend: DataverseBackend) -> None:
        self.backend = backend
        self.schema = backend.schema

    @property
    def costs(self) -> Callable[[str], float]:
        return self.backend.limits.cost

    def handle(self, request: ODataRequest, caller: Caller, *, in_batch: bool = False) -> ODataResponse:
        try:
            return self._dispatch(request, caller, in_batch)
        except errors.DataverseError as exc:
            status, headers, body = errors.serialize(exc)
            return ODataResponse(status, headers, body, self.costs("error"))

    def _dispatch(self, request: ODataRequest, caller: Caller, in_batch: bool) -> ODataResponse:
        limit = self.backend.behaviour.max_url_length * (2 if in_batch else 1)
        if len(request.url) > limit:
            raise errors.UrlTooLongError(len(request.url), limit)
        resource, params = split_target(request.url)
        api_root = request.base_url + API_PREFIX
        method = request.method.upper()
        if resource == "":
            self._only(method, "GET", "service document")
            return _json(200, metadata.service_document(self.schema, api_root), self.costs("metadata"))
        if resource == "$metadata":
            self._only(method, "GET", "$metadata")
            body = metadata.csdl(self.schema).encode("utf-8")
            headers = [("Content-Type", "application/xml"), ("OData-Version", "4.0")]
            return ODataResponse(200, headers, body, self.costs("metadata"))
        if resource == "$batch":
            self._only(method, "POST", "$batch")
            if in_batch:
                raise errors.InvalidBatchError("A $batch request cannot contain another $batch request.")
            return self._batch(request, caller)
        match = _SEGMENT.fullmatch(resource)
        if match is None:
            raise errors.BadRequestError("Bad Request - Error in query syntax.")
        name, key, rest = match["name"], match["key"], match["rest"]
        if name == "WhoAmI" and not key and not rest:
            self._only(method, "GET", "WhoAmI")
            context = {"@odata.context": f"{api_root}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse"}
            return _json(200, {**context, **self.backend.whoami(caller)}, self.costs("whoami"))
        if name == "EntityDefinitions":
            self._only(method, "GET", "EntityDefinitions")
            return self._entity_definitions(key, rest, params, api_root)
        entity = self.backend.entity_for_set(name)
        if rest and key is not None and entity.logical_name == "systemuser":
            function = _BOUND_FUNCTION.fullmatch(rest)
            if function is not None and function["name"] == "RetrieveUserPrivileges":
                self._only(method, "GET", "RetrieveUserPrivileges")
                return self._user_privileges(self._row_id(key), caller, api_root)
            if function is None and "." not in rest and rest.endswith("()"):
                raise errors.ResourceNotFoundError(rest[:-2])
        if rest:
            raise errors.UnsupportedBySandboxError(
                f"The path '{resource}' is not supported by the sandbox: it serves rows of entity sets, "
                "not navigation paths, properties or bound actions."
            )
        prefer = parse_prefer(request.headers.get("Prefer", ""))
        if key is None:
            if method == "GET":
                return self._query(entity, params, prefer, request, api_root, caller)
            if method == "POST":
                return self._create(entity, params, prefer, request, caller, api_root, in_batch)
            raise errors.MethodNotAllowedError(method.title(), entity.logical_name)
        row_id = self._row_id(key)
        if method == "GET":
            return self._retrieve(entity, row_id, params, prefer, request, api_root, caller)
        if method == "PATCH":
            return self._update(entity, row_id, params, prefer, request, caller, api_root, in_batch)
        if method == "DELETE":
            self.backend.delete(entity, row_id, caller)
            return ODataResponse(204, [("OData-Version", "4.0")], b"", self.costs("delete"))
        raise errors.MethodNotAllowedError(method.title(), entity.logical_name)

    def _user_privileges(self, user_id: str, caller: Caller, api_root: str) -> ODataResponse:
        self.backend.principal(caller).require("Read", "systemuser")
        body = {
            "@odata.context": f"{api_root}/$metadata#Microsoft.Dynamics.CRM.RetrieveUserPrivilegesResponse",
            "RolePrivileges": self.backend.user_privileges(user_id),
        }
        return _json(200, body, self.costs("whoami"))

    @staticmethod
    def _only(method: str, allowed: str, what: str) -> None:
        if method != allowed:
            raise errors.BadRequestError(
                f"The HTTP method '{method}' is not allowed for {what}; use {allowed}."
            )

    @staticmethod
    def _row_id(key: str) -> str:
        row_id = parse_guid(key)
        if row_id is not None:
            return row_id
        if "=" in key:
            raise errors.UnsupportedBySandboxError(
                f"Alternate keys ('{key}') are not modelled by the sandbox; address rows by their GUID."
            )
        raise errors.BadRequestError("Bad Request - Error in query syntax.")

    # --- reading --------------------------------------------------------------------------------------
    def _options(self, params: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, str]]:
        options: dict[str, str] = {}
        aliases: dict[str, str] = {}
        for name, value in params:
            if name.startswith("@"):
                aliases[name] = value
            elif name.startswith("$"):
                if name not in _QUERY_OPTIONS:
                    raise errors.BadRequestError(f"The query parameter '{name}' is not supported.")
                options[name] = value
            elif name == "sql":
                raise errors.UnsupportedBySandboxError(
                    "The sandbox does not implement the '?sql=' query capability."
                )
        return options, aliases

    def _select(self, entity: EntitySchema, text: str | None) -> list[str] | None:
        if not text:
            return None
        names = [n.strip() for n in text.split(",") if n.strip()]
        for name in names:
            if name not in entity.properties:
                raise errors.PropertyNotFoundError(name, entity.logical_name)
        return names

    def _expand(self, entity: EntitySchema, text: str | None) -> list[str] | None:
        """Only the activity parties of an activity can be expanded; returns their $select (or [])."""
        if not text:
            return None
        match = re.fullmatch(r"\s*(\w+)\s*(?:\(\s*\$select=([^)]*)\))?\s*", text)
        if not match or match[1] != entity.parties_nav:
            raise errors.UnsupportedBySandboxError(
                f"$expand={text} is not supported by the sandbox; only "
                f"'{entity.parties_nav or '<activity>_activity_parties'}' (optionally with $select) is."
            )
        return self._select(self.schema.entities["activityparty"], match[2]) or []

    def _shape(
        self,
        entity: EntitySchema,
        row: Mapping[str, Any],
        select: list[str] | None,
        prefer: Mapping[str, str],
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": etag(row)}
        names = [*select, entity.primary_id] if select else [k for k in row if not k.startswith("@")]
        for name in dict.fromkeys(names):
            out[name] = row.get(name)
            value = out[name]
            if _wants(prefer, "OData.Community.Display.V1.FormattedValue") and isinstance(value, int):
                label = entity.option_label(name, value)
                if label is not None:
                    out[f"{name}@OData.Community.Display.V1.FormattedValue"] = label
        if _wants(prefer, "Microsoft.Dynamics.CRM.lookuplogicalname"):
            for attribute, target in row.get(LOOKUPS_KEY, {}).items():
                if f"_{attribute}_value" in out:
                    out[f"_{attribute}_value@Microsoft.Dynamics.CRM.lookuplogicalname"] = target
        return out

    def _with_parties(
        self,
        entity: EntitySchema,
        shaped: dict[str, Any],
        party_select: list[str] | None,
        prefer: Mapping[str, str],
    ) -> dict[str, Any]:
        if party_select is not None and entity.parties_nav:
            party_entity = self.schema.entities["activityparty"]
            parties = self.backend.parties_of(shaped[entity.primary_id])
            shaped[entity.parties_nav] = [
                self._shape(party_entity, p, party_select or None, prefer) for p in parties
            ]
        return shaped

    @staticmethod
    def _context(api_root: str, entity: EntitySchema, select: list[str] | None, single: bool) -> str:
        columns = f"({','.join(select)})" if select else ""
        return f"{api_root}/$metadata#{entity.entity_set}{columns}{'/$entity' if single else ''}"

    def _retrieve(
        self,
        entity: EntitySchema,
        row_id: str,
        params: list[tuple[str, str]],
        prefer: Mapping[str, str],
        request: ODataRequest,
        api_root: str,
        caller: Caller,
    ) -> ODataResponse:
        options, _ = self._options(params)
        select = self._select(entity, options.get("$select"))
        party_select = self._expand(entity, options.get("$expand"))
        self.backend.principal(caller).require("Read", entity.logical_name)
        row = self.backend.retrieve(entity, row_id)
        if request.headers.get("If-None-Match") == etag(row):
            return ODataResponse(304, [("OData-Version", "4.0")], b"", self.costs("retrieve"))
        body = {"@odata.context": self._context(api_root, entity, select, single=True)}
        body.update(
            self._with_parties(entity, self._shape(entity, row, select, prefer), party_select, prefer)
        )
        return _json(200, body, self.costs("retrieve"), self._preference_applied(prefer))

    @staticmethod
    def _preference_applied(prefer: Mapping[str, str], *extra: str) -> list[tuple[str, str]]:
        applied = list(extra)
        if "odata.include-annotations" in prefer:
            applied.append(f'odata.include-annotations="{prefer["odata.include-annotations"]}"')
        return [("Preference-Applied", ",".join(applied))] if applied else []

    def _query(
        self,
        entity: EntitySchema,
        params: list[tuple[str, str]],
        prefer: Mapping[str, str],
        request: ODataRequest,
        api_root: str,
        caller: Caller,
    ) -> ODataResponse:
        options, aliases = self._options(params)
        select = self._select(entity, options.get("$select"))
        party_select = self._expand(entity, options.get("$expand"))
        predicate: Predicate | None = None
        if options.get("$filter"):
            try:
                predicate = parse_filter(options["$filter"], aliases)
            except ODataFilterError as exc:
                raise errors.BadRequestError(exc.message) from exc
            for name in sorted(predicate.properties):
                if name.split("/")[0] not in entity.properties:
                    raise errors.PropertyNotFoundError(name.split("/")[0], entity.logical_name)
            if (
                entity.logical_name == "email"
                and "description" in predicate.properties
                and self.backend.behaviour.description_filter == "rejected"
            ):
                raise errors.InvalidArgumentError(
                    "Filtering on the 'description' column of 'email' is not supported: email bodies are "
                    "kept in file storage, not in a searchable column. SANDBOX CHOICE: code and wording."
                )
        self.backend.principal(caller).require("Read", entity.logical_name)
        result = self.backend.query(entity, predicate)
        rows = result.rows
        ordered = self._order(entity, rows, options.get("$orderby"))
        page_size, applied = MAX_PAGE_SIZE, []
        if "odata.maxpagesize" in prefer:
            try:
                page_size = max(1, min(int(prefer["odata.maxpagesize"]), MAX_PAGE_SIZE))
            except ValueError as exc:
                raise errors.BadRequestError(
                    f"Invalid odata.maxpagesize '{prefer['odata.maxpagesize']}'."
                ) from exc
            applied.append(f"odata.maxpagesize={page_size}")
        elif options.get("$top"):
            rows = rows[: self._top(options["$top"])]
        start, page_number = self._page_start(entity, rows, options.get("$skiptoken"), page_size, ordered)
        page = rows[start : start + page_size]
        body: dict[str, Any] = {"@odata.context": self._context(api_root, entity, select, single=False)}
        if options.get("$count", "").lower() == "true":
            body["@odata.count"] = min(len(rows), MAX_PAGE_SIZE)
        body["value"] = [
            self._with_parties(entity, self._shape(entity, row, select, prefer), party_select, prefer)
            for row in page
        ]
        if start + page_size < len(rows):
            body["@odata.nextLink"] = self._next_link(api_root, entity, params, page_number + 1, page)
        cost = self.costs("query") + self.costs("query_per_row") * len(page)
        if predicate is not None and not result.indexed:
            cost += self.costs("query_scan_per_row") * result.examined
        self.backend.count("query.rows_examined", result.examined)
        return _json(200, body, cost, self._preference_applied(prefer, *applied))

    @staticmethod
    def _top(text: str) -> int:
        if not text.isdigit():
            raise errors.BadRequestError(
                f"Invalid value '{text}' for $top query option found. "
                "The $top query option requires a non-negative integer value."
            )
        return int(text)

    def _order(self, entity: EntitySchema, rows: list[dict[str, Any]], text: str | None) -> bool:
        """Sort ``rows`` in place by ``$orderby`` (stable; nulls first as in SQL Server); False if absent."""
        if not text:
            return False
        terms = []
        for term in text.split(","):
            name, _, direction = term.strip().partition(" ")
            if name not in entity.properties:
                raise errors.PropertyNotFoundError(name, entity.logical_name)
            if direction.strip().lower() not in ("", "asc", "desc"):
                raise errors.BadRequestError(f"Syntax error in $orderby: '{term.strip()}'.")
            terms.append((name, direction.strip().lower() == "desc"))
        for name, descending in reversed(terms):
            rows.sort(key=_column_key(name), reverse=descending)
        return True

    @staticmethod
    def _page_start(
        entity: EntitySchema, rows: list[dict[str, Any]], skiptoken: str | None, page_size: int, ordered: bool
    ) -> tuple[int, int]:
        """(index of the first row of this page, this page's number) from ``$skiptoken``."""
        if not skiptoken:
            return 0, 1
        number = _PAGE_NUMBER.search(skiptoken)
        cookie = _PAGING_COOKIE.search(skiptoken)
        if number is None:
            raise errors.BadRequestError(
                f"The $skiptoken '{skiptoken}' is not a paging cookie issued by this service."
            )
        page_number = int(number[1])
        last = _LAST_ID.search(unquote(cookie[1])) if cookie else None
        if ordered or last is None:
            return (page_number - 1) * page_size, page_number
        last_id = last[1].lower()
        return sum(1 for row in rows if row[entity.primary_id] <= last_id), page_number

    @staticmethod
    def _next_link(
        api_root: str,
        entity: EntitySchema,
        params: list[tuple[str, str]],
        page_number: int,
        page: list[dict[str, Any]],
    ) -> str:
        first, last = page[0][entity.primary_id], page[-1][entity.primary_id]
        # Shaped like Dataverse's: the cookie is URL-encoded inside the token, the token again in the URL.
        bounds = f'last="{{{last}}}" first="{{{first}}}"'
        inner = f'<cookie page="{page_number - 1}"><{entity.primary_id} {bounds} /></cookie>'
        cookie = quote(inner, safe="")
        token = f'<cookie pagenumber="{page_number}" pagingcookie="{cookie}" istracking="False" />'
        kept = [(n, v) for n, v in params if n != "$skiptoken"] + [("$skiptoken", token)]
        query = "&".join(f"{quote(n, safe='$@')}={quote(v, safe=chr(39) + '$@,()=:/[]')}" for n, v in kept)
        return f"{api_root}/{entity.entity_set}?{query}"

    # --- writing --------------------------------------------------------------------------------------
    @staticmethod
    def _body(request: ODataRequest) -> Any:
        if not request.body.strip():
            raise errors.BadRequestError("The request body is empty; send the entity as a JSON object.")
        try:
            return json.loads(request.body.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise errors.BadRequestError(f"The request body is not valid JSON: {exc}.") from exc

    def _write_cost(self, entity: EntitySchema, payload: Any) -> float:
        if entity.logical_name == "activitymimeattachment":
            body = payload.get("body") if isinstance(payload, dict) else None
            return self.backend.limits.attachment_cost(len(body) if isinstance(body, str) else 0)
        if not entity.is_activity:
            return self.costs("create")
        parties = payload.get(entity.parties_nav or "", []) if isinstance(payload, dict) else []
        return self.backend.limits.email_create_cost(len(parties) if isinstance(parties, list) else 0)

    def _written(
        self,
        entity: EntitySchema,
        row: dict[str, Any],
        status_with_body: int,
        params: list[tuple[str, str]],
        prefer: Mapping[str, str],
        api_root: str,
        cost: float,
        in_batch: bool,
    ) -> ODataResponse:
        url = f"{api_root}/{entity.entity_set}({row[entity.primary_id]})"
        if prefer.get("return") == "representation":
            options, _ = self._options(params)
            select = self._select(entity, options.get("$select"))
            body = {"@odata.context": self._context(api_root, entity, select, single=True)}
            body.update(self._shape(entity, row, select, prefer))
            response = _json(
                status_with_body, body, cost, self._preference_applied(prefer, "return=representation")
            )
        else:
            headers = [("OData-Version", "4.0"), ("OData-EntityId", url)]
            if in_batch:
                headers.insert(1, ("Location", url))
            response = ODataResponse(204, headers, b"", cost)
        response.entity_url = url
        return response

    def _create(
        self,
        entity: EntitySchema,
        params: list[tuple[str, str]],
        prefer: Mapping[str, str],
        request: ODataRequest,
        caller: Caller,
        api_root: str,
        in_batch: bool,
    ) -> ODataResponse:
        payload = self._body(request)
        detection = request.headers.get("MSCRM.SuppressDuplicateDetection", "").strip().lower() == "false"
        row = self.backend.create(entity, payload, caller, duplicate_detection=detection)
        cost = self._write_cost(entity, payload)
        return self._written(entity, row, 201, params, prefer, api_root, cost, in_batch)

    def _update(
        self,
        entity: EntitySchema,
        row_id: str,
        params: list[tuple[str, str]],
        prefer: Mapping[str, str],
        request: ODataRequest,
        caller: Caller,
        api_root: str,
        in_batch: bool,
    ) -> ODataResponse:
        payload = self._body(request)
        row, created = self.backend.update(
            entity,
            row_id,
            payload,
            caller,
            if_match=request.headers.get("If-Match"),
            if_none_match=request.headers.get("If-None-Match"),
        )
        cost = self._write_cost(entity, payload) if created else self.costs("update")
        return self._written(entity, row, 201 if created else 200, params, prefer, api_root, cost, in_batch)

    # --- metadata -------------------------------------------------------------------------------------
    def _entity_definitions(
        self, key: str | None, rest: str | None, params: list[tuple[str, str]], api_root: str
    ) -> ODataResponse:
        options, aliases = self._options(params)
        body = metadata.entity_definitions(self.schema, key, rest, options, aliases, api_root)
        return _json(200, body, self.costs("metadata"))

    # --- $batch ---------------------------------------------------------------------------------------
    def _batch(self, request: ODataRequest, caller: Caller) -> ODataResponse:
        behaviour = self.backend.behaviour
        if behaviour.batch_require_crlf and _BARE_LF.search(request.body):
            raise errors.InvalidBatchError(
                "The $batch request body has line breaks without a carriage return; multipart bodies must "
                "use CRLF line endings. SANDBOX CHOICE: wording."
            )
        try:
            items = parse_batch(
                request.body,
                request.headers.get("Content-Type", ""),
                max_operations=behaviour.max_batch_operations,
                unique_content_ids_per_batch=behaviour.content_id_scope == "batch",
            )
        except BatchFormatError as exc:
            raise errors.InvalidBatchError(exc.message) from exc
        continue_on_error = "odata.continue-on-error" in parse_prefer(request.headers.get("Prefer", ""))
        results: list[ResponsePart | ChangeSetResponse] = []
        cost = self.costs("batch")
        failed = False
        change_sets = 0
        for item in items:
            if isinstance(item, BatchRequestPart):
                response = self._batch_operation(item, request, caller, {})
                cost += response.cost_ms
                results.append(
                    ResponsePart(response.status, response.headers, response.body, item.content_id)
                )
                failed = response.status >= 400
                stop = failed and not continue_on_error
            else:
                change_sets += 1
                injected = self.backend.changeset_fault(
                    change_sets, [_operation_text(r) for r in item.requests]
                )
                if injected is not None:
                    status, headers, payload = errors.serialize(injected)
                    part = ResponsePart(status, headers, payload, item.requests[0].content_id)
                    change_set, change_cost, failed = ChangeSetResponse([part]), self.costs("error"), True
                else:
                    change_set, change_cost, failed = self._change_set(item.requests, request, caller)
                cost += change_cost
                results.append(change_set)
                stop = failed and (not continue_on_error or behaviour.batch_stop_on_failed_changeset)
            if stop:
                break
        body, content_type = serialize_batch_response(results)
        status = 400 if failed and not continue_on_error else 200
        headers = [("Content-Type", content_type), ("OData-Version", "4.0")]
        self.backend.count(
            "batch_operations", sum(len(r.parts) if isinstance(r, ChangeSetResponse) else 1 for r in results)
        )
        return ODataResponse(status, headers, body, cost)

    def _change_set(
        self, requests: list[BatchRequestPart], outer: ODataRequest, caller: Caller
    ) -> tuple[ChangeSetResponse, float, bool]:
        ids: dict[str, str] = {}
        parts: list[ResponsePart] = []
        cost = 0.0
        failure: ResponsePart | None = None
        try:
            with self.backend.atomic():
                for operation in requests:
                    response = self._batch_operation(operation, outer, caller, ids)
                    cost += response.cost_ms
                    part = ResponsePart(
                        response.status, response.headers, response.body, operation.content_id
                    )
                    if response.status >= 400:
                        failure = part
                        raise _ChangeSetFailedError
                    parts.append(part)
                    if operation.content_id and response.entity_url:
                        ids[operation.content_id] = response.entity_url
        except _ChangeSetFailedError:
            assert failure is not None
            return ChangeSetResponse([failure]), cost, True
        return ChangeSetResponse(parts), cost, False

    def _batch_operation(
        self, operation: BatchRequestPart, outer: ODataRequest, caller: Caller, ids: Mapping[str, str]
    ) -> ODataResponse:
        try:
            url = resolve_content_id_references(operation.url, ids)
            body = operation.body
            if body and b"$" in body:
                body = resolve_content_id_references(body.decode("utf-8"), ids).encode("utf-8")
        except BatchFormatError as exc:
            status, headers, payload = errors.serialize(errors.BadRequestError(exc.message))
            return ODataResponse(status, headers, payload, self.costs("error"))
        request = ODataRequest(operation.method, url, operation.headers, body, outer.base_url)
        return self.handle(request, caller, in_batch=True)


def _operation_text(operation: BatchRequestPart) -> str:
    """What a change-set fault matches against: the operation's request line URL and its body."""
    return f"{operation.url}\n{operation.body.decode('utf-8', errors='replace')}"


class _ChangeSetFailedError(Exception):
    """Unwinds a change set's transaction after a failed operation."""


def _column_key(name: str) -> Callable[[Mapping[str, Any]], tuple[int, Any]]:
    """Sort key for one column: nulls first (as SQL Server sorts them), strings case-insensitively."""

    def key(row: Mapping[str, Any]) -> tuple[int, Any]:
        value = row.get(name)
        if value is None:
            return (0, "")
        return (1, value.casefold() if isinstance(value, str) else value)

    return key
