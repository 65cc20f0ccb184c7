"""Evidence rows on the real database: recorded once per message, linked to a report, claimed by one
downloader at a time, retried after a failure and given up after the last attempt."""

from __future__ import annotations

import asyncio

import pytest

from core.storage.database import Database, Tx
from core.storage.evidence import (
    attach_evidence,
    claim_evidence,
    evidence_by_message,
    evidence_for_phone,
    evidence_for_report,
    mark_failed,
    mark_saved,
    pending_evidence,
    record_evidence,
)
from core.storage.inspection import set_transcript
from core.storage.states import EvidenceState

PHONE = "5215512345678"
NOW = 1_800_000_000_000


def _record(tx: Tx, message_id: str, *, phone: str = PHONE, kind: str = "image", now_ms: int = NOW) -> None:
    record_evidence(tx, phone=phone, message_id=message_id, media_id=f"media-{message_id}", kind=kind,
                    mime="image/jpeg", sha256="abc", filename=None, now_ms=now_ms)


def _report(tx: Tx, origin: str) -> int:
    row = tx.fetch_one("report_insert", {
        "numero": f"TMP-{origin}", "telefono": PHONE, "tipo_equipo": "REFRIGERADOR", "equipo_id": None,
        "descripcion": "no enfría", "datos": "{}", "mensaje_origen": origin,
    })
    assert row is not None
    return int(row["id"])


async def test_a_message_is_recorded_once_and_linked_to_its_report(any_db: Database) -> None:
    await any_db.write(lambda tx: _record(tx, "wamid.A"))
    await any_db.write(lambda tx: _record(tx, "wamid.A", kind="audio", now_ms=NOW + 5))  # redelivered: no change
    await any_db.write(lambda tx: _record(tx, "wamid.B"))
    await any_db.write(lambda tx: _record(tx, "wamid.a"))  # another wamid: ids are case-distinct

    report_id = await any_db.write(lambda tx: _report(tx, "wamid.T"))
    linked = await any_db.write(lambda tx: attach_evidence(
        tx, phone=PHONE, report_id=report_id, message_ids=["wamid.A", "wamid.B", "wamid.A", "wamid.zz"], now_ms=NOW))
    assert linked == 2
    # A row already linked keeps its report, and another phone's row is never linked.
    other = await any_db.write(lambda tx: _report(tx, "wamid.U"))
    assert await any_db.write(lambda tx: attach_evidence(tx, phone=PHONE, report_id=other,
                                                         message_ids=["wamid.A"], now_ms=NOW)) == 0
    assert await any_db.write(lambda tx: attach_evidence(tx, phone="5210000000000", report_id=other,
                                                         message_ids=["wamid.a"], now_ms=NOW)) == 0

    rows = await evidence_for_report(any_db, report_id)
    assert [(r.message_id, r.kind, r.state, r.attempts, r.created_ms) for r in rows] == [
        ("wamid.A", "image", EvidenceState.PENDIENTE, 0, NOW), ("wamid.B", "image", EvidenceState.PENDIENTE, 0, NOW)]
    assert [r.message_id for r in await evidence_for_phone(any_db, PHONE)] == ["wamid.a", "wamid.B", "wamid.A"]


async def test_bad_input_is_refused_and_writes_nothing(any_db: Database) -> None:
    with pytest.raises(ValueError, match="tipo de evidencia"):
        await any_db.write(lambda tx: _record(tx, "wamid.X", kind="location"))
    with pytest.raises(ValueError, match="message_id"):
        await any_db.write(lambda tx: _record(tx, "w" * 201))
    assert await evidence_for_phone(any_db, PHONE) == []


