"""Gemini through google-genai's async client (`client.aio`), with JSON output checked against our schema.

`HttpOptions.timeout` is in MILLISECONDS, and the client does not retry unless `retry_options` is
given (we give none). `base_url` points the client at a local fake in tests.
"""

from __future__ import annotations

from typing import Any

import httpx
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

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
from core.errors import AIProviderError

NAME = "gemini"
DEFAULT_REQUEST_TIMEOUT_MS = 10_000  # per request; the budgets above are enforced by the intent service


def build_gemini_client(
    api_key: str, base_url: str = "", *, timeout_ms: int = DEFAULT_REQUEST_TIMEOUT_MS
) -> genai.Client:
    if not api_key:
        raise AIProviderError(NAME, "GEMINI_API_KEY no está configurada")
    # With aiohttp installed the SDK would use it for async calls, which no instrumentation here traces;
    # an httpx client of our own makes every Gemini request an Application Insights dependency, as OpenAI's.
    options = genai_types.HttpOptions(timeout=timeout_ms, base_url=base_url or None,
                                      httpx_async_client=httpx.AsyncClient(timeout=timeout_ms / 1000))
    return genai.Client(api_key=api_key, http_options=options)


class GeminiProvider:
    name = NAME

    def __init__(self, client: genai.Client, model: str) -> None:
        self._client = client
        self._model = model

    async def _structured(self, instructions: str, text: str, schema: dict[str, Any]) -> str | None:
        config = genai_types.GenerateContentConfig(
            system_instruction=instructions,
            response_mime_type="application/json",
            response_json_schema=schema,
            temperature=0,
            automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True),
        )
        try:
            response = await self._client.aio.models.generate_content(model=self._model, contents=text, config=config)
        except genai_errors.APIError as exc:
            raise AIProviderError(NAME, f"HTTP {exc.code} {exc.status or ''}".strip(), status=exc.code) from exc
        except ValueError as exc:  # an undecodable body (JSON or pydantic validation)
            raise AIProviderError(NAME, f"respuesta ilegible: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:  # transport errors of the httpx client given in build_gemini_client
            raise AIProviderError(NAME, f"sin conexión: {type(exc).__name__}") from exc
        return response.text  # None for a blocked or empty candidate: the parsers reject it

    async def detect_intent(self, text: str) -> DetectedIntent:
        return parse_intent(NAME, await self._structured(INTENT_INSTRUCTIONS, text, INTENT_SCHEMA))

    async def extract_structured_data(self, text: str) -> Extraction:
        return parse_extraction(NAME, await self._structured(EXTRACTION_INSTRUCTIONS, text, EXTRACTION_SCHEMA))

    async def interpret_term(self, text: str, kind: TermKind) -> str | None:
        return parse_term(NAME, await self._structured(TERM_INSTRUCTIONS[kind], text, term_schema(kind)), kind)

    async def aclose(self) -> None:
        await self._client.aio.aclose()
        # The httpx client given in build_gemini_client is ours to close: the SDK leaves a given client open.
        options = getattr(getattr(self._client, "_api_client", None), "_http_options", None)
        http = getattr(options, "httpx_async_client", None)
        if isinstance(http, httpx.AsyncClient):
            await http.aclose()
