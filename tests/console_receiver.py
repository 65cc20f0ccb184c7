"""A tiny stand-in for the webhook and the bot, for the console's own tests.

It checks `X-Hub-Signature-256` independently of the console's code (hmac over the raw bytes), records
every delivery, and, when asked, answers each message through the fake Graph API over real HTTP, the
way the bot's outbound path would. The console is served next to it in one aiohttp app on a real port.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.runtime import Runtime
from core.settings import load_settings
from core.storage.sqlite import SqliteDatabase
from local_host.console import CONSOLE_KEY, mount_console
from tests.conftest import base_env


@dataclass(frozen=True, slots=True)
class Received:
    raw: bytes
    signature: str
    valid: bool

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.raw)

    @property
    def message(self) -> dict[str, Any]:
        return self.body["entry"][0]["changes"][0]["value"]["messages"][0]


@dataclass
class WebhookReceiver:
    secret: str
    api_base_url: str
    access_token: str
    answer: bool = False  # reply to each message through the fake Graph API, like a bot would
    delay_s: float = 0.0  # hold each request, so concurrent deliveries overlap visibly
    received: list[Received] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        signature = request.headers.get("X-Hub-Signature-256", "")
        expected = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(signature, expected)
        self.received.append(Received(raw, signature, valid))
        if not valid:
            return web.Response(status=401)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.answer:
                await self._reply(json.loads(raw))
        finally:
            self.in_flight -= 1
        return web.Response(status=200, text="EVENT_RECEIVED")

    async def _reply(self, body: dict[str, Any]) -> None:
        value = body["entry"][0]["changes"][0]["value"]
        for msg in value["messages"]:
            to = msg.get("from") or msg["from_user_id"]
            address = {"to": to} if "from" in msg else {"recipient": to}
            if msg["type"] == "text":
                out = {
                    "type": "interactive",
                    "interactive": {
                        "type": "button",
                        "body": {"text": f"Recibido: {msg['text']['body']}"},
                        "action": {
                            "buttons": [
                                {"type": "reply", "reply": {"id": "confirmar_si", "title": "Sí"}},
                                {"type": "reply", "reply": {"id": "confirmar_no", "title": "No"}},
                            ]
                        },
                    },
                }
            else:
                kind = msg["interactive"]["type"]
                out = {"type": "text", "text": {"body": f"Elegiste: {msg['interactive'][kind]['title']}"}}
            async with aiohttp.ClientSession() as session:
                await session.post(
                    f"{self.api_base_url}/106540352242922/messages",
                    json={"messaging_product": "whatsapp", **address, **out},
                    headers={"Authorization": f"Bearer {self.access_token}"},
                )


@dataclass
class ConsoleServer:
    base_url: str
    runtime: Runtime
    receiver: WebhookReceiver
    app: web.Application


def build_console_app(db_path: Path, port: int, **receiver_options: Any) -> ConsoleServer:
    base_url = f"http://127.0.0.1:{port}"
    settings = load_settings(base_env(db_path, WHATSAPP_API_BASE_URL=f"{base_url}/_fake_graph/v23.0"))
    runtime = Runtime(settings=settings, db=SqliteDatabase(str(db_path), pool_size=2))
    receiver = WebhookReceiver(
        settings.whatsapp_app_secret, settings.whatsapp_api_base_url, settings.whatsapp_access_token,
        **receiver_options,
    )
    app = web.Application()
    app.router.add_post("/api/whatsapp/webhook", receiver.handle)
    mount_console(app, runtime, base_url)
    return ConsoleServer(base_url, runtime, receiver, app)


async def start_site(server: ConsoleServer, port: int) -> web.AppRunner:
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@contextmanager
def console_in_thread(db_path: Path, port: int, **receiver_options: Any) -> Iterator[ConsoleServer]:
    """Serve the console and the receiver on their own event loop, for a blocking Selenium test."""
    server = build_console_app(db_path, port, **receiver_options)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner_box: list[web.AppRunner] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner_box.append(loop.run_until_complete(start_site(server, port)))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="console-server", daemon=True)
    thread.start()
    if not started.wait(15):
        raise RuntimeError("console server did not start")
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(15)
        server.runtime.db.close()


__all__ = ["CONSOLE_KEY", "ConsoleServer", "Received", "WebhookReceiver", "build_console_app", "console_in_thread"]
