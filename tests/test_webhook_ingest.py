"""The webhook handler in-process over a real SQLite runtime: every fixture lands as expected, rejects
write nothing, limits hold, redeliveries are counted, statuses move outbound rows forward only."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from bot.messages import InboundMessage
from bot.runtime import Runtime, build_runtime
from bot.webhook.signature import sign_body
from core.handoff import HANDOFF_QUEUE, HandoffError
from core.metrics import duplicate_deliveries_total
from core.settings import Settings, load_settings
from core.telemetry import mask_wamid
from tests.conftest import APP_SECRET, FIXTURES, VERIFY_TOKEN, base_env
from tests.webhook_helpers import (
    add_sent_outbound,
    encode,
    ledger,
    outbound,
    signed_headers,
    text_payload,
)

ANA, LUIS, MARTA = "5215512345678", "5215587654321", "MX.8812093347712650"
TEXT_WAMID = "wamid.HBgNNTIxNTUxMjM0NTY3OBUCABIYFDNBMDFBQUYzQjc2RjZBNkQ2QjlBAA=="

# fixture -> rows expected in MensajesProcesados: (MessageId, Tipo, Telefono, Estado, checks on the payload)
EXPECTED: dict[str, list[tuple[str, str, str | None, str, dict[str, Any]]]] = {
    "text_message.json": [(TEXT_WAMID, "text", ANA, "pendiente", {
        "phone": ANA, "bsuid": "MX.1502576394655843", "text": "Hola, el refrigerador no enfría",
        "contact_name": "Ana López", "timestamp": 1763880000})],
    "username_only_message.json": [("wamid.USRNAME0001", "text", MARTA, "pendiente", {
        "phone": None, "bsuid": MARTA, "text": "Hola, la nevera de la tienda no enfría", "contact_name": "Marta"})],
    "batch_two_users.json": [
        ("wamid.BATCH0001", "text", ANA, "pendiente", {"text": "10004512", "timestamp": 1763880001}),
        ("wamid.BATCH0002", "text", ANA, "pendiente", {"text": "sí", "timestamp": 1763880002}),
        ("wamid.BATCH0003", "text", LUIS, "pendiente", {"text": "Quiero reportar un vehículo",
                                                         "contact_name": "Luis Pérez"}),
    ],
    "statuses.json": [
        ("wamid.OUT0001:sent", "status", ANA, "procesado", {"status": "sent"}),
        ("wamid.OUT0001:delivered", "status", ANA, "procesado", {"status": "delivered"}),
        ("wamid.OUT0001:read", "status", ANA, "procesado", {"status": "read"}),
    ],
    "status_failed.json": [("wamid.OUT0002:failed", "status", ANA, "procesado", {
        "status": "failed", "error_code": 131026, "error_title": "Message undeliverable"})],
    "interactive_button_reply.json": [("wamid.BTN0001", "button_reply", ANA, "pendiente", {
        "text": "Sí", "choice_id": "confirmar_si"})],
    "interactive_list_reply.json": [("wamid.LST0001", "list_reply", ANA, "pendiente", {
        "text": "Vehículo", "choice_id": "tipo_vehiculo"})],
    "image_message.json": [("wamid.IMG0001", "image", ANA, "pendiente", {
        "text": "Así está la puerta", "media_id": "1234567890123456"})],
    "audio_message.json": [("wamid.AUD0001", "audio", ANA, "pendiente", {"text": "", "media_id": "2234567890123456"})],
    "location_message.json": [("wamid.LOC0001", "location", ANA, "pendiente", {
        "latitude": 19.4326, "longitude": -99.1332})],
    "reaction_message.json": [("wamid.RCT0001", "reaction", ANA, "pendiente", {"text": "👍"})],
    "unsupported_message.json": [("wamid.UNS0001", "unsupported", ANA, "pendiente", {})],
    "value_errors.json": [],
    "non_message_field.json": [],
}


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.json")) == sorted(EXPECTED)


class RecordingQueue:
    """A hand-off queue that records what the webhook queues (or refuses it, like a storage outage)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.fail = False

    async def enqueue(self, keys: Iterable[str]) -> None:
        if self.fail:
            raise HandoffError("cola no disponible")
        self.calls.append(list(keys))


    async def aclose(self) -> None:
        pass


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
async def rt(settings: Settings, queue: RecordingQueue) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings, handoff=queue)
    yield runtime
    await runtime.aclose()


