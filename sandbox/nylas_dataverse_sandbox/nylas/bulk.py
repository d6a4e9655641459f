"""Bulk days: many extra messages for one grant and day, generated lazily from their index.

A benchmark may register 100,000 messages; none is kept in memory. Message ``index`` 0 is the newest;
dates fall evenly across the UTC day, so ``date_at`` is monotonic and a time filter becomes an index
range. Every message is a pure function of (grant, day, source number, index): generating it twice gives
the same object, ids included, and its id can be decoded back to the index (see ``ids``).

Consecutive messages form threads of three (customer writes, the grant owner replies, the customer
answers) with ``In-Reply-To``/``References``; every message has its own ``Message-ID``.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from dataclasses import dataclass
from typing import Any

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas import content, folders, ids
from nylas_dataverse_sandbox.nylas.content import Party
from nylas_dataverse_sandbox.nylas.seed import day_bounds
from nylas_dataverse_sandbox.personas import GrantPersona

MAX_BULK_COUNT = 1_000_000
THREAD_SIZE = 3
_LCG_MULTIPLIER = 6364136223846793005
_LCG_INCREMENT = 1442695040888963407

_STYLE_BY_PROVIDER = {"google": "gmail", "microsoft": "outlook", "imap": "plain"}
_OWNER_MID_DOMAIN = {
    "google": "mail.gmail.com",
    "microsoft": "namprd11.prod.outlook.com",
    "imap": "contoso.example",
}
_UNKNOWN_NAMES = ("Jordan Avery", "", "Casey Morgan")


def _paragraph_pool() -> tuple[tuple[str, str], ...]:
    """(plain text, rendered HTML) pairs; the text is ASCII, so characters and bytes agree."""
    rng = random.Random("nylas-bulk-paragraphs-v1")
    texts = [content.paragraphs(rng, "en", 1)[0] for _ in range(256)]
    return tuple((text, content.paragraph_html(text)) for text in texts)


_PARAGRAPHS = _paragraph_pool()


def _pick_paragraphs(seed: bytes, target_bytes: int, overhead: int) -> list[tuple[str, str]]:
    """Paragraphs from a fixed pool, drawn in a sequence from ``seed``, until the body reaches the target.

    A 64-bit LCG instead of ``random.Random`` keeps a 4 KB body well under a tenth of a millisecond.
    """
    state = int.from_bytes(seed[:8], "big")
    chosen: list[tuple[str, str]] = []
    size = overhead
    while size < target_bytes:
        state = (state * _LCG_MULTIPLIER + _LCG_INCREMENT) % (1 << 64)
        paragraph = _PARAGRAPHS[state >> 56]
        chosen.append(paragraph)
        size += len(paragraph[1])
    return chosen


@dataclass(frozen=True)
class _Group:
    kind: str  # contact | account | lead | unknown
    counterpart: Party
    counterpart_person: personas.Person | None
    company: str
    subject: str
    threaded: bool


@dataclass(frozen=True)
class BulkDay:
    """``count`` synthetic messages of ``grant`` on ``day``; ``source_no`` keeps several bulk days apart."""

    grant: GrantPersona
    day: dt.date
    count: int
    body_bytes: int
    source_no: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_BULK_COUNT:
            raise ValueError(f"bulk count must be between 1 and {MAX_BULK_COUNT:,}, got {self.count}")
        if not 200 <= self.body_bytes <= 5_000_000:
            raise ValueError(f"body_bytes must be between 200 and 5,000,000, got {self.body_bytes}")
        if not 1 <= self.source_no <= ids.MAX_BULK_SOURCES:
            raise ValueError(f"at most {ids.MAX_BULK_SOURCES} bulk days per grant")

    def __len__(self) -> int:
        return self.count

    @functools.cached_property
    def _day_end(self) -> int:
        return day_bounds(self.day)[1]

    def date_at(self, index: int) -> int:
        return self._day_end - 1 - (index * 86_400) // self.count

    def created_at_at(self, index: int) -> int:
        """When Nylas synced message ``index``: 2 to 61 seconds after its ``date``."""
        return self.date_at(index) + 2 + index % 60

    def id_at(self, index: int) -> str:
        if self.grant.provider == "google":
            return ids.google_bulk_id(self.date_at(index), self.source_no, index)
        if self.grant.provider == "microsoft":
            return ids.microsoft_bulk_id(self.grant.grant_id, self.source_no, index)
        return ids.imap_bulk_id(self.grant.grant_id, self.source_no, index)

    def index_of(self, message_id: str) -> int | None:
        """The index of a message id this bulk day issued, or None."""
        index: int | None = None
        if self.grant.provider == "google":
            decoded = ids.google_decode_bulk(message_id)
            if decoded is not None and decoded[1] == self.source_no:
                index = decoded[2]
        elif self.grant.provider == "microsoft":
            pair = ids.microsoft_decode_bulk(self.grant.grant_id, message_id)
            if pair is not None and pair[0] == self.source_no:
                index = pair[1]
        else:
            pair = ids.imap_decode_bulk(self.grant.grant_id, message_id)
            if pair is not None and pair[0] == self.source_no:
                index = pair[1]
        if index is None or not 0 <= index < self.count or self.id_at(index) != message_id:
            return None
        return index

    # Generation -------------------------------------------------------------------------------------------

    def _seed(self, *parts: object) -> bytes:
        return ids.digest("bulk", self.grant.grant_id, self.day.isoformat(), self.source_no, *parts)

    def _group(self, group_no: int) -> _Group:
        return _group_of(self, group_no)

    def _draw_group(self, group_no: int) -> _Group:
        rng = random.Random(self._seed("group", group_no))
        roll = rng.random()
        if roll < 0.65:
            person, account_key = rng.choice(personas.CONTACTS)
            account = next(a for a in personas.ACCOUNTS if a.key == account_key)
            party = content.person_party(person)
            topic = content.fill_topic(rng.choice(content.TOPICS_EN), rng, account.name)
            return _Group("contact", party, person, account.name, topic, True)
        if roll < 0.77:
            account = rng.choice(personas.ACCOUNTS)
            party = Party(account.name, rng.choice(account.emails))
            subject = f"{account.name}: order {rng.randint(100_000, 999_999)}"
            return _Group("account", party, None, account.name, subject, True)
        if roll < 0.85:
            lead = rng.choice(personas.LEADS)
            return _Group(
                "lead",
                content.person_party(lead),
                lead,
                lead.emails[0].split("@")[1],
                "Pricing question",
                True,
            )
        address = rng.choice(personas.UNKNOWN_SENDERS)
        party = Party(rng.choice(_UNKNOWN_NAMES), address)
        return _Group("unknown", party, None, "", "Quick question", False)

    def counterparts(self) -> dict[str, int]:
        """Messages by who the grant owner writes with (contact, account, lead, unknown): a caller that needs
        unknown senders, say, can check a small day has them (the draw depends on the day)."""
        kinds = dict.fromkeys(("contact", "account", "lead", "unknown"), 0)
        for group_no in range(-(-self.count // THREAD_SIZE)):
            first = group_no * THREAD_SIZE
            kinds[self._group(group_no).kind] += min(THREAD_SIZE, self.count - first)
        return kinds

    def _oldest_in_group(self, group_no: int) -> int:
        return min(group_no * THREAD_SIZE + THREAD_SIZE - 1, self.count - 1)

    def _owner(self) -> tuple[personas.Person, Party]:
        return _owner_of(self.grant.owner_key)

    def _is_outbound(self, group: _Group, index: int) -> bool:
        position = self._oldest_in_group(index // THREAD_SIZE) - index
        return group.threaded and position == 1

    def _message_id_header(self, group: _Group, index: int) -> str:
        domain = (
            _OWNER_MID_DOMAIN[self.grant.provider]
            if self._is_outbound(group, index)
            else group.counterpart.domain
        )
        return f"<{self._seed('message-id', index).hex()[:24]}@{domain}>"

    def message_at(self, index: int, *, with_body: bool = True, mime_headers: bool = False) -> dict[str, Any]:
        """Message ``index`` as the API returns it; without the body (and headers) when only filtering."""
        if not 0 <= index < self.count:
            raise IndexError(index)
        group_no = index // THREAD_SIZE
        group = self._group(group_no)
        draw = self._seed("message", index)
        owner_person, owner = self._owner()
        outbound = self._is_outbound(group, index)
        oldest = self._oldest_in_group(group_no)
        reply = group.threaded and index != oldest
        sender, recipient = (owner, group.counterpart) if outbound else (group.counterpart, owner)
        provider = self.grant.provider
        role = "sent" if outbound else "inbox"
        unread = not outbound and draw[0] < 102  # 40 %
        date = self.date_at(index)
        subject = f"Re: {group.subject}" if reply else group.subject
        thread_key = (
            f"bulk:{self.day.isoformat()}:{self.source_no}:{group_no if group.threaded else f'i{index}'}"
        )
        if provider == "google":
            thread_id = self.id_at(oldest) if group.threaded else self.id_at(index)
        elif provider == "microsoft":
            thread_id = ids.microsoft_conversation_id(self.grant.grant_id, thread_key)
        else:
            thread_id = ids.imap_thread_id(self.grant.grant_id, thread_key)
        message: dict[str, Any] = {
            "object": "message",
            "grant_id": self.grant.grant_id,
            "id": self.id_at(index),
            "thread_id": thread_id,
            "subject": subject,
            "from": [content.participant(sender, provider)],
            "to": [content.participant(recipient, provider)],
            "cc": [],
            "bcc": [],
            "reply_to": [],
            "date": date,
            "created_at": self.created_at_at(index),
            "unread": unread,
            "starred": False,
            "folders": folders.message_folders(
                self.grant,
                role,
                unread=unread,
                starred=False,
                important=group.kind == "contact",
                category="CATEGORY_PERSONAL",
                user_label=None,
            ),
            "attachments": [],
        }
        if not with_body:
            return message
        sender_person = owner_person if outbound else group.counterpart_person
        recipient_person = group.counterpart_person if outbound else owner_person
        greeting_name = recipient_person.first if recipient_person else (recipient.first_name or "there")
        signature = (
            [sender_person.full_name, group.company] if sender_person else [sender.name or sender.email]
        )
        style = _STYLE_BY_PROVIDER[provider] if outbound else "plain"
        greeting = f"Hi {greeting_name},"

        def compose(rendered: str) -> str:
            text_html = content.paragraph_html(greeting) + rendered
            return content.compose_rendered(
                style=style, text_html=text_html, signoff="Best regards,", signature=signature
            )

        parts = _pick_paragraphs(self._seed("body", index), self.body_bytes, len(compose("").encode()))
        message["snippet"] = " ".join([greeting, *(text for text, _ in parts)])[:100].rstrip()
        message["body"] = compose("".join(rendered for _, rendered in parts))
        hide = provider == "microsoft" and outbound and not mime_headers
        message["headers"] = [] if hide else self._headers(group, index, sender, recipient, subject, reply)
        return message

    def _headers(
        self, group: _Group, index: int, sender: Party, recipient: Party, subject: str, reply: bool
    ) -> list[dict[str, str]]:
        date = self.date_at(index)
        pairs = [
            ("MIME-Version", "1.0"),
            ("Date", content.date_header(date - 5, sender.domain)),
            ("Message-ID", self._message_id_header(group, index)),
        ]
        if reply:
            parent = self._message_id_header(group, index + 1)
            chain = [
                self._message_id_header(group, i)
                for i in range(self._oldest_in_group(index // THREAD_SIZE), index, -1)
            ]
            pairs.append(("In-Reply-To", parent))
            pairs.append(("References", " ".join(chain)))
        pairs.extend(
            [
                ("Subject", content.subject_header(subject)),
                ("From", content.address_header([sender])),
                ("To", content.address_header([recipient])),
                ("Content-Type", 'multipart/alternative; boundary="000000000000bulk"'),
            ]
        )
        return [{"name": name, "value": value} for name, value in pairs]


@functools.lru_cache(maxsize=4096)
def _group_of(bulk_day: BulkDay, group_no: int) -> _Group:
    # The three messages of a thread share one draw; listing builds each message twice (filter, page).
    return bulk_day._draw_group(group_no)


@functools.lru_cache(maxsize=16)
def _owner_of(owner_key: str) -> tuple[personas.Person, Party]:
    person = personas.person_by_key(owner_key)
    return person, content.person_party(person)
