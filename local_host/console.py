"""The local chat console: talk to the bot in a browser as one or several WhatsApp users (local host only).

Messages go in exactly as Meta sends them: the console builds a Meta-shaped webhook body, signs it with
`WHATSAPP_APP_SECRET` and POSTs it over loopback HTTP to the real `/api/whatsapp/webhook`; it never
calls bot code. Replies come back through the real outbound path: when `WHATSAPP_API_BASE_URL` points
at this host's `/_fake_graph`, the fake Graph API mounted here records them and the page shows them.
Beside the chat, a read-only state panel (session, lease, inbox, outbox, reports) read from the database.

    GET  /                           the page (local_host/static/)
    GET  /_console/api/config        where messages go and whether replies can be seen
    GET  /_console/api/conversations phones the console or the database knows
    GET  /_console/api/state?user=K  the thread and the state panel of one conversation
    POST /_console/api/send          {"user", "name", "text"} or {"user", "name", "reply": {...}}
    POST /_console/api/resend        {"user"}: the last body again, same wamid and signature
    POST /_console/api/burst         {"user", "name", "text"?, "count"?}: several messages at once
    GET  /_console/api/report?numero=RPT-000001   a report with its history (as GET /api/reportes/{numero})
    POST /_console/api/report/status {"numero", "estado", "nota"?}: maintenance's status change, reporter told
    POST /_console/api/release       {"user"}: give a conversation in ATENCION_HUMANA back to the bot
    POST /_console/api/media         {"user", "name", "kind", "data"? (base64), "mime_type"?, "filename"?,
                                      "caption"?, "spoken"?}: a photo, voice note, video or document,
                                      uploaded to the fake Graph API and announced by its media id
    POST /_console/api/location      {"user", "name", "latitude", "longitude", "label"?, "address"?}
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp import web

from bot.outbound.campaigns import ApiResponse
from bot.runtime import Runtime
from core.errors import BotError
from core.media.limits import base_mime
from core.storage.evidence import EvidenceView, evidence_for_phone
from core.storage.inspection import list_conversations, read_conversation_state
from core.telemetry import mask_phone
from local_host.fake_ai import fake_voice_note
from local_host.fake_graph import FakeGraph
from local_host.meta_payloads import (
    Identity,
    PayloadError,
    SignedPayload,
    button_reply,
    list_reply,
    location_message,
    media_message,
    parse_identity,
    signed,
    text_message,
    webhook_body,
)
from local_host.queues import LocalQueue

log = logging.getLogger("local_host.console")
STATIC_DIR = Path(__file__).parent / "static"
FAKE_GRAPH_PREFIX = "/_fake_graph"
WEBHOOK_PATH = "/api/whatsapp/webhook"
MAX_BURST = 10
MAX_THREAD = 500  # deliveries remembered per conversation
STATE_LIMIT = 25
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"}  # addresses that reach this machine
_LOOPBACK_ONLY = {"127.0.0.1", "localhost", "::1"}  # binds no other machine can reach


@dataclass
class Delivery:
    """One POST the console made to the webhook, as the thread shows it."""

    seq: int  # unique per console process: a redelivery shares its wamid, not its place in the thread
    key: str
    wamid: str
    kind: str  # text / button_reply / list_reply
    text: str
    wa_timestamp: int
    at: float  # when the POST started (the thread's clock, shared with the fake Graph's records)
    redelivery: bool = False
    burst: bool = False
    status: int | None = None  # the webhook's HTTP answer; None while in flight or if it failed
    error: str | None = None
    ack_ms: float | None = None


@dataclass
class Console:
    runtime: Runtime
    webhook_url: str
    fake_graph: FakeGraph | None
    deliveries: dict[str, list[Delivery]] = field(default_factory=dict)
    last: dict[str, tuple[SignedPayload, Delivery]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    session: aiohttp.ClientSession | None = None
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def _remember(self, delivery: Delivery) -> None:
        thread = self.deliveries.setdefault(delivery.key, [])
        thread.append(delivery)
        del thread[:-MAX_THREAD]

    async def _post(self, payload: SignedPayload, delivery: Delivery) -> Delivery:
        assert self.session is not None, "console not started"
        self._remember(delivery)
        started = time.perf_counter()
        try:
            async with self.session.post(
                self.webhook_url,
                data=payload.body,
                headers={"Content-Type": "application/json", "X-Hub-Signature-256": payload.signature},
            ) as response:
                await response.read()
                delivery.status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
            log.warning("Consola: el webhook no respondió para %s: %s", mask_phone(delivery.key), delivery.error)
        delivery.ack_ms = round((time.perf_counter() - started) * 1000, 1)
        return delivery

    def _build(self, who: Identity, message: dict[str, Any], *, burst: bool = False) -> tuple[SignedPayload, Delivery]:
        settings = self.runtime.settings
        wamid, body = webhook_body(who, message, phone_number_id=settings.whatsapp_phone_number_id)
        payload = signed(wamid, body, settings.whatsapp_app_secret)
        msg = body["entry"][0]["changes"][0]["value"]["messages"][0]
        kind = message["interactive"]["type"] if message["type"] == "interactive" else message["type"]
        text = thread_text(message, kind)
        delivery = Delivery(
            next(self._seq), who.key, wamid, kind, text, int(msg["timestamp"]), time.time(), burst=burst
        )
        self.names[who.key] = who.name
        return payload, delivery

    async def send(self, who: Identity, message: dict[str, Any]) -> Delivery:
        payload, delivery = self._build(who, message)
        self.last[who.key] = (payload, delivery)
        return await self._post(payload, delivery)

    async def resend(self, key: str) -> Delivery:
        """Meta's redelivery: the very same bytes, wamid and signature as the last message of `key`."""
        if key not in self.last:
            raise PayloadError("no hay un mensaje anterior de esta conversación para reenviar")
        payload, first = self.last[key]
        again = Delivery(
            next(self._seq), key, first.wamid, first.kind, first.text, first.wa_timestamp, time.time(), redelivery=True
        )
        return await self._post(payload, again)

    async def burst(self, who: Identity, texts: list[str]) -> list[Delivery]:
        """Several messages of one user at once, as a person typing fast does; each its own wamid."""
        built = [self._build(who, text_message(t), burst=True) for t in texts]
        self.last[who.key] = built[-1]
        return list(await asyncio.gather(*(self._post(p, d) for p, d in built)))

    def thread(self, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = [{"side": "user", **asdict(d)} for d in self.deliveries.get(key, [])]
        if self.fake_graph is not None:
            items += [
                {"side": "bot", "wamid": s["wamid"], "at": s["at"], "payload": s["payload"]}
                for s in self.fake_graph.sent
                if s["recipient"] == key
            ]
        items.sort(key=lambda item: item["at"])
        return items


CONSOLE_KEY = web.AppKey("console", Console)
MEDIA_LABELS = {"image": "📷 Foto", "audio": "🎤 Nota de voz", "video": "🎬 Video", "document": "📄 Documento",
                "sticker": "Sticker"}
# A 1x1 PNG: the photo the console sends when no file was chosen.
SAMPLE_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
                              "AAAABJRU5ErkJggg==")
