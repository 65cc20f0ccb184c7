"""Voice notes to text: OpenAI's transcription endpoint or Gemini's audio input, whichever AI provider
comes first in `AI_PROVIDER`; with the offline rules there is no transcription.

The caller bounds the whole call with its budget (`TRANSCRIPTION_BUDGET_MS`); the SDK clients are built
without retries and with a per-request timeout, so nothing outlives it for long after a cancel.
"""

from __future__ import annotations

from typing import Any, Protocol

from core.media.limits import base_mime, extension
from core.settings import Settings

TRANSCRIPTION_PROMPT = (
    "Transcribe literalmente esta nota de voz en español de México. Responde solo con el texto dicho, "
    "sin comentarios. Si no se entiende nada, responde vacío."
)


class Transcriber(Protocol):
    name: str

    async def transcribe(self, audio: bytes, mime: str | None) -> str | None: ...

    async def aclose(self) -> None: ...


class NoTranscriber:
    """The offline provider: voice notes are kept as evidence, not read."""

    name = "offline"

    async def transcribe(self, audio: bytes, mime: str | None) -> str | None:
        return None

    async def aclose(self) -> None:
        return None


class OpenAITranscriber:
    name = "openai"

    def __init__(self, client: Any, model: str) -> None:
        self._client = client
        self._model = model

    async def transcribe(self, audio: bytes, mime: str | None) -> str | None:
        kind = base_mime(mime) or "audio/ogg"
        result = await self._client.audio.transcriptions.create(
            model=self._model, file=(f"nota{extension(kind)}", audio, kind), language="es", response_format="json")
        return (getattr(result, "text", None) or "").strip() or None

    async def aclose(self) -> None:
        await self._client.close()


class GeminiTranscriber:
    name = "gemini"

    def __init__(self, client: Any, model: str) -> None:
        self._client = client
        self._model = model

    async def transcribe(self, audio: bytes, mime: str | None) -> str | None:
        from google.genai import types as genai_types

        part = genai_types.Part.from_bytes(data=audio, mime_type=base_mime(mime) or "audio/ogg")
        config = genai_types.GenerateContentConfig(temperature=0)
        response = await self._client.aio.models.generate_content(
            model=self._model, contents=[part, TRANSCRIPTION_PROMPT], config=config)
        return (response.text or "").strip() or None

    async def aclose(self) -> None:
        await self._client.aio.aclose()


def build_transcriber(settings: Settings) -> Transcriber:
    """The first configured remote provider in `AI_PROVIDER` order, or `NoTranscriber`."""
    for provider in settings.ai_providers:
        if provider == "openai" and settings.openai_api_key:
            from core.ai.openai_provider import build_openai_client

            return OpenAITranscriber(build_openai_client(settings.openai_api_key, settings.openai_base_url),
                                     settings.transcription_model)
        if provider == "gemini" and settings.gemini_api_key:
            from core.ai.gemini_provider import build_gemini_client

            return GeminiTranscriber(build_gemini_client(settings.gemini_api_key, settings.gemini_base_url),
                                     settings.gemini_model)
    return NoTranscriber()
