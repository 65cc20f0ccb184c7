"""Outgoing messages as values, stored in `ColaEnvios.Contenido` as JSON and turned into Graph API bodies.

Recipients that are BSUIDs (users with a username and no visible number) are addressed with
`"recipient"` instead of `"to"`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_BSUID = re.compile(r"^[A-Z]{2}\.[0-9A-Za-z]+$")


def is_bsuid(recipient: str) -> bool:
    return bool(_BSUID.match(recipient))


@dataclass(frozen=True, slots=True)
class Choice:
    id: str
    title: str  # buttons: at most 20 characters; list rows: at most 24


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """Plain text, reply buttons (up to 3) or a list (up to 10 rows)."""

    body: str
    buttons: tuple[Choice, ...] = ()
    list_button: str | None = None  # set => send the choices as a list, not buttons
    rows: tuple[Choice, ...] = ()

    @property
    def kind(self) -> str:
        if self.rows:
            return "list"
        return "buttons" if self.buttons else "text"

    def to_json(self) -> str:
        data: dict[str, object] = {"body": self.body}
        if self.buttons:
            data["buttons"] = [[c.id, c.title] for c in self.buttons]
        if self.rows:
            data["list_button"] = self.list_button
            data["rows"] = [[c.id, c.title] for c in self.rows]
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> OutgoingMessage:
        data = json.loads(raw)
        return cls(
            body=data["body"],
            buttons=tuple(Choice(i, t) for i, t in data.get("buttons", [])),
            list_button=data.get("list_button"),
            rows=tuple(Choice(i, t) for i, t in data.get("rows", [])),
        )

    def to_graph_payload(self, recipient: str) -> dict[str, object]:
        payload: dict[str, object] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
        buttons = [{"type": "reply", "reply": {"id": c.id, "title": c.title[:20]}} for c in self.buttons]
        rows = [{"id": c.id, "title": c.title[:24]} for c in self.rows]
        payload["recipient" if is_bsuid(recipient) else "to"] = recipient
        if self.kind == "text":
            payload.update(type="text", text={"body": self.body, "preview_url": False})
        elif self.kind == "buttons":
            payload.update(
                type="interactive",
                interactive={
                    "type": "button",
                    "body": {"text": self.body},
                    "action": {
                        "buttons": buttons
                    },
                },
            )
        else:
            payload.update(
                type="interactive",
                interactive={
                    "type": "list",
                    "body": {"text": self.body},
                    "action": {
                        "button": (self.list_button or "Opciones")[:20],
                        "sections": [{"title": "Opciones", "rows": rows}],
                    },
                },
            )
        return payload
