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

For receiver tests, :meth:`WebhookSender.malformed_body` builds correctly signed bodies that a parser
must survive (``MALFORMED_KINDS``): JSON with a lone surrogate escape (``\\ud83d``), bytes that are not
UTF-8, 200,000 levels of nesting, and a body of more than 1 MB cut off mid-JSON;
:meth:`WebhookSender.deliver_raw` sends any bytes signed, with the same retry rules.

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
MALFORMED_KINDS = ("lone_surrogate", "invalid_utf8", "deep_nesting", "cut_off")
DEEP_NESTING_LEVELS = 200_000
_MARK = "@@nylas-sandbox-defect@@"
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
    return personas.grant_by_id(grant_id)


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

    def malformed_body(self, kind: str, message: dict[str, Any]) -> bytes:
        """The raw bytes of a ``message.created`` notification for ``message`` with one defect.

        - ``lone_surrogate``: the subject ends in the escape ``\\ud83d``, half of an emoji's surrogate pair
          (valid JSON syntax; a decoder that re-encodes the string as UTF-8 fails).
        - ``invalid_utf8``: the subject holds the bytes ``C3 28`` and ``FF FE``, which no UTF-8 decoder
          accepts.
        - ``deep_nesting``: ``metadata.key1`` is an array nested 200,000 levels deep (recursive parsers
          overflow their stack).
        - ``cut_off``: the notification, its body padded past 1 MB, cut off 1,024 bytes after the
          1 MB mark, in the middle of the body string (not JSON at all).
        """
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"malformed kind must be one of {', '.join(MALFORMED_KINDS)}; got {kind!r}")
        obj = {key: value for key, value in message.items() if key not in ("headers", "raw_mime")}
        if kind in ("lone_surrogate", "invalid_utf8"):
            obj["subject"] = f"{obj.get('subject', '')} {_MARK}"
        elif kind == "deep_nesting":
            obj["metadata"] = {**obj.get("metadata", {}), "key1": _MARK}
        else:
            body = str(obj.get("body", ""))
            obj["body"] = body + "<p>" + "Lorem ipsum dolor sit amet. " * (1_100_000 // 28) + "</p>"
        notification = self.build_notification(obj, notification_id=None)
        if kind == "cut_off":
            # build_notification drops the body of payloads over 1 MB; this one keeps it, then is cut.
            notification["type"] = "message.created"
            notification["data"]["object"]["body"] = obj["body"]
            return encode_json(notification)[: TRUNCATE_OVER_BYTES + 1024]
        raw = encode_json(notification)
        if kind == "lone_surrogate":
            return raw.replace(_MARK.encode(), b"\\ud83d")
        if kind == "invalid_utf8":
            return raw.replace(_MARK.encode(), b"\xc3\x28 \xff\xfe")
        nested = b"[" * DEEP_NESTING_LEVELS + b"]" * DEEP_NESTING_LEVELS
        return raw.replace(json.dumps(_MARK).encode(), nested)

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

        def body_of(attempt: int) -> bytes:
            payload = copy.copy(notification)
            payload["webhook_delivery_attempt"] = attempt
            return self.encode(payload, gzip=gzip)

        return self._deliver(
            url,
            body_of,
            gzip=gzip,
            bad_signature=bad_signature,
            timeout=timeout,
            notification_id=str(notification.get("id", "")),
        )

    def deliver_raw(
        self,
        url: str,
        body: bytes,
        *,
        gzip: bool = False,
        bad_signature: bool = False,
        timeout: float = 10,
    ) -> DeliveryResult:
        """POST exactly these bytes (gzip-compressed if asked), signed, retrying like Nylas."""
        wire = gzip_module.compress(body, mtime=0) if gzip else body
        return self._deliver(
            url, lambda attempt: wire, gzip=gzip, bad_signature=bad_signature, timeout=timeout
        )

    def _deliver(
        self,
        url: str,
        body_of: Callable[[int], bytes],
        *,
        gzip: bool,
        bad_signature: bool,
        timeout: float,
        notification_id: str = "",
    ) -> DeliveryResult:
        started = time.monotonic()
        statuses: list[int] = []
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if attempt > 1:
                delays = self.retry_delays_s
                self.sleep(delays[min(attempt - 2, len(delays) - 1)] if delays else 0)
            body = body_of(attempt)
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
            notification_id=notification_id,
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
