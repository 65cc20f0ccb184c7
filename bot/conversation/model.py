"""The conversation's domain types: what the flows read (a session, a turn of messages, its lookups,
catalog equipment) and what they decide (a transition, a report draft). core/storage keeps their rows
(`SessionRow`, `EquipmentRow`, `ReportWrite`); the engine maps between the two, so the flows never
import storage.

A report's number does not exist until its row does, so the flows write `REPORT_NUMBER` (and
`REPORT_ID` in session data) wherever it goes; the commit that inserts the report fills them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.messages import InboundMessage, MessageKind
from core.ai.types import Extraction
from core.storage.conversations import REPORT_ID, REPORT_NUMBER, EquipmentRow, ReportWrite, SessionRow
from core.whatsapp.outgoing import OutgoingMessage

__all__ = [
    "IDLE_STATES", "INITIAL_STATE", "MEDIA", "REPORT_ID", "REPORT_NUMBER", "TEXTUAL", "WAITING_STATES", "Answer",
    "Equipment", "Evidence", "FlowInput", "FlowState", "Lookups", "Needs", "ReportDraft", "ReportInfo", "Rules",
    "Session", "Transition", "Turn",
]

INITIAL_STATE = "INICIO"


@dataclass(frozen=True, slots=True)
class Session:
    key: str
    state: str = INITIAL_STATE
    data: Mapping[str, Any] = field(default_factory=dict)
    equipment_id: int | None = None
    version: int = 0  # 0 = no row yet; the first commit inserts it at version 1
    last_activity_ms: int = 0
    ai_conversation_id: str | None = None

    @property
    def exists(self) -> bool:
        return self.version > 0

    @classmethod
    def from_row(cls, key: str, row: SessionRow | None) -> Session:
        if row is None:
            return cls(key)
        return cls(key, row.state, row.data, row.equipment_id, row.version, row.last_activity_ms,
                   row.ai_conversation_id)


@dataclass(frozen=True, slots=True)
class Equipment:
    id: int
    sap_code: str
    kind: str
    description: str
    location: str

    @classmethod
    def from_row(cls, row: EquipmentRow) -> Equipment:
        return cls(row.id, row.sap_code, row.kind, row.description, row.location)


@dataclass(frozen=True, slots=True)
class ReportDraft:
    """The report a finished flow files, in the same transaction as its transition."""

    kind: str
    equipment_id: int | None
    description: str
    data: Mapping[str, Any]

    def to_write(self) -> ReportWrite:
        return ReportWrite(self.kind, self.equipment_id, self.description, self.data)


class FlowState(StrEnum):
    # Values are stored in SesionesChat.Estado (and the members are named after them): Spanish.
    INICIO = "INICIO"
    ESPERA_TIPO_EQUIPO = "ESPERA_TIPO_EQUIPO"
    REFRI_ESPERA_SAP = "REFRI_ESPERA_SAP"
    REFRI_ESPERA_TIENDA = "REFRI_ESPERA_TIENDA"
    REFRI_ELIGE_EQUIPO = "REFRI_ELIGE_EQUIPO"
    REFRI_CONFIRMA_EQUIPO = "REFRI_CONFIRMA_EQUIPO"  # kept so sessions saved by older versions still load
    REFRI_ESPERA_DESCRIPCION = "REFRI_ESPERA_DESCRIPCION"
    VEHICULO_ESPERA_EMPLEADO = "VEHICULO_ESPERA_EMPLEADO"
    VEHICULO_ESPERA_PLACA = "VEHICULO_ESPERA_PLACA"
    VEHICULO_ESPERA_DESCRIPCION = "VEHICULO_ESPERA_DESCRIPCION"
    ESPERA_DETALLE = "ESPERA_DETALLE"
    CONFIRMA_REPORTE = "CONFIRMA_REPORTE"
    CORRIGE_REPORTE = "CORRIGE_REPORTE"
    CONFIRMA_DUPLICADO = "CONFIRMA_DUPLICADO"
    ATENCION_HUMANA = "ATENCION_HUMANA"
    FINALIZADO = "FINALIZADO"


IDLE_STATES = (FlowState.INICIO, FlowState.FINALIZADO)
WAITING_STATES = frozenset(set(FlowState) - {FlowState.INICIO, FlowState.FINALIZADO, FlowState.ATENCION_HUMANA})
TEXTUAL = (MessageKind.TEXT, MessageKind.BUTTON_REPLY, MessageKind.LIST_REPLY)
# Stickers are courtesy, not evidence.
MEDIA = (MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.AUDIO, MessageKind.DOCUMENT)


@dataclass(frozen=True, slots=True)
class Rules:
    """Times the flows reason about (from settings)."""

    followup_ms: int = 2 * 3_600_000  # after filing, new details join the report for this long
    correction_ms: int = 30 * 60_000  # "me equivoqué de equipo" cancels the report for this long
    handover_ms: int = 4 * 3_600_000  # the bot stays quiet after handing over to a person
    draft_ttl_ms: int = 24 * 3_600_000  # an unfinished draft is kept this long
    notifies_maintenance: bool = False  # REPORT_NOTIFY_NUMBERS is set: replies may say maintenance was told


@dataclass(frozen=True, slots=True)
class ReportInfo:
    """A filed report as the conversation sees it."""

    id: int
    number: str
    status: str
    created: str
    last_note: str | None = None

    @property
    def open(self) -> bool:
        return self.status in ("abierto", "asignado", "en_proceso")


@dataclass(frozen=True, slots=True)
class Turn:
    """The messages a worker sent together, read as one turn (oldest first)."""

    messages: tuple[InboundMessage, ...]

    @property
    def text(self) -> str:
        """Text, captions and transcripts joined: what the facts are read from."""
        return "\n".join(m.text.strip() for m in self.messages
                         if m.text.strip() and m.kind not in (MessageKind.LOCATION, MessageKind.CONTACTS))

    @property
    def choice(self) -> str | None:
        ids = [m.choice_id for m in self.messages if m.choice_id]
        return ids[-1] if ids else None

    @property
    def media(self) -> tuple[InboundMessage, ...]:
        return tuple(m for m in self.messages if m.kind in MEDIA and m.media_id)

    @property
    def location(self) -> InboundMessage | None:
        found = [m for m in self.messages if m.kind is MessageKind.LOCATION and m.latitude is not None]
        return found[-1] if found else None

    @property
    def only_reactions(self) -> bool:
        return all(m.kind is MessageKind.REACTION for m in self.messages)

    @property
    def unreadable(self) -> bool:
        return all(m.kind in (MessageKind.UNKNOWN, MessageKind.UNSUPPORTED, MessageKind.CONTACTS, MessageKind.REACTION)
                   for m in self.messages)

    @property
    def last(self) -> InboundMessage:
        return self.messages[-1]


@dataclass(frozen=True, slots=True)
class Answer:
    """The assistant's outcome for a free-form question: completed / failed / pending / busy."""

    status: str
    text: str | None


