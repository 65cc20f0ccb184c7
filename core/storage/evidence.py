"""Evidence rows (`Evidencias`): media a user sent, recorded with its message and downloaded afterwards.

The conversation records a row inside its commit transaction (`record_evidence`) and links a
conversation's rows to the report it files (`attach_evidence`). The download pipeline claims due rows
one at a time: the claim is a compare-and-set on `Estado`, `ProximoIntento` and a fresh token, so two
processes never download the same body at once, and a claim whose holder died expires by itself.
The SQL lives in `sql/<dialect>/evidence.sql`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.storage.database import Database, Tx
from core.storage.states import EvidenceState
from core.storage.text import fit_units

EVIDENCE_KINDS = frozenset({"image", "audio", "video", "document", "sticker"})
ERROR_MAX_UNITS = 1000  # UltimoError is NVARCHAR(1000)
FILENAME_MAX_UNITS = 240  # Nombre
MIME_MAX_UNITS = 100  # Mime


@dataclass(frozen=True, slots=True)
class EvidenceView:
    """One evidence row as callers see it."""

    id: int
    phone: str
    message_id: str
    media_id: str
    kind: str
    mime: str | None
    sha256: str | None
    size: int | None
    filename: str | None
    path: str | None  # where the body is stored (the store's own address); None until saved
    state: EvidenceState
    attempts: int
    last_error: str | None
    report_id: int | None
    transcript: str | None
    created_ms: int
    updated_ms: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> EvidenceView:
        return cls(
            id=int(row["Id"]), phone=row["Telefono"], message_id=row["MensajeId"], media_id=row["MediaId"],
            kind=row["Tipo"], mime=row["Mime"], sha256=row["Sha256"],
            size=None if row["Tamano"] is None else int(row["Tamano"]), filename=row["Nombre"], path=row["Ruta"],
            state=EvidenceState(row["Estado"]), attempts=int(row["Intentos"]), last_error=row["UltimoError"],
            report_id=None if row["ReporteId"] is None else int(row["ReporteId"]),
            transcript=row["Transcripcion"], created_ms=int(row["CreadoEn"]), updated_ms=int(row["ActualizadoEn"]),
        )


@dataclass(frozen=True, slots=True)
class ClaimedEvidence:
    """A row this process may download until its claim expires; settle it with `mark_saved`/`mark_failed`."""

    evidence: EvidenceView
    token: str


def record_evidence(tx: Tx, *, phone: str, message_id: str, media_id: str, kind: str, mime: str | None,
                    sha256: str | None, filename: str | None, now_ms: int) -> None:
    """Record a media message once: a redelivered or re-handled message leaves the first row as it is."""
    if kind not in EVIDENCE_KINDS:
        raise ValueError(f"tipo de evidencia desconocido: {kind!r}")
    if not media_id:
        raise ValueError("la evidencia necesita el id del medio de Meta")
    tx.execute("evidence_record", {
        "telefono": phone, "message_id": message_id, "media_id": media_id, "tipo_evidencia": kind,
        "mime": None if mime is None else fit_units(mime, MIME_MAX_UNITS), "sha256": sha256,
        "nombre_archivo": None if filename is None else fit_units(filename, FILENAME_MAX_UNITS), "ahora": now_ms,
    })


def attach_evidence(tx: Tx, *, phone: str, report_id: int, message_ids: Sequence[str],
                    now_ms: int) -> int:
    """Link this phone's rows for `message_ids` to a report; rows already linked keep their report.
    Answers how many rows were linked."""
    linked = 0
    for message_id in dict.fromkeys(message_ids):  # once each, in order
        linked += tx.execute("evidence_attach", {
            "reporte_id": report_id, "ahora": now_ms, "message_id": message_id, "telefono": phone,
        })
    return linked


async def evidence_for_report(db: Database, report_id: int) -> list[EvidenceView]:
    rows = await db.read(lambda tx: tx.fetch_all("evidence_for_report", {"reporte_id": report_id}))
    return [EvidenceView.from_row(r) for r in rows]


async def evidence_for_phone(db: Database, phone: str, limit: int = 20) -> list[EvidenceView]:
    """A phone's latest rows, newest first (the console)."""
    rows = await db.read(lambda tx: tx.fetch_all("evidence_for_phone", {"telefono": phone, "limite": limit}))
    return [EvidenceView.from_row(r) for r in rows]


