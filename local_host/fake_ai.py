"""Fake OpenAI (Responses, Conversations, cancel) and Gemini (generateContent) servers, plus a black hole.

Real HTTP servers on 127.0.0.1, so the real SDK clients are exercised end to end. Their "model" answers
with the offline rules, in the JSON the request's schema asks for. Misbehaviour is scripted per call
(`push`) or made the default (`always`): `ok`, `slow` (delay_s, then ok), `hang` (never answers; a
client that gives up is counted in `disconnects`), `status` (an HTTP error, e.g. 500 or 429),
`malformed` (200 with model text that is not the JSON asked for), `garbage` (200 with a body that is not
JSON at all).

Run both alone (e.g. for a storm with a provider that hangs on every call):
    python -m local_host.fake_ai --openai-port 9101 --gemini-port 9102 --behavior hang
Control while running: POST /_behavior {"kind": "hang"} ; GET /_state.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from core.ai.offline import OfflineProvider
from core.ai.structured import extraction_json
from core.ai.types import TermKind

VOICE_MARKER = b"\nVOZ:"


def fake_voice_note(text: str) -> bytes:
    """Bytes that stand for a voice note saying `text` (an Ogg page header, then the words): the fake
    transcription endpoints answer the words, so a test or the console decides what was "said"."""
    return b"OggS\x00\x02" + bytes(20) + VOICE_MARKER + text.encode("utf-8")


def spoken_text(audio: bytes) -> str:
    _, found, words = audio.partition(VOICE_MARKER)
    return words.decode("utf-8", "replace").strip() if found else ""


@dataclass
class Behavior:
    kind: str = "ok"  # ok | slow | hang | status | malformed | garbage
    delay_s: float = 0.0
    status: int = 500
    count: int = 1
    text: str | None = None  # ok: the model text to answer instead of the computed one


async def _model_answer(schema: dict[str, Any], text: str) -> str:
    """What a well-behaved model answers: the offline rules, shaped by the schema asked for."""
    rules = OfflineProvider()
    props = schema.get("properties", {})
    if "valor" in props:
        enum = props["valor"].get("enum", [])
        kind = TermKind.SI_NO if "SI" in enum else TermKind.TIPO_EQUIPO
        return json.dumps({"valor": await rules.interpret_term(text, kind)})
    if "tipo_equipo" in props:
        return json.dumps(extraction_json(await rules.extract_structured_data(text)), ensure_ascii=False)
    i = await rules.detect_intent(text)
    return json.dumps({"intencion": i.intent.value, "confianza": i.confidence})


class _ScriptedServer:
    """Shared misbehaviour machinery."""

    def __init__(self) -> None:
        self.script: list[Behavior] = []
        self.default = Behavior()
        self.calls = 0
        self.disconnects = 0  # hung requests whose client went away (the client really cancelled)
        self.hanging = 0

    def push(self, kind: str, count: int = 1, **kw: Any) -> None:
        self.script.append(Behavior(kind=kind, count=count, **kw))

    def always(self, kind: str, **kw: Any) -> None:
        self.script.clear()
        self.default = Behavior(kind=kind, **kw)

    def _next(self) -> Behavior:
        self.calls += 1
        if self.script:
            behavior = self.script[0]
            behavior.count -= 1
            if behavior.count <= 0:
                self.script.pop(0)
            return behavior
        return self.default

    async def _hang(self, request: web.Request) -> web.Response:
        self.hanging += 1
        try:
            while True:
                transport = request.transport
                if transport is None or transport.is_closing():
                    self.disconnects += 1
                    return web.Response(status=499)
                await asyncio.sleep(0.02)
        finally:
            self.hanging -= 1

    def _error_body(self, status: int) -> dict[str, Any]:
        raise NotImplementedError

    async def misbehave(self, request: web.Request, behavior: Behavior) -> web.StreamResponse | None:
        """Answer for a misbehaving call, or None to go on with a normal answer."""
        if behavior.kind == "hang":
            return await self._hang(request)
        if behavior.kind == "slow":
            await asyncio.sleep(behavior.delay_s)
        if behavior.kind == "status":
            return web.json_response(self._error_body(behavior.status), status=behavior.status)
        if behavior.kind == "garbage":
            return web.Response(status=200, text="<html>definitely not json", content_type="application/json")
        return None

    async def handle_behavior(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.always(data.pop("kind", "ok"), **data)
        return web.json_response({"ok": True})

    async def handle_state(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": self.calls, "disconnects": self.disconnects, "hanging": self.hanging})


@dataclass
class StoredResponse:
    id: str
    conversation: str | None
    created_at: float
    status: str
    answer: str
    complete_at: float | None  # monotonic; None = never completes by itself


class FakeOpenAI(_ScriptedServer):
    """POST /v1/responses, GET /v1/responses/{id}, POST /v1/responses/{id}/cancel, POST /v1/conversations."""

    def __init__(self) -> None:
        super().__init__()
        self.responses: dict[str, StoredResponse] = {}
        self.conversations: set[str] = set()
        self.cancelled: list[str] = []
        self.transcriptions: list[str] = []  # the model of each transcription asked for
        self.background_completes_after: float | None = 0.05  # None: background responses never finish
        self.background_answer = "Para reportar una falla escribe 'reportar falla'."
        self._seq = itertools.count(1)

    def _error_body(self, status: int) -> dict[str, Any]:
        code = "rate_limit_exceeded" if status == 429 else "server_error"
        return {"error": {"message": f"injected {status}", "type": code, "code": code, "param": None}}

    def _refresh(self, stored: StoredResponse) -> None:
        if stored.status not in ("queued", "in_progress"):
            return
        if stored.complete_at is not None and time.monotonic() >= stored.complete_at:
            stored.status = "completed"
        else:
            stored.status = "in_progress"  # picked up after its first look, like the real service

    def _body(self, stored: StoredResponse, text: str | None = None) -> dict[str, Any]:
        output = []
        if stored.status == "completed":
            content = [{"type": "output_text", "text": text if text is not None else stored.answer, "annotations": []}]
            output = [{"type": "message", "id": f"msg_{stored.id}", "status": "completed", "role": "assistant",
                       "content": content}]  # fmt: skip
        return {
            "id": stored.id,
            "object": "response",
            "created_at": stored.created_at,
            "status": stored.status,
            "model": "gpt-fake",
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "background": stored.complete_at != 0,
            "conversation": {"id": stored.conversation} if stored.conversation else None,
        }

    async def handle_create(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        behavior = self._next()
        early = await self.misbehave(request, behavior)
        if early is not None:
            return early
        rid = f"resp_{next(self._seq):06d}"
        conversation = body.get("conversation")
        if isinstance(conversation, dict):
            conversation = conversation.get("id")
        if conversation and conversation not in self.conversations:
            return web.json_response({"error": {"message": f"Conversation {conversation} not found.",
                                                "type": "invalid_request_error", "param": "conversation",
                                                "code": None}}, status=404)  # fmt: skip
        if conversation:
            for other in self.responses.values():
                self._refresh(other)
                if other.conversation == conversation and other.status in ("queued", "in_progress"):
                    return web.json_response(
                        {"error": {"message": "Another process is currently operating on this conversation.",
                                   "type": "invalid_request_error", "param": "conversation",
                                   "code": "conversation_locked"}},
                        status=400,
                    )  # fmt: skip
        if body.get("background"):
            after = self.background_completes_after
            stored = StoredResponse(rid, conversation, time.time(), "queued", self.background_answer,
                                    None if after is None else time.monotonic() + after)  # fmt: skip
            self.responses[rid] = stored
            return web.json_response(self._body(stored))
        schema = ((body.get("text") or {}).get("format") or {}).get("schema") or {}
        if behavior.kind == "malformed":
            text = "claro, aquí va: {intencion: REPORTAR"
        elif behavior.text is not None:
            text = behavior.text
        else:
            text = await _model_answer(schema, str(body.get("input", "")))
        stored = StoredResponse(rid, conversation, time.time(), "completed", text, 0)
        return web.json_response(self._body(stored))

    async def handle_retrieve(self, request: web.Request) -> web.StreamResponse:
        behavior = self._next()
        early = await self.misbehave(request, behavior)
        if early is not None:
            return early
        stored = self.responses.get(request.match_info["rid"])
        if stored is None:
            return web.json_response({"error": {"message": "not found", "type": "invalid_request_error",
                                                "code": None, "param": None}}, status=404)  # fmt: skip
        self._refresh(stored)
        return web.json_response(self._body(stored))

    async def handle_cancel(self, request: web.Request) -> web.StreamResponse:
        stored = self.responses.get(request.match_info["rid"])
        if stored is None:
            return web.json_response({"error": {"message": "not found", "type": "invalid_request_error",
                                                "code": None, "param": None}}, status=404)  # fmt: skip
        self._refresh(stored)
        if stored.status in ("queued", "in_progress"):
            stored.status = "cancelled"
            self.cancelled.append(stored.id)
        return web.json_response(self._body(stored))

    async def handle_transcription(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/audio/transcriptions (multipart: file, model, ...): the words the note carries."""
        form = await request.post()
        behavior = self._next()
        early = await self.misbehave(request, behavior)
        if early is not None:
            return early
        upload = form.get("file")
        audio = upload.file.read() if isinstance(upload, web.FileField) else b""
        self.transcriptions.append(str(form.get("model", "")))
        text = behavior.text if behavior.text is not None else spoken_text(audio)
        return web.json_response({"text": text})

    async def handle_conversation(self, request: web.Request) -> web.StreamResponse:
        behavior = self._next()
        early = await self.misbehave(request, behavior)
        if early is not None:
            return early
        cid = f"conv_{next(self._seq):06d}"
        self.conversations.add(cid)
        return web.json_response({"id": cid, "object": "conversation", "created_at": int(time.time()), "metadata": {}})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/responses", self.handle_create)
        app.router.add_get("/v1/responses/{rid}", self.handle_retrieve)
        app.router.add_post("/v1/responses/{rid}/cancel", self.handle_cancel)
        app.router.add_post("/v1/conversations", self.handle_conversation)
        app.router.add_post("/v1/audio/transcriptions", self.handle_transcription)
        app.router.add_post("/_behavior", self.handle_behavior)
        app.router.add_get("/_state", self.handle_state)
        return app


