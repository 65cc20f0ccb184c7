"""Webhook JSON -> typed values: every entry, change, message and status of a delivery.

Parsing is total: any JSON value gives a `WebhookBatch`, never an exception. What cannot be used (a
message without an id or sender, an id longer than the ledger column) is skipped with a warning;
message types Meta adds later become `MessageKind.UNKNOWN`; value-level `errors` and changes of
fields other than `messages` are acknowledged and logged. Messages from odd senders are left out and
counted: one of our own business numbers (a loop between two of our numbers, or a forged payload), or
a sender that is not a plausible WhatsApp id (a phone of 8 to 15 digits, or a BSUID). Strings are
made storable (lone UTF-16 surrogates, which JSON allows and UTF-8 cannot encode, become U+FFFD);
text is otherwise kept intact.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace

from bot.messages import InboundMessage, MessageKind
from core.telemetry import mask_phone, mask_wamid
from core.whatsapp.outgoing import MAX_TEXT_BODY, is_bsuid
from core.whatsapp.status import StatusUpdate

log = logging.getLogger(__name__)

WABA_OBJECT = "whatsapp_business_account"
# Column sizes of the ledger on SQL Server (MessageId NVARCHAR(200), Telefono NVARCHAR(64)): a value
# that cannot fit would fail the whole batch, so it is refused here, loudly, instead.
TEXT_CUT_MARKER = "… [texto recortado]"
MAX_NAME = 256
MAX_WAMID = 160
MAX_KEY = 64
MAX_STATUS = 30
MAX_TIMESTAMP = 2**40  # Unix seconds far beyond any real date; also keeps the value inside BIGINT
WA_PHONE = re.compile(r"^[0-9]{8,15}$")  # a WhatsApp id: E.164 digits, no `+`

_MEDIA = {
    "image": MessageKind.IMAGE,
    "audio": MessageKind.AUDIO,
    "video": MessageKind.VIDEO,
    "document": MessageKind.DOCUMENT,
    "sticker": MessageKind.STICKER,
}

__all__ = ["StatusUpdate", "WebhookBatch", "parse_payload"]


@dataclass(frozen=True, slots=True)
class WebhookBatch:
    messages: tuple[InboundMessage, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()
    skipped: int = 0  # messages/statuses that could not be used (each logged)
    foreign: int = 0  # messages/statuses addressed to a business number this app does not serve
    own_sender: int = 0  # messages whose sender is one of our own business numbers
    implausible_sender: int = 0  # messages whose sender is not a plausible WhatsApp id


def clean_text(value: object) -> str:
    """A string as it can be stored: lone surrogates replaced, nothing else touched."""
    if not isinstance(value, str):
        return ""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _opt_text(value: object) -> str | None:
    return clean_text(value) or None if isinstance(value, str) else None


def _dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _timestamp(value: object) -> int:
    """Meta sends Unix seconds as a string; anything unusable becomes 0 (ordered first, by arrival)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        ts = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value) < 20:
        ts = int(value.strip())
    else:
        return 0
    return ts if 0 <= ts < MAX_TIMESTAMP else 0


