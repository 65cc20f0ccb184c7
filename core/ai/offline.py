"""Deterministic rules for Spanish text: the default provider, and the one tests drive the flows with."""

from __future__ import annotations

from core.ai import rules
from core.ai.rules import equipment_type, normalize
from core.ai.types import DetectedIntent, EquipmentType, Extraction, TermKind

__all__ = ["OfflineProvider", "equipment_type", "normalize"]


class OfflineProvider:
    name = "offline"

    async def detect_intent(self, text: str) -> DetectedIntent:
        ex = rules.extract(text)
        return DetectedIntent(ex.intent, 0.9 if ex.equipment_type or ex.problem else 0.6)

    async def extract_structured_data(self, text: str) -> Extraction:
        return rules.extract(text)

    async def interpret_term(self, text: str, kind: TermKind) -> str | None:
        if kind is TermKind.SI_NO:
            return rules.yes_no(text)
        t = normalize(text).strip(" .!¡?¿")
        if t in ("1", "uno", "tipo_refrigerador"):
            return EquipmentType.REFRIGERADOR.value
        if t in ("2", "dos", "tipo_vehiculo"):
            return EquipmentType.VEHICULO.value
        equipment = equipment_type(t)
        return equipment.value if equipment else None
