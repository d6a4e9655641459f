"""The sync-health page: a FastAPI app the plugin mounts on the Airflow API server at ``/nylas-health``.

Routes (relative to the mount point):

- ``GET /``: every grant the user may read in one table (sortable, filterable) and the real-time inbox;
  query ``q`` (text), ``status`` (ok, expired, failing, no_runs), ``problems=1``, ``sort`` (a column),
  ``order`` (asc, desc), ``window`` (7 or 30 days of counts);
- ``GET /grants/<key>``: one grant: outcomes per day (chart and table), failed runs and messages,
  unresolved addresses, links to the Airflow runs and the created Dynamics records;
- ``GET /grants/<key>/unresolved.csv``: the grant's unresolved addresses;
- ``GET /grants/<key>/unresolved-all-runs.csv``: the roll-up report writes over the grant's kept runs
  (display name, messages, first and last seen, direction);
- ``GET /api/overview``, ``/api/grants/<key>``, ``/api/inbox``: the same data as JSON.

Every route needs an authenticated Airflow user (``auth.py``); without one, pages redirect to the login
page and the API answers 401. A grant whose DAG the user may not read does not exist for them (404).
Responses are never cached and carry a strict content security policy; nothing shows message bodies,
tokens or secrets.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware

from nylas_dataverse.core import health
from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.health import auth
from nylas_dataverse.health.inbox import read_inbox
from nylas_dataverse.health.pages import COLUMNS, STATIC, Pages, Query, chart_geometry, run_link
from nylas_dataverse.health.reader import GrantsFile, HealthReader, visible
from nylas_dataverse.pipeline.staging import staging_root

log = logging.getLogger(__name__)

URL_PREFIX = "/nylas-health"
ORG_URL_CACHE_S = 300.0
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'self'"
    ),
}
_STATUSES = frozenset(status.value for status in health.GrantStatus)


class NotAuthenticatedError(Exception):
    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


async def _user(request: Request) -> Any:
    try:
        return await auth.current_user(request)
    except StarletteHTTPException as exc:
        raise NotAuthenticatedError(exc.status_code, str(exc.detail)) from None


User = Annotated[Any, Depends(_user)]


def _is_page(request: Request) -> bool:
    path = request.url.path
    return "/api/" not in path and not path.endswith(".csv")


class OrgUrls:
    """The Dataverse environment URL of a connection (its host only; never its secret), cached a while."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, str | None]] = {}

    def __call__(self, conn_id: str) -> str | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(conn_id)
            if cached and cached[0] > now:
                return cached[1]
        url = self._lookup(conn_id)
        with self._lock:
            self._cache[conn_id] = (now + ORG_URL_CACHE_S, url)
        return url

    @staticmethod
    def _lookup(conn_id: str) -> str | None:
        try:
            from airflow.sdk import BaseHook

            from nylas_dataverse.hooks._connection import normalize_base_url

            conn = BaseHook.get_connection(conn_id)
            return normalize_base_url(
                conn.host, conn.port, default=None, conn_id=conn_id, field="environment URL"
            )
        except Exception as exc:  # no connection here, or not usable: the page lists ids instead
            log.debug("No Dataverse URL for %s (%s)", conn_id, type(exc).__name__)
            return None