@dataclass(frozen=True, slots=True)
class Needs:
    sap_code: str | None = None  # look the code up in the catalog
    store: str | None = None  # list the catalog's refrigerators at this store
    duplicate: bool = False  # look for an open report of the draft's equipment (the SAP code's, or these)
    equipment_id: int | None = None
    plate: str | None = None
    reports: bool = False  # the worker's recent reports (a status question)
    question: bool = False  # the assistant answers a free-form question
    history: bool = False  # the conversation so far (a handover)


@dataclass(frozen=True, slots=True)
class Lookups:
    equipment: Equipment | None = None
    store_equipment: tuple[Equipment, ...] = ()
    duplicate: ReportInfo | None = None
    reports: tuple[ReportInfo, ...] = ()
    answer: Answer | None = None


@dataclass(frozen=True, slots=True)
class FlowInput:
    session: Session
    turn: Turn
    facts: Extraction
    now_ms: int
    lookups: Lookups = field(default_factory=Lookups)
    rules: Rules = field(default_factory=Rules)


@dataclass(frozen=True, slots=True)
class Evidence:
    message_id: str
    media_id: str
    kind: str
    mime: str | None
    sha256: str | None
    filename: str | None


@dataclass(frozen=True, slots=True)
class Transition:
    state: FlowState
    data: Mapping[str, Any]
    equipment_id: int | None
    replies: tuple[OutgoingMessage, ...]
    description: str
    report: ReportDraft | None = None
    evidence: tuple[Evidence, ...] = ()  # media of this turn, recorded whatever the state
    attach: tuple[str, ...] = ()  # message ids of evidence that goes with `report` or `note_report`
    note_report: int | None = None  # the report id that `note` is added to
    note: str | None = None
    cancel_report: int | None = None  # a report the worker cancelled ("me equivoqué de equipo")
    handover: bool = False  # notify maintenance with the conversation so far
