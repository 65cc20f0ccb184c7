"""The JSON the models are asked for, and its validation into the AI value types.

Both remote providers ask for the same JSON Schemas (OpenAI `text.format` json_schema, strict; Gemini
`response_json_schema`) and validate the answer here, because a schema request is a request, not a
guarantee: anything that does not parse or does not fit raises `AIProviderError`, which the intent
service turns into the next provider or the fallback.
"""

from __future__ import annotations

import json
import math
from typing import Any

from core.ai.types import Extraction, Intencion, Intent, TermKind, TipoEquipo
from core.errors import AIProviderError

MAX_TEXT = 500  # a problem description or reason longer than this is cut, not rejected

_INTENCIONES = [i.value for i in Intencion]
_TIPOS = [t.value for t in TipoEquipo]
TERM_VALUES: dict[TermKind, list[str]] = {TermKind.SI_NO: ["SI", "NO"], TermKind.TIPO_EQUIPO: _TIPOS}

INTENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "intencion": {"type": "string", "enum": _INTENCIONES},
        "confianza": {"type": "number"},
    },
    "required": ["intencion", "confianza"],
    "additionalProperties": False,
}

EXTRACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "intencion": {"type": "string", "enum": _INTENCIONES},
        "tipo_equipo": {"type": ["string", "null"], "enum": [*_TIPOS, None]},
        "problema": {"type": ["string", "null"]},
        "confianza": {"type": "number"},
        "razon": {"type": "string"},
    },
    "required": ["intencion", "tipo_equipo", "problema", "confianza", "razon"],
    "additionalProperties": False,
}


def term_schema(kind: TermKind) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"valor": {"type": ["string", "null"], "enum": [*TERM_VALUES[kind], None]}},
        "required": ["valor"],
        "additionalProperties": False,
    }


_CONTEXT = (
    "Eres el clasificador de un bot de WhatsApp donde personal de campo reporta fallas de equipos "
    "(refrigeradores y vehículos). Responde solo con el JSON pedido."
)
INTENT_INSTRUCTIONS = (
    f"{_CONTEXT} Clasifica la intención del mensaje: SALUDO, REPORTAR_FALLA (describe una falla o quiere "
    "reportar), CANCELAR, PREGUNTA (una duda que no es un reporte) u OTRO. confianza entre 0 y 1."
)
EXTRACTION_INSTRUCTIONS = (
    f"{_CONTEXT} Extrae del mensaje: intencion; tipo_equipo (REFRIGERADOR para refrigerador, refri, nevera, "
    "congelador...; VEHICULO para vehículo, camión, auto, camioneta...; null si no lo dice); problema (la "
    "falla con las palabras del usuario, o null); confianza entre 0 y 1; razon (breve)."
)
TERM_INSTRUCTIONS = {
    TermKind.SI_NO: f"{_CONTEXT} ¿El mensaje responde sí o no? valor: SI, NO, o null si no es ninguno.",
    TermKind.TIPO_EQUIPO: (
        f"{_CONTEXT} ¿Qué tipo de equipo elige el mensaje (menú: 1 refrigerador, 2 vehículo)? "
        "valor: REFRIGERADOR, VEHICULO, o null si no elige."
    ),
}


def _load(provider: str, raw: str | None) -> dict[str, Any]:
    if not raw or not raw.strip():
        raise AIProviderError(provider, "respuesta vacía")
    try:
        data = json.loads(raw)
    except ValueError:
        raise AIProviderError(provider, f"JSON malformado: {raw[:80]!r}") from None
    if not isinstance(data, dict):
        raise AIProviderError(provider, "el JSON no es un objeto")
    return data


def _confidence(provider: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AIProviderError(provider, f"confianza inválida: {value!r}")
    if not 0 <= value <= 1:
        raise AIProviderError(provider, f"confianza fuera de [0, 1]: {value!r}")
    return float(value)


def _enum(provider: str, cls: type[Intencion] | type[TipoEquipo], value: object, field: str) -> Any:
    try:
        return cls(str(value)) if isinstance(value, str) else cls(value)  # type: ignore[arg-type]
    except ValueError:
        raise AIProviderError(provider, f"{field} inválido: {value!r}") from None


def _optional_text(provider: str, value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise AIProviderError(provider, f"{field} no es texto: {value!r}")
    return value.strip()[:MAX_TEXT] or None


def parse_intent(provider: str, raw: str | None) -> Intent:
    data = _load(provider, raw)
    return Intent(
        _enum(provider, Intencion, data.get("intencion"), "intencion"),
        _confidence(provider, data.get("confianza")),
    )


def parse_extraction(provider: str, raw: str | None) -> Extraction:
    data = _load(provider, raw)
    tipo = data.get("tipo_equipo")
    return Extraction(
        intencion=_enum(provider, Intencion, data.get("intencion"), "intencion"),
        tipo_equipo=None if tipo is None else _enum(provider, TipoEquipo, tipo, "tipo_equipo"),
        problema=_optional_text(provider, data.get("problema"), "problema"),
        confianza=_confidence(provider, data.get("confianza")),
        razon=_optional_text(provider, data.get("razon"), "razon") or "",
    )


def parse_term(provider: str, raw: str | None, kind: TermKind) -> str | None:
    data = _load(provider, raw)
    if "valor" not in data:
        raise AIProviderError(provider, "falta valor")
    value = data["valor"]
    if value is None:
        return None
    if value not in TERM_VALUES[kind]:
        raise AIProviderError(provider, f"valor inválido para {kind.value}: {value!r}")
    return str(value)