@pytest.fixture
def drained(queue: RecordingQueue) -> list[list[str]]:
    """The conversation keys the webhook handed to the worker queue, one list per POST."""
    return queue.calls


async def post(rt: Runtime, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
    return await rt.webhook.post(signed_headers(body) if headers is None else headers, body)


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_fixture_lands_as_expected(name: str, rt: Runtime, db_path: Path, drained: list[list[str]]) -> None:
    body = (FIXTURES / name).read_bytes()
    assert await post(rt, body) == (200, "EVENT_RECEIVED")
    rows = ledger(db_path)
    expected = EXPECTED[name]
    assert [(r["MessageId"], r["Tipo"], r["Telefono"], r["Estado"]) for r in rows] == [e[:4] for e in expected]
    for row, (*_, checks) in zip(rows, expected, strict=True):
        payload = json.loads(row["Payload"])
        for key, value in checks.items():
            assert payload[key] == value, (name, key)
        assert row["Reintentos"] == 0 and row["UltimoReintento"] is None and row["RecibidoEn"] > 0
        if row["Tipo"] != "status":
            msg = InboundMessage.from_json(row["Payload"])
            assert msg.wamid == row["MessageId"] and msg.conversation_key == row["Telefono"]
            assert row["WaTimestamp"] == msg.timestamp > 1_700_000_000
            assert row["ProcesadoEn"] is None
        else:
            assert row["ProcesadoEn"] is not None
    new_keys = list(dict.fromkeys(e[2] for e in expected if e[1] != "status"))
    assert drained == ([new_keys] if new_keys else [])

    # A redelivery of the whole POST: still 200, no new row, every row counted once more. The messages
    # are still pending (no worker ran), so their conversations are handed off again: a lost hand-off
    # heals on Meta's next delivery.
    assert await post(rt, body) == (200, "EVENT_RECEIVED")
    again = ledger(db_path)
    assert [r["MessageId"] for r in again] == [r["MessageId"] for r in rows]
    assert all(r["Reintentos"] == 1 and r["UltimoReintento"] is not None for r in again)
    assert all(r["Estado"] == e[3] for r, e in zip(again, expected, strict=True))
    assert drained == ([new_keys, new_keys] if new_keys else [])


async def test_username_only_user_is_keyed_by_bsuid(rt: Runtime, db_path: Path, drained: list[list[str]]) -> None:
    await post(rt, (FIXTURES / "username_only_message.json").read_bytes())
    msg = InboundMessage.from_json(ledger(db_path)[0]["Payload"])
    assert msg.conversation_key == msg.recipient == MARTA and msg.phone is None
    assert drained == [[MARTA]]


async def test_duplicate_is_logged_and_counted(rt: Runtime, caplog: pytest.LogCaptureFixture,
                                               drained: list[list[str]]) -> None:
    caplog.set_level(logging.INFO)
    body = encode(text_payload("wamid.DUP1", ANA, "hola"))
    before = duplicate_deliveries_total._value.get()
    for _ in range(3):
        assert (await post(rt, body))[0] == 200
    assert duplicate_deliveries_total._value.get() - before == 2
    masked = mask_wamid("wamid.DUP1")
    assert f"Mensaje duplicado detectado (MERGE): {masked}, reintento #1" in caplog.text
    assert f"Mensaje duplicado detectado (MERGE): {masked}, reintento #2" in caplog.text


@pytest.mark.parametrize("text", [
    "", "It's \"quoted\" and 'single'", "'; DROP TABLE MensajesProcesados; --", "Robert'); DELETE FROM Reportes;--",
    "emoji 🧊🚚👍🏽 y acentos ñáéíóú", "línea1\nlínea2\ttab\\backslash", "\x00nul inside", "x" * 4096,
])
async def test_text_is_stored_intact(text: str, rt: Runtime, db_path: Path, drained: list[list[str]]) -> None:
    assert (await post(rt, encode(text_payload("wamid.T1", ANA, text))))[0] == 200
    (row,) = ledger(db_path)
    assert InboundMessage.from_json(row["Payload"]).text == text


async def test_statuses_move_outbound_rows_forward_only(rt: Runtime, db_path: Path) -> None:
    add_sent_outbound(db_path, "wamid.OUT0001")
    add_sent_outbound(db_path, "wamid.OUT0002", "delivered")
    statuses = json.loads((FIXTURES / "statuses.json").read_bytes())
    # Deliver read first, then sent and delivered late: the row must stay at `read`.
    items = statuses["entry"][0]["changes"][0]["value"]["statuses"]
    statuses["entry"][0]["changes"][0]["value"]["statuses"] = [items[2], items[0], items[1]]
    assert (await post(rt, encode(statuses)))[0] == 200
    assert (await post(rt, (FIXTURES / "status_failed.json").read_bytes()))[0] == 200
    first, second = outbound(db_path)
    assert first["EstadoEntrega"] == "read" and first["UltimoError"] is None
    assert second["EstadoEntrega"] == "failed" and "131026" in second["UltimoError"]
    assert "Message undeliverable" in second["UltimoError"]
    # A late `read` after `failed` does not resurrect it; a status for an unknown wamid changes nothing.
    late = json.loads((FIXTURES / "statuses.json").read_bytes())
    value = late["entry"][0]["changes"][0]["value"]
    value["statuses"] = [dict(value["statuses"][2], id="wamid.OUT0002"), dict(value["statuses"][0], id="wamid.NOPE")]
    assert (await post(rt, encode(late)))[0] == 200
    assert [r["EstadoEntrega"] for r in outbound(db_path)] == ["read", "failed"]
    assert len(ledger(db_path)) == 6


async def test_status_sequence_in_order(rt: Runtime, db_path: Path) -> None:
    add_sent_outbound(db_path, "wamid.OUT0001")
    payload = json.loads((FIXTURES / "statuses.json").read_bytes())
    value = payload["entry"][0]["changes"][0]["value"]
    seen = []
    for status in value["statuses"]:
        value["statuses"] = [status]
        assert (await post(rt, encode(payload)))[0] == 200
        seen.append(outbound(db_path)[0]["EstadoEntrega"])
    assert seen == ["sent", "delivered", "read"]


# -- rejections: nothing written ---------------------------------------------------------------

async def test_forged_signature_is_rejected(rt: Runtime, db_path: Path, drained: list[list[str]],
                                            caplog: pytest.LogCaptureFixture) -> None:
    body = (FIXTURES / "text_message.json").read_bytes()
    forged = {"X-Hub-Signature-256": sign_body("not-the-secret", body)}
    caplog.set_level(logging.WARNING)
    assert (await post(rt, body, forged))[0] == 401
    tampered = body.replace(b"no enfr", b"si enfr")
    assert (await post(rt, tampered, signed_headers(body)))[0] == 401
    assert (await post(rt, body, {"X-Hub-Signature-256": "sha256=" + "0" * 64}))[0] == 401
    assert (await post(rt, body, {"X-Hub-Signature-256": sign_body(APP_SECRET, body)[7:]}))[0] == 401  # no prefix
    assert (await post(rt, body, {"X-Hub-Signature-256": "sha256=ñandú"}))[0] == 401
    assert ledger(db_path) == [] and drained == []
    assert "refrigerador" not in caplog.text and "5215512345678" not in caplog.text
    assert "firma X-Hub-Signature-256 inválida" in caplog.text


async def test_missing_signature_is_rejected(rt: Runtime, db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    body = (FIXTURES / "batch_two_users.json").read_bytes()
    assert await post(rt, body, {"Content-Type": "application/json"}) == (401, "Unauthorized")
    assert ledger(db_path) == []
    assert "firma X-Hub-Signature-256 ausente" in caplog.text and "vehículo" not in caplog.text


async def test_signature_header_name_is_case_insensitive(rt: Runtime, db_path: Path,
                                                         drained: list[list[str]]) -> None:
    body = (FIXTURES / "audio_message.json").read_bytes()
    assert (await post(rt, body, {"x-hub-signature-256": sign_body(APP_SECRET, body)}))[0] == 200
    assert len(ledger(db_path)) == 1


async def test_oversized_body_is_refused_unread(rt: Runtime, db_path: Path) -> None:
    limit = rt.settings.webhook_max_body_bytes
    big = encode(text_payload("wamid.BIG", ANA, "x" * (limit + 10)))
    assert (await post(rt, big))[0] == 413
    # The declared length alone is enough (a host that streams the body can stop reading there).
    small = encode(text_payload("wamid.SMALL", ANA, "hola"))
    assert (await post(rt, small, {**signed_headers(small), "Content-Length": str(limit + 1)}))[0] == 413
    assert ledger(db_path) == []
    # A declared length that is not a plain number is ignored; the body itself decides.
    for declared in ("²", "12abc", "-5", " "):
        assert (await post(rt, small, {**signed_headers(small), "Content-Length": declared}))[0] == 200
    assert ledger(db_path)[0]["MessageId"] == "wamid.SMALL"


async def test_signed_non_json_is_400(rt: Runtime, db_path: Path) -> None:
    for body in (b"not json", b"", b"\xff\xfe\x00garbage", b'{"a": NaN}', b"[" * 100_000, b'{"a": 1'):
        assert (await post(rt, body))[0] == 400, body[:20]
    assert ledger(db_path) == []


@pytest.mark.parametrize("payload", [
    {}, [], 42, "text", None, {"object": "page", "entry": []}, {"object": "whatsapp_business_account"},
    {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": None}]}]},
    {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {
        "messages": [{"type": "text", "text": {"body": "no id"}, "from": ANA}, {"id": "wamid.NOFROM"}]}}]}]},
])
async def test_unknown_shape_is_acknowledged(payload: object, rt: Runtime, db_path: Path) -> None:
    assert await post(rt, encode(payload)) == (200, "EVENT_RECEIVED")
    assert ledger(db_path) == []


