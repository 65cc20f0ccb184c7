"""The console sends a photo, a voice note and a location as WhatsApp would (a Meta-shaped webhook with a
media id the mounted fake Graph API serves), and its state shows the conversation's evidence rows."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.media.fetch import EvidenceFetcher, fetch_pending_evidence
from core.media.graph_media import MediaApi
from core.media.limits import digest_matches
from core.media.store import LocalEvidenceStore
from core.storage.evidence import record_evidence
from local_host.console import CONSOLE_KEY, SAMPLE_PNG
from local_host.fake_ai import spoken_text
from local_host.fake_graph import FakeGraph
from tests.conftest import free_port
from tests.console_receiver import ConsoleServer, build_console_app, start_site

PHONE = "5215512345678"


@pytest.fixture
async def console(db_path: Path) -> AsyncIterator[ConsoleServer]:
    port = free_port()
    server = build_console_app(db_path, port)
    runner = await start_site(server, port)
    yield server
    await runner.cleanup()
    server.runtime.db.close()


def _fake_graph(console: ConsoleServer) -> FakeGraph:
    graph = console.app[CONSOLE_KEY].fake_graph
    assert graph is not None
    return graph


async def test_a_photo_goes_out_as_meta_sends_it_and_its_body_is_served(console: ConsoleServer,
                                                                         tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=console.base_url, timeout=20) as client:
        r = await client.post("/_console/api/media", json={"user": PHONE, "name": "Ana", "kind": "image",
                                                           "caption": "Así está la puerta"})
        assert r.status_code == 200, r.text
        delivery = r.json()
    assert (delivery["kind"], delivery["text"], delivery["status"]) == ("image", "📷 Foto: Así está la puerta", 200)
    [got] = console.receiver.received
    assert got.valid and got.message["type"] == "image"
    image = got.message["image"]
    assert set(image) == {"mime_type", "sha256", "id", "caption"} and image["caption"] == "Así está la puerta"
    assert image["mime_type"] == "image/png" and digest_matches(image["sha256"], hashlib.sha256(SAMPLE_PNG).digest())
    assert base64.b64decode(image["sha256"]) == hashlib.sha256(SAMPLE_PNG).digest()  # base64, as webhooks carry it

    # The real download path fetches it from the mounted fake Graph API, and the state panel shows the row.
    db = console.runtime.db
    await db.write(lambda tx: record_evidence(tx, phone=PHONE, message_id=got.message["id"], media_id=image["id"],
                                              kind="image", mime=image["mime_type"], sha256=image["sha256"],
                                              filename=None, now_ms=1))
    fetcher = EvidenceFetcher(db=db, api=MediaApi(console.runtime.settings.whatsapp_api_base_url,
                                                  console.runtime.settings.whatsapp_access_token),
                              store=LocalEvidenceStore(tmp_path / "evidencias"))
    try:
        assert await fetch_pending_evidence(fetcher) == 1
    finally:
        await fetcher.aclose()
    async with httpx.AsyncClient(base_url=console.base_url, timeout=20) as client:
        state = (await client.get("/_console/api/state", params={"user": PHONE})).json()
    [row] = state["evidence"]
    assert (row["message_id"], row["tipo"], row["estado"], row["intentos"], row["tamano"]) == (
        got.message["id"], "image", "guardada", 1, len(SAMPLE_PNG))
    assert _fake_graph(console).downloads == {image["id"]: 1}


async def test_a_voice_note_carries_the_words_typed(console: ConsoleServer) -> None:
    async with httpx.AsyncClient(base_url=console.base_url, timeout=20) as client:
        r = await client.post("/_console/api/media", json={"user": PHONE, "kind": "audio",
                                                           "spoken": "el refri 10004512 no enfría"})
        assert r.status_code == 200, r.text
    [got] = console.receiver.received
    audio = got.message["audio"]
    assert got.message["type"] == "audio" and audio["voice"] is True
    assert audio["mime_type"] == "audio/ogg; codecs=opus" and "caption" not in audio
    stored = _fake_graph(console).media[audio["id"]]
    assert stored.mime_type == "audio/ogg" and spoken_text(stored.body) == "el refri 10004512 no enfría"


async def test_a_file_and_a_location(console: ConsoleServer) -> None:
    pdf = b"%PDF-1.4 orden de servicio"
    async with httpx.AsyncClient(base_url=console.base_url, timeout=20) as client:
        r = await client.post("/_console/api/media", json={
            "user": PHONE, "kind": "document", "data": base64.b64encode(pdf).decode(), "mime_type": "application/pdf",
            "filename": "orden.pdf"})
        assert r.status_code == 200, r.text
        r = await client.post("/_console/api/location", json={"user": PHONE, "latitude": 25.6866,
                                                              "longitude": -100.3161, "label": "Tienda Centro"})
        assert r.status_code == 200, r.text
        assert r.json()["text"] == "📍 Tienda Centro (25.68660, -100.31610)"
    document, place = (x.message for x in console.receiver.received)
    assert document["document"]["filename"] == "orden.pdf"
    assert _fake_graph(console).media[document["document"]["id"]].body == pdf
    assert place["type"] == "location"
    assert place["location"] == {"latitude": 25.6866, "longitude": -100.3161, "name": "Tienda Centro"}


async def test_bad_media_and_locations_are_refused_and_nothing_is_sent(console: ConsoleServer) -> None:
    async with httpx.AsyncClient(base_url=console.base_url, timeout=20) as client:
        for body in (
            {"user": PHONE, "kind": "gif"},
            {"user": PHONE, "kind": "video"},  # no file and no stand-in for a video
            {"user": PHONE, "kind": "image", "data": "%%%no base64", "mime_type": "image/png"},
            {"user": PHONE, "kind": "image", "data": base64.b64encode(b"x").decode()},  # no MIME type
            {"user": "12", "kind": "image"},
        ):
            r = await client.post("/_console/api/media", json=body)
            assert r.status_code == 400 and r.json()["error"], body
        for body in ({"user": PHONE, "latitude": 91, "longitude": 0}, {"user": PHONE, "latitude": "norte"}):
            r = await client.post("/_console/api/location", json=body)
            assert r.status_code == 400 and r.json()["error"], body
    assert console.receiver.received == []
    assert _fake_graph(console).media == {}