MAX_CONSOLE_MEDIA = 2 * 1024 * 1024  # the host's request size limit leaves room for about this much base64


def thread_text(message: dict[str, Any], kind: str) -> str:
    """How the thread shows what the user sent."""
    if kind == "text":
        return str(message["text"]["body"])
    if kind in ("button_reply", "list_reply"):
        return str(message["interactive"][kind]["title"])
    if kind == "location":
        loc = message["location"]
        return f"📍 {loc.get('name') or 'Ubicación'} ({loc['latitude']:.5f}, {loc['longitude']:.5f})"
    body = message.get(kind) or {}
    extra = body.get("caption") or body.get("filename") or ""
    return f"{MEDIA_LABELS.get(kind, kind)}{': ' + extra if extra else ''}"


def loopback_base(base_url: str) -> str:
    """The URL this process can reach itself at (a wildcard bind address is not a destination)."""
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme or "http", netloc, "", "", "")).rstrip("/")


def points_at_fake_graph(api_base_url: str, base_url: str) -> bool:
    """True when `WHATSAPP_API_BASE_URL` is this host's `/_fake_graph/...` (then we must serve it)."""
    api, own = urlsplit(api_base_url), urlsplit(base_url)
    return (
        api.scheme == "http"
        and api.hostname in _LOOPBACK
        and own.hostname in _LOOPBACK
        and api.port == own.port
        and (api.path.rstrip("/") + "/").startswith(FAKE_GRAPH_PREFIX + "/")
    )


# -- HTTP handlers --------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PayloadError("el cuerpo no es JSON válido") from None
    if not isinstance(data, dict):
        raise PayloadError("se esperaba un objeto JSON")
    return data


def _guarded(fn: Handler) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except PayloadError as exc:
            return _bad_request(str(exc))
        except BotError as exc:
            log.warning("Consola: no se pudo leer el estado: %s", exc)
            return web.json_response({"error": f"base de datos no disponible: {exc}"}, status=503)

    return handler


def _console(request: web.Request) -> Console:
    return request.app[CONSOLE_KEY]