def _coordinate(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # JSON integers have no size limit; 1e400 is not a coordinate
        return None
    return number if math.isfinite(number) else None


def _error_text(errors: object) -> str:
    parts = []
    for err in _list(errors)[:5]:
        e = _dict(err)
        parts.append(f"{e.get('code', '?')}: {clean_text(e.get('title')) or clean_text(e.get('message'))}")
    return "; ".join(parts)


def _first_error(errors: object) -> tuple[int | None, str | None]:
    for err in _list(errors)[:1]:
        e = _dict(err)
        code = e.get("code")
        title = _opt_text(e.get("title")) or _opt_text(e.get("message"))
        return (code if isinstance(code, int) and not isinstance(code, bool) else None), title
    return None, None


@dataclass(frozen=True, slots=True)
class _Contacts:
    """A change's `contacts[]`, indexed once: looking each sender up by scanning the list made a
    2,000-message delivery quadratic (3 s of parsing)."""

    by_key: dict[str, dict[str, object]]
    only: dict[str, object]

    @classmethod
    def of(cls, contacts: list[object]) -> _Contacts:
        items = [_dict(c) for c in contacts]
        by_key: dict[str, dict[str, object]] = {}
        for c in reversed(items):  # the first entry wins, as a scan would find it
            for field_name in ("wa_id", "user_id"):
                key = c.get(field_name)
                if isinstance(key, str) and key:
                    by_key[f"{field_name}:{key}"] = c
        return cls(by_key, items[0] if len(items) == 1 else {})


def _contact_for(contacts: _Contacts, phone: str | None, bsuid: str | None) -> dict[str, object]:
    """The `contacts[]` entry of the sender: matched by phone or BSUID, or the only one there is."""
    return (contacts.by_key.get(f"wa_id:{phone}") if phone else None) or \
        (contacts.by_key.get(f"user_id:{bsuid}") if bsuid else None) or contacts.only


def _content(kind_name: str, msg: dict[str, object]) -> tuple[MessageKind, dict[str, object]]:
    """The message kind and the fields of InboundMessage that its type carries."""
    body = _dict(msg.get(kind_name))
    if kind_name == "text":
        return MessageKind.TEXT, {"text": clean_text(body.get("body"))}
    if kind_name == "interactive":
        sub = clean_text(body.get("type"))
        if sub in ("button_reply", "list_reply"):
            reply = _dict(body.get(sub))
            kind = MessageKind.BUTTON_REPLY if sub == "button_reply" else MessageKind.LIST_REPLY
            return kind, {"text": clean_text(reply.get("title")), "choice_id": _opt_text(reply.get("id"))}
        log.warning("Webhook: respuesta interactiva de tipo desconocido %r; se guarda como unknown", sub[:40])
        return MessageKind.UNKNOWN, {}
    if kind_name == "button":  # quick reply to a template: the legacy shape of a button press
        return MessageKind.BUTTON_REPLY, {"text": clean_text(body.get("text")),
                                          "choice_id": _opt_text(body.get("payload"))}
    if kind_name in _MEDIA:
        return _MEDIA[kind_name], {
            "text": clean_text(body.get("caption")), "media_id": _opt_text(body.get("id")),
            "mime_type": _opt_text(body.get("mime_type")), "sha256": _opt_text(body.get("sha256")),
            "filename": (_opt_text(body.get("filename")) or "")[:200] or None, "voice": body.get("voice") is True,
        }
    if kind_name == "location":
        label = ", ".join(t for t in (clean_text(body.get("name")), clean_text(body.get("address"))) if t)
        return MessageKind.LOCATION, {"text": label, "latitude": _coordinate(body.get("latitude")),
                                      "longitude": _coordinate(body.get("longitude"))}
    if kind_name == "reaction":
        return MessageKind.REACTION, {"text": clean_text(body.get("emoji"))}
    if kind_name == "contacts":
        names = [clean_text(_dict(_dict(c).get("name")).get("formatted_name")) for c in _list(msg.get("contacts"))]
        return MessageKind.CONTACTS, {"text": ", ".join(n for n in names if n)}
    if kind_name == "unsupported":
        log.info("Webhook: mensaje no soportado por la API (%s)", _error_text(msg.get("errors")) or "sin detalle")
        return MessageKind.UNSUPPORTED, {}
    log.warning("Webhook: tipo de mensaje desconocido %r; se guarda como unknown", kind_name[:40])
    return MessageKind.UNKNOWN, {}


def _sender_problem(message: InboundMessage, own: Collection[str]) -> str | None:
    """Why this sender must not be served, or None: our own number, or not a WhatsApp id at all."""
    if (message.phone and message.phone in own) or (message.bsuid and message.bsuid in own):
        return "remitente_propio"
    if (message.phone is not None and not WA_PHONE.match(message.phone)) or \
            (message.bsuid is not None and not is_bsuid(message.bsuid)):
        return "remitente_invalido"
    return None


def _message(raw: object, contacts: _Contacts) -> InboundMessage | None:
    msg = _dict(raw)
    wamid = clean_text(msg.get("id"))
    phone = _opt_text(msg.get("from"))
    bsuid = _opt_text(msg.get("from_user_id"))
    contact = _contact_for(contacts, phone, bsuid)
    phone = phone or _opt_text(contact.get("wa_id"))
    bsuid = bsuid or _opt_text(contact.get("user_id"))
    key = phone or bsuid
    # Ids are ASCII (digits, BSUIDs, base64 wamids): anything else would not fit their columns the same
    # way in both dialects, and is not something Meta sends.
    if not wamid or len(wamid) > MAX_WAMID or not key or len(key) > MAX_KEY or not (wamid + key).isascii():
        log.warning("Webhook: mensaje inutilizable (id %s, remitente %s); se omite",
                    "ausente" if not wamid else f"de {len(wamid)} caracteres", mask_phone(key))
        return None
    kind, fields = _content(clean_text(msg.get("type")), msg)
    text = fields.get("text")
    if isinstance(text, str) and len(text) > MAX_TEXT_BODY:  # WhatsApp's own limit: longer input is cut
        log.warning("Webhook: texto de %d caracteres recortado a %d", len(text), MAX_TEXT_BODY)
        fields["text"] = text[:MAX_TEXT_BODY - len(TEXT_CUT_MARKER)] + TEXT_CUT_MARKER
    name = _opt_text(_dict(contact.get("profile")).get("name"))
    name = name[:MAX_NAME] if name else name
    return InboundMessage(
        wamid=wamid, conversation_key=key, kind=kind, timestamp=_timestamp(msg.get("timestamp")),
        phone=phone, bsuid=bsuid, contact_name=name, **fields,  # type: ignore[arg-type]
    )


def _status(raw: object) -> StatusUpdate | None:
    st = _dict(raw)
    wamid, status = clean_text(st.get("id")), clean_text(st.get("status"))
    if not wamid or len(wamid) > MAX_WAMID or not status or len(status) > MAX_STATUS or not wamid.isascii():
        log.warning("Webhook: estado de entrega inutilizable; se omite")
        return None
    recipient = _opt_text(st.get("recipient_id")) or _opt_text(st.get("recipient_user_id"))
    code, title = _first_error(st.get("errors"))
    if status == "failed":
        log.warning("Webhook: envío %s falló para %s (%s)", mask_wamid(wamid), mask_phone(recipient),
                    _error_text(st.get("errors")) or "sin detalle")
    usable = recipient is not None and len(recipient) <= MAX_KEY and recipient.isascii()
    return StatusUpdate(wamid=wamid, status=status, timestamp=_timestamp(st.get("timestamp")),
                        recipient=recipient if usable else None,
                        error_code=code, error_title=title)


def _changes(payload: dict[str, object]) -> Iterator[tuple[str, dict[str, object]]]:
    for entry in _list(payload.get("entry")):
        for change in _list(_dict(entry).get("changes")):
            c = _dict(change)
            yield clean_text(c.get("field")), _dict(c.get("value"))


def parse_payload(payload: object, served: Collection[str] | None = None) -> WebhookBatch:
    """Every message and status of one webhook delivery, in payload order. Never raises.

    With `served`, changes addressed to any other business number (`metadata.phone_number_id`) are
    left out and counted in `foreign`: a signed payload for someone else's number gets no session,
    no report and no reply from ours.
    """
    data = _dict(payload)
    if data.get("object") != WABA_OBJECT or not isinstance(data.get("entry"), list):
        log.warning("Webhook: carga con forma desconocida (object=%r); se reconoce y se ignora",
                    clean_text(data.get("object"))[:60] if data else type(payload).__name__)
        return WebhookBatch()
    messages: list[InboundMessage] = []
    statuses: list[StatusUpdate] = []
    skipped = foreign = own_sender = implausible_sender = 0
    for field_name, value in _changes(data):
        if field_name != "messages":
            log.info("Webhook: cambio del campo %r recibido; no se procesa", field_name[:60])
            continue
        number = clean_text(_dict(value.get("metadata")).get("phone_number_id"))
        if served is not None and number not in served:
            items = len(_list(value.get("messages"))) + len(_list(value.get("statuses")))
            foreign += items
            log.warning("Webhook: %d elementos para el número %s, que esta app no atiende; se ignoran",
                        items, mask_phone(number[:40]) if number else "<sin phone_number_id>")
            continue
        if "errors" in value:
            log.warning("Webhook: errores a nivel de value: %s", _error_text(value.get("errors")) or "sin detalle")
        contacts = _Contacts.of(_list(value.get("contacts")))
        display = "".join(ch for ch in clean_text(_dict(value.get("metadata")).get("display_phone_number"))
                          if ch.isdigit())
        own = {n for n in (*(served or ()), number, display) if n}
        for raw in _list(value.get("messages")):
            parsed = _message(raw, contacts)
            skipped += parsed is None
            if parsed is None:
                continue
            problem = _sender_problem(parsed, own)
            if problem is not None:
                own_sender += problem == "remitente_propio"
                implausible_sender += problem == "remitente_invalido"
                log.warning("Webhook: mensaje %s de un remitente %s (%s); se reconoce y se ignora",
                            mask_wamid(parsed.wamid), "propio" if problem == "remitente_propio" else "inválido",
                            mask_phone(parsed.conversation_key))
                continue
            messages.append(replace(parsed, business_number=number or None))
        for raw in _list(value.get("statuses")):
            status = _status(raw)
            skipped += status is None
            if status is not None:
                statuses.append(status)
    return WebhookBatch(tuple(messages), tuple(statuses), skipped, foreign, own_sender, implausible_sender)
