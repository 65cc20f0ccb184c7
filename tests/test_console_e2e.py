"""The local chat console in headless Chromium (Debian's `chromium` + `chromium-driver`, through Selenium).

- `test_console_page_drives_a_webhook_receiver`: the page, the console backend and a stand-in webhook in
  one process: what the page sends arrives signed and Meta-shaped; replies, buttons, "Enviar dos veces",
  "Ráfaga de 5" and the state panel render.
- `test_refrigerator_flow_end_to_end`: `python -m local_host` as a real process, the real webhook, engine
  and outbound queue; the refrigerator flow with SAP code 10004512 to a report number, then a redelivery
  of the last message that must not produce a second reply.

Screenshots go to test-output/. Both skip with the reason where Chromium or its driver is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from local_host.console import CONSOLE_KEY
from tests.conftest import ROOT, base_env, free_port
from tests.console_receiver import console_in_thread

pytestmark = pytest.mark.browser
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium no está instalado (requirements-dev.txt)")
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

OUTPUT = ROOT / "test-output"
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-extensions", "--window-size=1500,1000",
)
T = TypeVar("T")
# Replies normally arrive within a second (eager dispatch); the timer sweep is the slow fallback.
REPLY_WAIT_S = 40
YES = re.compile(r"^\s*s[ií]\b", re.IGNORECASE)


def _binary(*candidates: str) -> str | None:
    for name in candidates:
        found = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium = _binary("/usr/bin/chromium", "chromium", "chromium-browser")
    driver_path = _binary("/usr/bin/chromedriver", "chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip(
            "Chromium o chromedriver no están instalados: apt-get install -y chromium chromium-driver "
            f"(chromium={chromium}, chromedriver={driver_path})"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    # Selenium Manager must not try to download a driver: the closed network has none to offer.
    service = webdriver.ChromeService(executable_path=driver_path, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: WebDriver, name: str) -> Path:
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def wait_for(driver: WebDriver, what: str, fn: Callable[[], T | None], timeout: float = 20) -> T:
    """Poll `fn` until it answers something truthy; fail naming `what` (and keep a screenshot)."""

    def probe(_: WebDriver) -> T | None:
        try:
            return fn()
        except StaleElementReferenceException:
            return None  # the page re-rendered under us (it polls every 0.5 s): look again

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(probe)
    except TimeoutException:
        shot = screenshot(driver, "console_timeout")
        raise AssertionError(f"no llegó a pasar: {what} (captura en {shot})") from None


def read_stable(fn: Callable[[], T]) -> T:
    """Read page elements, again if the 0.5 s poll re-rendered them in between."""
    for _ in range(20):
        try:
            return fn()
        except StaleElementReferenceException:
            time.sleep(0.1)
    return fn()


def bubbles(driver: WebDriver, side: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, f"#thread .msg.{side}")


def open_conversation(driver: WebDriver, base_url: str, user: str, name: str, key: str | None = None) -> None:
    """Type a phone (any spacing) or a BSUID into the picker; `key` is how the console normalizes it."""
    driver.get(base_url + "/")
    wait_for(driver, "la página cargó", lambda: driver.find_element(By.ID, "user-input").is_displayed())
    driver.find_element(By.ID, "user-input").send_keys(user)
    driver.find_element(By.ID, "name-input").send_keys(name)
    driver.find_element(By.ID, "open-btn").click()
    key = key or user
    wait_for(driver, f"la conversación {key} quedó abierta",
             lambda: driver.find_element(By.ID, "chat-title").text.endswith(key))


def type_and_send(driver: WebDriver, text: str) -> None:
    box = driver.find_element(By.ID, "message-input")
    box.send_keys(text)
    driver.find_element(By.ID, "send-btn").click()


def last_user_wamid(driver: WebDriver) -> str:
    return str(bubbles(driver, "user")[-1].get_attribute("data-wamid"))


def press_choice(driver: WebDriver, bot_wamid: str, which: Callable[[WebElement], bool]) -> bool:
    """Click a button or list row of one bot message, looked up afresh (bubbles re-render on change)."""

    def click() -> bool:
        for button in driver.find_elements(By.CSS_SELECTOR, f"#thread .msg.bot[data-wamid='{bot_wamid}'] .choice"):
            if which(button):
                button.click()
                return True
        return False

    return wait_for(driver, f"un botón del mensaje {bot_wamid}", click, timeout=5)


@dataclass(frozen=True)
class BotMessage:
    wamid: str
    text: str  # the bubble as shown, buttons and time included
    choices: tuple[str, ...]


def wait_new_bot_bubble(driver: WebDriver, after: int, pattern: str, timeout: float = 20) -> BotMessage:
    """The first bot bubble past index `after` whose text matches `pattern` (read at once: bubbles re-render)."""
    regex = re.compile(pattern, re.IGNORECASE)

    def found() -> BotMessage | None:
        for bubble in bubbles(driver, "bot")[after:]:
            text = bubble.text
            if regex.search(text):
                choices = tuple(c.text for c in bubble.find_elements(By.CSS_SELECTOR, ".choice"))
                return BotMessage(str(bubble.get_attribute("data-wamid")), text, choices)
        return None

    return wait_for(driver, f"una respuesta del bot que diga /{pattern}/", found, timeout)


# -- the console against a stand-in webhook (runs before the webhook and engine are merged) ----------


def test_console_page_drives_a_webhook_receiver(browser: WebDriver, db_path: Path) -> None:
    phone = "5215550001234"
    with console_in_thread(db_path, free_port(), answer=True, delay_s=0.2) as server:
        receiver = server.receiver
        open_conversation(browser, server.base_url, "+52 1 555 000 1234", "Ana López", key=phone)

        type_and_send(browser, "Hola, el refrigerador no enfría")
        reply = wait_new_bot_bubble(browser, 0, r"Recibido: Hola, el refrigerador no enfría")
        [first] = receiver.received
        assert first.valid and first.message["from"] == phone and first.message["type"] == "text"
        assert first.message["text"]["body"] == "Hola, el refrigerador no enfría"
        wait_for(browser, "el webhook contestó 200", lambda: browser.find_elements(
            By.CSS_SELECTOR, f"#thread .msg.user[data-wamid='{first.message['id']}'][data-status='200']"))

        # Pressing the bot's button sends Meta's button_reply, in reply to that bot message.
        reply_wamid = reply.wamid
        press_choice(browser, reply_wamid, lambda b: b.get_attribute("data-choice-id") == "confirmar_si")
        wait_new_bot_bubble(browser, 1, r"Elegiste: Sí")
        pressed = receiver.received[-1]
        assert pressed.valid and pressed.message["interactive"]["button_reply"] == {"id": "confirmar_si", "title": "Sí"}
        assert pressed.message["context"]["id"] == reply_wamid

        # "Enviar dos veces": the same bytes and signature again, marked as a redelivery in the thread.
        browser.find_element(By.ID, "resend-btn").click()
        wait_for(browser, "la reentrega aparece en el hilo", lambda: browser.find_elements(
            By.CSS_SELECTOR, "#thread .msg.user[data-redelivery='1'][data-status='200']"))
        assert receiver.received[-1].raw == pressed.raw and receiver.received[-1].signature == pressed.signature

        # "Ráfaga de 5": five distinct messages in flight together.
        before = len(receiver.received)
        browser.find_element(By.ID, "burst-btn").click()
        wait_for(browser, "las 5 de la ráfaga contestadas con 200", lambda: len(browser.find_elements(
            By.CSS_SELECTOR, "#thread .msg.user[data-burst='1'][data-status='200']")) == 5)
        assert len(receiver.received) == before + 5
        burst = receiver.received[before:]
        assert len({r.message["id"] for r in burst}) == 5 and all(r.valid for r in burst)
        assert receiver.max_in_flight >= 2

        # The state panel reads the database: put a session, a lease and a report there and watch them appear.
        now = int(time.time() * 1000)
        with closing(sqlite3.connect(db_path)) as conn, conn:
            conn.execute(
                "INSERT INTO SesionesChat (Telefono, Estado, DatosTemp, Version, UltimaActividad)"
                " VALUES (?, 'FINALIZADO', '{}', 4, ?)", (phone, now))
            conn.execute("INSERT INTO BloqueosConversacion (Clave, Propietario, ExpiraEn, Token) VALUES (?, ?, ?, 9)",
                         (phone, "instancia-a", now + 60_000))
            conn.execute("INSERT INTO Reportes (Numero, Telefono, TipoEquipo, Descripcion, MensajeOrigen)"
                         " VALUES ('RPT-000042', ?, 'REFRIGERADOR', 'no enfría', 'wamid.X')", (phone,))
            conn.execute("INSERT INTO ColaEnvios (Destinatario, Contenido, Estado) VALUES (?, '{}', 'incierto')",
                         (phone,))
        wait_for(browser, "el panel muestra la sesión", lambda: browser.find_element(
            By.CSS_SELECTOR, "#st-session [data-field='estado']").text == "FINALIZADO")
        assert browser.find_element(By.CSS_SELECTOR, "#st-session [data-field='version']").text == "4"
        assert "instancia-a" in browser.find_element(By.ID, "st-lease").text
        assert "activo, vence en" in browser.find_element(By.ID, "st-lease").text
        assert browser.find_element(By.CSS_SELECTOR, "#st-reports [data-report]").text == "RPT-000042"
        incierto = browser.find_element(By.CSS_SELECTOR, "#st-outbox [data-outbox-estado='incierto']")
        assert incierto.get_attribute("data-count") == "1"
        screenshot(browser, "console_receiver_state")

        # "Fallar el próximo envío": the fake Graph API refuses the next send with Meta's throttling error.
        browser.find_element(By.ID, "fail-btn").click()
        wait_for(browser, "el fallo quedó programado", lambda: "429" in _state_text(browser, "#graph-status"))
        fake_graph = server.app[CONSOLE_KEY].fake_graph
        assert fake_graph is not None and [(f.status, f.code) for f in fake_graph.failures] == [(429, 130429)]
        sent_before = len(fake_graph.sent)
        type_and_send(browser, "¿me oyes?")
        wait_for(browser, "el envío rechazado consumió el fallo", lambda: not fake_graph.failures)
        assert len(fake_graph.sent) == sent_before
        assert not any("¿me oyes?" in b.text for b in bubbles(browser, "bot"))

        # A second user, known only by a BSUID: no phone in what Meta sends.
        open_conversation(browser, server.base_url, "MX.8812093347712650", "Marta")
        type_and_send(browser, "Hola")
        wait_new_bot_bubble(browser, 0, r"Recibido: Hola")
        bsuid_msg = receiver.received[-1].message
        assert "from" not in bsuid_msg and bsuid_msg["from_user_id"] == "MX.8812093347712650"
        names = [li.get_attribute("data-user") for li in browser.find_elements(By.CSS_SELECTOR, "#user-list li")]
        assert {phone, "MX.8812093347712650"} <= set(names)
        screenshot(browser, "console_receiver")


# -- the whole product: real local host process, real webhook, engine and outbound queue ----------


def _host_env(db: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "SQL"))}
    env.update(base_env(db, WHATSAPP_API_BASE_URL=f"http://127.0.0.1:{port}/_fake_graph/v23.0"))
    return env


@pytest.fixture
def local_host(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "local_host.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "local_host", "--port", str(port)],
        cwd=ROOT, env=_host_env(tmp_path / "db" / "bot.sqlite3", port), stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"local_host terminó: {(tmp_path / 'local_host.log').read_text()}")
            try:
                if httpx.get(base + "/_console/api/config", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("local_host no arrancó en 30 s")
            time.sleep(0.2)
        handshake = httpx.get(base + "/api/whatsapp/webhook", params={
            "hub.mode": "subscribe", "hub.verify_token": base_env(tmp_path)["WHATSAPP_VERIFY_TOKEN"],
            "hub.challenge": "1158201444"}, timeout=5)
        if handshake.status_code == 404:
            pytest.skip("El webhook no está registrado en function_app en esta rama")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        OUTPUT.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "local_host.log", OUTPUT / "console_e2e_local_host.log")


def _state_text(driver: WebDriver, css: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def settled(driver: WebDriver) -> bool:
    """Nothing open in the inbox, nothing waiting or in flight in the outbox."""
    outbox_quiet = all(
        _state_text(driver, f"#st-outbox [data-outbox-estado='{st}']").endswith(": 0")
        for st in ("pendiente", "procesando")
    )
    return outbox_quiet and "Pendientes o con error: 0" in _state_text(driver, "#st-inbox")


def test_refrigerator_flow_end_to_end(browser: WebDriver, local_host: str) -> None:
    phone = "5215598765432"
    open_conversation(browser, local_host, phone, "Ana López")

    type_and_send(browser, "Hola, el refrigerador no enfría")
    wait_new_bot_bubble(browser, 0, r"\bSAP\b", REPLY_WAIT_S)

    seen = len(bubbles(browser, "bot"))
    type_and_send(browser, "10004512")
    confirm = wait_new_bot_bubble(browser, seen, r"(?s)Refrigerador vertical 2 puertas.*Tienda Centro", REPLY_WAIT_S)
    plain = re.sub(r"[*_~]", "", confirm.text)  # WhatsApp bold/italic marks aside
    assert re.search(r"Revisa tu reporte.*Refrigerador vertical 2 puertas.*Tienda Centro.*¿Lo registro\?", plain,
                     re.I | re.S), confirm.text

    seen = len(bubbles(browser, "bot"))
    if any(YES.match(c) for c in confirm.choices):
        # The bot offered a Sí button: answer like a WhatsApp user would.
        press_choice(browser, confirm.wamid, lambda b: bool(YES.match(b.text)))
    else:
        type_and_send(browser, "sí")
    report = wait_new_bot_bubble(browser, seen, r"RPT-\d+", REPLY_WAIT_S)
    number = re.search(r"RPT-\d+", report.text).group(0)  # type: ignore[union-attr]
    wait_for(browser, f"{number} en el panel de reportes", lambda: number in _state_text(browser, "#st-reports"))
    wait_for(browser, "la sesión en FINALIZADO",
             lambda: _state_text(browser, "#st-session [data-field='estado']") == "FINALIZADO")

    # The message that filed the report, fully handled, then delivered again exactly as Meta redelivers.
    wamid = last_user_wamid(browser)
    wait_for(browser, "el mensaje que cerró el flujo, procesado", lambda: browser.find_elements(
        By.XPATH, f"//*[@data-inbox-wamid='{wamid}']/ancestor::tr//*[contains(@class,'estado-procesado')]"))
    wait_for(browser, "bandeja y cola en calma antes de reentregar", lambda: settled(browser), REPLY_WAIT_S)
    replies_before = read_stable(lambda: len(bubbles(browser, "bot")))
    browser.find_element(By.ID, "resend-btn").click()
    wait_for(browser, "la reentrega aceptada con 200", lambda: browser.find_elements(
        By.CSS_SELECTOR, f"#thread .msg.user[data-redelivery='1'][data-wamid='{wamid}'][data-status='200']"))
    # The webhook counted it as a redelivery of the same row (DESIGN: N deliveries -> Reintentos = N-1).
    wait_for(browser, "Reintentos = 1 en la bandeja", lambda: browser.find_elements(
        By.CSS_SELECTOR, f"#st-inbox [data-inbox-wamid='{wamid}'][data-reintentos='1']"))

    # Let anything the redelivery might wrongly cause reach the fake Graph API before counting.
    wait_for(browser, "bandeja y cola en calma", lambda: settled(browser), REPLY_WAIT_S)
    time.sleep(2)  # a grace period for a wrong second send to show up; not a timing assertion
    wait_for(browser, "bandeja y cola en calma", lambda: settled(browser), REPLY_WAIT_S)

    bot_texts = read_stable(lambda: [b.text for b in bubbles(browser, "bot")])
    errors = read_stable(lambda: browser.find_element(
        By.CSS_SELECTOR, "#st-outbox [data-outbox-estado='error']").get_attribute("data-count"))
    screenshot(browser, "console_e2e_flow")
    with_number = [t for t in bot_texts if number in t]
    assert len(with_number) == 1, f"{len(with_number)} respuestas con {number}: {with_number}"
    assert len(bot_texts) == replies_before, f"la reentrega produjo otra respuesta: {bot_texts[replies_before:]}"
    assert errors == "0"
