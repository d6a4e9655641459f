"""The Nylas webhook endpoint: a FastAPI app, mounted on the Airflow API server or run with uvicorn.

Routes (relative to where the app is mounted; the plugin and the standalone server both use
``/nylas``, so the endpoint is ``<base URL>/nylas/webhook``):

- ``GET /webhook?challenge=<value>``: Nylas' activation handshake; answers 200 with exactly the value
  as ``text/plain``.
- ``POST /webhook``: one notification. In this order: the body is read raw (at most ``MAX_BODY_BYTES``);
  the secret is resolved (503 when none is configured: Nylas retries 503, and nothing unsigned is ever
  accepted); ``X-Nylas-Signature`` is checked in constant time against the raw bytes, compressed ones
  included (401, nothing parsed or stored, when missing or wrong); a ``Content-Encoding: gzip`` body is
  decompressed; the envelope is parsed and classified; ``message.created`` (any suffix) is deduplicated
  and stored in the inbox, ``grant.expired`` is logged as an alert and marked for the health page
  (``_realtime/grant_status/<grant id>.json``), anything else is acknowledged and
  ignored. Every accepted or ignored notification gets 200; the work is a few small writes, well within
  Nylas' 10 s limit. Text is stored whatever it holds (lone surrogates, bytes that are not UTF-8). A
  storage failure (``OSError``) answers 503 so that Nylas retries; any other failure to store a signed
  notification keeps its body in ``_realtime/quarantine/receiver/`` with the reason and answers 200
  ``quarantined``, since retrying the same content cannot help. 503 is only answered for what a retry
  can fix.

The secret is the password of the Airflow connection ``nylas_webhook`` or else the Airflow variable
``nylas_webhook_secret``. It is looked up on the first request, not at import, and kept for
``SECRET_CACHE_S`` seconds; a signature that does not match makes it look again (at most every
``REFRESH_AFTER_MISMATCH_S``), so a rotated secret works from the first delivery signed with it once the
setting holds it. Once known, the secret is refreshed by one request while the others use it, and a
failed lookup keeps it (``WebhookSecret``). It is never logged; neither are message contents. A secret
that is blank or only whitespace is refused, naming the setting that holds it: the standalone server
will not start, and the plugin answers 503 with that message.

Standalone: ``python -m nylas_dataverse.realtime.receiver --host 127.0.0.1 --port 8090``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from nylas_dataverse.pipeline.staging import staging_root
from nylas_dataverse.pipeline.summary import SummaryStore
from nylas_dataverse.realtime.inbox import Inbox, StoreResult
from nylas_dataverse.realtime.notifications import (
    InvalidNotification,
    Notification,
    NotificationKind,
    parse_notification,
)
from nylas_dataverse.realtime.signature import SIGNATURE_HEADER, verify_signature

log = logging.getLogger("nylas_dataverse.realtime.receiver")  # stable under python -m too

URL_PREFIX = "/nylas"
WEBHOOK_PATH = "/webhook"
WEBHOOK_CONN_ID = "nylas_webhook"
WEBHOOK_VARIABLE = "nylas_webhook_secret"
SECRET_CACHE_S = 30.0
REFRESH_AFTER_MISMATCH_S = 2.0
# A secret found before outlives lookups that fail or find nothing for this long (WebhookSecret).
KEEP_UNCONFIRMED_S = 300.0
# Nylas truncates payloads over 1 MB; anything much larger is not a Nylas notification.
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_DECOMPRESSED_BYTES = 16 * 1024 * 1024
MISSING_SECRET = (
    "webhook secret not configured: set the password of the Airflow connection "
    f"'{WEBHOOK_CONN_ID}' (or the Airflow variable '{WEBHOOK_VARIABLE}') to the webhook_secret Nylas "
    "returned when the webhook was created"
)


class BlankSecretError(ValueError):
    """The configured webhook secret is blank or whitespace; the message names the setting."""


class SecretLookupError(RuntimeError):
    """The secret could not be looked up and none is known; the message says what failed, not the text."""


def checked_secret(value: str, setting: str) -> str:
    """``value`` when it can be an HMAC key; ``BlankSecretError`` naming ``setting`` when it is blank."""
    if not value.strip():
        raise BlankSecretError(
            f"the webhook secret in {setting} is blank (only whitespace): set it to the webhook_secret Nylas"
            " returned when the webhook was created; a blank key would make signatures meaningless"
        )
    return value


def _secret_from_airflow() -> str | None:
    """The configured secret, or None. Lookup errors are logged by type only; a blank one raises."""
    from airflow.sdk import BaseHook, Variable

    try:
        password = BaseHook.get_connection(WEBHOOK_CONN_ID).password
    except Exception as exc:  # a missing connection is normal; the variable is the alternative
        log.debug("No usable connection %r (%s)", WEBHOOK_CONN_ID, type(exc).__name__)
        password = None
    if password:
        return checked_secret(str(password), f"the password of the Airflow connection '{WEBHOOK_CONN_ID}'")
    try:
        value = Variable.get(WEBHOOK_VARIABLE, default=None)
    except Exception as exc:
        log.warning("Could not read Airflow variable %r (%s)", WEBHOOK_VARIABLE, type(exc).__name__)
        return None
    return checked_secret(str(value), f"the Airflow variable '{WEBHOOK_VARIABLE}'") if value else None


@dataclasses.dataclass(frozen=True)
class _Known:
    """What the last lookup found; replaced whole, so readers never see half of one."""

    value: str | None = None
    problem: Exception | None = None
    expires: float = float("-inf")
    looked_up: float = float("-inf")
    confirmed: float = float("-inf")  # when a lookup last returned ``value``


class WebhookSecret:
    """Resolves the secret lazily and caches it (and its absence) for ``ttl_s`` seconds.

    Once a secret is known, an expired cache is refreshed by one request while the others go on with the
    secret they have: a slow secrets backend must not hold every delivery past Nylas' 10 s. A lookup that
    fails or finds nothing where a secret was found before keeps that secret for up to
    ``KEEP_UNCONFIRMED_S``, asking again every ``retry_s``: Airflow reports an unreachable secrets
    backend or metadata database as "not found", and a blip must not turn into 503s for ``ttl_s``. With
    no secret known, a failed lookup is ``SecretLookupError`` (503, which Nylas retries).
    """

    def __init__(
        self,
        lookup: Callable[[], str | None] = _secret_from_airflow,
        *,
        ttl_s: float = SECRET_CACHE_S,
        retry_s: float = REFRESH_AFTER_MISMATCH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._retry_s = retry_s
        self._clock = clock
        self._known = _Known()
        self._looking = threading.Lock()  # one lookup at a time

    def __repr__(self) -> str:
        return "WebhookSecret(<hidden>)"

    def get(self) -> str | None:
        """The secret, None when none is configured; ``BlankSecretError`` when it is blank,
        ``SecretLookupError`` when it could not be looked up and none is known."""
        known = self._known
        if self._clock() >= known.expires:
            if known.value is None:  # nothing to go on with: wait for the lookup
                with self._looking:
                    if self._clock() >= self._known.expires:
                        self._look_up()
            elif self._looking.acquire(blocking=False):  # else another request is refreshing it
                try:
                    if self._clock() >= self._known.expires:
                        self._look_up()
                finally:
                    self._looking.release()
            known = self._known
        if known.problem is not None:
            raise known.problem
        return known.value

    def changed(self, tried: str) -> str | None:
        """After a signature did not match ``tried``: the secret if it is now another one, else None.

        A rotated secret then works from the first delivery after the setting holds it, not up to
        ``ttl_s`` later (Nylas does not retry a 401, so each refused delivery is lost to real time). Looked
        up at most every ``REFRESH_AFTER_MISMATCH_S``, so unsigned floods cannot hammer the secrets backend.
        """
        if self._clock() - self._known.looked_up >= REFRESH_AFTER_MISMATCH_S:
            with self._looking:
                if self._clock() - self._known.looked_up >= REFRESH_AFTER_MISMATCH_S:
                    self._look_up()
        value = self._known.value  # perhaps refreshed by another request meanwhile
        return value if value and value != tried else None

    def _look_up(self) -> None:
        """Ask ``lookup`` (the caller holds ``_looking``) and publish what it found."""
        before, now = self._known, self._clock()
        error: Exception | None = None
        try:
            found = self._lookup()
        except BlankSecretError as exc:
            self._known = _Known(None, exc, expires=now + self._ttl_s, looked_up=now)
            return
        except Exception as exc:
            found, error = None, exc
        if found:
            self._known = _Known(found, None, expires=now + self._ttl_s, looked_up=now, confirmed=now)
            return
        # By type only: the text of a backend's error may quote the secret.
        what = f"the lookup failed ({type(error).__name__})" if error else "the lookup found no secret"
        if before.value is not None and now - before.confirmed < KEEP_UNCONFIRMED_S:
            log.warning(
                "Webhook secret: %s, where one was found %.0f s ago; going on with that one, asking again in"
                " %.0f s",
                what,
                now - before.confirmed,
                self._retry_s,
            )
            self._known = dataclasses.replace(before, expires=now + self._retry_s, looked_up=now)
        elif error is not None:
            problem = SecretLookupError(f"could not read the webhook secret: {what}")
            self._known = _Known(
                None, problem, expires=now + self._retry_s, looked_up=now, confirmed=before.confirmed
            )
        elif before.confirmed > float("-inf"):
            # It was configured once: perhaps still an outage, so ask again as soon as after a failure.
            log.warning(
                "Webhook secret: %s for %.0f s; POSTs get 503 until it is found", what, now - before.confirmed
            )
            self._known = _Known(
                None, None, expires=now + self._retry_s, looked_up=now, confirmed=before.confirmed
            )
        else:
            self._known = _Known(None, None, expires=now + self._ttl_s, looked_up=now)


class _TooLargeError(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    data = inflater.decompress(body, limit + 1)
    if len(data) > limit or inflater.unconsumed_tail:
        raise _TooLargeError
    return data


def _answer(status: int, outcome: str, detail: str | None = None) -> JSONResponse:
    content = {"status": outcome} if detail is None else {"status": outcome, "detail": detail}
    return JSONResponse(content, status_code=status)


def _record_grant_status(inbox: Inbox, notification: Notification) -> None:
    """Mark the grant expired for the health page (``<staging>/_realtime/grant_status/<grant id>.json``)."""
    if not notification.grant_id:
        return
    at = (
        dt.datetime.fromtimestamp(notification.time, tz=dt.UTC)
        if notification.time is not None and 0 < notification.time < 253_402_214_400
        else dt.datetime.now(dt.UTC)
    )
    try:
        SummaryStore(inbox.root.parent).write_grant_status(
            notification.grant_id,
            status="expired",
            notification_type=notification.type,
            notification_id=notification.id,
            at=at,
        )
    except Exception as exc:  # the alert line above is the record that matters; the page catches up
        log.warning("Could not record grant %s as expired (%s)", notification.grant_id, type(exc).__name__)


def _handle(inbox: Inbox, notification: Notification) -> JSONResponse:
    if notification.kind is NotificationKind.IGNORED:
        log.info("Notification %s of type %s acknowledged and ignored", notification.id, notification.type)
        return _answer(200, "ignored")
    if notification.kind is NotificationKind.GRANT_EXPIRED:
        first = inbox.first_sighting(notification)
        if first:
            email = notification.object.get("email")
            log.error(
                "ALERT: Nylas grant %s%s has expired; no mail is synced for it until its owner "
                "re-authenticates the grant in Nylas (then rerun its daily DAG for the missed days).",
                notification.grant_id or "<unknown>",
                f" ({email})" if isinstance(email, str) and email else "",
            )
            _record_grant_status(inbox, notification)
        return _answer(200, "alerted" if first else "duplicate_notification")
    result = inbox.store(notification)
    if result is StoreResult.ACCEPTED:
        log.info(
            "Accepted %s %s for grant %s, message %s",
            notification.type,
            notification.id,
            notification.grant_id,
            notification.object_id,
        )
    else:
        log.info("Duplicate %s dropped (%s)", notification.id, result.value)
    return _answer(200, result.value)


def create_app(
    inbox: Inbox | None = None,
    *,
    project_root: Path | None = None,
    secret: WebhookSecret | None = None,
) -> FastAPI:
    """The receiver app with routes at ``/webhook``; mount it under ``URL_PREFIX``.

    ``inbox`` defaults to the staging root's inbox (``NYLAS_DATAVERSE_STAGING``, else
    ``<project_root>/.staging``; ``project_root`` defaults to the current directory).
    """
    root_dir = project_root or Path.cwd()
    inboxes: list[Inbox] = [inbox] if inbox is not None else []
    opening = threading.Lock()

    def the_inbox() -> Inbox:
        # Opened on the first notification, not here: every Airflow component imports plugins in its
        # main process, and opening an object-store root builds its filesystem, which children forked
        # later (the triggerer's trigger runner) inherit and fsspec then refuses ("not fork-safe").
        if not inboxes:
            with opening:
                if not inboxes:
                    inboxes.append(Inbox(staging_root(root_dir)))
        return inboxes[0]

    the_secret = secret or WebhookSecret()
    app = FastAPI(
        title="Nylas webhook receiver",
        description="Receives Nylas v3 notifications for nylas-dataverse; see docs/realtime.md.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get(WEBHOOK_PATH)
    async def challenge(request: Request) -> Response:
        value = request.query_params.get("challenge")
        if value is None:
            return PlainTextResponse("missing 'challenge' query parameter", status_code=400)
        # The value is echoed verbatim; nosniff keeps a browser from treating it as anything but text.
        return PlainTextResponse(value, headers={"X-Content-Type-Options": "nosniff"})

    @app.post(WEBHOOK_PATH)
    async def receive(request: Request) -> Response:
        try:
            raw = await _read_body(request, MAX_BODY_BYTES)
        except _TooLargeError:
            return _answer(413, "rejected", f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            key = await run_in_threadpool(the_secret.get)
        except (BlankSecretError, SecretLookupError) as exc:
            log.error("Webhook POST refused with 503: %s", exc)
            return _answer(503, "unavailable", str(exc))
        if not key:
            log.error("Webhook POST refused with 503: %s", MISSING_SECRET)
            return _answer(503, "unavailable", MISSING_SECRET)
        signature = request.headers.get(SIGNATURE_HEADER)
        if not verify_signature(key, raw, signature):
            # Perhaps the secret was rotated since it was cached: look again (rate-limited) before refusing.
            fresh = await run_in_threadpool(the_secret.changed, key) if signature else None
            if fresh is None or not verify_signature(fresh, raw, signature):
                reason = "missing" if not signature else "invalid"
                client = request.client.host if request.client else "?"
                log.warning("Webhook POST from %s rejected: %s %s header", client, reason, SIGNATURE_HEADER)
                return _answer(401, "rejected", f"{reason} {SIGNATURE_HEADER}")
        body = raw
        if "gzip" in request.headers.get("content-encoding", "").lower():
            try:
                body = _gunzip(raw, MAX_DECOMPRESSED_BYTES)
            except _TooLargeError:
                return _answer(413, "rejected", "decompressed body too large")
            except zlib.error:
                return _answer(400, "rejected", "Content-Encoding is gzip but the body is not gzip data")
        try:
            notification = parse_notification(body)
        except InvalidNotification as exc:
            log.warning("Signed webhook POST rejected: %s", exc)
            return _answer(400, "rejected", str(exc))
        try:
            return await run_in_threadpool(lambda: _handle(the_inbox(), notification))
        except OSError as exc:  # storage trouble: 503 makes Nylas deliver the notification again
            log.error(
                "Could not store notification %s in %s (%s: %s); answered 503 so Nylas retries",
                notification.id,
                inboxes[0].root if inboxes else "the staging root",
                type(exc).__name__,
                exc,
            )
            return _answer(503, "unavailable", "the notification could not be stored; retry later")
        except Exception as exc:  # this content cannot be stored as a notification: a retry cannot help
            reason = f"could not be stored as a notification ({type(exc).__name__}: {exc})"
            try:
                kept = await run_in_threadpool(lambda: the_inbox().quarantine_body(body, reason))
            except OSError as storage:
                log.error(
                    "Could not quarantine notification %s (%s)", notification.id, type(storage).__name__
                )
                return _answer(503, "unavailable", "the notification could not be stored; retry later")
            log.error("Notification %s %s; its body is quarantined as %s", notification.id, reason, kept)
            return _answer(200, "quarantined", reason)

    return app


def create_standalone_app(
    project_root: Path | None = None, *, inbox: Inbox | None = None, secret: WebhookSecret | None = None
) -> FastAPI:
    """The receiver under ``/nylas``, like on the API server, for running with uvicorn."""
    root = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    root.mount(URL_PREFIX, create_app(inbox, project_root=project_root, secret=secret))
    return root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nylas_dataverse.realtime.receiver",
        description=f"Serve the Nylas webhook receiver at {URL_PREFIX}{WEBHOOK_PATH}.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8090, help="port (default 8090)")
    parser.add_argument(
        "--project-root",
        type=Path,
        default=Path.cwd(),
        help="project folder; the inbox is <root>/.staging/_realtime unless NYLAS_DATAVERSE_STAGING is set",
    )
    args = parser.parse_args(argv)
    import uvicorn

    logging.basicConfig(level=os.environ.get("NYLAS_DATAVERSE_LOG_LEVEL", "INFO"))
    try:
        if _secret_from_airflow() is None:
            log.warning("Starting without a webhook secret; POSTs get 503 until %s", MISSING_SECRET)
    except BlankSecretError as exc:
        log.error("Not starting: %s", exc)
        return 2
    uvicorn.run(create_standalone_app(args.project_root), host=args.host, port=args.port, proxy_headers=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
