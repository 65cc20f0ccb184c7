"""A fake WhatsApp Cloud API (Graph) server that records every send: for tests, benches and the local console.

Mounted by the local host at `/_fake_graph` (so `WHATSAPP_API_BASE_URL=http://127.0.0.1:7071/_fake_graph/v23.0`),
or run alone: `python -m local_host.fake_graph --port 9090`.

    POST /{version}/{phone_number_id}/messages   -> records the body, answers a fresh wamid
    GET  /_sent                                  -> every recorded send, oldest first
    POST /_fail  {"status": 429, "code": 130429, "count": 2, "delay_ms": 0}  -> the next sends fail (or stall)
    POST /_fail  {"status": 503, "code": 131016, "seconds": 60}  -> an outage: every send fails for 60 s
    POST /_reset                                 -> forget sends and injected failures

Media, as the Cloud API serves what users send (`GET /{version}/{media-id}` answers a short-lived URL,
which is then fetched with the same bearer token):
    POST /_media   (raw body; Content-Type its MIME)  -> {"id", "sha256", "file_size", "mime_type"}
    GET  /{version}/{media-id}                    -> {"url", "mime_type", "sha256", "file_size", "id", ...}
    GET  /_media/{media-id}/download              -> the body
    POST /_media_fail {"fault": "404", "count": 1, "media_id": null} -> the next media calls misbehave:
         404 / 500 (the metadata call), wrong_sha (a body with one byte changed), oversize (the body
         runs past every limit), wrong_mime (metadata says application/x-msdownload), slow (the metadata
         call waits delay_ms), stall (half the body, then a pause of delay_ms, then the rest)
    GET  /_media_log                              -> downloads per media id
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import re
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


MEDIA_FAULTS = ("404", "500", "wrong_sha", "oversize", "wrong_mime", "slow", "stall")
OVERSIZE_BYTES = 101 * 1024 * 1024  # past the largest limit (documents, 100 MB)


@dataclass
class StoredMedia:
    body: bytes
    mime_type: str
    sha256: str  # hex, as the media endpoint gives it


@dataclass
class MediaFault:
    fault: str
    count: int
    media_id: str | None = None  # None: whichever media is asked for next
    delay_ms: int = 0


@dataclass
class FakeGraph:
    access_token: str | None = None  # when set, a send without `Authorization: Bearer <token>` gets 401
    sent: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Injected] = field(default_factory=list)
    delay_ms: int = 0
    next_wamid: str | None = None  # the wamid the next accepted send gets (tests of early statuses)
    media: dict[str, StoredMedia] = field(default_factory=dict)
    media_faults: list[MediaFault] = field(default_factory=list)
    downloads: dict[str, int] = field(default_factory=dict)  # completed body downloads per media id
    outage: Injected | None = None  # every send answers this until `outage_until` (time.monotonic())
    outage_until: float = 0.0
    refused_during_outage: int = 0
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_media(self, body: bytes, mime_type: str, media_id: str | None = None) -> StoredMedia:
        """Hold `body` as a user's upload; answers it with its id-to-be and digest (`media_id` or a fresh one)."""
        media_id = media_id or f"{next(self._seq):016d}"
        stored = StoredMedia(body, mime_type, hashlib.sha256(body).hexdigest())
        self.media[media_id] = stored
        return stored

    def media_id_of(self, stored: StoredMedia) -> str:
        return next(k for k, v in self.media.items() if v is stored)

    def fail_media(self, fault: str, count: int = 1, media_id: str | None = None, delay_ms: int = 0) -> None:
        if fault not in MEDIA_FAULTS:
            raise ValueError(f"unknown media fault {fault!r}; one of {', '.join(MEDIA_FAULTS)}")
        self.media_faults.append(MediaFault(fault, count, media_id, delay_ms))

    def _media_fault(self, media_id: str, kinds: tuple[str, ...]) -> MediaFault | None:
        for fault in self.media_faults:
            if fault.fault in kinds and fault.media_id in (None, media_id):
                fault.count -= 1
                if fault.count <= 0:
                    self.media_faults.remove(fault)
                return fault
        return None

    def _authorized(self, request: web.Request) -> bool:
        return not self.access_token or request.headers.get("Authorization") == f"Bearer {self.access_token}"

    async def handle_media_upload(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not body:
            return _graph_error(400, 100, "Empty media body")
        mime = request.headers.get("Content-Type", "application/octet-stream")
        stored = self.add_media(body, mime)
        return web.json_response({"id": self.media_id_of(stored), "sha256": stored.sha256,
                                  "file_size": len(body), "mime_type": mime})

    async def handle_media_info(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _graph_error(401, 190, "Invalid OAuth access token")
        media_id = request.match_info["media_id"]
        fault = self._media_fault(media_id, ("404", "500", "wrong_mime", "slow"))
        if fault is not None and fault.fault == "slow":
            await asyncio.sleep(fault.delay_ms / 1000)
        stored = self.media.get(media_id)
        if stored is None or (fault is not None and fault.fault == "404"):
            return _graph_error(404, 100, f"Unsupported get request. Object with ID '{media_id}' does not exist")
        if fault is not None and fault.fault == "500":
            return _graph_error(500, 2, "Service temporarily unavailable")
        suffix = f"/{request.match_info['version']}/{media_id}"
        prefix = request.path[: -len(suffix)] if request.path.endswith(suffix) else ""
        url = str(request.url.with_path(f"{prefix}/_media/{media_id}/download").with_query(
            {"ext": uuid.uuid4().hex[:8]}))  # a fresh, short-lived-looking URL each time
        mime = "application/x-msdownload" if fault is not None and fault.fault == "wrong_mime" else stored.mime_type
        return web.json_response({"messaging_product": "whatsapp", "url": url, "mime_type": mime,
                                  "sha256": stored.sha256, "file_size": len(stored.body), "id": media_id})

    async def handle_media_download(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _graph_error(401, 190, "Invalid OAuth access token")
        media_id = request.match_info["media_id"]
        stored = self.media.get(media_id)
        if stored is None:
            return _graph_error(404, 100, "Media not found")
        fault = self._media_fault(media_id, ("wrong_sha", "oversize", "stall"))
        response = web.StreamResponse(headers={"Content-Type": stored.mime_type})
        await response.prepare(request)
        try:
            if fault is not None and fault.fault == "oversize":
                chunk = b"\0" * (1024 * 1024)
                for _ in range(OVERSIZE_BYTES // len(chunk)):
                    await response.write(chunk)
            elif fault is not None and fault.fault == "stall":
                half = len(stored.body) // 2
                await response.write(stored.body[:half])
                await asyncio.sleep(fault.delay_ms / 1000)
                await response.write(stored.body[half:])
            elif fault is not None and fault.fault == "wrong_sha":
                await response.write(bytes([stored.body[0] ^ 0xFF]) + stored.body[1:])
            else:
                await response.write(stored.body)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            return response  # the client stopped reading (e.g. past its limit)
        self.downloads[media_id] = self.downloads.get(media_id, 0) + 1
        return response

    async def handle_media_fail(self, request: web.Request) -> web.Response:
        data = await request.json()
        try:
            self.fail_media(str(data.get("fault", "")), int(data.get("count", 1)), data.get("media_id"),
                            int(data.get("delay_ms", 0)))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def handle_media_log(self, request: web.Request) -> web.Response:
        return web.json_response({"downloads": self.downloads, "media": len(self.media)})

    def fail_next(self, status: int, code: int, count: int = 1, delay_ms: int = 0, message: str = "injected") -> None:
        self.failures.append(Injected(status, code, count, delay_ms, message))

    def fail_for(self, status: int, code: int, seconds: float, message: str = "injected outage") -> None:
        self.outage = Injected(status, code, 0, 0, message)
        self.outage_until = time.monotonic() + seconds

    def reset(self) -> None:
        self.sent.clear()
        self.failures.clear()
        self.delay_ms = 0
        self.media_faults.clear()
        self.downloads.clear()
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
        # Room for a 100 MB document on POST /_media when served alone; mounted in the local host, the
        # host's own request limit applies (the console hands bodies over in process instead).
        app = web.Application(client_max_size=OVERSIZE_BYTES + 1024 * 1024)
        app.router.add_post("/{version}/{phone_number_id}/messages", self.handle_send)
        app.router.add_post("/_media", self.handle_media_upload)
        app.router.add_post("/_media_fail", self.handle_media_fail)
        app.router.add_get("/_media_log", self.handle_media_log)
        app.router.add_get("/_media/{media_id}/download", self.handle_media_download)
        app.router.add_get("/{version}/{media_id}", self.handle_media_info)
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
    if body.get("type") == "template":
        return template_problem(body.get("template"))
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


_TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")


def template_problem(template: object) -> str | None:
    """What Graph refuses in a template message: no name or language code, a component that is not a
    list of text parameters, an empty parameter, or one with a newline, a tab or more than 4 spaces in a
    row (error 132018)."""
    if not isinstance(template, dict):
        return "Param template is required"
    if not _TEMPLATE_NAME.match(str(template.get("name") or "")):
        return "Param template['name'] is invalid"
    if not isinstance(template.get("language"), dict) or not _dig(template, "language", "code"):
        return "Param template['language']['code'] is required"
    for component in template.get("components") or []:
        if not isinstance(component, dict) or component.get("type") not in ("body", "header", "button"):
            return "Param template['components'][]['type'] is invalid"
        for parameter in component.get("parameters") or []:
            text = parameter.get("text") if isinstance(parameter, dict) else None
            if not isinstance(parameter, dict) or parameter.get("type") != "text" or not isinstance(text, str):
                return "Param template['components'][]['parameters'][] must be a text parameter"
            if not text.strip() or re.search(r"[\n\t]| {5,}", text):
                return ("(#132018) Param text cannot have new-line/tab characters or more than 4 consecutive "
                        "spaces")
    return None


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
