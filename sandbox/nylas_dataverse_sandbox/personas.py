"""The fictional sales org that both the Nylas and the Dataverse stand-ins are seeded from.

One source of truth keeps the two sides consistent: the mail in the Nylas mailboxes is written by and to
the people that exist (or deliberately do not exist) as rows in Dataverse.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

_NAMESPACE = uuid.UUID("5f0c2b1e-6d0a-4c55-9a53-0d1f3c0b9e77")

ORG_DOMAINS = ("contoso.example",)
TENANT_ID = "7b1c0f6e-2a1d-4d3e-9f10-3c5a8e2b4d61"
CLIENT_ID = "3f2a9c4d-8b7e-4a61-b0c2-5d6e7f8a9b10"
CLIENT_SECRET = "sandbox-client-secret-do-not-use"
NYLAS_API_KEY = "nyk_v0_sandbox_api_key_do_not_use"
WEBHOOK_SECRET = "sandbox-webhook-secret"
APPLICATION_ID = "app-sandbox-0001"


def stable_id(kind: str, name: str) -> str:
    """A GUID that is the same on every machine and every run."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{name}"))


def application_client(number: int) -> tuple[str, str]:
    """Client id and secret of the sandbox's application user ``number`` (1 is ``CLIENT_ID``); each is its
    own Entra app registration and its own Dataverse application user, with its own service-protection
    limits."""
    if number < 1:
        raise ValueError("application users are numbered from 1")
    if number == 1:
        return CLIENT_ID, CLIENT_SECRET
    client_id = stable_id("entra-client", f"application-user-{number}")
    return client_id, f"sandbox-client-secret-{number}-do-not-use"


@dataclass(frozen=True)
class Person:
    key: str
    first: str
    last: str
    emails: tuple[str, ...]

    @property
    def full_name(self) -> str:
        return f"{self.first} {self.last}".strip()


@dataclass(frozen=True)
class Account:
    key: str
    name: str
    emails: tuple[str, ...]
    domain: str


@dataclass(frozen=True)
class GrantPersona:
    """A connected mailbox. ``provider`` decides id shapes and folder quirks."""

    key: str
    grant_id: str
    email: str
    provider: str  # google | microsoft | imap
    owner_key: str  # SystemUser key
    status: str = "valid"
    in_grants_file: bool = True
    scope: tuple[str, ...] = field(default=())


SYSTEM_USERS: tuple[Person, ...] = (
    Person("alice", "Alice", "Nakamura", ("alice@contoso.example",)),
    Person("bob", "Bob", "Okafor", ("bob@contoso.example",)),
    Person("carol", "Carol", "Lindqvist", ("carol@contoso.example",)),
    Person("dave", "Dave", "Ruiz", ("dave@contoso.example",)),
    Person("erin", "Erin", "Walsh", ("erin@contoso.example",)),
)

ACCOUNTS: tuple[Account, ...] = (
    Account("fabrikam", "Fabrikam, Inc.", ("info@fabrikam.example",), "fabrikam.example"),
    Account(
        "northwind",
        "Northwind Traders",
        ("sales@northwind.example", "ap@northwind.example"),
        "northwind.example",
    ),
    Account("adatum", "Adatum Corporation", ("hello@adatum.example",), "adatum.example"),
    Account("tailspin", "Tailspin Toys", ("orders@tailspin.example",), "tailspin.example"),
)

CONTACTS: tuple[tuple[Person, str], ...] = (
    # (person, account key)
    (Person("maria", "María José", "García", ("maria.garcia@fabrikam.example",)), "fabrikam"),
    (
        Person(
            "jonas", "Jonas", "Müller", ("jonas.mueller@fabrikam.example", "jonas@mueller-privat.example")
        ),
        "fabrikam",
    ),
    (Person("priya", "Priya", "Raman", ("priya@northwind.example",)), "northwind"),
    (Person("tom", "Tom", "O'Brien", ("tom.obrien@northwind.example",)), "northwind"),
    (Person("yuki", "由紀", "山田", ("yuki.yamada@adatum.example",)), "adatum"),
    (Person("sam", "Sam", "Lee", ("sam+deals@adatum.example",)), "adatum"),
    (Person("olga", "Olga", "Petrova", ("olga@tailspin.example",)), "tailspin"),
    # Two contacts share a mailbox (a team alias): resolution has to choose by a documented rule.
    (Person("team1", "Procurement", "Desk", ("procurement@tailspin.example",)), "tailspin"),
    (Person("team2", "Procurement", "Backup", ("procurement@tailspin.example",)), "tailspin"),
)

LEADS: tuple[Person, ...] = (
    Person("lena", "Lena", "Kovač", ("lena@litware.example",)),
    Person("omar", "Omar", "Haddad", ("omar.haddad@proseware.example",)),
)

UNKNOWN_SENDERS: tuple[str, ...] = (
    "stranger@unknown-corp.example",
    "recruiter@talentfinders.example",
    "someone@gmail.example",
)

NEWSLETTER_SENDERS: tuple[str, ...] = ("news@marketing-digest.example", "no-reply@saas-tool.example")

