"""OpenAI through the official SDK (`AsyncOpenAI`): intent calls on the Responses API with strict JSON
Schema output, and the free-form assistant on Conversations + background Responses.

The SDK defaults (600 s timeout, 2 retries with back-off) would let one call outlive any budget, so the
client is built with `max_retries=0` and an explicit timeout; the intent service's `asyncio` limit is
the hard bound on top of that, and cancelling it aborts the HTTP request.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import openai
from openai import AsyncOpenAI

from core.ai.remote import RemoteResponse
from core.ai.structured import (
    EXTRACTION_INSTRUCTIONS,
    EXTRACTION_SCHEMA,
    INTENT_INSTRUCTIONS,
    INTENT_SCHEMA,
    TERM_INSTRUCTIONS,
    parse_extraction,
    parse_intent,
    parse_term,
    term_schema,
)
from core.ai.types import DetectedIntent, Extraction, TermKind
from core.errors import AIProviderError, ConversationBusy

T = TypeVar("T")
NAME = "openai"
# Per HTTP request. The budgets (3-4 s) are enforced above this; this only stops a lone SDK call
# (e.g. the sweeper's retrieve/cancel) from waiting the SDK's default 10 minutes.
DEFAULT_REQUEST_TIMEOUT_S = 10.0

ASSISTANT_INSTRUCTIONS = (
    "Eres el asistente de WhatsApp del área de mantenimiento. El personal de campo reporta fallas de "
    "refrigeradores y vehículos con este bot. Responde en español, breve (máximo 4 frases), amable y "
    "práctico. Si la persona quiere reportar una falla, dile que escriba 'reportar falla'."
)


def build_openai_client(
    api_key: str, base_url: str = "", *, timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S, max_retries: int = 0
) -> AsyncOpenAI:
    if not api_key:
        raise AIProviderError(NAME, "OPENAI_API_KEY no está configurada")
    return AsyncOpenAI(api_key=api_key, base_url=base_url or None, timeout=timeout_s, max_retries=max_retries)


async def _call(aw: Awaitable[T]) -> T:
    """Await one SDK call, turning every SDK error into `AIProviderError` (cancellation passes through)."""
    try:
        return await aw
    except openai.APIStatusError as exc:
        code = getattr(exc, "code", None)
        if code == "conversation_locked":
            raise ConversationBusy(NAME, "conversation_locked", status=exc.status_code, code=code) from exc
        raise AIProviderError(
            NAME, f"HTTP {exc.status_code} {code or ''}".strip(), status=exc.status_code, code=code
        ) from exc
    except openai.APIConnectionError as exc:  # includes APITimeoutError
        raise AIProviderError(NAME, f"sin conexión: {type(exc).__name__}") from exc
    except (openai.OpenAIError, ValueError) as exc:  # e.g. a 200 whose body is not JSON
        raise AIProviderError(NAME, f"respuesta ilegible: {type(exc).__name__}") from exc


class OpenAIProvider:
    """`IntentProvider` over `responses.create` (stateless: `store=False`)."""

    name = NAME

    def __init__(self, client: AsyncOpenAI, model: str) -> None:
        self._client = client
        self._model = model

    async def _structured(self, instructions: str, text: str, schema_name: str, schema: dict[str, Any]) -> str:
        response = await _call(
            self._client.responses.create(
                model=self._model,
                instructions=instructions,
                input=text,
                store=False,  # no temperature: reasoning models reject it
                text={"format": {"type": "json_schema", "name": schema_name, "schema": schema, "strict": True}},
            )
        )
        if response.status not in (None, "completed"):
            raise AIProviderError(NAME, f"respuesta {response.status}")
        return response.output_text

    async def detect_intent(self, text: str) -> DetectedIntent:
        return parse_intent(NAME, await self._structured(INTENT_INSTRUCTIONS, text, "intent", INTENT_SCHEMA))

    async def extract_structured_data(self, text: str) -> Extraction:
        raw = await self._structured(EXTRACTION_INSTRUCTIONS, text, "extraction", EXTRACTION_SCHEMA)
        return parse_extraction(NAME, raw)

    async def interpret_term(self, text: str, kind: TermKind) -> str | None:
        raw = await self._structured(TERM_INSTRUCTIONS[kind], text, f"term_{kind.value.lower()}", term_schema(kind))
        return parse_term(NAME, raw, kind)

    async def aclose(self) -> None:
        await self._client.close()


class OpenAIAssistant:
    """`AssistantBackend` (core/ai/assistant.py): one OpenAI conversation per phone, background responses."""

    name = NAME

    def __init__(self, client: AsyncOpenAI, model: str, instructions: str = ASSISTANT_INSTRUCTIONS) -> None:
        self._client = client
        self._model = model
        self._instructions = instructions

    async def create_conversation(self, conversation_key: str) -> str:
        # The key (a phone or BSUID) is not sent: the provider does not need to know who asks.
        conversation = await _call(self._client.conversations.create(metadata={"origen": "whatsapp-bot"}))
        return conversation.id

    async def start_response(self, conversation_id: str, question: str) -> RemoteResponse:
        response = await _call(
            self._client.responses.create(
                model=self._model,
                conversation=conversation_id,
                instructions=self._instructions,
                input=question,
                background=True,
                store=True,  # background responses must be stored to be retrieved
            )
        )
        return _remote(response)

    async def retrieve_response(self, response_id: str) -> RemoteResponse:
        return _remote(await _call(self._client.responses.retrieve(response_id)))

    async def cancel_response(self, response_id: str) -> RemoteResponse:
        return _remote(await _call(self._client.responses.cancel(response_id)))

    async def aclose(self) -> None:
        await self._client.close()


def _remote(response: Any) -> RemoteResponse:
    status = response.status or "completed"
    text = response.output_text if status == "completed" else None
    return RemoteResponse(id=response.id, status=status, text=(text or "").strip() or None)
