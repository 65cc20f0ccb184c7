"""What the AI layer answers, as values, and the provider interface every backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Intent(StrEnum):
    # The values (and the members named after them) are what the model answers and sessions store: Spanish.
    SALUDO = "SALUDO"
    REPORTAR_FALLA = "REPORTAR_FALLA"
    CANCELAR = "CANCELAR"
    PREGUNTA = "PREGUNTA"
    CORTESIA = "CORTESIA"  # "gracias", "ok", 👍: needs a short courteous answer, never the menu
    CONSULTA_ESTADO = "CONSULTA_ESTADO"  # "¿cómo va mi reporte?", "mis reportes"
    HABLAR_PERSONA = "HABLAR_PERSONA"  # "quiero hablar con una persona"
    OTRO = "OTRO"


class EquipmentType(StrEnum):
    REFRIGERADOR = "REFRIGERADOR"
    VEHICULO = "VEHICULO"


class TermKind(StrEnum):
    SI_NO = "SI_NO"  # answers "SI" / "NO"
    TIPO_EQUIPO = "TIPO_EQUIPO"  # answers an EquipmentType value


@dataclass(frozen=True, slots=True)
class DetectedIntent:
    intent: Intent
    confidence: float


@dataclass(frozen=True, slots=True)
class Extraction:
    """Every fact a report needs that one message (or one turn of messages) states. None: not said."""

    intent: Intent
    equipment_type: EquipmentType | None
    problem: str | None
    confidence: float
    reason: str
    sap_code: str | None = None  # digits only ("1000 4512", "sap: 10004512" -> "10004512")
    store: str | None = None  # the store or place the worker names ("tienda centro", "sucursal 45")
    employee_number: str | None = None  # employee number, digits
    plate: str | None = None  # a licence plate, upper case without separators ("NXR4521")
    unit_number: str | None = None  # a fleet unit number ("la unidad 254")
    yes_no: str | None = None  # "SI" / "NO" when the message answers a yes/no question
    report_number: str | None = None  # "RPT-000123" when the message names a report
    no_label: bool = False  # the equipment has no readable label / code
    works_again: bool = False  # "ya prendió", "ya quedó": the failure went away
    urgent: bool = False  # smoke, fire, an accident: a person should take over


# Fallbacks: what a timed-out, failed or malformed AI call answers instead.
FALLBACK_INTENT = DetectedIntent(Intent.OTRO, 0.0)
FALLBACK_EXTRACTION = Extraction(Intent.REPORTAR_FALLA, None, None, 0.0, "Timeout en extracción estructurada")
FALLBACK_TERM: str | None = None


class IntentProvider(Protocol):
    """One backend (offline rules, OpenAI, Gemini). May raise; the intent service applies timeouts and fallbacks."""

    name: str

    async def detect_intent(self, text: str) -> DetectedIntent: ...

    async def extract_structured_data(self, text: str) -> Extraction: ...

    async def interpret_term(self, text: str, kind: TermKind) -> str | None: ...
