"""The webhook through a real `python -m local_host` process over loopback HTTP: the route is anonymous,
the handshake answers text/plain, and 100 concurrent redeliveries of one message leave one row."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from bot.webhook.signature import sign_body
from tests.conftest import FIXTURES, VERIFY_TOKEN, free_port
from tests.test_local_host import start_host, wait_ready
from tests.webhook_helpers import encode, ledger, signed_headers, text_payload


@pytest.fixture
def host(db_path: Path) -> Iterator[str]:
    port = free_port()
    proc = start_host(db_path, port)
    base = f"http://127.0.0.1:{port}/api"
    try:
        wait_ready(f"{base}/health", proc)
        yield f"{base}/whatsapp/webhook"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.timeout(90)
def test_webhook_over_http(host: str, db_path: Path) -> None:
    ok = httpx.get(host, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "987"})
    assert (ok.status_code, ok.text) == (200, "987")
    assert ok.headers["content-type"].startswith("text/plain")
    bad = httpx.get(host, params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "987"})
    assert bad.status_code == 403

    body = (FIXTURES / "text_message.json").read_bytes()
    assert httpx.post(host, content=body, headers={"X-Hub-Signature-256": sign_body("forged", body)}).status_code == 401
    assert httpx.post(host, content=body).status_code == 401
    assert ledger(db_path) == []

    big = encode(text_payload("wamid.BIG", "5215512345678", "x" * (3 * 1024 * 1024)))
    assert httpx.post(host, content=big, headers=signed_headers(big)).status_code == 413
    assert httpx.post(host, content=b"{nope", headers=signed_headers(b"{nope")).status_code == 400
    assert ledger(db_path) == []

    storm = encode(text_payload("wamid.HTTPSTORM", "5215512345678", "el refri no enfría"))

    async def deliver_100() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            responses = await asyncio.gather(
                *(client.post(host, content=storm, headers=signed_headers(storm)) for _ in range(100)))
        return [r.status_code for r in responses]

    assert asyncio.run(deliver_100()) == [200] * 100
    (row,) = ledger(db_path)
    assert (row["MessageId"], row["Reintentos"]) == ("wamid.HTTPSTORM", 99)
    # The worker handles it once, however many of the 100 POSTs handed it off.
    deadline = time.monotonic() + 30
    while ledger(db_path)[0]["Estado"] == "pendiente" and time.monotonic() < deadline:
        time.sleep(0.05)
    with closing(sqlite3.connect(db_path)) as conn, conn:
        handled = conn.execute("SELECT COUNT(*) FROM MensajesChat WHERE MessageId = 'wamid.HTTPSTORM' "
                               "AND Origen = 'USUARIO'").fetchone()[0]
        transitions = conn.execute("SELECT COUNT(*) FROM HistorialSesiones WHERE MessageId = 'wamid.HTTPSTORM'"
                                   ).fetchone()[0]
    assert (ledger(db_path)[0]["Estado"], handled, transitions) == ("procesado", 1, 1)
