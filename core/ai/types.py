"""What the AI layer answers, as values, and the provider interface every backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Intencion(StrEnum):
    SALUDO = "SALUDO"
    REPORTAR_FALLA = "REPORTAR_FALLA"
    CANCELAR = "CANCELAR"
    PREGUNTA = "PREGUNTA"
    OTRO = "OTRO"


class TipoEquipo(StrEnum):
    REFRIGERADOR = "REFRIGERADOR"
    VEHICULO = "VEHICULO"


class TermKind(StrEnum):
    SI_NO = "SI_NO"  # answers "SI" / "NO"
    TIPO_EQUIPO = "TIPO_EQUIPO"  # answers a TipoEquipo value


@dataclass(frozen=True, slots=True)
class Intent:
    intencion: Intencion
    confianza: float


@dataclass(frozen=True, slots=True)
class Extraction:
    intencion: Intencion
    tipo_equipo: TipoEquipo | None
    problema: str | None
    confianza: float
    razon: str


# Fallbacks: what a timed-out, failed or malformed AI call answers instead.
FALLBACK_INTENT = Intent(Intencion.OTRO, 0.0)
FALLBACK_EXTRACTION = Extraction(Intencion.REPORTAR_FALLA, None, None, 0.0, "Timeout en extracción estructurada")
FALLBACK_TERM: str | None = None


class IntentProvider(Protocol):
    """One backend (offline rules, OpenAI, Gemini). May raise; the intent service applies timeouts and fallbacks."""

    name: str

    async def detect_intent(self, text: str) -> Intent: ...

    async def extract_structured_data(self, text: str) -> Extraction: ...

    async def interpret_term(self, text: str, kind: TermKind) -> str | None: ...