def _message_from(data: dict[str, Any]) -> dict[str, Any]:
    reply = data.get("reply")
    if reply is None:
        return text_message(str(data.get("text", "")))
    if not isinstance(reply, dict):
        raise PayloadError("'reply' debe ser un objeto")
    context = reply.get("context") or None
    if reply.get("type") == "button_reply":
        return button_reply(str(reply.get("id", "")), str(reply.get("title", "")), context)
    if reply.get("type") == "list_reply":
        return list_reply(
            str(reply.get("id", "")), str(reply.get("title", "")), str(reply.get("description") or ""), context
        )
    raise PayloadError("'reply.type' debe ser button_reply o list_reply")


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})


async def config(request: web.Request) -> web.Response:
    console = _console(request)
    settings = console.runtime.settings
    return web.json_response(
        {
            "webhook_url": console.webhook_url,
            "api_base_url": settings.whatsapp_api_base_url,
            "fake_graph": console.fake_graph is not None,
            "phone_number_id": settings.whatsapp_phone_number_id,
            "backend": settings.backend,
        }
    )


async def conversations(request: web.Request) -> web.Response:
    console = _console(request)
    known = {key: {"user": key, "name": name, "estado": None} for key, name in console.names.items()}
    for row in await list_conversations(console.runtime.db):
        known.setdefault(row.telefono, {"user": row.telefono, "name": "", "estado": None})["estado"] = row.estado
    return web.json_response(list(known.values()))


async def state(request: web.Request) -> web.Response:
    console = _console(request)
    key = parse_identity(request.query.get("user", "")).key
    view = await read_conversation_state(console.runtime.db, key, STATE_LIMIT)
    evidence = [evidence_view(e) for e in await evidence_for_phone(console.runtime.db, key, STATE_LIMIT)]
    return web.json_response(
        {"user": key, "now_ms": console.runtime.clock(), "thread": console.thread(key), "state": asdict(view),
         "queue": queue_view(console.runtime.handoff), "evidence": evidence}
    )


def evidence_view(row: EvidenceView) -> dict[str, Any]:
    """An `Evidencias` row for the panel: what came in, where it stands, what was heard."""
    return {"message_id": row.message_id, "tipo": row.kind, "estado": str(row.state), "intentos": row.attempts,
            "tamano": row.size, "mime": row.mime, "ruta": row.path, "ultimo_error": row.last_error,
            "reporte_id": row.report_id, "transcripcion": row.transcript}


def queue_view(queue: object) -> dict[str, Any] | None:
    """The worker queue's length, when it is the local host's in-process one."""
    if not isinstance(queue, LocalQueue):
        return None
    return {"name": queue.name, "depth": queue.depth(), "in_flight": queue.in_flight, "poison": len(queue.poison)}


async def send(request: web.Request) -> web.Response:
    data = await _json_body(request)
    who = parse_identity(str(data.get("user", "")), str(data.get("name", "")))
    delivery = await _console(request).send(who, _message_from(data))
    return web.json_response(asdict(delivery))


async def resend(request: web.Request) -> web.Response:
    data = await _json_body(request)
    key = parse_identity(str(data.get("user", ""))).key
    delivery = await _console(request).resend(key)
    return web.json_response(asdict(delivery))


def _media_body(data: dict[str, Any], kind: str) -> tuple[bytes, str]:
    """The bytes the user "sends" and their MIME type: the file given, or a stand-in (a sample photo; a
    voice note carrying the words typed, which the fake AI's transcription reads back)."""
    raw = data.get("data")
    if raw:
        try:
            body = base64.b64decode(str(raw), validate=True)
        except (binascii.Error, ValueError):
            raise PayloadError("'data' debe ser base64") from None
        mime = str(data.get("mime_type") or "").strip()
        if not body or not mime:
            raise PayloadError("un archivo necesita contenido y 'mime_type'")
    elif kind == "image":
        body, mime = SAMPLE_PNG, "image/png"
    elif kind == "audio":
        body, mime = fake_voice_note(str(data.get("spoken") or "")), "audio/ogg; codecs=opus"
    else:
        raise PayloadError(f"para enviar {kind} elige un archivo")
    if len(body) > MAX_CONSOLE_MEDIA:
        raise PayloadError(f"la consola acepta archivos de hasta {MAX_CONSOLE_MEDIA // (1024 * 1024)} MB")
    return body, mime


async def media(request: web.Request) -> web.Response:
    data = await _json_body(request)
    console = _console(request)
    if console.fake_graph is None:
        raise PayloadError("sin la Graph API falsa de este host no hay de dónde descargar el medio")
    who = parse_identity(str(data.get("user", "")), str(data.get("name", "")))
    kind = str(data.get("kind", ""))
    body, mime = _media_body(data, kind)
    message = media_message(  # validated before the upload, so bad input uploads nothing
        kind, "pendiente", mime, base64.b64encode(hashlib.sha256(body).digest()).decode(),
        caption=str(data.get("caption") or "").strip() or None, filename=str(data.get("filename") or "") or None,
        voice=kind == "audio" and not data.get("data"))
    stored = console.fake_graph.add_media(body, base_mime(mime))
    message[kind]["id"] = console.fake_graph.media_id_of(stored)
    delivery = await console.send(who, message)
    return web.json_response(asdict(delivery))


