"""The console page in headless Chromium sends a photo, a voice note and a location, and its evidence panel
shows a row once it is stored (skipped with the reason when Chromium or chromedriver is missing)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from core.media.fetch import EvidenceFetcher, fetch_pending_evidence
from core.media.graph_media import MediaApi
from core.media.store import LocalEvidenceStore
from core.storage.evidence import record_evidence
from core.storage.sqlite import SqliteDatabase
from local_host.console import CONSOLE_KEY
from local_host.fake_ai import spoken_text
from tests.conftest import free_port
from tests.console_receiver import ConsoleServer, console_in_thread
from tests.test_console_e2e import browser, open_conversation, wait_for

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # the fixture, shared with the console's own browser test


def _user_bubbles(driver: WebDriver) -> list[str]:
    return [b.text for b in driver.find_elements(By.CSS_SELECTOR, "#thread .msg.user[data-status='200']")]


async def _store_first_photo(server: ConsoleServer, db_path: Path, store: Path) -> None:
    photo = next(r.message for r in server.receiver.received if r.message["type"] == "image")
    db = SqliteDatabase(str(db_path), pool_size=1)
    fetcher = EvidenceFetcher(db=db, api=MediaApi(server.runtime.settings.whatsapp_api_base_url,
                                                  server.runtime.settings.whatsapp_access_token),
                              store=LocalEvidenceStore(store))
    try:
        await db.write(lambda tx: record_evidence(tx, phone=photo["from"], message_id=photo["id"],
                                                  media_id=photo["image"]["id"], kind="image",
                                                  mime=photo["image"]["mime_type"], sha256=photo["image"]["sha256"],
                                                  filename=None, now_ms=1))
        assert await fetch_pending_evidence(fetcher) == 1
    finally:
        await fetcher.aclose()
        db.close()


def test_the_page_sends_media_and_shows_the_evidence(browser: WebDriver, db_path: Path, tmp_path: Path) -> None:
    phone = "5215550004321"
    with console_in_thread(db_path, free_port()) as server:
        open_conversation(browser, server.base_url, phone, "Luis", key=phone)
        message = browser.find_element(By.ID, "message-input")

        message.send_keys("Así quedó la puerta")
        browser.find_element(By.ID, "photo-btn").click()
        wait_for(browser, "la foto contestada con 200", lambda: any("📷 Foto: Así quedó la puerta" in t
                                                                    for t in _user_bubbles(browser)))
        message.send_keys("el camión 45 no arranca")
        browser.find_element(By.ID, "voice-btn").click()
        wait_for(browser, "la nota de voz contestada con 200", lambda: any("🎤 Nota de voz" in t
                                                                           for t in _user_bubbles(browser)))
        browser.find_element(By.ID, "location-btn").click()
        wait_for(browser, "la ubicación contestada con 200", lambda: any("📍 Tienda Centro" in t
                                                                         for t in _user_bubbles(browser)))

        kinds = [r.message["type"] for r in server.receiver.received]
        assert kinds == ["image", "audio", "location"] and all(r.valid for r in server.receiver.received)
        fake_graph = server.app[CONSOLE_KEY].fake_graph
        assert fake_graph is not None
        voice = server.receiver.received[1].message["audio"]
        assert spoken_text(fake_graph.media[voice["id"]].body) == "el camión 45 no arranca" and voice["voice"]

        asyncio.run(_store_first_photo(server, db_path, tmp_path / "evidencias"))
        row = wait_for(browser, "el panel muestra la evidencia guardada", lambda: browser.find_elements(
            By.CSS_SELECTOR, "#st-evidence [data-evidence-wamid][data-estado='guardada']"))
        assert len(row) == 1