GRANTS: tuple[GrantPersona, ...] = (
    GrantPersona("alice", stable_id("grant", "alice"), "alice@contoso.example", "google", "alice"),
    GrantPersona("bob", stable_id("grant", "bob"), "bob@contoso.example", "microsoft", "bob"),
    GrantPersona("carol", stable_id("grant", "carol"), "carol@contoso.example", "imap", "carol"),
    # An expired grant: every data call answers 401, as Nylas does.
    GrantPersona(
        "dave",
        stable_id("grant", "dave"),
        "dave@contoso.example",
        "google",
        "dave",
        status="invalid",
        in_grants_file=False,
    ),
)


def grant_by_key(key: str) -> GrantPersona:
    for grant in GRANTS:
        if grant.key == key:
            return grant
    number = _extra_number(key)
    if number is not None:
        return extra_grant(number)
    raise KeyError(key)


# --- synthetic mailboxes for load tests (opt-in: NylasBackend(extra_grants=N)) -----------------------------
# Mailbox N (from 1) has the key ``mbx-NNN``, its own grant id and address, and an owner who exists only on
# the Nylas side (no Dataverse system user): its mail comes only from bulk days. Providers alternate between
# Microsoft and IMAP, whose bulk message ids include the grant id (Google-style bulk ids are derived from
# date and index only, so two Google mailboxes would share ids).
EXTRA_GRANT_PREFIX = "mbx-"
MAX_EXTRA_GRANTS = 999
_EXTRA_PROVIDERS = ("microsoft", "imap")


def _extra_number(key: str) -> int | None:
    digits = key.removeprefix(EXTRA_GRANT_PREFIX)
    if key.startswith(EXTRA_GRANT_PREFIX) and digits.isdigit() and 1 <= int(digits) <= MAX_EXTRA_GRANTS:
        return int(digits)
    return None


def extra_grant(number: int) -> GrantPersona:
    """Synthetic mailbox ``number`` (1 .. ``MAX_EXTRA_GRANTS``)."""
    if not 1 <= number <= MAX_EXTRA_GRANTS:
        raise ValueError(f"extra grants are numbered 1 to {MAX_EXTRA_GRANTS}, got {number}")
    key = f"{EXTRA_GRANT_PREFIX}{number:03d}"
    provider = _EXTRA_PROVIDERS[number % len(_EXTRA_PROVIDERS)]
    return GrantPersona(key, stable_id("grant", key), f"{key}@{ORG_DOMAINS[0]}", provider, key)


def extra_grants(count: int) -> tuple[GrantPersona, ...]:
    if not 0 <= count <= MAX_EXTRA_GRANTS:
        raise ValueError(f"extra grants must be between 0 and {MAX_EXTRA_GRANTS}, got {count}")
    return tuple(extra_grant(number) for number in range(1, count + 1))


def person_by_key(key: str) -> Person:
    """A system user, or the owner of a synthetic mailbox (who is not a Dataverse system user)."""
    for user in SYSTEM_USERS:
        if user.key == key:
            return user
    number = _extra_number(key)
    if number is None:
        raise KeyError(key)
    return Person(key, "Mailbox", f"{number:03d}", (f"{key}@{ORG_DOMAINS[0]}",))


def grant_by_id(grant_id: str) -> GrantPersona | None:
    """A seeded or synthetic grant by its id (synthetic ids are looked up among the numbers in use)."""
    for grant in GRANTS:
        if grant.grant_id == grant_id:
            return grant
    return _EXTRA_BY_ID.get(grant_id)


_EXTRA_BY_ID = {grant.grant_id: grant for grant in extra_grants(MAX_EXTRA_GRANTS)}


# --- rows real orgs carry besides the active ones (uncertain-behaviours row 22) ---------------------------
# Seeded into Dataverse unless DataverseBehaviour.seed_inactive_rows is off. No seeded Nylas message uses
# these addresses yet, so the daily pipeline's results do not change; mail from them belongs to tests of the
# resolution rule. Deterministic like everything here: new rows get new keys, existing ones never change.
INACTIVE_ACCOUNTS: tuple[Account, ...] = (
    # A customer that closed: statecode 1 (Inactive).
    Account("wingtip", "Wingtip Toys (closed)", ("info@wingtip.example",), "wingtip.example"),
)

INACTIVE_CONTACTS: tuple[tuple[Person, str], ...] = (
    # Left Fabrikam; deactivated, the only record with this address.
    (Person("hannah", "Hannah", "Weber", ("hannah.weber@fabrikam.example",)), "fabrikam"),
    # Worked at the closed account; a disqualified lead carries the same address (see DISQUALIFIED_LEADS).
    (Person("luis", "Luis", "Ortega", ("luis.ortega@wingtip.example",)), "wingtip"),
)

DISQUALIFIED_LEADS: tuple[Person, ...] = (
    # statecode 2 (Disqualified), statuscode 6 (No Longer Interested).
    Person("zoe", "Zoe", "Brandt", ("zoe.brandt@litware.example",)),
    # Same address as the inactive contact Luis Ortega: two inactive candidates of different tables.
    Person("luis-lead", "Luis", "Ortega", ("luis.ortega@wingtip.example",)),
)
