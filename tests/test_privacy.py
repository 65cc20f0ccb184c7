"""No phone number reaches a log line: not inside a wamid, not inside a Graph error, not in a huge field;
and connection-string secrets are redacted whatever their ODBC quoting."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.runtime import Runtime, build_runtime
from core.settings import load_settings
from core.telemetry import REDACTOR, connection_string_parts, mask_wamid, scrub_personal, secrets_of
from tests.conftest import FIXTURES, base_env
from tests.outbox_support import InProcessGraph, queue_texts
from tests.webhook_helpers import encode, signed_headers, text_payload

SENDER = "5215544443333"
# A real-shaped wamid: base64 of a protobuf-ish payload that starts with the sender's number.
WAMID = "wamid." + base64.b64encode(b"\x18\x0d" + SENDER.encode() + b"\x15\x02\x00\x12\x18\x143A01AAF3B76F").decode()
OTHER = "5215566667777"




@pytest.fixture
async def rt(db_path: Path, graph: InProcessGraph) -> AsyncIterator[Runtime]:
    runtime = build_runtime(load_settings(base_env(db_path, WHATSAPP_API_BASE_URL=graph.base_url)))
    yield runtime
    await runtime.aclose()


async def post(rt: Runtime, payload: object) -> int:
    body = encode(payload)
    return (await rt.webhook.post(signed_headers(body), body))[0]


def test_the_wamid_really_carries_the_number() -> None:
    assert SENDER in base64.b64decode(WAMID.removeprefix("wamid.")).decode("latin-1")


async def test_phone_digits_never_reach_the_logs(rt: Runtime, graph: InProcessGraph,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # No queue configured (AzureWebJobsStorage unset): the hand-off failure is logged too.
    payload = text_payload(WAMID, SENDER, "hola")
    assert await post(rt, payload) == 200
    assert await post(rt, payload) == 200  # a duplicate: logged with its wamid
    failed = json.loads((FIXTURES / "status_failed.json").read_bytes())
    status = failed["entry"][0]["changes"][0]["value"]["statuses"][0]
    status["id"] = WAMID
    status["errors"][0]["title"] = f"Recipient phone number {OTHER} not in allowed list"
    status["errors"][0]["message"] = f"Recipient phone number {OTHER} not in allowed list"
    assert await post(rt, failed) == 200
    # Graph refuses a send with the number in its error text.
    graph.fake.fail_next(400, 131030, message=f"(#131030) Recipient phone number {OTHER} not in allowed list")
    queue_texts(rt.db, [(OTHER, "respuesta")])
    assert (await rt.outbox.sweep()).failed == 1
    logged = caplog.text
    assert "HANDOFF_FALLIDO" in logged and "Mensaje duplicado" in logged and "OUTBOX_ERROR" in logged
    assert "not in allowed list" in logged  # the error itself is kept ...
    for secret in (SENDER, OTHER, WAMID, WAMID[6:30]):
        assert secret not in logged, secret  # ... without the number, and no wamid in clear
    assert mask_wamid(WAMID) in logged  # a stable hash instead, to join lines about one message
    assert "*********7777" in logged


async def test_a_huge_field_makes_a_bounded_log_line(rt: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    payload = text_payload("wamid.HUGEFROM", None, "hola")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["from"] = "5" * 1_000_000  # unusable sender: refused, and logged
    payload["entry"][0]["changes"][0]["value"]["contacts"] = []
    assert await post(rt, payload) == 200
    assert caplog.records and max(len(r.getMessage()) for r in caplog.records) <= 4_100
    assert "mensaje inutilizable" in caplog.text


def test_odbc_braced_passwords_are_redacted(db_path: Path) -> None:
    conn = ("Driver={ODBC Driver 18 for SQL Server};Server=tcp:x.database.windows.net,1433;"
            "Database=bot;Uid=app;Pwd={p@ss;w0rd!Long}};x};Encrypt=yes")
    assert ("Pwd", "p@ss;w0rd!Long};x") in connection_string_parts(conn)
    settings = load_settings(base_env(db_path, SQL_CONNECTION_STRING=conn))
    assert "p@ss;w0rd!Long};x" in secrets_of(settings)
    REDACTOR.set_secrets(secrets_of(settings))
    try:
        cleaned = REDACTOR.redact(f"pyodbc error connecting with {conn}")
    finally:
        REDACTOR.set_secrets([])
    assert "w0rd" not in cleaned and "p@ss" not in cleaned and "Long" not in cleaned


@pytest.mark.parametrize(("text", "kept"), [
    ("RPT-000123 y código 10004512", "RPT-000123 y código 10004512"),  # report numbers and SAP codes stay
    ("latencia 915 ms, fencing 42", "latencia 915 ms, fencing 42"),
    ("telefono=*********5678", "telefono=*********5678"),  # already masked
])
def test_scrubbing_leaves_ordinary_numbers_alone(text: str, kept: str) -> None:
    assert scrub_personal(text) == kept


@pytest.mark.parametrize("raw", ["+52 1 55 4444 3333", "5215544443333", "52-155-4444-3333"])
def test_scrubbing_masks_phone_shapes(raw: str) -> None:
    assert "4444" not in scrub_personal(f"número {raw} no válido") and "3333" in scrub_personal(raw)