class FakeGemini(_ScriptedServer):
    """POST /{version}/models/{model}:generateContent (the Gemini Developer API path)."""

    def _error_body(self, status: int) -> dict[str, Any]:
        name = "RESOURCE_EXHAUSTED" if status == 429 else "INTERNAL"
        return {"error": {"code": status, "message": f"injected {status}", "status": name}}

    async def handle_generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        behavior = self._next()
        early = await self.misbehave(request, behavior)
        if early is not None:
            return early
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or {}
        user_text = "".join(p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", []))
        audio = [base64.b64decode(p["inlineData"].get("data", "")) for c in body.get("contents", [])
                 for p in c.get("parts", []) if isinstance(p.get("inlineData"), dict)]
        if audio and behavior.kind != "malformed":  # audio input: the model transcribes it
            text = behavior.text if behavior.text is not None else spoken_text(audio[0])
        elif behavior.kind == "malformed":
            text = '```json\n{"intencion": "REPORTAR_FALLA", "confianza": '
        elif behavior.text is not None:
            text = behavior.text
        else:
            text = await _model_answer(schema, user_text)
        return web.json_response(
            {
                "candidates": [
                    {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP", "index": 0}
                ],
                "modelVersion": "gemini-fake",
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(r"/{version}/models/{action:[^/]+:generateContent}", self.handle_generate)
        app.router.add_post("/_behavior", self.handle_behavior)
        app.router.add_get("/_state", self.handle_state)
        return app


@dataclass
class Served:
    runner: web.AppRunner
    base_url: str

    async def close(self) -> None:
        await self.runner.cleanup()


async def serve(app: web.Application, port: int = 0) -> Served:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    sockets = site._server.sockets  # type: ignore[union-attr]
    return Served(runner, f"http://127.0.0.1:{sockets[0].getsockname()[1]}")


@dataclass
class BlackHole:
    """Accepts TCP connections and never reads or writes: the hanging connection, below HTTP."""

    server: asyncio.Server
    base_url: str
    accepted: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def close(self) -> None:
        for w in self.writers:
            w.close()
        self.server.close()
        await self.server.wait_closed()


async def start_black_hole() -> BlackHole:
    hole: BlackHole | None = None

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert hole is not None
        hole.accepted += 1
        hole.writers.append(writer)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    hole = BlackHole(server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    return hole


async def _main(openai_port: int, gemini_port: int, behavior: str) -> None:
    fake_openai, fake_gemini = FakeOpenAI(), FakeGemini()
    fake_openai.always(behavior)
    fake_gemini.always(behavior)
    a = await serve(fake_openai.app(), openai_port)
    b = await serve(fake_gemini.app(), gemini_port)
    print(f"fake OpenAI at {a.base_url}/v1  fake Gemini at {b.base_url}  behavior={behavior}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--openai-port", type=int, default=9101)
    parser.add_argument("--gemini-port", type=int, default=9102)
    parser.add_argument("--behavior", default="ok", choices=["ok", "hang", "malformed", "garbage"])
    args = parser.parse_args()
    asyncio.run(_main(args.openai_port, args.gemini_port, args.behavior))
