"""A fake WhatsApp Cloud API (Graph) server that records every send: for tests, benches and the local console.

Mounted by the local host at `/_fake_graph` (so `WHATSAPP_API_BASE_URL=http://127.0.0.1:7071/_fake_graph/v23.0`),
or run alone: `python -m local_host.fake_graph --port 9090`.

    POST /{version}/{phone_number_id}/messages   -> records the body, answers a fresh wamid
    GET  /_sent                                  -> every recorded send, oldest first
    POST /_fail  {"status": 429, "code": 130429, "count": 2, "delay_ms": 0}  -> the next sends fail (or stall)
    POST /_fail  {"status": 503, "code": 131016, "seconds": 60}  -> an outage: every send fails for 60 s
    POST /_reset                                 -> forget sends and injected failures
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web


@dataclass
class Injected:
    status: int
    code: int
    count: int
    delay_ms: int = 0
    message: str = "injected failure"


@dataclass
class FakeGraph:
    access_token: str | None = None  # when set, a send without `Authorization: Bearer <token>` gets 401
    sent: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Injected] = field(default_factory=list)
    delay_ms: int = 0
    next_wamid: str | None = None  # the wamid the next accepted send gets (tests of early statuses)
    outage: Injected | None = None  # every send answers this until `outage_until` (time.monotonic())
    outage_until: float = 0.0
    refused_during_outage: int = 0
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, status: int, code: int, count: int = 1, delay_ms: int = 0, message: str = "injected") -> None:
        self.failures.append(Injected(status, code, count, delay_ms, message))

    def fail_for(self, status: int, code: int, seconds: float, message: str = "injected outage") -> None:
        self.outage = Injected(status, code, 0, 0, message)
        self.outage_until = time.monotonic() + seconds

    def reset(self) -> None:
        self.sent.clear()
        self.failures.clear()
        self.delay_ms = 0
        self.outage = None

    async def handle_send(self, request: web.Request) -> web.Response:
        if self.access_token and request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return _graph_error(401, 190, "Invalid OAuth access token")
        try:
            body = await request.json()
        except ValueError:
            return _graph_error(400, 100, "Invalid JSON")
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        if self.outage is not None and time.monotonic() < self.outage_until:
            self.refused_during_outage += 1
            return _graph_error(self.outage.status, self.outage.code, self.outage.message)
        if self.failures:
            failure = self.failures[0]
            failure.count -= 1
            if failure.count <= 0:
                self.failures.pop(0)
            if failure.delay_ms:
                await asyncio.sleep(failure.delay_ms / 1000)
            return _graph_error(failure.status, failure.code, failure.message)
        recipient = body.get("to") or body.get("recipient")
        if not recipient:
            return _graph_error(400, 100, "Missing recipient")
        problem = limit_problem(body)
        if problem:  # what the real API answers for an over-limit message: error 100, nothing sent
            return _graph_error(400, 100, f"(#100) {problem}")
        wamid = self.next_wamid or f"wamid.FAKE{next(self._seq):08d}.{uuid.uuid4().hex[:8]}"
        self.next_wamid = None
        self.sent.append(
            {
                "wamid": wamid,
                "recipient": recipient,
                "phone_number_id": request.match_info["phone_number_id"],
                "payload": body,
                "at": time.time(),
            }
        )
        contact: dict[str, str] = {"input": recipient}
        if "to" in body:
            contact["wa_id"] = recipient
        return web.json_response({"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": wamid}]})

    async def handle_sent(self, request: web.Request) -> web.Response:
        recipient = request.query.get("recipient")
        rows = [s for s in self.sent if recipient is None or s["recipient"] == recipient]
        return web.json_response(rows)

    async def handle_fail(self, request: web.Request) -> web.Response:
        data = await request.json()
        if "seconds" in data:
            self.fail_for(int(data.get("status", 500)), int(data.get("code", 1)), float(data["seconds"]),
                          str(data.get("message", "injected outage")))
            return web.json_response({"ok": True})
        self.fail_next(
            int(data.get("status", 500)), int(data.get("code", 1)), int(data.get("count", 1)),
            int(data.get("delay_ms", 0)), str(data.get("message", "injected")),
        )
        return web.json_response({"ok": True})

    async def handle_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{version}/{phone_number_id}/messages", self.handle_send)
        app.router.add_get("/_sent", self.handle_sent)
        app.router.add_post("/_fail", self.handle_fail)
        app.router.add_post("/_reset", self.handle_reset)
        return app


def limit_problem(body: dict[str, Any]) -> str | None:
    """The first WhatsApp limit `body` breaks, worded like Graph's own error, or None."""
    def too_long(value: object, limit: int, name: str) -> str | None:
        return f"Param {name} must be at most {limit} characters long" if len(str(value or "")) > limit else None

    if body.get("type") == "text":
        return too_long(_dig(body, "text", "body"), 4096, "text['body']")
    interactive = body.get("interactive")
    if not isinstance(interactive, dict):
        return None
    raw_action = interactive.get("action")
    action: dict[str, Any] = raw_action if isinstance(raw_action, dict) else {}
    checks = [
        too_long(_dig(interactive, "body", "text"), 1024, "interactive['body']['text']"),
        too_long(_dig(interactive, "header", "text"), 60, "interactive['header']['text']"),
        too_long(_dig(interactive, "footer", "text"), 60, "interactive['footer']['text']"),
    ]
    buttons = action.get("buttons") or []
    if len(buttons) > 3:
        checks.append("Param interactive['action']['buttons'] must have at most 3 elements")
    checks += [too_long(_dig(b, "reply", "title"), 20, "interactive['action']['buttons'][]['reply']['title']")
               for b in buttons]
    rows = [row for section in action.get("sections") or [] for row in (section.get("rows") or [])]
    if len(rows) > 10:
        checks.append("Param interactive['action']['sections'] must have at most 10 rows in total")
    checks += [too_long(row.get("title"), 24, "rows[]['title']") for row in rows]
    checks += [too_long(row.get("description"), 72, "rows[]['description']") for row in rows]
    checks.append(too_long(action.get("button"), 20, "interactive['action']['button']"))
    return next((c for c in checks if c), None)


def _dig(data: object, *keys: str) -> object:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _graph_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": uuid.uuid4().hex[:11]}},
        status=status,
    )


def spawn(port: int, timeout_s: float = 20) -> subprocess.Popen[bytes]:
    """`python -m local_host.fake_graph` in its own process on `port`, returned once it is listening."""
    proc = subprocess.Popen([sys.executable, "-m", "local_host.fake_graph", "--port", str(port)],
                            cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None:
            raise RuntimeError("fake Graph API exited at start")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("fake Graph API did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake WhatsApp Cloud API server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--token", default=None)
    args = parser.parse_args()
    web.run_app(FakeGraph(access_token=args.token).build_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
