"""The conversation's domain types: what the flows read (a session, catalog equipment) and what they
file (a report draft). core/storage keeps their rows (`SessionRow`, `EquipmentRow`, `ReportWrite`);
the engine maps between the two, so the flows never import storage.

A report's number does not exist until its row does, so the flows write `REPORT_NUMBER` (and
`REPORT_ID` in session data) wherever it goes; the commit that inserts the report fills them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.storage.conversations import REPORT_ID, REPORT_NUMBER, EquipmentRow, ReportWrite, SessionRow

__all__ = ["INITIAL_STATE", "REPORT_ID", "REPORT_NUMBER", "Equipment", "ReportDraft", "Session"]

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
