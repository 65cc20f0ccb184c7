"""The conversation engine on a real SQLite database: leases, FIFO drain, versioned sessions, one report."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.runtime import Runtime, build_runtime
from core.clock import system_clock
from core.errors import ConcurrencyError, LeaseLost
from core.settings import Settings, load_settings
from core.storage.conversations import TransitionWrite, commit_transition, get_session_with_version
from core.storage.inspection import get_lease
from core.storage.leases import acquire_lease, extend_lease, release_lease
from local_host.queues import serving_worker, settle, worker_queue
from tests.conftest import base_env
from tests.conversation_helpers import put_in_inbox, query, replies, session_state, text_message

PHONE = "5215512345678"


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings)
    yield runtime
    await runtime.aclose()


async def say(rt: Runtime, db_path: Path, phone: str, body: str, ts: int, **kw: object) -> list[str]:
    before = len(replies(db_path, phone))
    put_in_inbox(db_path, text_message(phone, body, ts, **kw))
    await rt.drain.drain(phone, time.monotonic() + 30)
    return replies(db_path, phone)[before:]


async def test_refrigerator_flow_files_exactly_one_report(rt: Runtime, db_path: Path) -> None:
    out = await say(rt, db_path, PHONE, "Hola, el refrigerador no enfría", 100)
    assert "código SAP" in out[0]
    out = await say(rt, db_path, PHONE, "10004512", 110)
    assert "Refrigerador vertical 2 puertas" in out[0] and "Tienda Centro" in out[0] and "no enfría" in out[0]
    out = await say(rt, db_path, PHONE, "sí", 120)
    assert "RPT-" in out[0] and "no enfría" in out[0]
    assert session_state(db_path, PHONE) == ("FINALIZADO", 3)
    reports = query(db_path, "SELECT Numero, TipoEquipo, EquipoId, Descripcion FROM Reportes")
    assert len(reports) == 1
    number, kind, equipment_id, description = reports[0]
    assert number in out[0] and kind == "REFRIGERADOR" and equipment_id is not None
    assert description == "no enfría"
    history = query(db_path, "SELECT EstadoAnterior, EstadoNuevo FROM HistorialSesiones ORDER BY Id")
    assert history == [("INICIO", "REFRI_ESPERA_SAP"), ("REFRI_ESPERA_SAP", "CONFIRMA_REPORTE"),
                       ("CONFIRMA_REPORTE", "FINALIZADO")]
    assert query(db_path, "SELECT COUNT(*) FROM MensajesProcesados WHERE Estado = 'pendiente'") == [(0,)]
    # Messages and replies are kept as conversation history.
    assert query(db_path, "SELECT Origen, COUNT(*) FROM MensajesChat GROUP BY Origen ORDER BY Origen") == [
        ("BOT", 3), ("USUARIO", 3)]


async def test_vehicle_flow_with_description_and_menu(rt: Runtime, db_path: Path) -> None:
    out = await say(rt, db_path, PHONE, "Buenos días", 10)
    assert "Refrigerador" in out[0] and "Vehículo" in out[0]
    out = await say(rt, db_path, PHONE, "2", 20)
    assert "número de empleado" in out[0]
    out = await say(rt, db_path, PHONE, "12", 30)
    assert "4 a 10 dígitos" in out[0]
    out = await say(rt, db_path, PHONE, "mi número es 48213", 40)
    assert "placa" in out[0]
    out = await say(rt, db_path, PHONE, "ABC-123-D", 50)
    assert "falla tiene el vehículo" in out[0]
    out = await say(rt, db_path, PHONE, "Se le ponchó una llanta", 60)
    assert "Revisa tu reporte" in out[0] and "ABC123D" in out[0] and "48213" in out[0]
    out = await say(rt, db_path, PHONE, "sí", 70)
    assert "RPT-" in out[0]
    rows = query(db_path, "SELECT TipoEquipo, Descripcion, Datos FROM Reportes")
    assert rows[0][0] == "VEHICULO" and rows[0][1] == "Se le ponchó una llanta"
    assert '"placa": "ABC123D"' in rows[0][2] and '"empleado": "48213"' in rows[0][2]


async def test_wrong_sap_codes_no_at_confirmation_and_three_misses(rt: Runtime, db_path: Path) -> None:
    await say(rt, db_path, PHONE, "la nevera gotea", 10)
    out = await say(rt, db_path, PHONE, "99999999", 20)
    assert "No encontré el código SAP 99999999" in out[0] and "1 de 3" in out[0]
    out = await say(rt, db_path, PHONE, "10004512", 30)
    assert "Revisa tu reporte" in out[0] and "Refrigerador vertical 2 puertas" in out[0]
    out = await say(rt, db_path, PHONE, "Corregir", 40, choice_id="confirmar_no")
    assert session_state(db_path, PHONE)[0] == "CORRIGE_REPORTE" and "Qué dato corrijo" in out[0]
    out = await say(rt, db_path, PHONE, "20007781", 50)  # a vehicle's code is not a refrigerator
    assert "No encontré el código SAP 20007781" in out[0] and "1 de 3" in out[0]  # counted since the last found
    out = await say(rt, db_path, PHONE, "no sé", 60)
    assert "No vi un código" in out[0] and "2 de 3" in out[0]
    out = await say(rt, db_path, PHONE, "123", 70)
    assert "3 intentos" in out[0] and "tienda" in out[0]  # no dead end: look it up by store instead
    assert session_state(db_path, PHONE)[0] == "REFRI_ESPERA_TIENDA"
    assert query(db_path, "SELECT COUNT(*) FROM Reportes") == [(0,)]


async def test_cancel_anywhere_and_non_text_messages(rt: Runtime, db_path: Path) -> None:
    await say(rt, db_path, PHONE, "el camión no arranca", 1)
    assert session_state(db_path, PHONE)[0] == "VEHICULO_ESPERA_EMPLEADO"
    out = await say(rt, db_path, PHONE, "Cancelar", 20)
    assert "descarté el reporte" in out[0]
    assert session_state(db_path, PHONE)[0] == "INICIO"
    from bot.messages import InboundMessage, MessageKind

    image = InboundMessage("wamid.IMG1", PHONE, MessageKind.IMAGE, 30, phone=PHONE, media_id="m1")
    put_in_inbox(db_path, image)
    await rt.drain.drain(PHONE, time.monotonic() + 10)
    assert "1 foto" in replies(db_path, PHONE)[-1]  # kept as evidence for the report to come
    assert query(db_path, "SELECT MediaId, Tipo FROM Evidencias") == [("m1", "image")]
    reaction = InboundMessage("wamid.REA1", PHONE, MessageKind.REACTION, 40, phone=PHONE, text="👍")
    before = len(replies(db_path, PHONE))
    put_in_inbox(db_path, reaction)
    await rt.drain.drain(PHONE, time.monotonic() + 10)
    assert len(replies(db_path, PHONE)) == before  # a reaction gets no reply but is handled
    assert query(db_path, "SELECT Estado FROM MensajesProcesados WHERE MessageId = 'wamid.REA1'") == [("procesado",)]


async def test_username_only_user_files_a_report(rt: Runtime, db_path: Path) -> None:
    bsuid = "MX.8812093347712650"
    for ts, body in enumerate(["Hola, la nevera de la tienda no enfría", "10004512", "sí"]):
        put_in_inbox(db_path, text_message(bsuid, body, 10 * ts, bsuid=bsuid))  # sent apart: three turns
    await rt.drain.drain(bsuid, time.monotonic() + 30)
    assert session_state(db_path, bsuid)[0] == "FINALIZADO"
    assert query(db_path, "SELECT COUNT(*) FROM Reportes WHERE Telefono = ?", bsuid) == [(1,)]
    assert "RPT-" in replies(db_path, bsuid)[-1]


async def test_pending_messages_are_handled_in_whatsapp_timestamp_order(rt: Runtime, db_path: Path) -> None:
    script = ["Hola, el refrigerador no enfría", "10004512", "sí"]
    messages = [text_message(PHONE, body, 1000 + 10 * i) for i, body in enumerate(script)]
    for msg in reversed(messages):  # arrive newest first
        put_in_inbox(db_path, msg)
    await rt.drain.drain(PHONE, time.monotonic() + 30)
    handled = query(db_path, "SELECT MessageId FROM HistorialSesiones ORDER BY Id")
    assert [h[0] for h in handled] == [m.wamid for m in messages]
    assert session_state(db_path, PHONE)[0] == "FINALIZADO"


async def test_busy_lease_leaves_messages_to_the_holder(rt: Runtime, db_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    holder = await acquire_lease(rt.db, PHONE, "other-instance", 30_000, system_clock())
    assert holder is not None
    put_in_inbox(db_path, text_message(PHONE, "hola", 1))
    assert await rt.drain.drain(PHONE, time.monotonic() + 5) == 0
    assert "THREAD_LOCK_BUSY" in caplog.text
    assert query(db_path, "SELECT COUNT(*) FROM MensajesProcesados WHERE Estado = 'pendiente'") == [(1,)]
    assert await release_lease(rt.db, holder)
    assert await rt.drain.drain(PHONE, time.monotonic() + 5) == 1


async def test_lease_contract(any_db) -> None:
    now = system_clock()
    a = await acquire_lease(any_db, "k1", "a", 1_000, now)
    assert a is not None and a.took_over_from is None
    assert await acquire_lease(any_db, "k1", "b", 1_000, now + 10) is None
    assert await extend_lease(any_db, a, 1_000, now + 500) is not None
    fake = type(a)(a.key, "b", a.token, a.expires_at_ms)
    assert await extend_lease(any_db, fake, 1_000, now) is None  # only the owner extends
    assert not await release_lease(any_db, fake)  # ... or releases
    # After expiry another owner takes over, with a bigger fencing token.
    b = await acquire_lease(any_db, "k1", "b", 1_000, now + 5_000)
    assert b is not None and b.token > a.token and b.took_over_from == "a"
    assert await extend_lease(any_db, a, 1_000, now + 5_001) is None
    assert not await release_lease(any_db, a)
    assert await release_lease(any_db, b)
    c = await acquire_lease(any_db, "k1", "c", 1_000, now + 5_002)
    assert c is not None and c.token > b.token and c.took_over_from is None
    info = await get_lease(any_db, "k1")
    assert info is not None and info.owner == "c" and info.token == c.token


async def test_stale_version_write_raises_and_retry_succeeds(rt: Runtime, db_path: Path, caplog) -> None:
    await say(rt, db_path, PHONE, "hola", 1)
    stale = await get_session_with_version(rt.db, PHONE)
    fresh_write = TransitionWrite(PHONE, stale.version, stale.state, "INICIO", {}, None, "BOT", "otra instancia",
                                  system_clock())
    await commit_transition(rt.db, fresh_write, None)
    with pytest.raises(ConcurrencyError) as info:
        await commit_transition(rt.db, fresh_write, None)  # same expected version: now stale
    assert info.value.expected_version == stale.version and info.value.phone == PHONE
    assert session_state(db_path, PHONE) == ("INICIO", stale.version + 1)

    # The engine's retry path: a concurrent writer bumps the version between read and commit.
    caplog.set_level(logging.WARNING)
    put_in_inbox(db_path, text_message(PHONE, "refri", 2))
    row_id = query(db_path, "SELECT Id FROM MensajesProcesados WHERE Estado = 'pendiente'")[0][0]
    original = rt.db.write
    bumped = []

    async def racing_write(fn):
        # Another writer wins just before the engine's first commit: after the engine read the session
        # (the gathered writes before it must not trigger the race, or the read could see the bump).
        if not bumped and "commit_transition" in getattr(fn, "__qualname__", ""):
            bumped.append(True)
            current = await get_session_with_version(rt.db, PHONE)
            await original(lambda tx: tx.execute("session_update_versioned", {
                "telefono": PHONE, "estado_sesion": current.state, "datos": "{}", "equipo_id": None,
                "ahora": system_clock(), "version_esperada": current.version}))
        return await original(fn)

    from bot.messages import InboundMessage

    payload = query(db_path, "SELECT Payload FROM MensajesProcesados WHERE Id = ?", row_id)[0][0]
    ai = rt.intent
    extractions: list[str] = []
    real_extract = ai.extract_structured_data

    async def counting_extract(text: str):  # type: ignore[no-untyped-def]
        extractions.append(text)
        return await real_extract(text)

    rt.db.write = racing_write  # type: ignore[method-assign]
    ai.extract_structured_data = counting_extract  # type: ignore[method-assign]
    try:
        handled = await rt.engine.handle_turn([(row_id, InboundMessage.from_json(payload))], None)
    finally:
        rt.db.write = original  # type: ignore[method-assign]
        ai.extract_structured_data = real_extract  # type: ignore[method-assign]
    assert handled.transition.state.value == "REFRI_ESPERA_SAP" and bumped
    assert "[ConcurrencyRetry] updateSession(*********5678) - Intento 1/3 falló, reintentando en" in caplog.text
    # The retry redid the decision and the commit, not the (paid) AI call: one extraction for the message.
    assert extractions == ["refri"]


async def test_write_under_a_lost_lease_commits_nothing(rt: Runtime, db_path: Path) -> None:
    put_in_inbox(db_path, text_message(PHONE, "hola", 1))
    now = system_clock()
    mine = await acquire_lease(rt.db, PHONE, "me", 100, now)
    assert mine is not None
    thief = await acquire_lease(rt.db, PHONE, "thief", 30_000, now + 200)  # mine expired, taken over
    assert thief is not None
    row_id, payload = query(db_path, "SELECT Id, Payload FROM MensajesProcesados")[0]
    from bot.messages import InboundMessage

    with pytest.raises(LeaseLost):
        await rt.engine.handle_turn([(row_id, InboundMessage.from_json(payload))], mine)
    assert session_state(db_path, PHONE) is None
    assert query(db_path, "SELECT Estado FROM MensajesProcesados") == [("pendiente",)]
    assert query(db_path, "SELECT COUNT(*) FROM ColaEnvios") == [(0,)]


async def test_sweeper_hands_off_stalled_conversations_and_expires_idle_sessions(db_path: Path) -> None:
    rt = build_runtime(load_settings(base_env(db_path, SESSION_IDLE_MINUTES="1")), handoff=worker_queue())
    try:
        put_in_inbox(db_path, text_message(PHONE, "el refri no enfría", 1))
        async with serving_worker(rt) as queue:
            assert (await rt.sweeper.sweep()).conversations == 0  # too young: its hand-off is on the way
            query(db_path, "UPDATE MensajesProcesados SET RecibidoEn = RecibidoEn - 60000")
            result = await rt.sweeper.sweep()
            assert (result.conversations, result.handed_off) == (1, 1)
            await settle(queue)
        assert session_state(db_path, PHONE)[0] == "REFRI_ESPERA_SAP"
        query(db_path, "UPDATE SesionesChat SET UltimaActividad = UltimaActividad - 120000")
        result = await rt.sweeper.sweep()
        assert result.expired == 1  # one reminder; the draft is kept
        assert session_state(db_path, PHONE)[0] == "REFRI_ESPERA_SAP"
        assert "¿Seguimos con tu reporte?" in replies(db_path, PHONE)[-1]
        assert query(db_path, "SELECT Origen FROM HistorialSesiones ORDER BY Id DESC LIMIT 1") == [("SISTEMA",)]
        assert (await rt.sweeper.sweep()).expired == 0  # the reminder moved its last activity
        sent = len(replies(db_path, PHONE))
        query(db_path, "UPDATE SesionesChat SET UltimaActividad = UltimaActividad - 120000")
        assert (await rt.sweeper.sweep()).expired == 1  # still silent: no second reminder
        assert len(replies(db_path, PHONE)) == sent and session_state(db_path, PHONE)[0] == "REFRI_ESPERA_SAP"
        query(db_path, "UPDATE SesionesChat SET UltimaActividad = UltimaActividad - 90000000, DatosTemp ="
                       " json_set(DatosTemp, '$.ultimo_mensaje_en', 0)")
        assert (await rt.sweeper.sweep()).expired == 1  # a day without an answer: dropped silently
        assert session_state(db_path, PHONE)[0] == "INICIO" and len(replies(db_path, PHONE)) == sent
    finally:
        await rt.aclose()


async def test_different_phones_drain_in_parallel(rt: Runtime, db_path: Path) -> None:
    phones = [f"52155000{i:05d}" for i in range(20)]
    # Each phone its own vehicle: one equipment for all would meet the duplicate check instead.
    scripts = {p: ["el camión no arranca, empleado 48213", f"placa XYZ-{n:03d}-A", "sí"] for n, p in enumerate(phones)}
    deliveries = [text_message(p, body, 10 + 10 * i) for p in phones for i, body in enumerate(scripts[p])]
    random.Random(7).shuffle(deliveries)
    for msg in sorted(deliveries, key=lambda m: m.timestamp):
        put_in_inbox(db_path, msg)
    deadline = time.monotonic() + 60
    await asyncio.gather(*(rt.drain.drain(phone, deadline) for phone in phones))
    assert query(db_path, "SELECT COUNT(*) FROM Reportes") == [(20,)]
    assert query(db_path, "SELECT COUNT(DISTINCT Telefono) FROM SesionesChat WHERE Estado = 'FINALIZADO'") == [(20,)]
