"""Inbound webhook bodies shaped exactly like the ones Meta's WhatsApp Cloud API POSTs, and their signature.

The local chat console builds these so that what it sends goes through the real webhook untouched:
`X-Hub-Signature-256: sha256=<hex>` over the raw bytes, keyed with `WHATSAPP_APP_SECRET`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from core.whatsapp.outgoing import MAX_TEXT_BODY

WABA_ID = "102290129340398"  # the business account id of the fixtures
DISPLAY_PHONE = "15550783881"
_PHONE = re.compile(r"^[0-9]{8,15}$")
_BSUID = re.compile(r"^[A-Z]{2}\.[0-9A-Za-z]{4,60}$")
_SEPARATORS = re.compile(r"[\s\-().]")


class PayloadError(ValueError):
    """The console was asked for something Meta would never send; nothing is delivered."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who writes: a phone number (with its BSUID, as Meta sends since 2026) or a username-only BSUID."""

    phone: str | None
    bsuid: str
    name: str
    username: str | None = None

    @property
    def key(self) -> str:
        """The conversation key the bot uses: the phone when Meta gives it, else the BSUID."""
        return self.phone or self.bsuid


@dataclass(frozen=True, slots=True)
class SignedPayload:
    wamid: str
    body: bytes
    signature: str  # the whole header value, "sha256=<hex>"


def bsuid_for_phone(phone: str) -> str:
    """A stable made-up BSUID for a phone number, so the same phone always carries the same id."""
    digest = int(hashlib.sha256(phone.encode()).hexdigest(), 16)
    return f"MX.{digest % 10**16:016d}"


def parse_identity(user: str, name: str = "") -> Identity:
    """`user` is a phone number (spaces, dashes and a leading + are tolerated) or a BSUID like `MX.88120933`."""
    raw = (user or "").strip()
    name = (name or "").strip()[:60]
    if _BSUID.match(raw):
        label = name or "Usuario"
        username = "@" + re.sub(r"[^a-z0-9._]", "", label.lower().replace(" ", ".")) if label else None
        return Identity(phone=None, bsuid=raw, name=label, username=username or None)
    phone = _SEPARATORS.sub("", raw).removeprefix("+")
    if not _PHONE.match(phone):
        raise PayloadError(
            f"'{raw}' no es un teléfono (8 a 15 dígitos, con código de país) ni un BSUID (p. ej. MX.8812093347712650)"
        )
    return Identity(phone=phone, bsuid=bsuid_for_phone(phone), name=name or "Usuario de prueba")


def new_wamid() -> str:
    """Fresh, in the style of Meta's ids (`wamid.` + base64)."""
    return "wamid.HBgM" + base64.b64encode(os.urandom(27)).decode("ascii")


def text_message(text: str) -> dict[str, Any]:
    if not (text or "").strip():
        raise PayloadError("el mensaje está vacío")
    if len(text) > MAX_TEXT_BODY:  # WhatsApp's limit for a text message body
        raise PayloadError(f"el mensaje pasa de {MAX_TEXT_BODY} caracteres")
    return {"type": "text", "text": {"body": text}}


def _choice(choice_id: str, title: str) -> tuple[str, str]:
    choice_id, title = (choice_id or "").strip(), (title or "").strip()
    if not choice_id or not title:
        raise PayloadError("una respuesta a un botón o lista necesita id y título")
    return choice_id, title


def button_reply(choice_id: str, title: str, context_wamid: str | None = None) -> dict[str, Any]:
    choice_id, title = _choice(choice_id, title)
    message: dict[str, Any] = {
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": choice_id, "title": title}},
    }
    if context_wamid:
        message["context"] = {"from": DISPLAY_PHONE, "id": context_wamid}
    return message


def list_reply(choice_id: str, title: str, description: str = "", context_wamid: str | None = None) -> dict[str, Any]:
    choice_id, title = _choice(choice_id, title)
    reply = {"id": choice_id, "title": title}
    if description:
        reply["description"] = description
    message: dict[str, Any] = {"type": "interactive", "interactive": {"type": "list_reply", "list_reply": reply}}
    if context_wamid:
        message["context"] = {"from": DISPLAY_PHONE, "id": context_wamid}
    return message


def webhook_body(
    who: Identity, message: dict[str, Any], *, phone_number_id: str, wamid: str | None = None,
    timestamp: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """The whole delivery Meta would POST for one message from `who`; answers (wamid, body)."""
    wamid = wamid or new_wamid()
    profile: dict[str, str] = {"name": who.name}
    contact: dict[str, Any] = {"profile": profile}
    msg: dict[str, Any] = {}
    if who.phone:
        contact["wa_id"] = who.phone
        msg["from"] = who.phone
    elif who.username:
        profile["username"] = who.username
    contact["user_id"] = who.bsuid
    msg["id"] = wamid
    msg["timestamp"] = str(int(time.time()) if timestamp is None else timestamp)
    msg.update(message)
    msg["from_user_id"] = who.bsuid
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": DISPLAY_PHONE, "phone_number_id": phone_number_id},
                            "contacts": [contact],
                            "messages": [msg],
                        },
                    }
                ],
            }
        ],
    }
    return wamid, body


def sign(raw: bytes, app_secret: str) -> str:
    return "sha256=" + hmac.new(app_secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()


def signed(wamid: str, body: dict[str, Any], app_secret: str) -> SignedPayload:
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return SignedPayload(wamid=wamid, body=raw, signature=sign(raw, app_secret))


MEDIA_KINDS = ("image", "audio", "video", "document", "sticker")


def media_message(kind: str, media_id: str, mime_type: str, sha256: str, *, caption: str | None = None,
                  filename: str | None = None, voice: bool = False) -> dict[str, Any]:
    """A photo, voice note, video, document or sticker as Meta delivers it: only an id, with the declared
    type and digest (base64, as webhooks carry it); the body is fetched from the media API."""
    if kind not in MEDIA_KINDS:
        raise PayloadError(f"tipo de medio desconocido: {kind!r}; uno de {', '.join(MEDIA_KINDS)}")
    if not media_id:
        raise PayloadError("un medio necesita su id")
    body: dict[str, Any] = {"mime_type": mime_type, "sha256": sha256, "id": media_id}
    if caption and kind in ("image", "video", "document"):
        if len(caption) > 1024:
            raise PayloadError("el pie de foto pasa de 1024 caracteres")
        body["caption"] = caption
    if filename and kind == "document":
        body["filename"] = filename
    if kind == "audio":
        body["voice"] = voice
    return {"type": kind, kind: body}


def location_message(latitude: float, longitude: float, name: str | None = None,
                     address: str | None = None) -> dict[str, Any]:
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise PayloadError("la ubicación necesita latitud entre -90 y 90 y longitud entre -180 y 180")
    location: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    if name:
        location["name"] = name
    if address:
        location["address"] = address
    return {"type": "location", "location": location}
