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

from core.ai.types import DetectedIntent, EquipmentType, Extraction, Intent, TermKind
from core.errors import AIProviderError

MAX_SLOT_TEXT = 500  # a problem description or reason longer than this is cut, not rejected

_INTENCIONES = [i.value for i in Intent]
_TIPOS = [t.value for t in EquipmentType]
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

# The model reads and fills Spanish keys (they are part of its prompt); this is the one place they meet
# the English `Extraction` attributes. Schema key -> attribute, in the dataclass's order.
SCHEMA_FIELDS: dict[str, str] = {
    "intencion": "intent", "tipo_equipo": "equipment_type", "problema": "problem", "confianza": "confidence",
    "razon": "reason", "codigo_sap": "sap_code", "tienda": "store", "empleado": "employee_number",
    "placa": "plate", "unidad": "unit_number", "si_no": "yes_no", "numero_reporte": "report_number",
    "sin_etiqueta": "no_label", "ya_funciona": "works_again", "urgente": "urgent",
}

# The slots beyond the first five: text or null, and three flags. Strict schemas list every property as
# required; an answer without them (an older prompt, a lenient model) still parses, as "not said".
_SLOT_TEXT = ("codigo_sap", "tienda", "empleado", "placa", "unidad", "numero_reporte")
_SLOT_FLAGS = ("sin_etiqueta", "ya_funciona", "urgente")
EXTRACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "intencion": {"type": "string", "enum": _INTENCIONES},
        "tipo_equipo": {"type": ["string", "null"], "enum": [*_TIPOS, None]},
        "problema": {"type": ["string", "null"]},
        "confianza": {"type": "number"},
        "razon": {"type": "string"},
        **{name: {"type": ["string", "null"]} for name in _SLOT_TEXT},
        "si_no": {"type": ["string", "null"], "enum": ["SI", "NO", None]},
        **{name: {"type": "boolean"} for name in _SLOT_FLAGS},
    },
    "required": ["intencion", "tipo_equipo", "problema", "confianza", "razon", *_SLOT_TEXT, "si_no", *_SLOT_FLAGS],
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
    f"{_CONTEXT} El mensaje puede traer varios datos a la vez; extrae todos los que diga, null si no lo dice: "
    "intencion (SALUDO, REPORTAR_FALLA, CANCELAR, PREGUNTA, CORTESIA para gracias/ok/👍, CONSULTA_ESTADO para "
    "preguntar cómo va un reporte, HABLAR_PERSONA para pedir un humano, OTRO); tipo_equipo (REFRIGERADOR para "
    "refrigerador, refri, nevera, congelador, vitrina, enfriador, cuarto frío; VEHICULO para vehículo, camión, "
    "camioneta, troca, unidad, carro, moto); problema (la falla con las palabras del usuario); codigo_sap (solo "
    "dígitos, sin espacios ni guiones); tienda (la tienda o lugar); empleado (número de empleado, dígitos); "
    "placa (mayúsculas sin guiones; nunca un número de empleado); unidad (número económico de la unidad); "
    "si_no (SI o NO si el mensaje responde sí o no: sí, sip, simón, claro, ok, 👍 / no, nel, nop); "
    "numero_reporte (RPT-000123); sin_etiqueta (el equipo no tiene etiqueta o código legible); ya_funciona (la "
    "falla se quitó sola); urgente (humo, fuego, accidente); confianza entre 0 y 1; razon (breve). "
    "Entiende también mensajes en inglés."
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


def _enum(provider: str, cls: type[Intent] | type[EquipmentType], value: object, field: str) -> Any:
    try:
        return cls(str(value)) if isinstance(value, str) else cls(value)  # type: ignore[arg-type]
    except ValueError:
        raise AIProviderError(provider, f"{field} inválido: {value!r}") from None


def _optional_text(provider: str, value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise AIProviderError(provider, f"{field} no es texto: {value!r}")
    return value.strip()[:MAX_SLOT_TEXT] or None


def parse_intent(provider: str, raw: str | None) -> DetectedIntent:
    data = _load(provider, raw)
    return DetectedIntent(
        _enum(provider, Intent, data.get("intencion"), "intencion"),
        _confidence(provider, data.get("confianza")),
    )


def parse_extraction(provider: str, raw: str | None) -> Extraction:
    data = _load(provider, raw)
    kind = data.get("tipo_equipo")
    yes_no = data.get("si_no")
    if yes_no not in ("SI", "NO", None):
        raise AIProviderError(provider, f"si_no inválido: {yes_no!r}")
    flags = {name: data.get(name, False) for name in _SLOT_FLAGS}
    if any(not isinstance(v, bool) for v in flags.values()):
        raise AIProviderError(provider, f"bandera no booleana: {flags!r}")
    slots: dict[str, Any] = {name: _optional_text(provider, data.get(name), name) for name in _SLOT_TEXT}
    if slots["codigo_sap"] is not None:
        slots["codigo_sap"] = "".join(ch for ch in slots["codigo_sap"] if ch.isdigit()) or None
    if slots["placa"] is not None:
        slots["placa"] = "".join(ch for ch in slots["placa"].upper() if ch.isalnum()) or None
    return Extraction(
        intent=_enum(provider, Intent, data.get("intencion"), "intencion"),
        equipment_type=None if kind is None else _enum(provider, EquipmentType, kind, "tipo_equipo"),
        problem=_optional_text(provider, data.get("problema"), "problema"),
        confidence=_confidence(provider, data.get("confianza")),
        reason=_optional_text(provider, data.get("razon"), "razon") or "",
        yes_no=yes_no,
        **{SCHEMA_FIELDS[name]: value for name, value in (slots | flags).items()},
    )


def extraction_json(e: Extraction) -> dict[str, Any]:
    """An extraction as the schema's JSON (what a well-behaved model answers)."""
    out: dict[str, Any] = {key: getattr(e, name) for key, name in SCHEMA_FIELDS.items()}
    out["intencion"] = e.intent.value
    out["tipo_equipo"] = e.equipment_type.value if e.equipment_type else None
    return out


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
