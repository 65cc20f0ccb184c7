"""Deterministic rules for Spanish text: the default provider, and the one tests drive the flows with."""

from __future__ import annotations

import re
import unicodedata

from core.ai.types import Extraction, Intencion, Intent, TermKind, TipoEquipo

REFRI_WORDS = ("refrigerador", "refri", "nevera", "congelador", "enfriador", "frigorifico", "heladera", "camara fria")
VEHICLE_WORDS = ("vehiculo", "camion", "auto", "carro", "camioneta", "coche", "moto", "unidad de reparto", "furgoneta")
GREETINGS = ("hola", "buenos dias", "buenas tardes", "buenas noches", "buen dia", "buenas", "que tal", "saludos")
CANCEL_WORDS = ("cancelar", "cancela", "cancelo", "salir", "olvidalo")
REPORT_WORDS = ("falla", "problema", "reportar", "reporte", "averia")
FAILURE_WORDS = (
    "no enfria", "no funciona", "no prende", "no enciende", "no arranca", "descompuesto", "roto", "se rompio",
    "fuga", "gotea", "ruido", "no frena", "llanta", "ponchada", "no congela", "caliente", "danado", "humo",
    "bateria", "no sirve", "se apago", "tira agua", "hielo",
)
YES = ("si", "sí", "s", "claro", "correcto", "afirmativo", "exacto", "asi es", "ok", "confirmar_si", "yes", "1")
NO = ("no", "n", "negativo", "incorrecto", "no es", "confirmar_no", "2")
QUESTION_STARTS = ("como ", "cuando ", "donde ", "que ", "cual ", "cuanto ", "por que ", "quien ", "puedo ", "hay ")


def normalize(text: str) -> str:
    """Lower case, no accents, single spaces: `¿Cómo  está?` -> `¿como esta?`."""
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return re.sub(r"\s+", " ", folded).strip()


def _has_word(text: str, words: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<![a-z]){re.escape(w)}(?:s|es)?(?![a-z])", text) for w in words)


def equipment_type(text: str) -> TipoEquipo | None:
    t = normalize(text)
    if _has_word(t, REFRI_WORDS):
        return TipoEquipo.REFRIGERADOR
    if _has_word(t, VEHICLE_WORDS):
        return TipoEquipo.VEHICULO
    return None


def problem_phrase(text: str) -> str | None:
    """The failure as the user stated it, if the text names one ("no enfría", "hace ruido")."""
    t = normalize(text)
    if not _has_word(t, FAILURE_WORDS):
        return None
    cleaned = re.sub(r"^(hola|buenos dias|buenas tardes|buenas noches|buenas)[,.! ]*", "", text.strip(), flags=re.I)
    return cleaned.strip(" .,!") or None


class OfflineProvider:
    name = "offline"

    async def detect_intent(self, text: str) -> Intent:
        t = normalize(text)
        if not t:
            return Intent(Intencion.OTRO, 0.5)
        if _has_word(t, CANCEL_WORDS):
            return Intent(Intencion.CANCELAR, 0.95)
        if equipment_type(t) or _has_word(t, FAILURE_WORDS) or _has_word(t, REPORT_WORDS):
            return Intent(Intencion.REPORTAR_FALLA, 0.9)
        if any(t.startswith(g) for g in GREETINGS):
            return Intent(Intencion.SALUDO, 0.9)
        if t.endswith("?") or t.startswith("¿") or t.startswith(QUESTION_STARTS):
            return Intent(Intencion.PREGUNTA, 0.7)
        return Intent(Intencion.OTRO, 0.5)

    async def extract_structured_data(self, text: str) -> Extraction:
        intent = await self.detect_intent(text)
        tipo = equipment_type(text)
        problema = problem_phrase(text)
        razon = "reglas offline: " + ", ".join(
            part for part in (f"tipo={tipo.value}" if tipo else "", "problema" if problema else "") if part
        )
        return Extraction(intent.intencion, tipo, problema, 0.9 if tipo else 0.6, razon.rstrip(": "))

    async def interpret_term(self, text: str, kind: TermKind) -> str | None:
        t = normalize(text).strip(" .!¡?¿")
        if kind is TermKind.SI_NO:
            if t in YES or t.startswith(("si ", "si,", "claro", "correcto")):
                return "SI"
            if t in NO or t.startswith(("no ", "no,")):
                return "NO"
            return None
        if t in ("1", "uno", "tipo_refrigerador"):
            return TipoEquipo.REFRIGERADOR.value
        if t in ("2", "dos", "tipo_vehiculo"):
            return TipoEquipo.VEHICULO.value
        tipo = equipment_type(t)
        return tipo.value if tipo else None
