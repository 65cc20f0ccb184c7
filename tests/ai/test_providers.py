"""The intent service over the REAL OpenAI and Gemini SDK clients, against fake servers on loopback:
good answers, slow answers, 500s, 429s, malformed JSON, hanging requests and connections, breaker
transitions and failover. Budgets are reduced through the constructor; one test runs the real defaults.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.ai.offline import OfflineProvider
from core.ai.service import Budgets, IntentService, build_intent_service
from core.ai.types import (
    FALLBACK_EXTRACTION,
    FALLBACK_INTENT,
    FALLBACK_TERM,
    EquipmentType,
    Intent,
    IntentProvider,
    TermKind,
)
from core.errors import SettingsError
from core.metrics import ai_timeouts_total
from core.resilience.breaker import BreakerState, CircuitBreaker
from core.settings import load_settings
from local_host.fake_ai import start_black_hole
from tests.ai.conftest import Served, gemini_provider, openai_provider
from tests.conftest import base_env, free_port

SMALL = Budgets(detect_ms=600, extract_ms=800, interpret_ms=600)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_provider(kind: str, base_url: str) -> IntentProvider:
    return openai_provider(base_url) if kind == "openai" else gemini_provider(base_url)


def single(provider: IntentProvider, **kw: object) -> IntentService:
    return IntentService([provider], budgets=SMALL, **kw)  # type: ignore[arg-type]


@pytest.fixture(params=["openai", "gemini"])
def server(request: pytest.FixtureRequest, openai_server: Served, gemini_server: Served) -> tuple[str, Served]:
    return request.param, openai_server if request.param == "openai" else gemini_server


async def wait_for(predicate: Callable[[], bool], seconds: float = 3.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


async def test_well_behaved_provider_answers_validated_values(server: tuple[str, Served]) -> None:
    kind, srv = server
    service = single(make_provider(kind, srv.base_url))
    intent = await service.detect_intent("el refrigerador no enfría")
    assert intent.intent is Intent.REPORTAR_FALLA and intent.confidence > 0
    extraction = await service.extract_structured_data("mi camioneta no arranca")
    assert extraction.equipment_type is EquipmentType.VEHICULO and extraction.problem == "no arranca"
    assert await service.interpret_term("sí", TermKind.SI_NO) == "SI"
    assert await service.interpret_term("2", TermKind.TIPO_EQUIPO) == "VEHICULO"
    assert service.breaker(kind).failures == 0
    await service.aclose()


@pytest.mark.parametrize(
    ("behavior", "extra"),
    [("status", {"status": 500}), ("status", {"status": 429}), ("malformed", {}), ("garbage", {})],
    ids=["http500", "http429", "malformed-json", "non-json-body"],
)
async def test_failures_become_fallbacks_and_breaker_failures(
    server: tuple[str, Served], behavior: str, extra: dict[str, object]
) -> None:
    kind, srv = server
    srv.fake.always(behavior, **extra)
    service = single(make_provider(kind, srv.base_url))
    assert await service.detect_intent("el refri no enfría") == FALLBACK_INTENT
    assert await service.extract_structured_data("el refri no enfría") == FALLBACK_EXTRACTION
    assert await service.interpret_term("sí", TermKind.SI_NO) == FALLBACK_TERM
    assert srv.fake.calls == 3  # no SDK retries: one request per call
    assert service.breaker(kind).failures == 3
    await service.aclose()


async def test_model_json_that_violates_the_schema_is_a_fallback(server: tuple[str, Served]) -> None:
    kind, srv = server
    service = single(make_provider(kind, srv.base_url))
    srv.fake.push("ok", text='{"intencion": "COMPRAR", "confianza": 0.9}')
    srv.fake.push("ok", text='{"intencion": "SALUDO", "confianza": 7}')
    srv.fake.push("ok", text='["SALUDO"]')
    srv.fake.push("ok", text='{"valor": "QUIZAS"}')
    assert await service.detect_intent("hola") == FALLBACK_INTENT
    assert await service.detect_intent("hola") == FALLBACK_INTENT
    assert await service.detect_intent("hola") == FALLBACK_INTENT
    assert await service.interpret_term("quizás", TermKind.SI_NO) is None
    assert service.breaker(kind).failures == 4
    await service.aclose()


async def test_slow_answers_fall_back_within_budget_and_the_request_is_abandoned(server: tuple[str, Served]) -> None:
    kind, srv = server
    srv.fake.always("slow", delay_s=30)
    service = single(make_provider(kind, srv.base_url))
    before = ai_timeouts_total.labels(operation="detectIntent")._value.get()
    cases = [
        (service.detect_intent("hola"), SMALL.detect_ms, FALLBACK_INTENT),
        (service.extract_structured_data("hola"), SMALL.extract_ms, FALLBACK_EXTRACTION),
        (service.interpret_term("sí", TermKind.SI_NO), SMALL.interpret_ms, FALLBACK_TERM),
    ]
    for call, budget_ms, fallback in cases:
        started = time.monotonic()
        assert await call == fallback
        elapsed_ms = (time.monotonic() - started) * 1000
        # Loose bound (shared 2-core machine): the budget + 10 %, plus scheduling slack.
        assert elapsed_ms <= budget_ms * 1.1 + 250, f"{elapsed_ms:.0f} ms for a {budget_ms} ms budget"
    assert ai_timeouts_total.labels(operation="detectIntent")._value.get() == before + 1
    assert service.breaker(kind).failures == 3
    await service.aclose()


async def test_hanging_request_is_really_cancelled(server: tuple[str, Served]) -> None:
    kind, srv = server
    srv.fake.always("hang")
    service = single(make_provider(kind, srv.base_url))
    assert await service.detect_intent("hola") == FALLBACK_INTENT
    # The client gave up: the server sees its connection closed, not a request left running.
    assert await wait_for(lambda: srv.fake.disconnects == 1)
    assert srv.fake.hanging == 0
    await service.aclose()


@pytest.mark.parametrize("kind", ["openai", "gemini"])
async def test_hanging_connection_below_http_falls_back(kind: str) -> None:
    hole = await start_black_hole()
    base = hole.base_url + ("/v1" if kind == "openai" else "")
    service = single(make_provider(kind, base))
    started = time.monotonic()
    assert await service.extract_structured_data("hola") == FALLBACK_EXTRACTION
    assert time.monotonic() - started < SMALL.extract_ms / 1000 * 1.1 + 0.25
    assert hole.accepted >= 1
    await service.aclose()
    await hole.close()


@pytest.mark.parametrize("kind", ["openai", "gemini"])
async def test_refused_connection_falls_back(kind: str) -> None:
    base = f"http://127.0.0.1:{free_port()}" + ("/v1" if kind == "openai" else "")
    service = single(make_provider(kind, base))
    assert await service.detect_intent("hola") == FALLBACK_INTENT
    assert service.breaker(kind).failures == 1
    await service.aclose()


async def test_breaker_transitions_under_real_failures(server: tuple[str, Served]) -> None:
    kind, srv = server
    clock = Clock()
    breaker = CircuitBreaker(kind, failure_threshold=3, success_threshold=2, cooldown_ms=5_000, clock=clock)
    service = single(make_provider(kind, srv.base_url), breakers={kind: breaker})
    srv.fake.push("status", status=500)
    srv.fake.push("status", status=429)
    srv.fake.push("malformed")
    for _ in range(3):
        assert await service.detect_intent("hola") == FALLBACK_INTENT
    assert breaker.get_state() is BreakerState.OPEN
    calls = srv.fake.calls
    assert await service.detect_intent("hola") == FALLBACK_INTENT  # refused without touching the server
    assert srv.fake.calls == calls

    clock.now += 5
    assert breaker.get_state() is BreakerState.HALF_OPEN
    srv.fake.push("slow", delay_s=30)  # the probe times out -> straight back to OPEN
    assert await service.detect_intent("hola") == FALLBACK_INTENT
    assert breaker.get_state() is BreakerState.OPEN and breaker.failures == 0

    clock.now += 5
    assert (await service.detect_intent("hola")).intent is Intent.SALUDO
    assert breaker.get_state() is BreakerState.HALF_OPEN
    assert (await service.detect_intent("hola")).intent is Intent.SALUDO
    assert breaker.get_state() is BreakerState.CLOSED
    await service.aclose()


async def test_half_open_lets_one_probe_through_concurrent_callers(openai_server: Served) -> None:
    clock = Clock()
    breaker = CircuitBreaker("openai", failure_threshold=1, success_threshold=1, cooldown_ms=1_000, clock=clock)
    service = single(openai_provider(openai_server.base_url), breakers={"openai": breaker})
    openai_server.fake.push("status", status=500)
    await service.detect_intent("hola")
    assert breaker.get_state() is BreakerState.OPEN
    clock.now += 1
    openai_server.fake.always("slow", delay_s=0.2)
    calls = openai_server.fake.calls
    results = await asyncio.gather(*(service.detect_intent("hola") for _ in range(10)))
    assert openai_server.fake.calls == calls + 1  # one probe reached the provider
    assert sum(r.intent is Intent.SALUDO for r in results) == 1
    assert sum(r == FALLBACK_INTENT for r in results) == 9
    assert breaker.get_state() is BreakerState.CLOSED
    await service.aclose()


async def test_failover_to_the_next_provider(openai_server: Served, gemini_server: Served) -> None:
    openai_server.fake.always("status", status=500)
    breaker = CircuitBreaker("openai", failure_threshold=2, cooldown_ms=60_000)
    service = IntentService(
        [openai_provider(openai_server.base_url), gemini_provider(gemini_server.base_url)],
        budgets=SMALL,
        breakers={"openai": breaker},
    )
    for _ in range(2):
        assert (await service.detect_intent("el refri gotea")).intent is Intent.REPORTAR_FALLA
    assert breaker.get_state() is BreakerState.OPEN
    openai_calls, gemini_calls = openai_server.fake.calls, gemini_server.fake.calls
    extraction = await service.extract_structured_data("el refri gotea")
    assert extraction.equipment_type is EquipmentType.REFRIGERADOR
    assert openai_server.fake.calls == openai_calls  # open breaker: skipped
    assert gemini_server.fake.calls == gemini_calls + 1
    await service.aclose()


async def test_hanging_first_provider_leaves_time_for_the_next(openai_server: Served, gemini_server: Served) -> None:
    openai_server.fake.always("hang")
    service = IntentService(
        [openai_provider(openai_server.base_url), gemini_provider(gemini_server.base_url), OfflineProvider()],
        budgets=SMALL,
    )
    started = time.monotonic()
    intent = await service.detect_intent("cancelar")
    assert intent.intent is Intent.CANCELAR  # answered by gemini within the same budget
    assert time.monotonic() - started <= SMALL.detect_ms / 1000 * 1.1 + 0.25
    assert gemini_server.fake.calls == 1
    gemini_server.fake.always("hang")
    assert (await service.detect_intent("cancelar")).intent is Intent.CANCELAR  # offline, last resort
    await service.aclose()


async def test_all_breakers_open_answers_the_fallback_at_once(openai_server: Served) -> None:
    breaker = CircuitBreaker("openai", failure_threshold=1, cooldown_ms=60_000)
    service = single(openai_provider(openai_server.base_url), breakers={"openai": breaker})
    openai_server.fake.push("status", status=500)
    await service.detect_intent("hola")
    started = time.monotonic()
    assert await service.extract_structured_data("hola") == FALLBACK_EXTRACTION
    assert time.monotonic() - started < 0.5
    await service.aclose()


async def test_real_default_budgets_are_wired(openai_server: Served, db_path: Path) -> None:
    env = base_env(db_path, AI_PROVIDER="openai", OPENAI_API_KEY="k", OPENAI_BASE_URL=openai_server.base_url)
    service = build_intent_service(load_settings(env))
    assert service.budgets == Budgets(detect_ms=3_000, extract_ms=4_000, interpret_ms=3_000)
    openai_server.fake.always("hang")
    started = time.monotonic()
    detect, extract, term = await asyncio.gather(
        service.detect_intent("hola"),
        service.extract_structured_data("hola"),
        service.interpret_term("sí", TermKind.SI_NO),
    )
    elapsed = time.monotonic() - started
    assert (detect, extract, term) == (FALLBACK_INTENT, FALLBACK_EXTRACTION, FALLBACK_TERM)
    assert 3.5 <= elapsed <= 4.0 * 1.1 + 0.5  # the 4 s extraction bounds the batch; it really waited
    await service.aclose()


def test_build_intent_service_from_settings(db_path: Path) -> None:
    env = base_env(
        db_path,
        AI_PROVIDER="openai,gemini,offline",
        OPENAI_API_KEY="k",
        GEMINI_API_KEY="g",
        OPENAI_BASE_URL="http://127.0.0.1:1/v1",
        GEMINI_BASE_URL="http://127.0.0.1:1",
    )
    service = build_intent_service(load_settings(env))
    assert [p.name for p in service.providers] == ["openai", "gemini", "offline"]
    assert set(service.breakers) == {"openai", "gemini", "offline"}
    with pytest.raises(SettingsError, match="OPENAI_API_KEY"):
        build_intent_service(load_settings(base_env(db_path, AI_PROVIDER="openai")))
    with pytest.raises(SettingsError, match="GEMINI_API_KEY"):
        build_intent_service(load_settings(base_env(db_path, AI_PROVIDER="gemini")))
    assert [p.name for p in build_intent_service(load_settings(base_env(db_path))).providers] == ["offline"]


async def test_the_service_is_an_intent_provider_and_offline_by_default(db_path: Path) -> None:
    from bot.runtime import Runtime
    from core.storage.sqlite import SqliteDatabase

    db = SqliteDatabase(str(db_path), pool_size=1)
    rt = Runtime(settings=load_settings(base_env(db_path)), db=db)
    service: IntentProvider = rt.intent
    assert isinstance(service, IntentService) and rt.intent is service
    assert (await service.detect_intent("cancelar")).intent is Intent.CANCELAR
    assert await service.interpret_term("si", TermKind.SI_NO) == "SI"
    db.close()
