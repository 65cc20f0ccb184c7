"""What a transition does besides the session, the report and the replies, in the same transaction:
record the turn's evidence, attach it to a report, add a note to or cancel a report, and notify
maintenance. Also the report reads the engine asks for before deciding."""

from __future__ import annotations

from functools import partial

from bot import texts
from bot.conversation.model import ReportInfo, Transition
from core.notify import NotifyConfig
from core.storage.conversations import TxEffect
from core.storage.database import Database, Tx
from core.storage.evidence import attach_evidence, record_evidence
from core.storage.reports import (
    ReportView,
    add_report_note,
    open_report_for,
    queue_handover_notices,
    queue_new_report_notices,
    record_report_created,
    reports_for_phone,
    set_report_status_tx,
)


def for_transition(notify: NotifyConfig | None, key: str, tr: Transition, now: int, message_id: str | None,
                   history: str | None) -> tuple[TxEffect, ...]:
    """The writes `tr` adds to its transaction. `notify` None (an idle transition) notifies nobody."""
    out: list[TxEffect] = []
    for ev in tr.evidence:
        out.append(partial(_record, key, ev.message_id, ev.media_id, ev.kind, ev.mime, ev.sha256, ev.filename, now))
    if tr.report is not None:
        out.append(partial(_attach, key, tuple(tr.attach), now))
        out.append(partial(_report_created, notify, tr.report.data.get("placa"), message_id, now))
    if tr.note_report is not None:
        out.append(partial(_note, tr.note_report, tr.note or "", message_id, now))
        if tr.attach:
            out.append(partial(_attach_to, key, tr.note_report, tuple(tr.attach), now))
    if tr.cancel_report is not None:
        out.append(partial(_cancel, tr.cancel_report, message_id, now))
    if tr.handover and notify is not None:
        out.append(partial(_handover, notify, key, history or "", now))
    return tuple(out)


def _record(key: str, message_id: str, media_id: str, kind: str, mime: str | None, sha256: str | None,
            filename: str | None, now: int, tx: Tx, report_id: int | None) -> None:
    record_evidence(tx, phone=key, message_id=message_id, media_id=media_id, kind=kind, mime=mime, sha256=sha256,
                    filename=filename, now_ms=now)


def _attach(key: str, message_ids: tuple[str, ...], now: int, tx: Tx, report_id: int | None) -> None:
    if report_id is not None and message_ids:
        attach_evidence(tx, phone=key, report_id=report_id, message_ids=message_ids, now_ms=now)


def _attach_to(key: str, report_id: int, message_ids: tuple[str, ...], now: int, tx: Tx, _: int | None) -> None:
    attach_evidence(tx, phone=key, report_id=report_id, message_ids=message_ids, now_ms=now)


def _report_created(notify: NotifyConfig | None, plate: object, message_id: str | None, now: int, tx: Tx,
                    report_id: int | None) -> None:
    if report_id is None:
        return
    record_report_created(tx, report_id=report_id, plate=plate if isinstance(plate, str) else None,
                          message_id=message_id, now_ms=now)
    if notify is not None:
        queue_new_report_notices(tx, report_id=report_id, notice=texts.new_report_notice, notify=notify, now_ms=now)


def _note(report_id: int, note: str, message_id: str | None, now: int, tx: Tx, _: int | None) -> None:
    add_report_note(tx, report_id=report_id, note=note, origin="USUARIO", message_id=message_id, now_ms=now)


def _cancel(report_id: int, message_id: str | None, now: int, tx: Tx, _: int | None) -> None:
    set_report_status_tx(tx, report_id=report_id, status="cancelado", note=texts.NOTE_WRONG_EQUIPMENT,
                         origin="USUARIO", message_id=message_id, now_ms=now)


def _handover(notify: NotifyConfig, key: str, history: str, now: int, tx: Tx, _: int | None) -> None:
    queue_handover_notices(tx, notice=texts.handover_notice(key, history), notify=notify, now_ms=now)


async def open_report(db: Database, equipment_id: int | None, plate: str | None) -> ReportInfo | None:
    if equipment_id is None and not plate:
        return None
    found = await open_report_for(db, equipment_id=equipment_id, plate=plate)
    return None if found is None else _info(found)


async def reports_of(db: Database, key: str) -> list[ReportInfo]:
    found = await reports_for_phone(db, key, 5)
    return [_info(x) for x in found]


def _info(view: ReportView) -> ReportInfo:
    """The report as the conversation shows it: the date as a worker reads it (dd/mm/aaaa)."""
    day = view.created[:10]
    shown = f"{day[8:10]}/{day[5:7]}/{day[0:4]}" if len(day) == 10 and day[4] == "-" else view.created
    return ReportInfo(view.id, view.number, view.status, shown, view.last_note)

