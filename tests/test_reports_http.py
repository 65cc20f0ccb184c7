"""Maintenance's report endpoints through a real `python -m local_host` process over loopback HTTP, on a real
SQLite file, with the fake Graph API the host mounts checking every send (text inside the reporter's 24-hour
window, the status template outside it)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.storage.conversations import ReportWrite, TransitionWrite, commit_transition
from core.storage.reports import record_report_created
from core.storage.sqlite import SqliteDatabase
from tests.conftest import free_port
from tests.test_local_host import start_host, wait_ready
from tests.webhook_helpers import encode, signed_headers, text_payload

MAINTENANCE = "5215598760009"


@dataclass
class Host:
    base: str
    db_path: Path

    def sent(self, recipient: str) -> list[dict[str, Any]]:
        return [s["payload"] for s in httpx.get(f"{self.base}/_fake_graph/_sent",
                                                params={"recipient": recipient}).json()]

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.db_path)) as conn, conn:
            return conn.execute(sql, params).fetchall()

    def file_report(self, phone: str, message_id: str, *, equipment_id: int | None = 1,
                    plate: str | None = None) -> str:
        """A report filed the way the conversation files it: one transition, then its first history row."""

        async def run() -> int:
            db = SqliteDatabase(str(self.db_path), pool_size=1)
            try:
                now = int(time.time() * 1000)
                session = await db.read(lambda tx: tx.fetch_one("session_get", {"telefono": phone}))
                report_id = await commit_transition(db, TransitionWrite(
                    key=phone, expected_version=int(session["version"]) if session else 0, state_from="CONFIRMAR",
                    state_to="INICIO", data={}, equipment_id=None, origin="USUARIO", description="Reporte creado",
                    now_ms=now, message_id=message_id,
                    report=ReportWrite("VEHICULO" if plate else "REFRIGERADOR", equipment_id, "No enfría",
                                       {"placa": plate} if plate else {})), None)
                assert report_id is not None
                await db.write(lambda tx: record_report_created(tx, report_id=report_id, plate=plate,
                                                                message_id=message_id, now_ms=now))
                return report_id
            finally:
                db.close()

        return f"RPT-{asyncio.run(run()):06d}"

    def set_state(self, phone: str, state: str) -> None:
        async def run() -> None:
            db = SqliteDatabase(str(self.db_path), pool_size=1)
            try:
                session = await db.read(lambda tx: tx.fetch_one("session_get", {"telefono": phone}))
                await commit_transition(db, TransitionWrite(
                    key=phone, expected_version=int(session["version"]) if session else 0,
                    state_from=session["estado"] if session else "INICIO", state_to=state, data={}, equipment_id=None,
                    origin="USUARIO", description="prueba", now_ms=int(time.time() * 1000)), None)
            finally:
                db.close()

        asyncio.run(run())

    def say(self, phone: str, wamid: str, text: str) -> None:
        """The worker writes through the real webhook; answers once the bot has handled it."""
        body = encode(text_payload(wamid, phone, text, ts=int(time.time())))
        assert httpx.post(f"{self.base}/api/whatsapp/webhook", content=body,
                          headers=signed_headers(body)).status_code == 200
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.rows("SELECT 1 FROM MensajesProcesados WHERE MessageId = ? AND Estado = 'procesado'", wamid):
                return
            time.sleep(0.1)
        raise AssertionError("the bot did not handle the message")


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Host]:
    db_path = tmp_path_factory.mktemp("reports_http") / "bot.sqlite3"
    shutil.copyfile(sqlite_template, db_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_host(db_path, port, WHATSAPP_API_BASE_URL=f"{base}/_fake_graph/v23.0",
                      REPORT_NOTIFY_NUMBERS=MAINTENANCE, TEMPLATE_STATUS_CHANGE="estado_reporte_v2")
    try:
        wait_ready(base + "/api/health", proc)
        yield Host(base, db_path)
    finally:
        proc.terminate()
        proc.wait(10)


def _status(host: Host, number: str, body: object, **kwargs: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.post(f"{host.base}/api/reportes/{number}/estado", content=body, timeout=20, **kwargs)
    return httpx.post(f"{host.base}/api/reportes/{number}/estado", json=body, timeout=20, **kwargs)


@pytest.mark.timeout(90)
def test_a_status_change_inside_the_window_reaches_the_reporter_as_text(host: Host) -> None:
    worker = "5215512349001"
    host.say(worker, "wamid.RH1", "hola")  # the worker wrote just now: inside the window
    number = host.file_report(worker, "wamid.RH-FILE1")
    answer = _status(host, number, {"estado": "en_proceso", "nota": "El técnico llega a las 4"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["numero"], report["estado"], report["ultima_nota"]) == (number, "en_proceso",
                                                                          "El técnico llega a las 4")
    assert report["equipo"] == "Refrigerador vertical 2 puertas (10004512)" and report["evidencias"] == 0
    assert [(h["estado_anterior"], h["estado"], h["origen"]) for h in report["historial"]] == [
        (None, "abierto", "USUARIO"), ("abierto", "en_proceso", "MANTENIMIENTO")]
    texts = [p["text"]["body"] for p in host.sent(worker) if p["type"] == "text"]
    assert any(number in t and "*en proceso*" in t and "El técnico llega a las 4" in t for t in texts)

    answer = _status(host, number.lower(), {"estado": "resuelto"})  # the number in any case
    assert answer.status_code == 200 and answer.json()["estado"] == "resuelto"
    resolved = [p["text"]["body"] for p in host.sent(worker) if p["type"] == "text"][-1]
    assert "Buenas noticias" in resolved and "*resuelto*" in resolved

    shown = httpx.get(f"{host.base}/api/reportes/{number}")
    assert shown.status_code == 200 and [h["estado"] for h in shown.json()["historial"]] == [
        "abierto", "en_proceso", "resuelto"]


@pytest.mark.timeout(90)
def test_a_status_change_outside_the_window_is_the_approved_template(host: Host) -> None:
    worker = "5215512349002"  # never wrote to the bot: outside the window
    number = host.file_report(worker, "wamid.RH-FILE2", equipment_id=None, plate="xyz-987")
    answer = _status(host, number, {"estado": "asignado", "nota": "Lo revisa\nel taller\tnorte     hoy"})
    assert answer.status_code == 200, answer.text
    (sent,) = host.sent(worker)
    assert sent["type"] == "template" and sent["to"] == worker
    assert sent["template"] == {
        "name": "estado_reporte_v2", "language": {"code": "es_MX"},
        "components": [{"type": "body", "parameters": [
            {"type": "text", "text": number}, {"type": "text", "text": "asignado a un técnico"},
            {"type": "text", "text": "Lo revisa · el taller · norte   hoy"}]}],
    }
    assert answer.json()["equipo"] == "Vehículo xyz-987"


@pytest.mark.timeout(90)
def test_bad_requests_get_400_or_404_and_change_nothing(host: Host) -> None:
    worker = "5215512349003"
    number = host.file_report(worker, "wamid.RH-FILE3")
    history = host.rows("SELECT COUNT(*) FROM HistorialReportes")
    cases: list[tuple[str, object, int, str]] = [
        (number, {"estado": "terminado"}, 400, "'estado' debe ser uno de"),
        (number, {"nota": "sin estado"}, 400, "'estado'"),
        (number, b"{no es json", 400, "JSON"),
        (number, b"", 400, "JSON"),
        (number, ["resuelto"], 400, "objeto"),
        (number, {"estado": "resuelto", "nota": "x" * 501}, 400, "excede 500"),
        (number, {"estado": "resuelto", "nota": 5}, 400, "texto"),
        (number, {"estado": "resuelto", "prioridad": "alta"}, 400, "campos desconocidos"),
        (number, b"x" * 20_000, 400, "excede"),
        ("RPT-424242", {"estado": "resuelto"}, 404, "no existe"),
        ("hola", {"estado": "resuelto"}, 400, "número de reporte inválido"),
    ]
    for target, body, status, fragment in cases:
        answer = _status(host, target, body)
        assert (answer.status_code, fragment in answer.json()["error"]) == (status, True), (body, answer.text)
    assert host.rows("SELECT COUNT(*) FROM HistorialReportes") == history
    assert host.rows("SELECT Estado FROM Reportes WHERE Numero = ?", number) == [("abierto",)]
    assert host.sent(worker) == []
    assert httpx.get(f"{host.base}/api/reportes/RPT-424242").status_code == 404
    assert httpx.get(f"{host.base}/api/reportes/nada").status_code == 400


@pytest.mark.timeout(90)
def test_maintenance_releases_a_handed_over_conversation(host: Host) -> None:
    worker = "5215512349004"
    url = f"{host.base}/api/conversaciones/{worker}/liberar"
    assert httpx.post(url).status_code == 404  # no conversation at all
    host.say(worker, "wamid.RH4", "hola")
    host.set_state(worker, "ATENCION_HUMANA")
    answer = httpx.post(url, timeout=20)
    assert answer.status_code == 200 and answer.json() == {"telefono": worker, "liberada": True}
    assert host.rows("SELECT Estado FROM SesionesChat WHERE Telefono = ?", worker) == [("INICIO",)]
    assert "terminó" in [p["text"]["body"] for p in host.sent(worker) if p["type"] == "text"][-1]
    assert httpx.post(url).status_code == 404  # already released
    assert httpx.post(f"{host.base}/api/conversaciones/no-es-telefono/liberar").status_code == 400


def test_the_endpoints_need_a_function_key(app_triggers: dict[str, object]) -> None:
    routes = {"report_get": "reportes/{numero}", "report_status": "reportes/{numero}/estado",
              "conversation_release": "conversaciones/{telefono}/liberar"}
    for name, route in routes.items():
        trigger: Any = app_triggers[name]
        assert trigger.route == route
        assert str(getattr(trigger.auth_level, "value", "")).lower() == "function"