def create_app(
    *,
    project_root: Path | None = None,
    reader: Callable[[], HealthReader] | None = None,
    org_url: Callable[[str], str | None] | None = None,
) -> FastAPI:
    """The health app; staging and the grants file are looked up per request (their env may change)."""
    root_dir = project_root or Path.cwd()
    grants_file = GrantsFile(root_dir)
    make_reader = reader or (lambda: HealthReader(staging_root(root_dir)))
    org_urls = org_url or OrgUrls()
    pages = Pages()
    app = FastAPI(
        title="Nylas to Dataverse sync health",
        description="Per-grant sync health for nylas-dataverse; see docs/monitoring.md.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # The overview of a thousand grants is a few MB of HTML that compresses about tenfold.
    app.add_middleware(GZipMiddleware, minimum_size=2048)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(NotAuthenticatedError)
    async def not_authenticated(request: Request, exc: NotAuthenticatedError) -> Response:
        if _is_page(request):
            try:
                return RedirectResponse(auth.login_url(str(request.url)), status_code=303)
            except Exception:  # no auth manager to send the user to: say so instead
                log.warning("No login page to redirect to: %s", auth.AUTH_MANAGER_UNAVAILABLE)
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers={"WWW-Authenticate": "Bearer"}
        )

    def links(request: Request) -> dict[str, str]:
        base = str(request.scope.get("root_path", "")).rstrip("/")
        airflow = base[: -len(URL_PREFIX)] if base.endswith(URL_PREFIX) else ""
        return {"base": base, "airflow": airflow}

    def readable(user: Any) -> list[GrantConfig]:
        return visible(grants_file.grants(), auth.readable_dag_ids(user))

    def grant_or_404(user: Any, key: str) -> GrantConfig:
        for grant in readable(user):
            if grant.key == key:
                return grant
        raise StarletteHTTPException(404, "no such grant (or you may not read its DAG)")

    def query(request: Request) -> Query:
        params = request.query_params
        sort = params.get("sort", "status")
        window = params.get("window", "")
        return Query(
            q=params.get("q", "")[:200],
            status=params.get("status", "") if params.get("status", "") in _STATUSES else "",
            problems=params.get("problems") in ("1", "true", "on"),
            sort=sort if sort in health.SORT_KEYS else "status",
            order="desc" if params.get("order") == "desc" else "asc",
            window=int(window) if window in ("7", "30") else health.WEEK_DAYS,
        )

    def overview_data(user: Any, chosen: Query) -> Any:
        return make_reader().overview(
            readable(user),
            sort=chosen.sort,
            descending=chosen.order == "desc",
            text=chosen.q,
            status=chosen.status,
            problems_only=chosen.problems,
            window_days=chosen.window,
        )

    @app.get("/", response_class=HTMLResponse)
    def overview_page(request: Request, user: User) -> HTMLResponse:
        chosen = query(request)
        reader = make_reader()
        data = overview_data(user, chosen)
        return HTMLResponse(
            pages.render(
                "overview.html",
                overview=data,
                inbox=read_inbox(reader.root),
                now=reader.clock(),
                query=chosen,
                query_string=chosen.query_string(),
                sort_link=chosen.sort_link,
                columns=COLUMNS,
                user=auth.user_name(user),
                **links(request),
            )
        )

    @app.get("/api/overview")
    def overview_json(request: Request, user: User) -> JSONResponse:
        chosen = query(request)
        data = overview_data(user, chosen)
        return JSONResponse(
            {
                "as_of": data.as_of.isoformat(),
                "window_days": data.window_days,
                "total": data.total,
                "status_counts": data.status_counts,
                "grants": [row.to_json() for row in data.rows],
            }
        )

    @app.get("/api/inbox")
    def inbox_json(user: User) -> JSONResponse:
        reader = make_reader()
        return JSONResponse(read_inbox(reader.root).to_json(reader.clock()))

    @app.get("/grants/{key}", response_class=HTMLResponse)
    def grant_page(request: Request, key: str, user: User) -> HTMLResponse:
        grant = grant_or_404(user, key)
        page = make_reader().grant_page(grant)
        urls = links(request)
        return HTMLResponse(
            pages.render(
                "grant.html",
                page=page,
                chart=chart_geometry(page.chart),
                org_url=org_urls(grant.dataverse_conn_id) if page.records else None,
                run_link=lambda entry: run_link(urls["airflow"], entry, grant.dag_id),
                user=auth.user_name(user),
                **urls,
            )
        )

    @app.get("/api/grants/{key}")
    def grant_json(key: str, user: User) -> JSONResponse:
        grant = grant_or_404(user, key)
        page = make_reader().grant_page(grant)
        return JSONResponse(
            {
                "grant": page.row.to_json(),
                "chart": [
                    {
                        "day": day.day.isoformat(),
                        "state": day.state.value,
                        "created": day.created,
                        "already_present": day.already_present,
                        "skipped": day.skipped,
                        "failed": day.failed,
                    }
                    for day in page.chart
                ],
                "run_failures": [
                    {
                        "day": entry.day.isoformat(),
                        "label": entry.label,
                        **(entry.failure.to_json() if entry.failure else {}),
                    }
                    for entry in page.run_failures
                ],
                "failed_messages": [
                    {
                        "day": entry.day.isoformat(),
                        "code": message.code,
                        "dataverse_code": message.dataverse_code,
                        **message.to_json(),
                        "run": entry.run.to_json() if entry.run else None,
                    }
                    for entry, message in page.failures
                ],
                "unresolved": [
                    {
                        "address": a.address,
                        "messages": a.messages,
                        "days": a.days,
                        "last_seen": a.last_seen.isoformat(),
                    }
                    for a in page.unresolved
                ],
                "records": [
                    {
                        "day": r.day.isoformat(),
                        "activity_id": r.activity_id,
                        "internet_message_id": r.internet_message_id,
                    }
                    for r in page.records
                ],
            }
        )

    @app.get("/grants/{key}/unresolved.csv")
    def unresolved_csv(key: str, user: User) -> Response:
        grant = grant_or_404(user, key)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["address", "messages", "days", "last_seen"])
        for item in make_reader().unresolved(grant):
            writer.writerow(
                [health.csv_cell(item.address), item.messages, item.days, item.last_seen.isoformat()]
            )
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="unresolved-{grant.key}-{stamp}.csv"'},
        )

    @app.get("/grants/{key}/unresolved-all-runs.csv")
    def unresolved_rollup_csv(key: str, user: User) -> Response:
        grant = grant_or_404(user, key)
        data = make_reader().unresolved_rollup(grant)
        if data is None:
            raise StarletteHTTPException(404, "no run of this grant has written its unresolved addresses yet")
        return Response(
            data,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="unresolved-{grant.key}-all-runs.csv"'},
        )

    return app