async def test_unknown_message_type_is_kept_as_unknown(rt: Runtime, db_path: Path, drained: list[list[str]],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    payload = text_payload("wamid.NEW1", ANA, "")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["type"] = "hologram"
    message["hologram"] = {"id": "h1"}
    assert (await post(rt, encode(payload)))[0] == 200
    (row,) = ledger(db_path)
    assert row["Tipo"] == "unknown" and row["Estado"] == "pendiente"
    assert "tipo de mensaje desconocido 'hologram'" in caplog.text


async def test_failed_handoff_still_answers_200(rt: Runtime, db_path: Path, queue: RecordingQueue,
                                                caplog: pytest.LogCaptureFixture) -> None:
    queue.fail = True
    assert (await post(rt, encode(text_payload("wamid.DR1", ANA, "hola"))))[0] == 200
    (row,) = ledger(db_path)
    assert row["Estado"] == "pendiente"  # the durable inbox keeps it for the redelivery or the sweep
    assert "HANDOFF_FALLIDO" in caplog.text and "origen=webhook conversaciones=1" in caplog.text
    # Meta's redelivery hands it off once the queue is back.
    queue.fail = False
    assert (await post(rt, encode(text_payload("wamid.DR1", ANA, "hola"))))[0] == 200
    assert queue.calls == [[ANA]]


async def test_an_already_handled_redelivery_is_not_handed_off(rt: Runtime, db_path: Path,
                                                              drained: list[list[str]]) -> None:
    body = encode(text_payload("wamid.DONE", ANA, "hola"))
    assert (await post(rt, body))[0] == 200
    import sqlite3

    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("UPDATE MensajesProcesados SET Estado = 'procesado' WHERE MessageId = 'wamid.DONE'")
    assert (await post(rt, body))[0] == 200
    assert drained == [[ANA]]


@pytest.mark.parametrize("connection", [
    "",  # not configured at all
    # A storage account that refuses connections (nothing listens on the discard port).
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Zm9v;"
    "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1",
])
async def test_azure_queue_unreachable_answers_200_and_logs(connection: str, db_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """The real SDK path: the ack does not depend on the storage account being up."""
    rt = build_runtime(load_settings(base_env(db_path, AzureWebJobsStorage=connection)))
    try:
        assert (await post(rt, encode(text_payload("wamid.AZ1", ANA, "hola"))))[0] == 200
    finally:
        await rt.aclose()
    assert ledger(db_path)[0]["Estado"] == "pendiente"
    assert "HANDOFF_FALLIDO" in caplog.text and "AccountKey" not in caplog.text


async def test_database_down_answers_503_so_meta_redelivers(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    rt = build_runtime(load_settings(base_env(tmp_path / "dir")))  # a directory is not a database
    try:
        body = encode(text_payload("wamid.DOWN", ANA, "hola"))
        assert (await post(rt, body))[0] == 503
    finally:
        await rt.aclose()


# -- verification handshake --------------------------------------------------------------------

async def test_verification_echoes_the_challenge(rt: Runtime) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    assert rt.webhook.verify(params) == (200, "1158201444")


@pytest.mark.parametrize("params", [
    {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
    {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN},
    {"hub.mode": "subscribe", "hub.verify_token": "tokén ñ", "hub.challenge": "1"},
    {},
])
async def test_verification_rejects(params: dict[str, str], rt: Runtime, db_path: Path) -> None:
    assert rt.webhook.verify(params) == (403, "Forbidden")
    assert ledger(db_path) == []


async def test_the_request_does_no_conversation_work(settings: Settings, db_path: Path) -> None:
    """No lease, no session, no reply inside the request: only the inbox row and the hand-off."""
    from local_host.queues import LocalQueue

    local = LocalQueue(HANDOFF_QUEUE)  # nobody consumes it in this test
    rt = build_runtime(settings, handoff=local)
    assert (await post(rt, encode(text_payload("wamid.SLOW", ANA, "hola, el refri no enfría"))))[0] == 200
    assert ledger(db_path)[0]["Estado"] == "pendiente"
    assert local.waiting() == [ANA]
    import sqlite3

    with closing(sqlite3.connect(db_path)) as conn, conn:
        for table in ("BloqueosConversacion", "SesionesChat", "ColaEnvios", "MensajesChat"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,), table
    await rt.aclose()


async def test_concurrent_posts_from_many_senders(rt: Runtime, db_path: Path, drained: list[list[str]]) -> None:
    bodies = [encode(text_payload(f"wamid.C{i % 30}", f"52155000000{i % 7:02d}", f"mensaje {i % 30}"))
              for i in range(90)]
    answers = await asyncio.gather(*(post(rt, b) for b in bodies))
    assert {a[0] for a in answers} == {200}
    rows = ledger(db_path)
    assert len(rows) == 30 and all(r["Reintentos"] == 2 for r in rows)
    # Every POST found its message still pending (no worker here), so every POST handed its sender off.
    assert sum(len(keys) for keys in drained) == 90


async def test_same_second_messages_keep_payload_order(rt: Runtime, db_path: Path, drained: list[list[str]]) -> None:
    """The inbox Id breaks WaTimestamp ties when draining, so it must follow the payload, not the wamid."""
    payload = text_payload("wamid.ZZZ", ANA, "primero")
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"].append(dict(value["messages"][0], id="wamid.AAA", text={"body": "segundo"}))
    assert (await post(rt, encode(payload)))[0] == 200
    assert [r["MessageId"] for r in ledger(db_path)] == ["wamid.ZZZ", "wamid.AAA"]


async def test_a_delivery_for_another_business_number_is_acknowledged_and_ignored(
    rt: Runtime, db_path: Path, drained: list[list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    from core.metrics import webhook_ignored_total

    before = webhook_ignored_total.labels(reason="numero_ajeno")._value.get()
    payload = text_payload("wamid.FOREIGN1", ANA, "Hola, el refrigerador no enfría")
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999999999999999"
    assert await post(rt, encode(payload)) == (200, "EVENT_RECEIVED")
    # Nothing at all: no ledger row, no hand-off, so no session, report or reply can follow.
    assert ledger(db_path) == [] and drained == []
    assert webhook_ignored_total.labels(reason="numero_ajeno")._value.get() - before == 1
    assert "que esta app no atiende" in caplog.text
    # Our own number in the same delivery is still served.
    ours = text_payload("wamid.OURS1", ANA, "hola")
    payload["entry"].append(ours["entry"][0])
    assert await post(rt, encode(payload)) == (200, "EVENT_RECEIVED")
    assert [r["MessageId"] for r in ledger(db_path)] == ["wamid.OURS1"] and drained == [[ANA]]


def test_served_numbers_setting(db_path: Path) -> None:
    from core.errors import SettingsError

    assert load_settings(base_env(db_path)).served_phone_number_ids == ("106540352242922",)
    both = load_settings(base_env(db_path, WHATSAPP_PHONE_NUMBER_IDS="106540352242922, 2233"))
    assert both.served_phone_number_ids == ("106540352242922", "2233")
    with pytest.raises(SettingsError, match="WHATSAPP_PHONE_NUMBER_IDS"):
        load_settings(base_env(db_path, WHATSAPP_PHONE_NUMBER_IDS="abc"))


async def test_text_longer_than_whatsapps_limit_is_cut_once_before_storage(rt: Runtime, db_path: Path,
                                                                        drained: list[list[str]]) -> None:
    from bot.webhook.parse import TEXT_CUT_MARKER
    from core.whatsapp.outgoing import MAX_TEXT_BODY

    text = "ñ" * 100_000 + "🧊" * 10
    assert (await post(rt, encode(text_payload("wamid.LONG1", ANA, text))))[0] == 200
    (row,) = ledger(db_path)
    stored = InboundMessage.from_json(row["Payload"]).text
    assert len(stored) == MAX_TEXT_BODY and stored.endswith(TEXT_CUT_MARKER) and stored.startswith("ñ" * 100)
    assert len(row["Payload"]) < 2 * MAX_TEXT_BODY  # the payload holds the cut text once, not the original


@pytest.mark.parametrize(("sender", "reason"), [
    ("15550783881", "remitente_propio"), ("106540352242922", "remitente_propio"), ("12", "remitente_invalido")])
async def test_odd_senders_are_acknowledged_logged_counted_and_not_served(
    sender: str, reason: str, rt: Runtime, db_path: Path, drained: list[list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    from core.metrics import webhook_ignored_total

    before = webhook_ignored_total.labels(reason=reason)._value.get()
    body = encode(text_payload("wamid.ODD1", sender, "hola"))
    assert await post(rt, body) == (200, "EVENT_RECEIVED")
    assert ledger(db_path) == [] and drained == []  # no session, no reply queued
    assert webhook_ignored_total.labels(reason=reason)._value.get() == before + 1
    assert any("se reconoce y se ignora" in r.getMessage() for r in caplog.records)
