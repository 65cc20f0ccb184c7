"""Report lifecycle storage against the real schema: filing history, notes, status changes and their
notices (text inside the 24-hour window, template outside), duplicate lookups and handover release."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bot import texts
from core.notify import NotifyConfig
from core.storage.conversations import ReportWrite, TransitionWrite, commit_transition
from core.storage.database import Database, Tx
from core.storage.inspection import get_report, list_recipient, save_user_message
from core.storage.reports import (
    add_report_note,
    change_report_status,
    get_report_detail,
    normalize_plate,
    normalize_report_number,
    open_report_for,
    queue_handover_notices,
    queue_new_report_notices,
    record_report_created,
    release_handover,
    reports_for_phone,
    set_report_status_tx,
)

WORKER = "5215512340001"
BOSS = "5215598760001"
NOTIFY = NotifyConfig(numbers=(BOSS,))
STATUS = texts.status_notice
HOUR_MS = 3_600_000


def now_ms() -> int:
    return int(time.time() * 1000)


async def release(db: Database) -> bool:
    return await release_handover(db, WORKER, now_ms(), released_text=texts.HANDOVER_RELEASED)


async def file_report(db: Database, *, phone: str = WORKER, equipment_id: int | None = 1, plate: str | None = None,
                      message_id: str = "wamid.FILE1", description: str = "No enfría") -> str:
    """File a report the way the conversation does (one transition), then record its creation."""
    data = {"placa": plate} if plate else {}
    session = await db.read(lambda tx: tx.fetch_one("session_get", {"telefono": phone}))
    write = TransitionWrite(
        key=phone, expected_version=int(session["version"]) if session else 0, state_from="CONFIRMAR",
        state_to="INICIO", data={}, equipment_id=None, origin="USUARIO", description="Reporte creado", now_ms=now_ms(),
        message_id=message_id,
        report=ReportWrite("VEHICULO" if plate else "REFRIGERADOR", None if plate else equipment_id, description, data),
    )
    report_id = await commit_transition(db, write, None)
    assert report_id is not None
    await db.write(lambda tx: record_report_created(tx, report_id=report_id, plate=plate, message_id=message_id,
                                                    now_ms=now_ms()))
    return f"RPT-{report_id:06d}"


def test_report_numbers_and_plates_normalise() -> None:
    assert normalize_report_number("RPT-000123") == "RPT-000123"
    assert normalize_report_number("rpt 123") == normalize_report_number(" rpt-0123 ") == "RPT-000123"
    assert normalize_report_number("hola") is None and normalize_report_number("RPT-0") is None
    assert normalize_plate("abc-12 34") == "ABC1234" and normalize_plate("") is None


async def test_a_filed_report_reads_back_open_with_its_first_history_row(any_db: Database) -> None:
    number = await file_report(any_db)
    report = await get_report(any_db, number.lower().replace("-", " "))
    assert report is not None and report.number == number and report.status == "abierto" and report.is_open
    assert report.equipment_code == "10004512" and report.location == "Tienda Centro" and report.attachments == 0
    assert len(report.created) == 16 and report.updated is None
    detail = await get_report_detail(any_db, number)
    assert detail is not None
    assert [(h.previous, h.status, h.origin, h.message_id) for h in detail.history] == [
        (None, "abierto", "USUARIO", "wamid.FILE1")]
    assert await get_report(any_db, "RPT-999999") is None


async def test_a_phones_reports_come_newest_first(any_db: Database) -> None:
    first = await file_report(any_db, message_id="wamid.A")
    second = await file_report(any_db, equipment_id=2, message_id="wamid.B")
    await file_report(any_db, phone="5215500000000", message_id="wamid.C")
    assert [r.number for r in await reports_for_phone(any_db, WORKER)] == [second, first]
    assert [r.number for r in await reports_for_phone(any_db, WORKER, limit=1)] == [second]


async def test_the_open_report_of_an_equipment_or_a_plate(any_db: Database) -> None:
    fridge = await file_report(any_db, message_id="wamid.F")
    truck = await file_report(any_db, plate="abc-123", message_id="wamid.T")
    found = await open_report_for(any_db, equipment_id=1, plate=None)
    assert found is not None and found.number == fridge
    found = await open_report_for(any_db, equipment_id=None, plate="ABC 123")
    assert found is not None and found.number == truck and found.equipment_text == "Vehículo abc-123"
    assert await open_report_for(any_db, equipment_id=2, plate=None) is None
    assert await open_report_for(any_db, equipment_id=None, plate=None) is None
    await change_report_status(any_db, fridge, "resuelto", None, origin="MANTENIMIENTO", notice=STATUS, notify=NOTIFY,
                               now_ms=now_ms())
    assert await open_report_for(any_db, equipment_id=1, plate=None) is None  # resolved is not open


async def test_a_note_keeps_the_status_and_becomes_the_last_note(any_db: Database) -> None:
    number = await file_report(any_db)
    report = await get_report(any_db, number)
    assert report is not None

    def note(tx: Tx) -> None:
        add_report_note(tx, report_id=report.id, note="  también gotea  ", origin="USUARIO",
                        message_id="wamid.NOTE", now_ms=now_ms())
        add_report_note(tx, report_id=report.id, note="   ", origin="USUARIO", message_id=None, now_ms=now_ms())

    await any_db.write(note)
    detail = await get_report_detail(any_db, number)
    assert detail is not None and detail.report.last_note == "también gotea" and detail.report.status == "abierto"
    assert detail.report.updated is not None
    assert [(h.previous, h.status, h.note) for h in detail.history][1:] == [("abierto", "abierto", "también gotea")]


async def test_the_worker_cancels_in_the_filing_conversation(any_db: Database) -> None:
    number = await file_report(any_db)
    report = await get_report(any_db, number)
    assert report is not None
    previous = await any_db.write(lambda tx: set_report_status_tx(
        tx, report_id=report.id, status="cancelado", note="me equivoqué de equipo", origin="USUARIO",
        message_id="wamid.OOPS", now_ms=now_ms()))
    assert previous == "abierto"
    assert (await get_report(any_db, number)).status == "cancelado"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="desconocido"):
        await any_db.write(lambda tx: set_report_status_tx(tx, report_id=report.id, status="cerrado", note=None,
                                                           origin="USUARIO", message_id=None, now_ms=now_ms()))


async def test_maintenance_change_tells_the_reporter_in_text_inside_the_window(any_db: Database) -> None:
    number = await file_report(any_db)
    await save_user_message(any_db, WORKER, "sí", "wamid.YES")  # the worker wrote just now
    before = len(await list_recipient(any_db, WORKER))
    report = await change_report_status(any_db, number, "en_proceso", "Técnico en camino", origin="MANTENIMIENTO",
                                        notice=STATUS, notify=NOTIFY, now_ms=now_ms())
    assert report is not None and report.status == "en_proceso" and report.last_note == "Técnico en camino"
    rows = await list_recipient(any_db, WORKER)
    assert len(rows) == before + 1 and rows[-1].kind == "text"
    body = json.loads(rows[-1].content)["body"]
    assert number in body and "en proceso" in body and "Técnico en camino" in body
    detail = await get_report_detail(any_db, number)
    assert detail is not None
    assert [(h.previous, h.status, h.origin) for h in detail.history][-1] == ("abierto", "en_proceso", "MANTENIMIENTO")


async def test_maintenance_change_uses_the_template_outside_the_window(any_db: Database) -> None:
    number = await file_report(any_db)
    await save_user_message(any_db, WORKER, "sí", "wamid.YES")
    later = now_ms() + 25 * HOUR_MS  # the worker's last message is now 25 hours old
    await change_report_status(any_db, number, "resuelto", "Se cambió\nel compresor", origin="MANTENIMIENTO",
                               notice=STATUS, notify=NOTIFY, now_ms=later)
    last = (await list_recipient(any_db, WORKER))[-1]
    assert last.kind == "template"
    content = json.loads(last.content)
    assert content == {"template": "reporte_estado", "language": "es_MX",
                       "parameters": [number, "resuelto", "Se cambió · el compresor"]}


async def test_the_same_status_without_a_note_changes_nothing(any_db: Database) -> None:
    number = await file_report(any_db)
    before = len(await list_recipient(any_db, WORKER))
    report = await change_report_status(any_db, number, "abierto", "  ", origin="MANTENIMIENTO", notice=STATUS,
                                        notify=NOTIFY, now_ms=now_ms())
    assert report is not None and report.updated is None
    assert len(await list_recipient(any_db, WORKER)) == before
    assert await change_report_status(any_db, "RPT-424242", "resuelto", None, origin="MANTENIMIENTO",
                                      notice=STATUS, notify=NOTIFY, now_ms=now_ms()) is None
    with pytest.raises(ValueError):
        await change_report_status(any_db, number, "terminado", None, origin="MANTENIMIENTO", notice=STATUS,
                                   notify=NOTIFY, now_ms=now_ms())


async def test_new_report_notices_go_to_every_maintenance_number(any_db: Database) -> None:
    number = await file_report(any_db, description="Hace ruido\ty no enfría")
    report = await get_report(any_db, number)
    assert report is not None
    other = "5215598760002"
    await save_user_message(any_db, other, "hola", "wamid.BOSS2")  # this one wrote recently: gets text
    config = NotifyConfig(numbers=(BOSS, other))
    queued = await any_db.write(lambda tx: queue_new_report_notices(
        tx, report_id=report.id, notice=texts.new_report_notice, notify=config, now_ms=now_ms()))
    assert queued == 2
    template = json.loads((await list_recipient(any_db, BOSS))[-1].content)
    assert template["template"] == "reporte_nuevo"
    assert template["parameters"] == [number, "Refrigerador vertical 2 puertas (10004512)", "Tienda Centro",
                                      "Hace ruido · y no enfría", "0", WORKER]
    text = json.loads((await list_recipient(any_db, other))[-1].content)["body"]
    assert number in text and "Tienda Centro" in text and "Evidencias: 0" in text
    assert await any_db.write(lambda tx: queue_new_report_notices(
        tx, report_id=report.id, notice=texts.new_report_notice, notify=NotifyConfig(), now_ms=now_ms())) == 0


async def test_handover_notice_and_release(any_db: Database) -> None:
    queued = await any_db.write(lambda tx: queue_handover_notices(
        tx, notice=texts.handover_notice(WORKER, "Usuario: quiero hablar con una persona"), notify=NOTIFY,
        now_ms=now_ms()))
    assert queued == 1
    template = json.loads((await list_recipient(any_db, BOSS))[-1].content)
    assert template["template"] == "atencion_humana" and template["parameters"][0] == WORKER

    assert not await release(any_db)  # no session: nothing to release
    await commit_transition(any_db, TransitionWrite(
        key=WORKER, expected_version=0, state_from="INICIO", state_to="ATENCION_HUMANA", data={"x": 1},
        equipment_id=None, origin="USUARIO", description="Pidió una persona", now_ms=now_ms()), None)
    await save_user_message(any_db, WORKER, "quiero hablar con una persona", "wamid.HUMAN")
    assert await release(any_db)
    session = await any_db.read(lambda tx: tx.fetch_one("session_get", {"telefono": WORKER}))
    assert session is not None and session["estado"] == "INICIO" and int(session["version"]) == 2
    assert session["datos"] == "{}"
    assert "terminó" in json.loads((await list_recipient(any_db, WORKER))[-1].content)["body"]
    assert not await release(any_db)  # already released


def test_006_opens_existing_reports_with_one_history_row(tmp_path: Path) -> None:
    """A database at version 5 with a report: after 006 the report is 'abierto' with its first history row."""
    from core.storage.migrate import SQLITE_SCHEMA_DIR, migrate_sqlite, migrations, split_sqlite_statements
    from core.storage.sqlite import SqliteDatabase

    db = SqliteDatabase(str(tmp_path / "old.sqlite3"), pool_size=1)
    conn = db._connection()
    conn.execute("CREATE TABLE SchemaVersion (Version INTEGER PRIMARY KEY, Nombre TEXT NOT NULL,"
                 " AplicadoEn TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)")
    for version, name, path in migrations(SQLITE_SCHEMA_DIR):
        if version >= 6:
            break
        for statement in split_sqlite_statements(path.read_text(encoding="utf-8")):
            conn.execute(statement)
        conn.execute("INSERT INTO SchemaVersion (Version, Nombre) VALUES (?, ?)", (version, name))
    conn.execute("INSERT INTO Reportes (Numero, Telefono, TipoEquipo, Descripcion, MensajeOrigen, CreadoEn)"
                 " VALUES ('RPT-000001', ?, 'VEHICULO', 'No arranca', 'wamid.OLD', '2026-01-02 03:04:05')", (WORKER,))
    conn.commit()
    try:
        assert migrate_sqlite(db) >= 6
        assert conn.execute("SELECT Estado FROM Reportes").fetchone() == ("abierto",)
        assert conn.execute("SELECT EstadoAnterior, EstadoNuevo, Origen, CreadoEn FROM HistorialReportes").fetchall() \
            == [(None, "abierto", "SISTEMA", "2026-01-02 03:04:05")]
    finally:
        db.close()


def test_template_parameters_are_one_line_and_the_fake_graph_checks_the_shape() -> None:
    from core.whatsapp.outgoing import TemplateMessage, outgoing_from_json
    from local_host.fake_graph import limit_problem

    message = TemplateMessage("reporte_estado", "es_MX", ("RPT-000001", "", "a\r\n\tb" + " " * 9 + "c"))
    assert message.parameters == ("RPT-000001", "-", "a · b   c")
    assert outgoing_from_json(message.to_json()) == message
    payload = message.to_graph_payload("5215512345678")
    assert limit_problem(payload) is None
    assert payload["template"]["components"][0]["parameters"][2] == {"type": "text", "text": "a · b   c"}  # type: ignore[index]
    broken = {**payload, "template": {"name": "reporte_estado", "language": {"code": "es_MX"}, "components": [
        {"type": "body", "parameters": [{"type": "text", "text": "dos\nlíneas"}]}]}}
    assert "132018" in (limit_problem(broken) or "")
    assert limit_problem({**payload, "template": {"name": "Con Espacios", "language": {"code": "es"}}})
    assert limit_problem({**payload, "template": {"name": "ok", "language": {}}})
    with pytest.raises(ValueError):
        TemplateMessage("", "es_MX")


def test_a_long_handover_keeps_the_newest_part_of_the_conversation() -> None:
    from core.whatsapp.outgoing import MAX_TEMPLATE_PARAMETER, TemplateMessage

    transcript = "\n".join(f"Usuario: mensaje {i}" for i in range(200))
    message = TemplateMessage("atencion_humana", "es_MX", texts.handover_notice(WORKER, transcript).parameters)
    assert len(message.parameters[1]) <= MAX_TEMPLATE_PARAMETER
    assert message.parameters[1].endswith("Usuario: mensaje 199") and message.parameters[1].startswith("…")
