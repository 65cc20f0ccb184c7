"""The console's maintenance actions over real loopback: a report's status, history and evidence count in the
state panel and its detail, a status change that reaches the reporter through the fake Graph API the console
mounts, and releasing a handed-over conversation. Real SQLite, the same code as the HTTP functions."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.storage.conversations import ReportWrite, TransitionWrite, commit_transition
from core.storage.database import Database
from core.storage.inspection import save_user_message
from core.storage.reports import record_report_created
from local_host.console import CONSOLE_KEY
from tests.conftest import free_port
from tests.console_receiver import ConsoleServer, build_console_app, start_site

WORKER = "5215512348001"


@pytest.fixture
async def console(db_path: Path) -> AsyncIterator[ConsoleServer]:
    port = free_port()
    server = build_console_app(db_path, port)
    runner = await start_site(server, port)
    yield server
    await runner.cleanup()
    await server.runtime.aclose()


async def _transition(db: Database, state_to: str, *, report: ReportWrite | None = None,
                      message_id: str | None = None) -> int | None:
    session = await db.read(lambda tx: tx.fetch_one("session_get", {"telefono": WORKER}))
    return await commit_transition(db, TransitionWrite(
        key=WORKER, expected_version=int(session["version"]) if session else 0,
        state_from=session["estado"] if session else "INICIO", state_to=state_to, data={}, equipment_id=None,
        origin="USUARIO", description="prueba", now_ms=int(time.time() * 1000), message_id=message_id,
        report=report), None)


async def test_the_console_shows_a_report_and_changes_its_status(console: ConsoleServer) -> None:
    db = console.runtime.db
    await save_user_message(db, WORKER, "hola", "wamid.CR1")  # inside the 24-hour window: text
    report_id = await _transition(db, "INICIO", report=ReportWrite("REFRIGERADOR", 1, "No enfría", {}),
                                  message_id="wamid.CR-FILE")
    assert report_id is not None
    await db.write(lambda tx: record_report_created(tx, report_id=report_id, plate=None, message_id="wamid.CR-FILE",
                                                    now_ms=int(time.time() * 1000)))
    number = f"RPT-{report_id:06d}"
    async with httpx.AsyncClient(base_url=console.base_url, timeout=20) as client:
        state = (await client.get("/_console/api/state", params={"user": WORKER})).json()["state"]
        assert [(r["numero"], r["estado"]) for r in state["reports"]] == [(number, "abierto")]

        answer = await client.post("/_console/api/report/status",
                                   json={"numero": number, "estado": "asignado", "nota": "Va Pedro"})
        assert answer.status_code == 200, answer.text
        assert (answer.json()["estado"], answer.json()["ultima_nota"]) == ("asignado", "Va Pedro")

        detail = (await client.get("/_console/api/report", params={"numero": number})).json()
        assert detail["evidencias"] == 0 and detail["equipo"].startswith("Refrigerador vertical")
        assert [(h["estado"], h["origen"], h["nota"]) for h in detail["historial"]] == [
            ("abierto", "USUARIO", None), ("asignado", "MANTENIMIENTO", "Va Pedro")]
        state = (await client.get("/_console/api/state", params={"user": WORKER})).json()
        assert [(r["estado"], r["ultima_nota"]) for r in state["state"]["reports"]] == [("asignado", "Va Pedro")]
        bot = [item["payload"] for item in state["thread"] if item["side"] == "bot"]
        assert bot and bot[-1]["type"] == "text" and number in bot[-1]["text"]["body"]

        bad = await client.post("/_console/api/report/status", json={"numero": number, "estado": "listo"})
        assert bad.status_code == 400 and "estado" in bad.json()["error"]
        missing = await client.get("/_console/api/report", params={"numero": "RPT-777777"})
        assert missing.status_code == 404
        page = (await client.get("/")).text
        assert "Cambiar estado" in page and "Liberar conversación" in page
    sent = console.app[CONSOLE_KEY].fake_graph.sent  # type: ignore[union-attr]
    assert len(sent) == 1  # the refused change told no one


async def test_the_console_releases_a_handed_over_conversation(console: ConsoleServer) -> None:
    db = console.runtime.db
    async with httpx.AsyncClient(base_url=console.base_url, timeout=20) as client:
        r = await client.post("/_console/api/release", json={"user": WORKER})
        assert r.status_code == 404
        await _transition(db, "ATENCION_HUMANA")
        state = (await client.get("/_console/api/state", params={"user": WORKER})).json()["state"]
        assert state["session"]["estado"] == "ATENCION_HUMANA"
        r = await client.post("/_console/api/release", json={"user": WORKER})
        assert r.status_code == 200 and r.json()["liberada"] is True
        state = (await client.get("/_console/api/state", params={"user": WORKER})).json()["state"]
        assert state["session"]["estado"] == "INICIO"
        r = await client.post("/_console/api/release", json={"user": "12"})
        assert r.status_code == 400
