from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from nylas_dataverse.core.config import ROLE_ADDRESS_PATTERNS
from nylas_dataverse.core.contacts import CONTACT_NAMESPACE, WithNewContacts, contact_id, new_contacts
from nylas_dataverse.core.messages import NylasMessage
from nylas_dataverse.core.resolution import Directory, DirectoryRow

DIRECTORY = Directory.from_rows(
    [
        DirectoryRow(
            "contact", "c-known", "emailaddress1", "known@fabrikam.example", "2026-01-01", "Known", True
        )
    ]
)


def _plan(msg: NylasMessage, mode: Any = "all", **overrides: Any) -> list[str]:
    settings: dict[str, Any] = {
        "mode": mode,
        "org_domains": ("contoso.example",),
        "grant_email": "alice@contoso.example",
        "excluded_addresses": (),
        "excluded_domains": (),
        "role_patterns": ROLE_ADDRESS_PATTERNS,
    }
    settings.update(overrides)
    return [contact.address for contact in new_contacts(msg, DIRECTORY, **settings)]


def test_only_unresolved_external_people_get_a_contact(message: Callable[..., NylasMessage]) -> None:
    msg = message(
        from_=[{"name": "Dana Q. New", "email": "Dana@New.example"}],
        to=["alice@contoso.example", "bob@contoso.example", "known@fabrikam.example", "eve@new.example"],
        cc=["no-reply@new.example", "info@new.example", "sales+eu@new.example", "dana@new.example"],
        bcc=["x@spam.example"],
    )
    assert _plan(msg) == ["Dana@New.example", "eve@new.example", "x@spam.example"]
    assert _plan(msg, excluded_domains=("spam.example",), excluded_addresses=("eve@new.example",)) == [
        "Dana@New.example"
    ]


def test_senders_mode_looks_at_the_from_addresses_only_and_off_at_none(
    message: Callable[..., NylasMessage],
) -> None:
    incoming = message(from_=["dana@new.example"], to=["alice@contoso.example", "eve@new.example"])
    outgoing = message(from_=["alice@contoso.example"], to=["eve@new.example"])
    assert _plan(incoming, "senders") == ["dana@new.example"]
    assert _plan(outgoing, "senders") == []
    assert _plan(incoming, "off") == []


def test_role_patterns_are_configurable(message: Callable[..., NylasMessage]) -> None:
    msg = message(from_=["info@new.example"], to=["alice@contoso.example"])
    assert _plan(msg) == []
    assert _plan(msg, role_patterns=("no-reply*",)) == ["info@new.example"]


def test_the_contact_id_is_derived_from_the_normalised_address_so_reruns_name_the_same_one() -> None:
    assert contact_id(" Dana@New.Example ") == contact_id("dana@new.example")
    assert contact_id("dana@new.example") == str(uuid.uuid5(CONTACT_NAMESPACE, "dana@new.example"))
    assert contact_id("dana@new.example") != contact_id("eve@new.example")


def test_names_come_from_the_display_name_else_the_local_part(message: Callable[..., NylasMessage]) -> None:
    msg = message(from_=[{"name": "Dana Q. New", "email": "dana@new.example"}], to=["eve@new.example"])
    dana, eve = new_contacts(
        msg,
        DIRECTORY,
        mode="all",
        org_domains=(),
        grant_email=None,
        excluded_addresses=(),
        excluded_domains=(),
        role_patterns=(),
    )
    assert (dana.firstname, dana.lastname) == ("Dana Q.", "New")
    assert (eve.firstname, eve.lastname) == (None, "eve")
    overlay = WithNewContacts(DIRECTORY, [dana])
    resolved = overlay.resolve("DANA@new.example")
    assert resolved is not None
    assert (resolved.entity, resolved.id) == ("contact", dana.id)
    assert overlay.resolve("known@fabrikam.example") == DIRECTORY.resolve("known@fabrikam.example")