async def test_one_claim_at_a_time_then_saved(any_db: Database) -> None:
    await any_db.write(lambda tx: _record(tx, "wamid.C"))
    (evidence_id,) = await pending_evidence(any_db, 10, now_ms=NOW)
    claims = await asyncio.gather(*(claim_evidence(any_db, evidence_id, now_ms=NOW, hold_ms=60_000)
                                    for _ in range(5)))
    held = [c for c in claims if c is not None]
    assert len(held) == 1 and held[0].evidence.attempts == 1
    assert await pending_evidence(any_db, 10, now_ms=NOW + 59_999) == []  # claimed: not due

    assert await mark_saved(any_db, held[0], path="local:5215512345678/wamid.C.jpg", size=1234,
                            mime="image/jpeg", now_ms=NOW + 10)
    assert not await mark_saved(any_db, held[0], path="x", size=1, mime=None, now_ms=NOW + 11)  # settled once
    saved = await evidence_by_message(any_db, "wamid.C")
    assert saved is not None
    assert (saved.state, saved.path, saved.size, saved.attempts) == (EvidenceState.GUARDADA,
                                                                     "local:5215512345678/wamid.C.jpg", 1234, 1)
    assert await pending_evidence(any_db, 10, now_ms=NOW + 120_000) == []


async def test_an_expired_claim_is_taken_again_and_the_old_holder_is_fenced(any_db: Database) -> None:
    await any_db.write(lambda tx: _record(tx, "wamid.D"))
    (evidence_id,) = await pending_evidence(any_db, 10, now_ms=NOW)
    first = await claim_evidence(any_db, evidence_id, now_ms=NOW, hold_ms=1_000)
    assert first is not None
    assert await claim_evidence(any_db, first.evidence.id, now_ms=NOW + 999, hold_ms=1_000) is None
    second = await claim_evidence(any_db, first.evidence.id, now_ms=NOW + 1_000, hold_ms=1_000)
    assert second is not None and second.evidence.attempts == 2
    assert not await mark_saved(any_db, first, path="stale", size=1, mime=None, now_ms=NOW + 1_001)
    assert await mark_failed(any_db, first, error="x", max_attempts=5, retry_at_ms=NOW, now_ms=NOW) is None


async def test_failures_back_off_then_end_in_error(any_db: Database) -> None:
    await any_db.write(lambda tx: _record(tx, "wamid.E"))
    (evidence_id,) = await pending_evidence(any_db, 10, now_ms=NOW)
    now = NOW
    states = []
    for _ in range(3):
        claim = await claim_evidence(any_db, evidence_id, now_ms=now, hold_ms=60_000)
        assert claim is not None
        states.append(await mark_failed(any_db, claim, error="Graph respondió 500", max_attempts=3,
                                        retry_at_ms=now + 5_000, now_ms=now))
        assert await pending_evidence(any_db, 10, now_ms=now + 4_999) == []
        now += 5_000
    assert states == [EvidenceState.PENDIENTE, EvidenceState.PENDIENTE, EvidenceState.ERROR]
    row = await evidence_by_message(any_db, "wamid.E")
    assert row is not None and (row.state, row.attempts, row.last_error) == (EvidenceState.ERROR, 3,
                                                                             "Graph respondió 500")
    assert await claim_evidence(any_db, evidence_id, now_ms=now + 10**9, hold_ms=1) is None


async def test_a_final_failure_ends_at_once_and_errors_are_cut_to_the_column(any_db: Database) -> None:
    await any_db.write(lambda tx: _record(tx, "wamid.F"))
    (evidence_id,) = await pending_evidence(any_db, 10, now_ms=NOW)
    claim = await claim_evidence(any_db, evidence_id, now_ms=NOW, hold_ms=60_000)
    assert claim is not None
    assert await mark_failed(any_db, claim, error="😀" * 900, max_attempts=5, retry_at_ms=NOW,
                             now_ms=NOW, final=True) == EvidenceState.ERROR
    row = await evidence_by_message(any_db, "wamid.F")
    assert row is not None and row.last_error is not None and len(row.last_error) == 500


async def test_pending_for_one_phone_and_transcripts(any_db: Database) -> None:
    await any_db.write(lambda tx: _record(tx, "wamid.G"))
    await any_db.write(lambda tx: _record(tx, "wamid.H", phone="5219999999999"))
    mine = await pending_evidence(any_db, 10, now_ms=NOW, phone=PHONE)
    assert len(mine) == 1 and len(await pending_evidence(any_db, 10, now_ms=NOW)) == 2
    assert await set_transcript(any_db, "wamid.G", "el refri de la tienda 45 no enfría", now_ms=NOW + 1)
    assert not await set_transcript(any_db, "wamid.nope", "x", now_ms=NOW + 1)
    row = await evidence_by_message(any_db, "wamid.G")
    assert row is not None and row.transcript == "el refri de la tienda 45 no enfría"