async def location(request: web.Request) -> web.Response:
    data = await _json_body(request)
    who = parse_identity(str(data.get("user", "")), str(data.get("name", "")))
    try:
        latitude, longitude = float(data.get("latitude", "")), float(data.get("longitude", ""))
    except (TypeError, ValueError):
        raise PayloadError("'latitude' y 'longitude' deben ser números") from None
    message = location_message(latitude, longitude, str(data.get("label") or "") or None,
                               str(data.get("address") or "") or None)
    delivery = await _console(request).send(who, message)
    return web.json_response(asdict(delivery))


async def burst(request: web.Request) -> web.Response:
    data = await _json_body(request)
    who = parse_identity(str(data.get("user", "")), str(data.get("name", "")))
    try:
        count = int(data.get("count", 5))
    except (TypeError, ValueError):
        raise PayloadError("'count' debe ser un número") from None
    if not 1 <= count <= MAX_BURST:
        raise PayloadError(f"'count' debe estar entre 1 y {MAX_BURST}")
    text = str(data.get("text") or "").strip()
    texts = [text or f"Mensaje {i} de {count}" for i in range(1, count + 1)]
    deliveries = await _console(request).burst(who, texts)
    return web.json_response([asdict(d) for d in deliveries])


def _api(response: ApiResponse) -> web.Response:
    return web.json_response(response.body, status=response.status)


async def report(request: web.Request) -> web.Response:
    return _api(await _console(request).runtime.reports.detail(request.query.get("numero", "")))


async def report_status(request: web.Request) -> web.Response:
    """The same action, validation and answers as `POST /api/reportes/{numero}/estado`."""
    data = await _json_body(request)
    number = str(data.pop("numero", ""))
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return _api(await _console(request).runtime.reports.change_status(number, body))


async def release(request: web.Request) -> web.Response:
    """The same action as `POST /api/conversaciones/{telefono}/liberar`."""
    data = await _json_body(request)
    key = parse_identity(str(data.get("user", ""))).key
    return _api(await _console(request).runtime.reports.release_conversation(key))


def mount_console(web_app: web.Application, runtime: Runtime, base_url: str) -> str | None:
    """Add the fake Graph API (when settings point at it), the page and its API; answer the page's URL.

    The page signs webhooks with the app secret for whoever asks, so it is only served on a loopback
    bind; on another address (`--host 0.0.0.0`) only the fake Graph API is mounted.
    """
    own = loopback_base(base_url)
    fake_graph: FakeGraph | None = None
    if points_at_fake_graph(runtime.settings.whatsapp_api_base_url, own):
        # Checks the bearer token like the real Graph API does, so a sender that forgets it fails here too.
        fake_graph = FakeGraph(access_token=runtime.settings.whatsapp_access_token or None)
        web_app.add_subapp(FAKE_GRAPH_PREFIX, fake_graph.build_app())
    if urlsplit(base_url).hostname not in _LOOPBACK_ONLY:
        log.warning("Consola de chat desactivada: solo se sirve en 127.0.0.1/localhost, no en %s", base_url)
        return None
    console = Console(runtime=runtime, webhook_url=own + WEBHOOK_PATH, fake_graph=fake_graph)
    web_app[CONSOLE_KEY] = console

    async def on_startup(_: web.Application) -> None:
        await console.start()

    async def on_cleanup(_: web.Application) -> None:
        await console.close()

    web_app.on_startup.append(on_startup)
    web_app.on_cleanup.append(on_cleanup)
    router = web_app.router
    router.add_get("/", index)
    router.add_static("/_console/static/", STATIC_DIR)
    router.add_get("/_console/api/config", config)
    router.add_get("/_console/api/conversations", _guarded(conversations))
    router.add_get("/_console/api/state", _guarded(state))
    router.add_post("/_console/api/send", _guarded(send))
    router.add_post("/_console/api/resend", _guarded(resend))
    router.add_post("/_console/api/burst", _guarded(burst))
    router.add_get("/_console/api/report", _guarded(report))
    router.add_post("/_console/api/report/status", _guarded(report_status))
    router.add_post("/_console/api/release", _guarded(release))
    router.add_post("/_console/api/media", _guarded(media))
    router.add_post("/_console/api/location", _guarded(location))
    return own + "/"
