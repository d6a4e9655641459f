"""Deliver Nylas-style webhook notifications to a URL, as Nylas does (nylas.md §6).

- Envelope: CloudEvents-like ``{specversion, type, source, id, time, webhook_delivery_attempt,
  data: {application_id, object}}``; ``time`` in unix seconds.
- Body: the raw JSON bytes are signed with HMAC-SHA256 (key: the webhook secret) and the lowercase hex
  digest is sent as ``X-Nylas-Signature``. With gzip delivery the body is compressed, sent with
  ``Content-Encoding: gzip``, and the signature covers the *compressed* bytes.
- ``message.*`` payloads over 1 MB arrive as ``<type>.truncated`` without ``body``.
- Retries: at most 3 attempts, only after 408, 429, 502, 503, 504, 507 or no response; the notification
  id stays the same and ``webhook_delivery_attempt`` counts up. Any other status ends delivery.
- Challenge: ``GET <url>?challenge=<value>`` must answer 200 with exactly the value.

Uses only the standard library (``urllib``), so the sandbox needs no HTTP client package.
"""

from __future__ import annotations

import copy
import gzip as gzip_module
import hashlib
import hmac
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.personas import GrantPersona

RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504, 507})
MAX_ATTEMPTS = 3
TRUNCATE_OVER_BYTES = 1_000_000
GRANT_EXPIRED_CODE = 25009
_SOURCES = {
    "google": "/google/emails/realtime",
    "microsoft": "/microsoft/emails/realtime",
    "imap": "/imap/emails/realtime",
}


@dataclass(frozen=True)
class DeliveryResult:
    """``status`` is the last HTTP status (0 when the receiver never answered)."""

    status: int
    attempts: int
    elapsed_s: float
    statuses: tuple[int, ...] = ()
    notification_id: str = ""

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


def _grant_for(grant_id: str) -> GrantPersona | None:
    return next((grant for grant in personas.GRANTS if grant.grant_id == grant_id), None)


def encode_json(notification: dict[str, Any]) -> bytes:
    return json.dumps(notification, ensure_ascii=False, separators=(",", ":")).encode()


class WebhookSender:
    def __init__(
        self,
        secret: str,
        application_id: str = personas.APPLICATION_ID,
        *,
        retry_delays_s: Sequence[float] = (1.0, 5.0),
        ca_file: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``retry_delays_s[n]`` is the wait before attempt n + 2 (Nylas spreads its three over 10-20 min)."""
        self.secret = secret
        self.application_id = application_id
        self.retry_delays_s = tuple(retry_delays_s)
        self.clock = clock
        self.sleep = sleep
        context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        # No proxies: deliveries go to local receivers, whatever the environment says.
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )

    # Building ---------------------------------------------------------------------------------------------

    def build_notification(
        self,
        message: dict[str, Any],
        *,
        type: str = "message.created",
        truncated: bool = False,
        notification_id: str | None = None,
        attempt: int = 1,
    ) -> dict[str, Any]:
        """A ``message.*`` notification; payloads over 1 MB are truncated even if not asked, as Nylas does."""
        obj = {key: value for key, value in message.items() if key not in ("headers", "raw_mime")}
        grant = _grant_for(str(message.get("grant_id", "")))
        notification: dict[str, Any] = {
            "specversion": "1.0",
            "type": type,
            "source": _SOURCES.get(grant.provider, "/nylas/emails/realtime")
            if grant
            else "/nylas/emails/realtime",
            "id": notification_id or str(uuid.uuid4()),
            "time": int(self.clock()),
            "webhook_delivery_attempt": attempt,
            "data": {"application_id": self.application_id, "object": obj},
        }
        if truncated or len(encode_json(notification)) > TRUNCATE_OVER_BYTES:
            notification["type"] = type if type.endswith(".truncated") else f"{type}.truncated"
            obj.pop("body", None)
        return notification

    def grant_expired_notification(
        self, grant: GrantPersona | str, *, notification_id: str | None = None, attempt: int = 1
    ) -> dict[str, Any]:
        persona = grant if isinstance(grant, GrantPersona) else _find_grant(grant)
        return {
            "specversion": "1.0",
            "type": "grant.expired",
            "source": "/nylas/system",
            "id": notification_id or str(uuid.uuid4()),
            "time": int(self.clock()),
            "webhook_delivery_attempt": attempt,
            "data": {
                "application_id": self.application_id,
                "object": {
                    "code": GRANT_EXPIRED_CODE,
                    "grant_id": persona.grant_id,
                    "integration_id": personas.stable_id("integration", persona.provider),
                    "provider": persona.provider,
                    "email": persona.email,
                    "grant_updated_at": int(self.clock()),
                },
            },
        }

    def sign(self, body: bytes) -> str:
        return hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()

    def encode(self, notification: dict[str, Any], *, gzip: bool = False) -> bytes:
        raw = encode_json(notification)
        return gzip_module.compress(raw, mtime=0) if gzip else raw

    # Sending ----------------------------------------------------------------------------------------------

    def _post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        request = urllib.request.Request(_http_url(url), data=body, method="POST", headers=headers)  # noqa: S310
        try:
            with self._opener.open(request, timeout=timeout) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as error:
            error.read()
            return int(error.code)
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError):
            return 0

    def deliver(
        self,
        url: str,
        notification: dict[str, Any],
        *,
        gzip: bool = False,
        bad_signature: bool = False,
        timeout: float = 10,
    ) -> DeliveryResult:
        """POST the notification, retrying like Nylas; each attempt is re-encoded with its attempt number."""
        started = time.monotonic()
        statuses: list[int] = []
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if attempt > 1:
                delays = self.retry_delays_s
                self.sleep(delays[min(attempt - 2, len(delays) - 1)] if delays else 0)
            payload = copy.copy(notification)
            payload["webhook_delivery_attempt"] = attempt
            body = self.encode(payload, gzip=gzip)
            signature = self.sign(body)
            if bad_signature:
                signature = hmac.new(b"not-the-webhook-secret", body, hashlib.sha256).hexdigest()
            headers = {
                "Content-Type": "application/json",
                "X-Nylas-Signature": signature,
                "User-Agent": "nylas-dataverse-sandbox-webhooks/1.0",
            }
            if gzip:
                headers["Content-Encoding"] = "gzip"
            status = self._post(url, body, headers, timeout)
            statuses.append(status)
            if status != 0 and status not in RETRYABLE_STATUSES:
                break
        return DeliveryResult(
            status=statuses[-1],
            attempts=len(statuses),
            elapsed_s=time.monotonic() - started,
            statuses=tuple(statuses),
            notification_id=str(notification.get("id", "")),
        )

    def challenge(self, url: str, *, timeout: float = 10) -> bool:
        """Nylas' endpoint verification: True when the receiver echoes the challenge exactly."""
        value = str(uuid.uuid4())
        separator = "&" if urllib.parse.urlsplit(url).query else "?"
        request = urllib.request.Request(_http_url(f"{url}{separator}challenge={value}"), method="GET")  # noqa: S310
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return int(response.status) == 200 and response.read() == value.encode()
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError):
            return False


def _http_url(url: str) -> str:
    """Webhook destinations are http(s) URLs; anything else (``file:``...) is refused."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"webhook URL must be http or https, got {url!r}")
    return url


def _find_grant(identifier: str) -> GrantPersona:
    for grant in personas.GRANTS:
        if identifier in (grant.key, grant.grant_id, grant.email):
            return grant
    raise KeyError(f"no grant persona has the key, id or email {identifier!r}")
