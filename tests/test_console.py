"""The local chat console without a browser: Meta-shaped signed payloads, its HTTP API over real loopback,
the fake Graph API it mounts, and the read-only state queries on a real SQLite database."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot.runtime import Runtime
from core.settings import load_settings
from core.storage.inspection import list_conversations, read_conversation_state
from core.storage.sqlite import SqliteDatabase
from local_host.console import CONSOLE_KEY, loopback_base, mount_console, points_at_fake_graph
from local_host.meta_payloads import (
    PayloadError,
    bsuid_for_phone,
    button_reply,
    list_reply,
    parse_identity,
    signed,
    text_message,
    webhook_body,
)
from tests.conftest import APP_SECRET, FIXTURES, base_env, free_port
from tests.console_receiver import ConsoleServer, build_console_app, start_site
from tests.test_local_host import start_host, wait_ready

PHONE = "5215512345678"
BSUID_ONLY = "MX.8812093347712650"


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and types, not contents."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def valid_signature(raw: bytes, header: str) -> bool:
    return hmac.compare_digest(header, "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest())


# -- payloads -------------------------------------------------------------------------------------


def test_text_payload_has_the_shape_of_metas_text_fixture() -> None:
    who = parse_identity("+52 1 55 1234 5678", "Ana López")
    assert who.phone == PHONE and who.key == PHONE and who.bsuid == bsuid_for_phone(PHONE)
    before = int(time.time())
    wamid, body = webhook_body(who, text_message("Hola, el refrigerador no enfría"), phone_number_id="106540352242922")
    assert shape(body) == shape(fixture("text_message.json"))
    msg = body["entry"][0]["changes"][0]["value"]["messages"][0]
    contact = body["entry"][0]["changes"][0]["value"]["contacts"][0]
    assert msg["id"] == wamid and wamid.startswith("wamid.")
    assert msg["from"] == contact["wa_id"] == PHONE
    assert msg["from_user_id"] == contact["user_id"] == who.bsuid
    assert before <= int(msg["timestamp"]) <= int(time.time()) + 1
    assert msg["text"]["body"] == "Hola, el refrigerador no enfría"


def test_username_only_user_carries_no_phone_anywhere() -> None:
    who = parse_identity(BSUID_ONLY, "Marta")
    assert who.phone is None and who.key == BSUID_ONLY
    _, body = webhook_body(who, text_message("Hola, la nevera no enfría"), phone_number_id="106540352242922")
    assert shape(body) == shape(fixture("username_only_message.json"))
    assert PHONE not in json.dumps(body) and '"from"' not in json.dumps(body) and "wa_id" not in json.dumps(body)


def test_button_and_list_replies_have_the_shape_of_metas_fixtures() -> None:
    who = parse_identity(PHONE, "Ana López")
    _, button = webhook_body(who, button_reply("confirmar_si", "Sí", "wamid.OUT0003"), phone_number_id="1")
    expected = fixture("interactive_button_reply.json")
    # Since 2026 every message also carries the BSUID; the fixture predates that field.
    expected["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] = "MX.0"
    expected["entry"][0]["changes"][0]["value"]["messages"][0]["from_user_id"] = "MX.0"
    assert shape(button) == shape(expected)
    msg = button["entry"][0]["changes"][0]["value"]["messages"][0]
    assert msg["interactive"] == {"type": "button_reply", "button_reply": {"id": "confirmar_si", "title": "Sí"}}
    assert msg["context"]["id"] == "wamid.OUT0003"

    _, lst = webhook_body(
        who, list_reply("tipo_vehiculo", "Vehículo", "Reportar una falla de vehículo"), phone_number_id="1"
    )
    expected = fixture("interactive_list_reply.json")
    expected["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] = "MX.0"
    expected["entry"][0]["changes"][0]["value"]["messages"][0]["from_user_id"] = "MX.0"
    assert shape(lst) == shape(expected)


def test_signature_is_hmac_sha256_of_the_exact_bytes() -> None:
    wamid, body = webhook_body(parse_identity(PHONE), text_message("ñandú ☃"), phone_number_id="1")
    payload = signed(wamid, body, APP_SECRET)
    assert valid_signature(payload.body, payload.signature)
    assert not valid_signature(payload.body + b" ", payload.signature)
    assert json.loads(payload.body) == body


@pytest.mark.parametrize("user", ["", "12", "abc", "+52 55 12", "mx.123", "MX.", "5215512345678; drop"])
def test_bad_users_are_refused(user: str) -> None:
    with pytest.raises(PayloadError):
        parse_identity(user)


def test_empty_messages_and_choices_are_refused() -> None:
    for make in (lambda: text_message("  "), lambda: text_message("x" * 4097), lambda: button_reply("", "Sí")):
        with pytest.raises(PayloadError):
            make()


def test_fake_graph_is_served_only_when_settings_point_at_this_host() -> None:
    own = "http://127.0.0.1:7071"
    assert points_at_fake_graph("http://127.0.0.1:7071/_fake_graph/v23.0", own)
    assert points_at_fake_graph("http://localhost:7071/_fake_graph/v23.0", loopback_base("http://0.0.0.0:7071"))
    assert not points_at_fake_graph("http://127.0.0.1:9090/_fake_graph/v23.0", own)
    assert not points_at_fake_graph("https://graph.facebook.com/v23.0", own)
    assert not points_at_fake_graph("http://127.0.0.1:7071/_fake_graphs/v23.0", own)


# -- state queries --------------------------------------------------------------------------------


def seed_conversation(db_path: Path, key: str, now_ms: int) -> None:
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute(
            "INSERT INTO SesionesChat (Telefono, Estado, DatosTemp, Version, UltimaActividad) VALUES (?, ?, ?, ?, ?)",
            (key, "REFRI_CONFIRMA_EQUIPO", '{"codigo_sap": "10004512"}', 3, now_ms),
        )
        conn.execute(
            "INSERT INTO BloqueosConversacion (Clave, Propietario, ExpiraEn, Token, AdquiridoEn)"
            " VALUES (?, ?, ?, ?, ?)",
            (f"conv:{key}", "host-1:pid-42", now_ms + 30_000, 7, now_ms),
        )
        # A lease of another phone whose key merely ends with the same digits is not this one's.
        conn.execute(
            "INSERT INTO BloqueosConversacion (Clave, Propietario, ExpiraEn, Token) VALUES (?, ?, ?, ?)",
            (f"99{key}", "otro", now_ms + 30_000, 1),
        )
        for i, state in enumerate(("procesado", "pendiente", "error", "pendiente")):
            conn.execute(
                "INSERT INTO MensajesProcesados"
                " (MessageId, Telefono, Tipo, Estado, Reintentos, WaTimestamp, RecibidoEn)"
                " VALUES (?, ?, 'text', ?, ?, ?, ?)",
                (f"wamid.T{i}", key, state, i, 1_763_880_000 + (10 - i), now_ms + i),
            )
        for state in ("enviado", "enviado", "pendiente", "incierto"):
            conn.execute(
                "INSERT INTO ColaEnvios (Destinatario, Contenido, Estado, MessageIdOrigen)"
                " VALUES (?, '{}', ?, 'wamid.T0')",
                (key, state),
            )
        conn.execute(
            "INSERT INTO ColaEnvios (Destinatario, Contenido, Estado) VALUES ('5210000000000', '{}', 'error')"
        )
        conn.execute(
            "INSERT INTO Reportes (Numero, Telefono, TipoEquipo, Descripcion, MensajeOrigen) VALUES (?, ?, ?, ?, ?)",
            ("RPT-000001", key, "REFRIGERADOR", "no enfría", "wamid.T3"),
        )


async def test_state_of_one_conversation_in_one_read(sqlite_db: SqliteDatabase, db_path: Path) -> None:
    now = int(time.time() * 1000)
    seed_conversation(db_path, PHONE, now)
    state = await read_conversation_state(sqlite_db, PHONE)
    assert state.session is not None
    assert (state.session.estado, state.session.version) == ("REFRI_CONFIRMA_EQUIPO", 3)
    assert json.loads(state.session.datos_temp) == {"codigo_sap": "10004512"}
    assert [(lease.clave, lease.token, lease.propietario) for lease in state.leases] == [
        (f"conv:{PHONE}", 7, "host-1:pid-42")
    ]
    # Open rows oldest WhatsApp timestamp first: T3 (ts 7) before T2 (ts 8) before T1 (ts 9).
    assert [(r.message_id, r.estado) for r in state.inbox_open] == [
        ("wamid.T3", "pendiente"), ("wamid.T2", "error"), ("wamid.T1", "pendiente")
    ]
    assert [r.message_id for r in state.inbox_recent] == ["wamid.T3", "wamid.T2", "wamid.T1", "wamid.T0"]
    assert state.inbox_recent[0].reintentos == 3
    assert state.outbox_counts == {"enviado": 2, "pendiente": 1, "incierto": 1}
    assert [r.estado for r in state.outbox_recent] == ["incierto", "pendiente", "enviado", "enviado"]
    assert [(r.numero, r.tipo_equipo) for r in state.reports] == [("RPT-000001", "REFRIGERADOR")]

    empty = await read_conversation_state(sqlite_db, "5219999999999")
    assert empty.session is None and not empty.leases and not empty.inbox_recent and empty.outbox_counts == {}
    assert [c.telefono for c in await list_conversations(sqlite_db)] == [PHONE]


# -- the console's HTTP API over real loopback ----------------------------------------------------


@pytest.fixture
async def console(db_path: Path) -> AsyncIterator[ConsoleServer]:
    port = free_port()
    server = build_console_app(db_path, port, delay_s=0.2)
    runner = await start_site(server, port)
    yield server
    await runner.cleanup()
    server.runtime.db.close()


async def test_send_posts_a_signed_meta_payload_to_the_webhook(console: ConsoleServer) -> None:
    async with httpx.AsyncClient(base_url=console.base_url, timeout=20) as client:
        r = await client.post("/_console/api/send", json={"user": PHONE, "name": "Ana", "text": "Hola"})
        assert r.status_code == 200, r.text
        delivery = r.json()
        assert delivery["status"] == 200 and delivery["error"] is None and not delivery["redelivery"]
        [got] = console.receiver.received
        assert got.valid
        assert got.message["id"] == delivery["wamid"] and got.message["text"] == {"body": "Hola"}
        assert got.body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] == "106540352242922"

        r = await client.post(
            "/_console/api/send",
            json={"user": PHONE, "reply": {"type": "list_reply", "id": "tipo_refri", "title": "Refrigerador",
                                           "context": "wamid.FAKE1"}},
        )
        assert r.status_code == 200
        reply = console.receiver.received[-1]
        assert reply.valid and reply.message["interactive"]["list_reply"]["id"] == "tipo_refri"
        assert reply.message["context"]["id"] == "wamid.FAKE1"
        assert reply.message["id"] != got.message["id"]


async def test_resend_delivers_the_same_bytes_wamid_and_signature(console: ConsoleServer) -> None:
    async with httpx.AsyncClient(base_url=console.base_url, timeout=20) as client:
        r = await client.post("/_console/api/resend", json={"user": PHONE})
        assert r.status_code == 400 and "no hay un mensaje anterior" in r.json()["error"]
        assert console.receiver.received == []
        first = (await client.post("/_console/api/send", json={"user": PHONE, "text": "sí"})).json()
        again = (await client.post("/_console/api/resend", json={"user": PHONE})).json()
    assert again["wamid"] == first["wamid"] and again["redelivery"] and again["status"] == 200
    one, two = console.receiver.received
    assert one.raw == two.raw and one.signature == two.signature and two.valid


async def test_burst_fires_distinct_messages_at_once(console: ConsoleServer) -> None:
    async with httpx.AsyncClient(base_url=console.base_url, timeout=20) as client:
        r = await client.post("/_console/api/burst", json={"user": BSUID_ONLY, "name": "Marta"})
        assert r.status_code == 200
        deliveries = r.json()
    assert len(deliveries) == 5 and all(d["status"] == 200 and d["burst"] for d in deliveries)
    received = console.receiver.received
    assert len({x.message["id"] for x in received}) == 5 and all(x.valid for x in received)
    assert sorted(x.message["text"]["body"] for x in received) == [f"Mensaje {i} de 5" for i in range(1, 6)]
    assert all(x.message["from_user_id"] == BSUID_ONLY and "from" not in x.message for x in received)
    # The receiver holds each request 0.2 s: deliveries sent one after another would never overlap.
    assert console.receiver.max_in_flight >= 2


async def test_bad_input_is_refused_and_nothing_is_posted(console: ConsoleServer) -> None:
    async with httpx.AsyncClient(base_url=console.base_url, timeout=20) as client:
        for body in (
            {"user": "12", "text": "hola"},
            {"user": PHONE, "text": "   "},
            {"user": PHONE, "reply": {"type": "raro", "id": "x", "title": "y"}},
            {"user": PHONE, "reply": "sí"},
        ):
            r = await client.post("/_console/api/send", json=body)
            assert r.status_code == 400 and r.json()["error"], body
        r = await client.post("/_console/api/send", content=b"{no json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        r = await client.post("/_console/api/burst", json={"user": PHONE, "count": 500})
        assert r.status_code == 400
        r = await client.get("/_console/api/state", params={"user": "nadie"})
        assert r.status_code == 400
    assert console.receiver.received == []


async def test_thread_merges_deliveries_with_what_the_fake_graph_recorded(console: ConsoleServer) -> None:
    console.receiver.answer = True
    async with httpx.AsyncClient(base_url=console.base_url, timeout=20) as client:
        await client.post("/_console/api/send", json={"user": PHONE, "text": "Hola"})
        await client.post("/_console/api/send", json={"user": BSUID_ONLY, "text": "Hola también"})
        # The fake Graph API checks the bearer token like the real one.
        unsigned = {"to": PHONE, "type": "text", "text": {"body": "x"}}
        r = await client.post("/_fake_graph/v23.0/1/messages", json=unsigned)
        assert r.status_code == 401
        state = (await client.get("/_console/api/state", params={"user": PHONE})).json()
        bsuid_state = (await client.get("/_console/api/state", params={"user": BSUID_ONLY})).json()
        page = await client.get("/")
        config = (await client.get("/_console/api/config")).json()
    assert [item["side"] for item in state["thread"]] == ["user", "bot"]
    bot = state["thread"][1]["payload"]
    assert bot["to"] == PHONE and bot["interactive"]["body"]["text"] == "Recibido: Hola"
    assert [item["side"] for item in bsuid_state["thread"]] == ["user", "bot"]
    assert bsuid_state["thread"][1]["payload"]["recipient"] == BSUID_ONLY
    assert state["state"]["session"] is None and isinstance(state["now_ms"], int)
    assert page.status_code == 200 and "Enviar dos veces" in page.text and "Ráfaga de 5" in page.text
    assert config["fake_graph"] is True and config["webhook_url"] == console.base_url + "/api/whatsapp/webhook"
    assert len(console.app[CONSOLE_KEY].fake_graph.sent) == 2  # type: ignore[union-attr]


def test_fake_graph_is_mounted_only_when_replies_go_to_this_host(db_path: Path) -> None:
    settings = load_settings(base_env(db_path, WHATSAPP_API_BASE_URL="http://127.0.0.1:9/_fake_graph/v23.0"))
    runtime = Runtime(settings=settings, db=SqliteDatabase(str(db_path), pool_size=1))
    try:
        elsewhere, here = web.Application(), web.Application()
        assert mount_console(elsewhere, runtime, "http://127.0.0.1:7071") == "http://127.0.0.1:7071/"
        assert elsewhere[CONSOLE_KEY].fake_graph is None
        assert not any(r.canonical.startswith("/_fake_graph") for r in elsewhere.router.resources())
        mount_console(here, runtime, "http://127.0.0.1:9")
        assert here[CONSOLE_KEY].fake_graph is not None
        # On a bind other machines can reach, the fake Graph API is served but the signing page is not.
        exposed = web.Application()
        assert mount_console(exposed, runtime, "http://0.0.0.0:9") is None
        assert CONSOLE_KEY not in exposed
        canonicals = [r.canonical for r in exposed.router.resources()]
        assert "/_fake_graph" in canonicals and "/" not in canonicals
    finally:
        runtime.db.close()


def test_local_host_serves_the_console_and_its_fake_graph(tmp_path: Path) -> None:
    port = free_port()
    proc = start_host(
        tmp_path / "bot.sqlite3", port, WHATSAPP_API_BASE_URL=f"http://127.0.0.1:{port}/_fake_graph/v23.0"
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_ready(base + "/_console/api/config", proc).json()["fake_graph"] is True
        page = httpx.get(base + "/")
        assert page.status_code == 200 and "Enviar dos veces" in page.text
        assert httpx.get(base + "/_console/static/console.js").status_code == 200
        send = httpx.post(
            base + "/_fake_graph/v23.0/106540352242922/messages",
            json={"messaging_product": "whatsapp", "to": PHONE, "type": "text", "text": {"body": "¡Hola!"}},
            headers={"Authorization": "Bearer test-access-token"},
        )
        assert send.status_code == 200
        thread = httpx.get(base + "/_console/api/state", params={"user": PHONE}).json()["thread"]
        assert [(t["side"], t["payload"]["text"]["body"]) for t in thread] == [("bot", "¡Hola!")]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert f"consola de chat: {base}/" in out
