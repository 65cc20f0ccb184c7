"""Outgoing messages as values, stored in `ColaEnvios.Contenido` as JSON and turned into Graph API bodies.

Recipients that are BSUIDs (users with a username and no visible number) are addressed with
`"recipient"` instead of `"to"`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TypeAlias

_BSUID = re.compile(r"^[A-Z]{2}\.[0-9A-Za-z]+$")

# WhatsApp Cloud API limits (characters). Graph refuses a message over any of them (error 100), so the
# model refuses to be built over them, and flows cut user-provided text with `fit` first.
MAX_TEXT_BODY = 4_096
MAX_INTERACTIVE_BODY = 1_024
MAX_HEADER = 60
MAX_FOOTER = 60
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_LIST_BUTTON = 20
MAX_ROWS = 10
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
ELLIPSIS = "…"


def fit(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, ending in an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


def is_bsuid(recipient: str) -> bool:
    return bool(_BSUID.match(recipient))


@dataclass(frozen=True, slots=True)
class Choice:
    id: str
    title: str  # buttons: at most 20 characters; list rows: at most 24
    description: str | None = None  # list rows only: at most 72


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """Plain text, reply buttons (up to 3) or a list (up to 10 rows)."""

    body: str
    buttons: tuple[Choice, ...] = ()
    list_button: str | None = None  # set => send the choices as a list, not buttons
    rows: tuple[Choice, ...] = ()
    header: str | None = None  # interactive only
    footer: str | None = None  # interactive only

    def __post_init__(self) -> None:
        problems = self.limit_problems()
        if problems:
            raise ValueError("mensaje fuera de los límites de WhatsApp: " + "; ".join(problems))

    def limit_problems(self) -> list[str]:
        interactive = bool(self.buttons or self.rows)
        body_limit = MAX_INTERACTIVE_BODY if interactive else MAX_TEXT_BODY
        checks = [
            (not self.body, "cuerpo vacío"),
            (len(self.body) > body_limit, f"cuerpo de {len(self.body)} > {body_limit}"),
            (self.buttons and self.rows, "botones y lista a la vez"),
            (len(self.buttons) > MAX_BUTTONS, f"{len(self.buttons)} botones > {MAX_BUTTONS}"),
            (len(self.rows) > MAX_ROWS, f"{len(self.rows)} filas > {MAX_ROWS}"),
            (not interactive and (self.header or self.footer), "encabezado o pie en un texto simple"),
            (len(self.header or "") > MAX_HEADER, f"encabezado > {MAX_HEADER}"),
            (len(self.footer or "") > MAX_FOOTER, f"pie > {MAX_FOOTER}"),
            (len(self.list_button or "") > MAX_LIST_BUTTON, f"botón de lista > {MAX_LIST_BUTTON}"),
        ]
        checks += [(len(c.title) > MAX_BUTTON_TITLE or not c.title, f"botón {c.title[:30]!r} > {MAX_BUTTON_TITLE}")
                   for c in self.buttons]
        checks += [(len(c.title) > MAX_ROW_TITLE or not c.title, f"fila {c.title[:30]!r} > {MAX_ROW_TITLE}")
                   for c in self.rows]
        checks += [(len(c.description or "") > MAX_ROW_DESCRIPTION, f"descripción de fila > {MAX_ROW_DESCRIPTION}")
                   for c in self.rows]
        return [text for failed, text in checks if failed]

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
            data["rows"] = [[c.id, c.title, c.description] if c.description else [c.id, c.title] for c in self.rows]
        if self.header:
            data["header"] = self.header
        if self.footer:
            data["footer"] = self.footer
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> OutgoingMessage:
        data = json.loads(raw)
        return cls(
            body=data["body"],
            buttons=tuple(Choice(i, t) for i, t in data.get("buttons", [])),
            list_button=data.get("list_button"),
            rows=tuple(Choice(*row[:3]) for row in data.get("rows", [])),
            header=data.get("header"),
            footer=data.get("footer"),
        )

    def to_graph_payload(self, recipient: str) -> dict[str, object]:
        payload: dict[str, object] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
        buttons = [{"type": "reply", "reply": {"id": c.id, "title": c.title}} for c in self.buttons]
        rows = [{"id": c.id, "title": c.title, **({"description": c.description} if c.description else {})}
                for c in self.rows]
        payload["recipient" if is_bsuid(recipient) else "to"] = recipient
        extras: dict[str, object] = {}
        if self.header:
            extras["header"] = {"type": "text", "text": self.header}
        if self.footer:
            extras["footer"] = {"text": self.footer}
        if self.kind == "text":
            payload.update(type="text", text={"body": self.body, "preview_url": False})
        elif self.kind == "buttons":
            payload.update(
                type="interactive",
                interactive={
                    "type": "button",
                    **extras,
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
                    **extras,
                    "body": {"text": self.body},
                    "action": {
                        "button": self.list_button or "Opciones",
                        "sections": [{"title": "Opciones", "rows": rows}],
                    },
                },
            )
        return payload


# Template body parameters: Graph refuses one holding a newline or tab, or more than 4 spaces in a row
# (error 132018), and an empty one.
MAX_TEMPLATE_PARAMETER = 1_000
_TEMPLATE_BREAKS = re.compile(r"[\r\n\t]+")
_TEMPLATE_SPACES = re.compile(r" {4,}")


def one_line(text: str) -> str:
    """`text` as a template parameter may hold it: line breaks and tabs become " · ", no runs of spaces."""
    return _TEMPLATE_SPACES.sub("   ", _TEMPLATE_BREAKS.sub(" · ", text).strip())


def template_parameter(value: object) -> str:
    """`value` as one template body parameter: on one line, never empty, bounded."""
    return fit(one_line(str(value)), MAX_TEMPLATE_PARAMETER) or "-"


@dataclass(frozen=True, slots=True)
class TemplateMessage:
    """An approved template (the only kind Meta delivers outside the 24-hour customer-service window)
    with its body parameters {{1}}, {{2}}, ... in order."""

    name: str
    language: str
    parameters: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not self.language:
            raise ValueError("plantilla sin nombre o sin idioma")
        object.__setattr__(self, "parameters", tuple(template_parameter(p) for p in self.parameters))

    @property
    def kind(self) -> str:
        return "template"

    def to_json(self) -> str:
        data = {"template": self.name, "language": self.language, "parameters": list(self.parameters)}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    def to_graph_payload(self, recipient: str) -> dict[str, object]:
        template: dict[str, object] = {"name": self.name, "language": {"code": self.language}}
        if self.parameters:
            template["components"] = [
                {"type": "body", "parameters": [{"type": "text", "text": p} for p in self.parameters]}
            ]
        return {"messaging_product": "whatsapp", "recipient_type": "individual",
                "recipient" if is_bsuid(recipient) else "to": recipient, "type": "template", "template": template}


AnyOutgoing: TypeAlias = OutgoingMessage | TemplateMessage


def outgoing_from_json(raw: str) -> AnyOutgoing:
    """What `to_json` of either message kind stored in `ColaEnvios.Contenido`."""
    data = json.loads(raw)
    if isinstance(data, dict) and "template" in data:
        return TemplateMessage(data["template"], data["language"], tuple(data.get("parameters", ())))
    return OutgoingMessage.from_json(raw)
