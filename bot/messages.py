"""Typed inbound WhatsApp messages, as parsed from a webhook and kept in the inbox (`MensajesProcesados.Payload`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum


class MessageKind(StrEnum):
    TEXT = "text"
    BUTTON_REPLY = "button_reply"  # interactive.button_reply (and legacy `button` messages)
    LIST_REPLY = "list_reply"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    REACTION = "reaction"
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"  # a type Meta added after this code was written


@dataclass(frozen=True, slots=True)
class InboundMessage:
    wamid: str
    conversation_key: str  # the phone number when Meta gives it, else the BSUID
    kind: MessageKind
    timestamp: int  # WhatsApp's Unix seconds
    phone: str | None = None  # `from` / `wa_id`; absent for username-only users
    bsuid: str | None = None  # `from_user_id` / `contacts[].user_id`
    text: str = ""  # the body, caption, or the title of the chosen button/row
    choice_id: str | None = None  # interactive reply id (button or list row)
    contact_name: str | None = None
    media_id: str | None = None
    mime_type: str | None = None  # media: as Meta declared it
    sha256: str | None = None  # media: the body's digest as Meta declared it (checked after download)
    filename: str | None = None  # documents
    voice: bool = False  # audio recorded as a voice note
    latitude: float | None = None
    longitude: float | None = None
    business_number: str | None = None  # `metadata.phone_number_id`: the business number the user wrote to

    @property
    def recipient(self) -> str:
        """Where replies go: the phone number, or the BSUID (sent as `recipient` instead of `to`)."""
        return self.phone or self.bsuid or self.conversation_key

    def to_json(self) -> str:
        # Every field is a flat primitive, so a plain field walk gives what asdict() gives, without its
        # recursive deep copy (half the webhook's database-thread time in bench/ingest.py).
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> InboundMessage:
        data = json.loads(raw)
        data["kind"] = MessageKind(data.get("kind", "unknown"))
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})
