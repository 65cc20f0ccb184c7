"""The intent service the conversation engine calls: hard budgets, fallbacks, breakers, failover.

Each operation has one budget for the whole call (detect 3 s, extract 4 s, interpret 3 s). Providers
are tried in `AI_PROVIDER` order; a provider whose breaker is open is skipped, and a provider that
fails (HTTP error, malformed JSON, its share of the budget spent) counts a failure on its breaker and
hands over to the next; any other exception is a bug on our side, logged with its traceback and not
counted against the provider. A provider that is not the last gets at most two thirds of what is left (or
all but 100 ms when only the instant offline rules follow), so the next one still has time. When the
budget runs out the call in flight is cancelled and its fallback answered. The operations
NEVER raise (cancellation of the caller excepted): a conversation turn always gets an answer in time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from core import events
from core.ai.assistant import AssistantWords, OfflineAssistant
from core.ai.offline import OfflineProvider
from core.ai.remote import AssistantBackend
from core.ai.types import (
    FALLBACK_EXTRACTION,
    FALLBACK_INTENT,
    FALLBACK_TERM,
    DetectedIntent,
    Extraction,
    IntentProvider,
    TermKind,
)
from core.errors import AIProviderError, SettingsError
from core.resilience.breaker import BreakerState, CircuitBreaker
from core.resilience.timeouts import OperationTimeout, with_timeout, with_timeout_and_fallback
from core.settings import Settings

T = TypeVar("T")
log = logging.getLogger(__name__)

# Operation names as the operations queries expect them (their KQL extracts `[Timeout] (\w+)`).
OP_DETECT = "detectIntent"
OP_EXTRACT = "extractStructuredData"
OP_INTERPRET = "interpretTerm"
OFFLINE_RESERVE_MS = 100


@dataclass(frozen=True, slots=True)
class Budgets:
    detect_ms: int = 3_000
    extract_ms: int = 4_000
    interpret_ms: int = 3_000


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_threshold: int = 5
    success_threshold: int = 2
    cooldown_ms: int = 30_000
    half_open_max_calls: int = 1


class IntentService:
    """Satisfies `IntentProvider` itself, so the engine can hold either a bare provider or this service."""

    name = "service"

    def __init__(
        self,
        providers: Sequence[IntentProvider],
        *,
        budgets: Budgets | None = None,
        breakers: Mapping[str, CircuitBreaker] | None = None,
        breaker_config: BreakerConfig | None = None,
    ) -> None:
        if not providers:
            raise ValueError("at least one provider")
        self.providers = tuple(providers)
        self.budgets = budgets or Budgets()
        cfg = breaker_config or BreakerConfig()
        given = dict(breakers or {})
        self.breakers: dict[str, CircuitBreaker] = {
            p.name: given.get(p.name)
            or CircuitBreaker(
                p.name,
                failure_threshold=cfg.failure_threshold,
                success_threshold=cfg.success_threshold,
                cooldown_ms=cfg.cooldown_ms,
                half_open_max_calls=cfg.half_open_max_calls,
            )
            for p in self.providers
        }

    # -- the three operations ------------------------------------------------------------------
    async def detect_intent(self, text: str) -> DetectedIntent:
        return await self._run(OP_DETECT, self.budgets.detect_ms, lambda p: p.detect_intent(text), FALLBACK_INTENT)

    async def extract_structured_data(self, text: str) -> Extraction:
        return await self._run(
            OP_EXTRACT, self.budgets.extract_ms, lambda p: p.extract_structured_data(text), FALLBACK_EXTRACTION
        )

    async def interpret_term(self, text: str, kind: TermKind) -> str | None:
        return await self._run(
            OP_INTERPRET, self.budgets.interpret_ms, lambda p: p.interpret_term(text, kind), FALLBACK_TERM
        )

    def breaker(self, provider: str) -> CircuitBreaker:
        return self.breakers[provider]

    async def aclose(self) -> None:
        for provider in self.providers:
            close = getattr(provider, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:
                    log.warning("No se pudo cerrar el proveedor %s", provider.name, exc_info=True)

    # -- machinery -----------------------------------------------------------------------------
    def _attempt_limit_ms(self, index: int, remaining_ms: float) -> float | None:
        """How long provider `index` may take; None = the rest of the budget (the outer limit applies)."""
        later = [p for p in self.providers[index + 1 :] if self.breakers[p.name].get_state() is not BreakerState.OPEN]
        if not later:
            return None
        if all(p.name == "offline" for p in later):
            return max(remaining_ms - OFFLINE_RESERVE_MS, 1)
        return remaining_ms * 2 / 3

    async def _chain(
        self, operation: str, deadline: float, call: Callable[[IntentProvider], Awaitable[T]], fallback: T
    ) -> T:
        loop = asyncio.get_running_loop()
        for index, provider in enumerate(self.providers):
            breaker = self.breakers[provider.name]
            permit = breaker.acquire()
            if permit is None:
                log.info(
                    "[IA] %s: proveedor %s omitido (circuit breaker %s)", operation, provider.name, breaker.get_state()
                )
                continue
            remaining_ms = (deadline - loop.time()) * 1000
            limit_ms = self._attempt_limit_ms(index, remaining_ms)
            try:
                if limit_ms is None:
                    result = await call(provider)
                else:
                    result = await with_timeout(call(provider), int(limit_ms), f"{operation}.{provider.name}")
            except OperationTimeout as exc:
                breaker.record_failure(permit)
                events.ai_timeout(exc.operation, exc.timeout_ms, provider=provider.name)  # then the next provider
                continue
            except asyncio.CancelledError:
                # The overall budget ran out (a failure of this provider) or our caller went away (no verdict).
                if loop.time() >= deadline - 0.005:
                    breaker.record_failure(permit)
                else:
                    breaker.release(permit)
                raise
            except AIProviderError as exc:
                breaker.record_failure(permit)
                log.warning("[IA] %s: proveedor %s falló (%s), probando el siguiente", operation, provider.name, exc)
                continue
            except Exception:  # a bug on our side (TypeError, KeyError...): not the provider's failure
                breaker.release(permit)
                log.exception("[IA] %s: error inesperado con el proveedor %s, probando el siguiente", operation,
                              provider.name)
                continue
            breaker.record_success(permit)
            return result
        log.warning("[IA] %s: ningún proveedor respondió, usando fallback", operation)
        return fallback

    async def _run(
        self, operation: str, budget_ms: int, call: Callable[[IntentProvider], Awaitable[T]], fallback: T
    ) -> T:
        deadline = asyncio.get_running_loop().time() + budget_ms / 1000
        try:
            return await with_timeout_and_fallback(
                self._chain(operation, deadline, call, fallback), budget_ms, fallback, operation
            )
        except Exception:
            log.exception("[IA] %s: error inesperado, usando fallback", operation)
            return fallback


def preload_provider_modules(settings: Settings) -> None:
    """Import the SDKs of the configured providers now. The OpenAI SDK alone takes about a second to import;
    imported lazily, that second would freeze the event loop at the first AI call, and with it every webhook
    the same worker process serves. Called once when the runtime is built (a cold start)."""
    import importlib

    modules = {"openai": "core.ai.openai_provider", "gemini": "core.ai.gemini_provider"}
    for name in settings.ai_providers:
        if name in modules:
            importlib.import_module(modules[name])


def build_providers(settings: Settings) -> list[IntentProvider]:
    """The providers named in `AI_PROVIDER`, in order. Misconfiguration fails here, at start-up."""
    providers: list[IntentProvider] = []
    for name in settings.ai_providers:
        if name == "offline":
            providers.append(OfflineProvider())
        elif name == "openai":
            from core.ai.openai_provider import OpenAIProvider, build_openai_client

            if not settings.openai_api_key:
                raise SettingsError("OPENAI_API_KEY", "es obligatoria cuando AI_PROVIDER incluye openai")
            client = build_openai_client(settings.openai_api_key, settings.openai_base_url)
            providers.append(OpenAIProvider(client, settings.openai_model))
        elif name == "gemini":
            from core.ai.gemini_provider import GeminiProvider, build_gemini_client

            if not settings.gemini_api_key:
                raise SettingsError("GEMINI_API_KEY", "es obligatoria cuando AI_PROVIDER incluye gemini")
            gemini = build_gemini_client(settings.gemini_api_key, settings.gemini_base_url)
            providers.append(GeminiProvider(gemini, settings.gemini_model))
    return providers


def build_intent_service(settings: Settings, *, budgets: Budgets | None = None) -> IntentService:
    return IntentService(build_providers(settings), budgets=budgets)


def build_assistant_backend(settings: Settings, words: AssistantWords) -> AssistantBackend:
    """OpenAI (Conversations + background Responses) when `AI_PROVIDER` names it, else the offline answers
    (`words`)."""
    if "openai" in settings.ai_providers:
        from core.ai.openai_provider import OpenAIAssistant, build_openai_client

        if not settings.openai_api_key:
            raise SettingsError("OPENAI_API_KEY", "es obligatoria cuando AI_PROVIDER incluye openai")
        client = build_openai_client(settings.openai_api_key, settings.openai_base_url)
        return OpenAIAssistant(client, settings.openai_model)
    return OfflineAssistant(words)
