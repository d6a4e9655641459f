"""Words, HTML bodies and raw header values that make generated mail read like real business mail.

Everything here is a pure function of its inputs (and of the ``random.Random`` it is handed), so the
seeded mailboxes and the lazily generated bulk days are the same on every run.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import random
import re
from dataclasses import dataclass
from email.header import Header
from email.utils import format_datetime, formataddr

from nylas_dataverse_sandbox import personas


@dataclass(frozen=True)
class Party:
    name: str
    email: str

    @property
    def domain(self) -> str:
        return self.email.rsplit("@", 1)[-1].lower()

    @property
    def first_name(self) -> str:
        return self.name.split(" ")[0] if self.name and "@" not in self.name else ""


def person_party(person: personas.Person, email_index: int = 0) -> Party:
    return Party(person.full_name, person.emails[email_index])


def participant(party: Party, provider: str) -> dict[str, str]:
    """A ``{name, email}`` object as each provider reports a bare address (no display name)."""
    if party.name:
        return {"name": party.name, "email": party.email}
    if provider == "microsoft":
        return {"name": party.email, "email": party.email}  # Graph repeats the address as the name
    if provider == "google":
        return {"email": party.email}
    return {"name": "", "email": party.email}


# Timezones the correspondents write from (Date headers carry the sender's offset). ----------------------

_SENDER_OFFSETS_H = {
    "contoso.example": 0,
    "fabrikam.example": 1,
    "mueller-privat.example": 1,
    "northwind.example": -5,
    "adatum.example": 9,
    "tailspin.example": -6,
    "litware.example": 0,
    "proseware.example": 2,
}


def date_header(epoch_s: int, sender_domain: str) -> str:
    offset = dt.timezone(dt.timedelta(hours=_SENDER_OFFSETS_H.get(sender_domain, 0)))
    return format_datetime(dt.datetime.fromtimestamp(epoch_s, offset))


def address_header(parties: tuple[Party, ...] | list[Party]) -> str:
    return ", ".join(_address(party) for party in parties)


@functools.lru_cache(maxsize=4096)
def _address(party: Party) -> str:
    return formataddr((party.name, party.email), charset="utf-8")


def subject_header(subject: str) -> str:
    """The raw Subject header: RFC 2047 encoded words when non-ASCII, unfolded to one line."""
    if subject.isascii():
        return subject
    encoded = Header(subject, "utf-8").encode()
    return " ".join(part.strip() for part in encoded.splitlines())


# Text pools -----------------------------------------------------------------------------------------------

TOPICS_EN = (
    "Renewal quote for {account}",
    "Pilot rollout timeline",
    "Pricing question on the Enterprise tier",
    "Follow-up from Tuesday's call",
    "Contract redlines v3",
    "Onboarding schedule for the new team",
    "Security questionnaire (SIG Lite)",
    "Volume discount request",
    "Demo recording and slides",
    "PO {number} for additional seats",
    "Shipping delay on order #{number}",
    "Updated SOW for Q1",
    "Integration questions from our IT team",
    "Invoice {number} – payment status",
    "Reference call request",
    "Training sessions in December",
)
TOPICS_BY_LANGUAGE = {
    "es": (
        "Reunión de seguimiento – propuesta revisada",
        "Presupuesto para la ampliación de licencias",
        "¿Podemos adelantar la llamada del jueves?",
        "Dudas sobre la facturación de noviembre",
    ),
    "de": (
        "Rückfrage zum Angebot – Lieferung nach Köln",
        "Änderungen am Vertragsentwurf",
        "Terminbestätigung für Dienstag",
        "Größenübersicht und Preise für 2027",
    ),
    "ja": (
        "お見積もりの件について",
        "来週の打ち合わせ日程のご相談",
        "契約書ドラフトの確認",
        "請求書送付のお知らせ",
    ),
}
SENTENCES_BY_LANGUAGE = {
    "en": (
        "Thanks for taking the time to walk us through the proposal yesterday.",
        "I have shared the revised numbers with our finance team and expect feedback by Friday.",
        "Could you confirm whether the discount also applies to the additional seats?",
        "Our legal team had a few comments on section 4.2, attached as tracked changes.",
        "We would like to start the pilot with the EMEA sales team first.",
        "Please let me know which of the proposed slots works best for you.",
        "The current contract runs until the end of January, so timing matters for us.",
        "I have looped in our IT lead, who will own the integration work.",
        "As discussed, the onboarding sessions can be recorded for people who cannot attend.",
        "We are still waiting for the signed purchase order from procurement.",
        "The shipment left our warehouse this morning and should arrive on Thursday.",
        "Happy to set up a short call if that is easier than going back and forth by email.",
        "I noticed the invoice lists 45 seats while the order was for 40.",
        "Our security team asked for the latest SOC 2 report before we can proceed.",
        "The dashboard numbers look much better since the last release.",
        "We plan to roll this out to two more regions in the spring.",
        "Can you send over the updated price list including the support tiers?",
        "I will be out of office next week, so please copy my colleague on anything urgent.",
        "The team really liked the reporting features you showed in the demo.",
        "Let us aim to have the final version signed before the holidays.",
    ),
    "es": (
        "Muchas gracias por la presentación de ayer, fue muy útil para el equipo.",
        "Hemos revisado la propuesta y tenemos un par de preguntas sobre los plazos.",
        "¿Sería posible recibir el presupuesto actualizado antes del viernes?",
        "Nuestro departamento jurídico enviará los comentarios al contrato esta semana.",
        "Quedo a la espera de tu respuesta para confirmar la reunión.",
    ),
    "de": (
        "Vielen Dank für das angenehme Gespräch am Dienstag.",
        "Wir haben das Angebot intern geprüft und hätten noch zwei Rückfragen.",
        "Könnten Sie uns die überarbeitete Größenübersicht bis Freitag schicken?",
        "Die Lieferung nach Köln müsste spätestens Mitte Dezember erfolgen.",
        "Für Rückfragen stehe ich Ihnen jederzeit gern zur Verfügung.",
    ),
    "ja": (
        "いつも大変お世話になっております。",
        "先日はお打ち合わせのお時間をいただき、誠にありがとうございました。",
        "お見積もりの内容について、社内で確認を進めております。",
        "来週のご都合のよい日時をお知らせいただけますでしょうか。",
        "引き続きどうぞよろしくお願いいたします。",
    ),
}
GREETINGS = {"en": "Hi {name},", "es": "Hola {name}:", "de": "Hallo {name},", "ja": "{name}様"}
SIGNOFFS = {
    "en": "Best regards,",
    "es": "Un saludo,",
    "de": "Viele Grüße",
    "ja": "よろしくお願いいたします。",
}


def fill_topic(template: str, rng: random.Random, account_name: str) -> str:
    return template.format(account=account_name, number=rng.randint(10_000, 99_999))


def paragraphs(rng: random.Random, language: str, count: int) -> list[str]:
    pool = SENTENCES_BY_LANGUAGE.get(language, SENTENCES_BY_LANGUAGE["en"])
    return [" ".join(rng.sample(pool, k=min(len(pool), rng.randint(2, 3)))) for _ in range(count)]


# Bodies -----------------------------------------------------------------------------------------------------


def paragraph_html(text: str) -> str:
    return f"<p>{html.escape(text, quote=False)}</p>"


def compose_body(
    *,
    style: str,
    greeting: str,
    body_paragraphs: list[str],
    signoff: str,
    signature: list[str],
    quoted: tuple[str, str] | None = None,
) -> str:
    """An HTML body in the shape a mail client of ``style`` (gmail, outlook, plain) writes."""
    text = "".join(paragraph_html(p) for p in [greeting, *body_paragraphs])
    return compose_rendered(style=style, text_html=text, signoff=signoff, signature=signature, quoted=quoted)


def compose_rendered(
    *,
    style: str,
    text_html: str,
    signoff: str,
    signature: list[str],
    quoted: tuple[str, str] | None = None,
) -> str:
    """Like :func:`compose_body`, for paragraphs already rendered as HTML."""
    text = text_html
    sign = "<br>".join(html.escape(line, quote=False) for line in [signoff, *signature])
    quote_html = ""
    if quoted is not None:
        attribution, quoted_text = quoted
        quote_html = (
            f'<div class="gmail_quote"><div dir="ltr" class="gmail_attr">{html.escape(attribution)}<br></div>'
            f'<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid '
            f'rgb(204,204,204);padding-left:1ex">{html.escape(quoted_text, quote=False)}</blockquote></div>'
        )
    if style == "gmail":
        return f'<div dir="ltr">{text}<p>{sign}</p></div><br>{quote_html}'
    if style == "outlook":
        return (
            '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
            '<style type="text/css" style="display:none;">P {margin-top:0;margin-bottom:0;}</style></head>'
            '<body dir="ltr"><div class="elementToProof" style="font-family: Aptos, Calibri, Helvetica, '
            f'sans-serif; font-size: 12pt; color: rgb(0, 0, 0);">{text}<p>{sign}</p></div>'
            f'<hr style="display:inline-block;width:98%" tabindex="-1">{quote_html}</body></html>'
        )
    # Plain-text mail that Nylas up-converts to HTML.
    return f"<div>{text}<p>{sign}</p>{quote_html}</div>"


def newsletter_body(rng: random.Random, brand: str, headline: str, unsubscribe_url: str) -> str:
    items = "".join(
        f'<tr><td style="padding:12px 24px;font-family:Arial,sans-serif;font-size:15px;color:#333333">'
        f'<h3 style="margin:0 0 6px 0">{html.escape(title)}</h3>{html.escape(text)} '
        f'<a href="https://{brand.lower().replace(" ", "-")}.example/r/{rng.getrandbits(40):x}" '
        'style="color:#1a73e8">Read more</a></td></tr>'
        for title, text in rng.sample(_NEWS_ITEMS, k=3)
    )
    pixel = f"https://track.{brand.lower().replace(' ', '-')}.example/o/{rng.getrandbits(64):016x}.gif"
    return (
        '<!DOCTYPE html><html><head><meta name="viewport" content="width=device-width">'
        f'<title>{html.escape(headline)}</title></head><body style="margin:0;background:#f4f4f4">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="max-width:600px;'
        'margin:0 auto;background:#ffffff"><tr><td style="padding:24px;font-family:Arial,sans-serif;'
        f'font-size:22px;font-weight:bold">{html.escape(headline)}</td></tr>{items}'
        '<tr><td style="padding:24px;font-family:Arial,sans-serif;font-size:11px;color:#888888">'
        f"You are receiving this email because you subscribed to {html.escape(brand)}. "
        f'<a href="{html.escape(unsubscribe_url)}">Unsubscribe</a></td></tr></table>'
        f'<img src="{pixel}" width="1" height="1" alt=""></body></html>'
    )


_NEWS_ITEMS = (
    ("Five ways to shorten your sales cycle", "Practical tips from teams that closed faster this quarter."),
    ("Webinar: data pipelines for CRM", "Join us on Thursday for a live walkthrough with Q&A."),
    ("Product update: new dashboards", "Build custom views of your pipeline in a few clicks."),
    ("Customer story: scaling support", "How a 200-person team halved its response times."),
    ("Your monthly usage summary", "See which features your team used most in October."),
    ("Holiday schedule", "Our support hours change between December 23 and January 2."),
)


_SCRIPT_OR_STYLE = re.compile(r"<(script|style|head|title)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def snippet(body_html: str, fallback: str) -> str:
    """Plain text, no HTML, at most 100 characters (never empty: the contract says minLength 1)."""
    head = body_html[:60_000]
    text = html.unescape(_TAG.sub(" ", _SCRIPT_OR_STYLE.sub(" ", head)))
    collapsed = " ".join(text.split())[:100].rstrip()
    return collapsed or fallback[:100] or "(no content)"