async def evidence_by_message(db: Database, message_id: str) -> EvidenceView | None:
    row = await db.read(lambda tx: tx.fetch_one("evidence_by_message", {"message_id": message_id}))
    return None if row is None else EvidenceView.from_row(row)


async def pending_evidence(db: Database, limit: int, *, now_ms: int, phone: str | None = None) -> list[int]:
    """Ids of `pendiente` rows due now (not claimed, not backing off), oldest due first."""
    if phone is None:
        rows = await db.read(lambda tx: tx.fetch_all("evidence_due", {"ahora": now_ms, "n": limit}))
    else:
        params = {"telefono": phone, "ahora": now_ms, "n": limit}
        rows = await db.read(lambda tx: tx.fetch_all("evidence_due_for_phone", params))
    return [int(r["Id"]) for r in rows]


def _claim_tx(tx: Tx, evidence_id: int, token: str, now_ms: int, hold_ms: int) -> ClaimedEvidence | None:
    # The read after the update also answers a retried transaction whose first commit went through.
    tx.execute("evidence_claim", {"token_reclamo": token, "expira": now_ms + hold_ms, "ahora": now_ms,
                                  "id": evidence_id})
    row = tx.fetch_one("evidence_claimed", {"id": evidence_id, "token_reclamo": token})
    return None if row is None else ClaimedEvidence(EvidenceView.from_row(row), token)


async def claim_evidence(db: Database, evidence_id: int, *, now_ms: int, hold_ms: int) -> ClaimedEvidence | None:
    """Take a due row for `hold_ms` and count the attempt; None when someone else has it or it is settled."""
    token = uuid.uuid4().hex
    return await db.write(lambda tx: _claim_tx(tx, evidence_id, token, now_ms, hold_ms))


async def mark_saved(db: Database, claim: ClaimedEvidence, *, path: str, size: int, mime: str | None,
                     now_ms: int) -> bool:
    """The body is stored at `path`. False when the claim was lost (expired and taken by another)."""
    params = {"ruta": path, "tamano": size, "mime": None if mime is None else fit_units(mime, MIME_MAX_UNITS),
              "ahora": now_ms, "id": claim.evidence.id, "token_reclamo": claim.token}
    return await db.write(lambda tx: tx.execute("evidence_mark_saved", params)) == 1


async def mark_failed(db: Database, claim: ClaimedEvidence, *, error: str, max_attempts: int, retry_at_ms: int,
                      now_ms: int, final: bool = False) -> EvidenceState | None:
    """Record a failed attempt: back to `pendiente` until `retry_at_ms`, or `error` once `max_attempts`
    are spent (at once when `final`). Answers the new state, None when the claim was lost."""
    params = {"max_intentos": 0 if final else max_attempts, "proximo_intento": retry_at_ms,
              "error": fit_units(error, ERROR_MAX_UNITS), "ahora": now_ms, "id": claim.evidence.id,
              "token_reclamo": claim.token}

    def settle(tx: Tx) -> EvidenceState | None:
        if tx.execute("evidence_mark_failed", params) != 1:
            return None
        row = tx.fetch_one("evidence_by_message", {"message_id": claim.evidence.message_id})
        return None if row is None else EvidenceState(row["Estado"])

    return await db.write(settle)


async def save_transcript(db: Database, *, phone: str, message_id: str, media_id: str, mime: str | None,
                          sha256: str | None, transcript: str, now_ms: int) -> None:
    """Keep a voice note's transcript on its row, recording the row first when the conversation has not
    (a transcript comes before the transition that records the note; that later record is then a no-op)."""

    def save(tx: Tx) -> None:
        record_evidence(tx, phone=phone, message_id=message_id, media_id=media_id, kind="audio", mime=mime,
                        sha256=sha256, filename=None, now_ms=now_ms)
        tx.execute("evidence_set_transcript", {"transcripcion": transcript, "ahora": now_ms, "message_id": message_id})

    await db.write(save)
