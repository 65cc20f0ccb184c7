"""Shared helpers for the AI tests: fake servers on loopback and providers built on the real SDK clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.ai.gemini_provider import GeminiProvider, build_gemini_client
from core.ai.openai_provider import OpenAIAssistant, OpenAIProvider, build_openai_client
from local_host.fake_ai import FakeGemini, FakeOpenAI, serve


class Served:
    def __init__(self, fake: FakeOpenAI | FakeGemini, base_url: str) -> None:
        self.fake = fake
        self.base_url = base_url


@pytest.fixture
async def openai_server() -> AsyncIterator[Served]:
    fake = FakeOpenAI()
    served = await serve(fake.app())
    yield Served(fake, served.base_url + "/v1")
    await served.close()


@pytest.fixture
async def gemini_server() -> AsyncIterator[Served]:
    fake = FakeGemini()
    served = await serve(fake.app())
    yield Served(fake, served.base_url)
    await served.close()


def openai_provider(base_url: str) -> OpenAIProvider:
    return OpenAIProvider(build_openai_client("test-key", base_url), "gpt-fake")


def openai_assistant(base_url: str) -> OpenAIAssistant:
    return OpenAIAssistant(build_openai_client("test-key", base_url), "gpt-fake")


def gemini_provider(base_url: str) -> GeminiProvider:
    return GeminiProvider(build_gemini_client("test-key", base_url), "gemini-2.5-flash")
