"""How long each AI operation takes under each provider misbehaviour, with the REAL budgets (3 s / 4 s / 3 s).

Real OpenAI and Gemini SDK clients against the fake servers on loopback; `--calls` concurrent calls per
operation and behaviour. Prints a table (p50 / p99 / max in ms, and how many answers were fallbacks).
Breakers are set never to open so every call meets the misbehaviour (the worst case for latency).

    .venv/bin/python -m bench.ai_budgets --calls 20
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from core.ai.gemini_provider import GeminiProvider, build_gemini_client
from core.ai.openai_provider import OpenAIProvider, build_openai_client
from core.ai.service import BreakerConfig, Budgets, IntentService
from core.ai.types import FALLBACK_EXTRACTION, FALLBACK_INTENT, FALLBACK_TERM, IntentProvider, TermKind
from local_host.fake_ai import FakeGemini, FakeOpenAI, serve, start_black_hole

BEHAVIORS: list[tuple[str, dict[str, object]]] = [
    ("ok", {}),
    ("slow", {"delay_s": 30}),
    ("hang", {}),
    ("status", {"status": 500}),
    ("status", {"status": 429}),
    ("malformed", {}),
    ("blackhole", {}),
]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _measure(service: IntentService, calls: int) -> list[tuple[str, int, list[float], int]]:
    budgets = service.budgets
    ops = [
        ("detectIntent", budgets.detect_ms, lambda: service.detect_intent("el refri no enfría"), FALLBACK_INTENT),
        (
            "extractStructuredData",
            budgets.extract_ms,
            lambda: service.extract_structured_data("el refri no enfría"),
            FALLBACK_EXTRACTION,
        ),
        ("interpretTerm", budgets.interpret_ms, lambda: service.interpret_term("sí", TermKind.SI_NO), FALLBACK_TERM),
    ]

    async def timed(fn: Callable[[], Awaitable[object]], fallback: object) -> tuple[float, bool]:
        started = time.perf_counter()
        result = await fn()
        return (time.perf_counter() - started) * 1000, result == fallback

    async def one(
        name: str, budget: int, fn: Callable[[], Awaitable[object]], fallback: object
    ) -> tuple[str, int, list[float], int]:
        results = await asyncio.gather(*(timed(fn, fallback) for _ in range(calls)))
        return name, budget, [r[0] for r in results], sum(r[1] for r in results)

    for _, _, fn, _ in ops:  # warm-up: SDK imports, first connection
        await fn()
    return list(await asyncio.gather(*(one(*op) for op in ops)))


async def main(calls: int) -> None:
    logging.disable(logging.WARNING)
    fake_openai, fake_gemini = FakeOpenAI(), FakeGemini()
    srv_openai, srv_gemini = await serve(fake_openai.app()), await serve(fake_gemini.app())
    hole = await start_black_hole()
    never_open = BreakerConfig(failure_threshold=10**9)
    print(f"# AI budgets, {calls} concurrent calls per operation; {platform.node()} {platform.machine()}, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")  # fmt: skip
    print("| provider | behaviour | operation | budget ms | p50 ms | p99 ms | max ms | fallbacks |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for provider_name in ("openai", "gemini"):
        for kind, extra in BEHAVIORS:
            fake = fake_openai if provider_name == "openai" else fake_gemini
            if kind == "blackhole":
                base = hole.base_url
            else:
                fake.always(kind, **extra)
                base = srv_openai.base_url if provider_name == "openai" else srv_gemini.base_url
            provider: IntentProvider
            if provider_name == "openai":
                provider = OpenAIProvider(build_openai_client("k", base + "/v1"), "gpt-fake")
            else:
                provider = GeminiProvider(build_gemini_client("k", base), "gemini-2.5-flash")
            service = IntentService([provider], budgets=Budgets(), breaker_config=never_open)
            label = kind if kind != "status" else f"http {extra['status']}"
            for name, budget, times, fallbacks in await _measure(service, calls):
                print(
                    f"| {provider_name} | {label} | {name} | {budget} | {statistics.median(times):.0f} | "
                    f"{_pct(times, 0.99):.0f} | {max(times):.0f} | {fallbacks}/{len(times)} |"
                )
            await service.aclose()
    await hole.close()
    await srv_openai.close()
    await srv_gemini.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.calls))
