"""Parsing and classifying the notification envelope."""

from __future__ import annotations

import pytest

from nylas_dataverse.realtime.notifications import (
    InvalidNotification,
    NotificationKind,
    classify,
    parse_notification,
)
from nylas_dataverse.realtime.processor import needs_fetch

from .conftest import body_of, envelope


@pytest.mark.parametrize(
    ("notification_type", "kind", "truncated"),
    [
        ("message.created", NotificationKind.MESSAGE_CREATED, False),
        ("message.created.truncated", NotificationKind.MESSAGE_CREATED, True),
        ("message.created.transformed", NotificationKind.MESSAGE_CREATED, False),
        ("message.created.cleaned.transformed.truncated", NotificationKind.MESSAGE_CREATED, True),
        ("message.created.metadata", NotificationKind.MESSAGE_CREATED, False),
        ("grant.expired", NotificationKind.GRANT_EXPIRED, False),
        ("message.updated", NotificationKind.IGNORED, False),
        ("message.createdx", NotificationKind.IGNORED, False),
        ("grant.created", NotificationKind.IGNORED, False),
        ("calendar.event.whatever", NotificationKind.IGNORED, False),
    ],
)
def test_types_are_classified_with_their_suffixes(
    notification_type: str, kind: NotificationKind, truncated: bool
) -> None:
    parsed = parse_notification(body_of(envelope("n-1", type=notification_type)))
    assert parsed.kind is kind
    assert parsed.truncated is truncated
    assert classify(notification_type)[0] is kind


def test_a_message_notification_names_its_grant_and_message() -> None:
    parsed = parse_notification(body_of(envelope("n-1", grant_id="g-7", message_id="m-9")))
    assert (parsed.id, parsed.grant_id, parsed.object_id) == ("n-1", "g-7", "m-9")


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "message.created"}', "no notification 'id'"),
        (b'{"id": "n-1"}', "no 'type'"),
        (b'{"id": "n-1", "type": "message.created", "data": {}}', "no data.object"),
        (b'{"id": "n-1", "type": "message.created", "data": {"object": {"id": "m"}}}', "grant_id"),
    ],
)
def test_unusable_bodies_say_what_is_wrong(body: bytes, complaint: str) -> None:
    with pytest.raises(InvalidNotification, match=complaint):
        parse_notification(body)


_MISSING = object()


def test_a_message_is_fetched_when_the_payload_lacks_what_the_daily_run_reads() -> None:
    def notification(**changes: object) -> object:
        raw = envelope("n-1", type=str(changes.pop("type", "message.created")))
        raw["data"]["object"].update(
            {"date": 1793750400, "from": [{"email": "a@b.example"}], "folders": ["INBOX"]}
        )
        raw["data"]["object"].update(changes)
        for name in [name for name, value in changes.items() if value is _MISSING]:
            del raw["data"]["object"][name]
        return parse_notification(body_of(raw))

    full = [{"name": "Message-ID", "value": "<a@b>"}, {"name": "List-Id", "value": "x"}]
    basic = [{"name": "Message-ID", "value": "<a@b>"}]
    assert needs_fetch(notification(), "include_headers")  # no headers: the usual webhook payload
    assert not needs_fetch(notification(headers=full), "include_headers")
    assert needs_fetch(notification(headers=full, type="message.created.truncated"), "include_headers")
    assert needs_fetch(notification(headers=full, body=None), "include_headers")
    # Only the basic headers would hide List-Id and friends from the automated-mail rule.
    assert needs_fetch(notification(headers=basic), "include_headers")
    assert not needs_fetch(notification(headers=basic), "include_basic_headers")
    # Suffixed payloads: a markdown body (cleaned) or none (metadata) is not what the daily run stores.
    assert needs_fetch(notification(headers=full, type="message.created.cleaned"), "include_headers")
    assert needs_fetch(notification(headers=full, type="message.created.metadata"), "include_headers")
    # Field customization may keep the body and headers and still leave out what transform needs.
    for left_out in ("date", "from", "folders"):
        customized = notification(headers=full, type="message.created.transformed", **{left_out: _MISSING})
        assert needs_fetch(customized, "include_headers"), left_out
    assert not needs_fetch(notification(headers=full, type="message.created.transformed"), "include_headers")
