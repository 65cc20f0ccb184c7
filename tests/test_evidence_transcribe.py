"""Voice notes read by the AI provider (fake OpenAI and fake Gemini servers on loopback, driven by the real
SDK clients), the note fetched from the fake Graph API; and the bot's sweep retrying a failed download."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.messages import InboundMessage, MessageKind
from bot.runtime import Runtime, build_runtime
from bot.texts import evidence_summary
from core.settings import load_settings
from core.storage.evidence import evidence_by_message, record_evidence
from core.storage.states import EvidenceState
from local_host.fake_ai import FakeGemini, FakeOpenAI, fake_voice_note, serve
from tests.conftest import base_env
from tests.evidence_support import PHONE, PNG, Clock, GraphServer, record, start_graph, webhook_sha

SAID = "el refri de la tienda 45 no enfría"


@pytest.fixture
async def graph() -> AsyncIterator[GraphServer]:
    server = await start_graph()
    yield server
    await server.close()


@pytest.fixture
async def openai() -> AsyncIterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    served = await serve(fake.app())
    yield fake, served.base_url + "/v1"
    await served.close()


@pytest.fixture
async def gemini() -> AsyncIterator[tuple[FakeGemini, str]]:
    fake = FakeGemini()
    served = await serve(fake.app())
    yield fake, served.base_url
    await served.close()


def _runtime(db_path: Path, graph: GraphServer, clock: Clock | None = None, **env: str) -> Runtime:
    settings = load_settings(base_env(db_path, WHATSAPP_API_BASE_URL=graph.base_url,
                                      EVIDENCE_DIR=str(db_path.parent / "evidencias"), **env))
    return build_runtime(settings, clock=clock) if clock else build_runtime(settings)


def _voice_note(graph: GraphServer, wamid: str, said: str = SAID) -> InboundMessage:
    body = fake_voice_note(said)
    media_id = graph.fake.media_id_of(graph.fake.add_media(body, "audio/ogg"))
    return InboundMessage(wamid=wamid, conversation_key=PHONE, kind=MessageKind.AUDIO, timestamp=1_800_000_000,
                          phone=PHONE, media_id=media_id, mime_type="audio/ogg; codecs=opus",
                          sha256=webhook_sha(body), voice=True)


async def test_openai_transcribes_and_the_transcript_is_kept(db_path: Path, graph: GraphServer,
                                                             openai: tuple[FakeOpenAI, str]) -> None:
    fake, url = openai
    rt = _runtime(db_path, graph, AI_PROVIDER="openai", OPENAI_API_KEY="k", OPENAI_BASE_URL=url)
    try:
        note = _voice_note(graph, "wamid.VOZ1")
        assert await rt.evidence.transcribe(note) == SAID
        assert fake.transcriptions == ["gpt-4o-mini-transcribe"]
        row = await evidence_by_message(rt.db, "wamid.VOZ1")
        assert row is not None and (row.transcript, row.kind, row.state) == (SAID, "audio", EvidenceState.PENDIENTE)
        # The conversation records the note afterwards: a no-op; the body is then stored as any evidence.
        await rt.db.write(lambda tx: record_evidence(tx, phone=PHONE, message_id="wamid.VOZ1", media_id="otro",
                                                     kind="audio", mime=None, sha256=None, filename=None, now_ms=1))
        assert await rt.evidence.fetch_pending(PHONE) == 1
        row = await evidence_by_message(rt.db, "wamid.VOZ1")
        assert row is not None and (row.state, row.transcript, row.media_id) == (EvidenceState.GUARDADA, SAID,
                                                                                  note.media_id)
    finally:
        await rt.aclose()


async def test_gemini_transcribes_from_audio_input(db_path: Path, graph: GraphServer,
                                                   gemini: tuple[FakeGemini, str]) -> None:
    fake, url = gemini
    rt = _runtime(db_path, graph, AI_PROVIDER="gemini", GEMINI_API_KEY="k", GEMINI_BASE_URL=url)
    try:
        assert await rt.evidence.transcribe(_voice_note(graph, "wamid.VOZ2", "camión 45 sin frenos")) == \
            "camión 45 sin frenos"
        assert fake.calls == 1
    finally:
        await rt.aclose()


async def test_a_hanging_provider_costs_the_budget_and_answers_none(db_path: Path, graph: GraphServer,
                                                                    openai: tuple[FakeOpenAI, str]) -> None:
    fake, url = openai
    fake.always("hang")
    rt = _runtime(db_path, graph, AI_PROVIDER="openai", OPENAI_API_KEY="k", OPENAI_BASE_URL=url,
                  TRANSCRIPTION_BUDGET_MS="400")
    try:
        started = time.monotonic()
        assert await rt.evidence.transcribe(_voice_note(graph, "wamid.VOZ3")) is None
        elapsed = time.monotonic() - started
        assert 0.35 < elapsed < 1.5
        assert await evidence_by_message(rt.db, "wamid.VOZ3") is None  # nothing kept; the conversation records it
    finally:
        await rt.aclose()


async def test_provider_errors_and_bad_notes_answer_none(db_path: Path, graph: GraphServer,
                                                         openai: tuple[FakeOpenAI, str]) -> None:
    fake, url = openai
    rt = _runtime(db_path, graph, AI_PROVIDER="openai", OPENAI_API_KEY="k", OPENAI_BASE_URL=url)
    try:
        fake.push("status", status=500)
        assert await rt.evidence.transcribe(_voice_note(graph, "wamid.VOZ4")) is None
        note = _voice_note(graph, "wamid.VOZ5")
        graph.fake.fail_media("wrong_sha")
        assert await rt.evidence.transcribe(note) is None  # a body that is not the one sent is not read
        assert fake.transcriptions == []
        assert await rt.evidence.transcribe(_voice_note(graph, "wamid.VOZ6", "")) is None  # silence
    finally:
        await rt.aclose()


async def test_offline_transcribes_nothing_and_downloads_nothing(db_path: Path, graph: GraphServer) -> None:
    rt = _runtime(db_path, graph)
    try:
        note = _voice_note(graph, "wamid.VOZ7")
        assert await rt.evidence.transcribe(note) is None
        text = InboundMessage(wamid="wamid.T", conversation_key=PHONE, kind=MessageKind.TEXT, timestamp=1, text="hola")
        assert await rt.evidence.transcribe(text) is None
        assert graph.fake.downloads == {}
    finally:
        await rt.aclose()


async def test_the_sweep_retries_a_download_that_failed(db_path: Path, graph: GraphServer) -> None:
    clock = Clock()
    rt = _runtime(db_path, graph, clock)
    try:
        media_id = await record(rt.db, graph.fake, "wamid.S404", PNG)
        graph.fake.fail_media("404", media_id=media_id)
        assert await rt.evidence.fetch_pending(PHONE) == 0  # the worker's try right after the commit
        row = await evidence_by_message(rt.db, "wamid.S404")
        assert row is not None and (row.state, row.attempts) == (EvidenceState.PENDIENTE, 1)
        assert row.last_error is not None and "does not exist" in row.last_error
        assert await rt.evidence.sweep() == 0  # backing off
        clock.now += 60_000  # EvidenceFetcher.retry_base_ms
        assert await rt.evidence.sweep() == 1
        row = await evidence_by_message(rt.db, "wamid.S404")
        assert row is not None and (row.state, row.attempts) == (EvidenceState.GUARDADA, 2)
    finally:
        await rt.aclose()


async def test_the_bot_entry_points_never_raise(db_path: Path, graph: GraphServer) -> None:
    rt = _runtime(db_path, graph)
    rt.db.close()  # every database call now fails
    try:
        assert await rt.evidence.fetch_pending() == 0
        assert await rt.evidence.sweep() == 0
    finally:
        rt.db = build_runtime(rt.settings).db
        await rt.aclose()


def test_what_a_confirmation_says_was_attached() -> None:
    assert evidence_summary([]) == ""
    assert evidence_summary(["image"]) == "1 foto"
    assert evidence_summary(["image", "audio", "image"]) == "2 fotos y 1 nota de voz"
    assert evidence_summary(["document", "video", "video", "sticker", "location"]) == \
        "1 documento, 2 videos y 1 sticker"
