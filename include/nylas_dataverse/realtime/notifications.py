"""Nylas webhook notifications: the CloudEvents-style envelope, parsed and classified (pure).

Envelope: ``{specversion, type, source, id, time, webhook_delivery_attempt, data: {application_id,
object}}``. The notification ``id`` stays the same across Nylas' delivery attempts of one notification.

Classification by ``type``:

- ``message.created`` and every suffix variant (``.truncated``, ``.transformed``, ``.cleaned``,
  ``.metadata`` and combinations such as ``message.created.cleaned.truncated``) is a new message. The
  message's ``id`` and ``grant_id`` are read from ``data.object``; a ``.truncated`` payload has no body.
- ``grant.expired`` names a grant whose owner must re-authenticate.
- Anything else (``message.updated``, ``grant.created``, types Nylas adds later) is acknowledged and
  ignored: the daily run is the source of truth for changes.

``InvalidNotification`` says what is wrong with a body that cannot be used at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

MESSAGE_CREATED = "message.created"
GRANT_EXPIRED = "grant.expired"
TRUNCATED_SUFFIX = "truncated"


class NotificationKind(StrEnum):
    MESSAGE_CREATED = "message_created"
    GRANT_EXPIRED = "grant_expired"
    IGNORED = "ignored"


class InvalidNotification(ValueError):  # noqa: N818 - reads as what the body is
    """The body is not a usable Nylas notification; the message says which part is wrong."""


@dataclass(frozen=True)
class Notification:
    id: str
    type: str
    kind: NotificationKind
    suffixes: tuple[str, ...]
    grant_id: str | None
    object_id: str | None
    time: int | None
    envelope: Mapping[str, Any]

    @property
    def truncated(self) -> bool:
        return TRUNCATED_SUFFIX in self.suffixes

    @property
    def object(self) -> dict[str, Any]:
        data = self.envelope.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        return obj if isinstance(obj, dict) else {}


def classify(notification_type: str) -> tuple[NotificationKind, tuple[str, ...]]:
    """The kind of a ``type`` value and its suffixes (``message.created.truncated`` -> ``("truncated",)``)."""
    parts = notification_type.strip().split(".")
    base, suffixes = ".".join(parts[:2]), tuple(part for part in parts[2:] if part)
    if base == MESSAGE_CREATED:
        return NotificationKind.MESSAGE_CREATED, suffixes
    if notification_type.strip() == GRANT_EXPIRED:
        return NotificationKind.GRANT_EXPIRED, ()
    return NotificationKind.IGNORED, suffixes


def parse_notification(body: bytes) -> Notification:
    """Parse the (already decompressed) JSON body of a webhook POST.

    Bytes that are not UTF-8 are kept as lone surrogates (``surrogateescape``), like a lone ``\\ud83d``
    escape: the notification is still usable by its ids, and whatever text is kept is judged later by
    the pipeline's one rule for it (``bad_encoding`` in ``core.messages``). Nesting deeper than the
    parser can follow is refused as not a notification.
    """
    text = body.decode("utf-8", "surrogateescape")
    try:
        envelope = json.loads(text)
    except RecursionError:
        raise InvalidNotification("the body is nested too deeply to be a Nylas notification") from None
    except ValueError as exc:
        raise InvalidNotification(f"the body is not JSON ({type(exc).__name__})") from None
    return notification_from_envelope(envelope)


def notification_from_envelope(envelope: object) -> Notification:
    """Validate a decoded envelope (as received, or as stored by the inbox)."""
    if not isinstance(envelope, dict):
        raise InvalidNotification("the body must be a JSON object (the notification envelope)")
    notification_id, notification_type = envelope.get("id"), envelope.get("type")
    if not isinstance(notification_id, str) or not notification_id.strip():
        raise InvalidNotification("the envelope has no notification 'id'")
    if not isinstance(notification_type, str) or not notification_type.strip():
        raise InvalidNotification(f"notification {notification_id!r} has no 'type'")
    kind, suffixes = classify(notification_type)
    data = envelope.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    grant_id = obj.get("grant_id") if isinstance(obj, dict) else None
    object_id = obj.get("id") if isinstance(obj, dict) else None
    if kind is NotificationKind.MESSAGE_CREATED:
        if not isinstance(obj, dict):
            raise InvalidNotification(
                f"{notification_type} notification {notification_id!r} has no data.object"
            )
        for name, value in (("id", object_id), ("grant_id", grant_id)):
            if not isinstance(value, str) or not value.strip():
                raise InvalidNotification(
                    f"{notification_type} notification {notification_id!r} has no data.object.{name}"
                )
    time = envelope.get("time")
    return Notification(
        id=notification_id,
        type=notification_type.strip(),
        kind=kind,
        suffixes=suffixes,
        grant_id=grant_id if isinstance(grant_id, str) and grant_id else None,
        object_id=object_id if isinstance(object_id, str) and object_id else None,
        time=time if isinstance(time, int) and not isinstance(time, bool) else None,
        envelope=envelope,
    )
