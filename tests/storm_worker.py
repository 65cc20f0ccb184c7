"""Code that runs inside separate OS processes for the storm and crash tests (one process = one instance)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

from core.settings import load_settings
from tests.conftest import base_env

# The conversations of the storm: each step is the user's answer to the bot's previous question. Each
# conversation reports its own equipment (a refrigerator from `storm_catalog`, or its own plate): two
# conversations about one equipment would meet the duplicate check, which is not what a storm tests.
FRIDGE = ["Hola, el refrigerador no enfría", "{code}", "sí"]
FRIDGE_MENU = ["Buenos días", "1", "{code}", "hace mucho ruido", "si"]
VEHICLE = ["el camión no arranca", "48213", "XYZ-{i:03d}-A", "sí"]
FIRST_STORM_CODE = 30_000_000


def storm_code(i: int) -> str:
    return str(FIRST_STORM_CODE + i)


def script_for(i: int) -> list[str]:
    return [step.format(code=storm_code(i), i=i % 1000) for step in (FRIDGE, FRIDGE_MENU, VEHICLE)[i % 3]]


def storm_catalog(conversations: int) -> list[tuple[str, str, str]]:
    """The refrigerators the storm's conversations report: (SAP code, description, location)."""
    return [(storm_code(i), f"Refrigerador de prueba {i}", f"Tienda {i}") for i in range(conversations) if i % 3 != 2]


def phone_for(i: int) -> str:
    return f"52155{i:08d}" if i % 10 else f"MX.{9000000000 + i}"  # every tenth user is username-only


Rounds = list[list[tuple[int, tuple[int, ...]]]]


def delivery_body(i: int, steps: tuple[int, ...]) -> bytes:
    """One signed-able POST carrying `steps` of conversation `i`, shaped as Meta batches them."""
    from tests.webhook_helpers import encode, text_payload

    key = phone_for(i)
    bsuid = key if key.startswith("MX.") else f"MX.{i:016d}"
    phone = None if key.startswith("MX.") else key
    payload = text_payload(f"wamid.STORM.{i}.{steps[0]}", phone, script_for(i)[steps[0]], bsuid=bsuid,
                           ts=1_763_880_000 + steps[0] * 10)
    value = payload["entry"][0]["changes"][0]["value"]
    for step in steps[1:]:
        extra = dict(value["messages"][0], id=f"wamid.STORM.{i}.{step}", timestamp=str(1_763_880_000 + step * 10),
                     text={"body": script_for(i)[step]})
        value["messages"].append(extra)
    return encode(payload)


def run_instance(db_path: str, rounds: Rounds, barrier, env: dict[str, str], concurrency: int = 8) -> dict:
    """One Function instance: each delivery is a signed POST through the real webhook handler."""
    return asyncio.run(_run_instance(db_path, rounds, barrier, env, concurrency))


async def _run_instance(db_path: str, rounds: Rounds, barrier, env: dict[str, str], concurrency: int) -> dict:
    from bot.runtime import build_runtime
    from local_host.queues import serving_worker, settle, worker_queue

    rt = build_runtime(load_settings(base_env(Path(db_path), DB_POOL_SIZE="4", **env)), handoff=worker_queue())
    async with serving_worker(rt) as queue:  # this instance's queue-triggered worker, in process
        result = await _deliver_rounds(rt, rounds, barrier, concurrency)
        await settle(queue, 240)
    await rt.aclose()
    return result


async def _deliver_rounds(rt, rounds: Rounds, barrier, concurrency: int) -> dict:
    from tests.webhook_helpers import signed_headers

    gate = asyncio.Semaphore(concurrency)
    delivered, statuses, durations = 0, [], []

    async def deliver(i: int, steps: tuple[int, ...]) -> None:
        nonlocal delivered
        body = delivery_body(i, steps)
        async with gate:
            started = time.monotonic()
            status, _ = await rt.webhook.post(signed_headers(body), body)
            durations.append(time.monotonic() - started)
            statuses.append(status)
            delivered += len(steps)

    for items in rounds:
        await asyncio.gather(*(deliver(i, s) for i, s in items))
        await asyncio.to_thread(barrier.wait, 300)
    return {"delivered": delivered, "statuses": statuses, "max_s": max(durations, default=0.0)}


class HangOnConfirmation:
    """An AI provider that never answers when asked to read the confirmation ("sí"): the process is stuck
    holding the lease, mid-message."""

    name = "hang"

    def __init__(self, ready_file: str) -> None:
        from core.ai.offline import OfflineProvider

        self._inner = OfflineProvider()
        self._ready = ready_file

    async def detect_intent(self, text: str):
        return await self._inner.detect_intent(text)

    async def extract_structured_data(self, text: str):
        if text.strip() == "sí":
            Path(self._ready).write_text(str(os.getpid()))  # noqa: ASYNC240 - a tiny signal file
            await asyncio.sleep(3600)
        return await self._inner.extract_structured_data(text)

    async def interpret_term(self, text: str, kind):
        return await self._inner.interpret_term(text, kind)


def hold_lease_and_hang(db_path: str, key: str, ready_file: str, lock_timeout_ms: int,
                        env: dict[str, str] | None = None) -> None:
    """The queue-triggered worker drains `key` with a provider that hangs mid-message (the test SIGKILLs it)."""

    async def main() -> None:
        from bot.runtime import build_runtime
        from local_host.queues import serving_worker, worker_queue

        rt = build_runtime(load_settings(base_env(Path(db_path), LOCK_TIMEOUT=str(lock_timeout_ms), **(env or {}))),
                           handoff=worker_queue(), intent=HangOnConfirmation(ready_file))
        async with serving_worker(rt) as queue:
            await queue.enqueue([key])
            await asyncio.sleep(3600)

    asyncio.run(main())


def shuffled_rounds(conversations: int, processes: int, seed: int) -> list[list[list[tuple[int, tuple[int, ...]]]]]:
    """Per process, per round: its share of that round's deliveries, shuffled.

    A round's first deliveries carry two consecutive steps of each conversation in one POST (a user who
    types two messages quickly; Meta batches them), so the drain must take them in timestamp order.
    The same round redelivers each message of the previous round 0-2 more times (1-3 deliveries in all),
    racing with the new ones: a redelivery always comes after its first delivery, as with Meta.
    """
    rng = random.Random(seed)
    steps = max(len(script_for(i)) for i in range(conversations))
    per_process: list[list[list[tuple[int, tuple[int, ...]]]]] = [[] for _ in range(processes)]
    previous: list[tuple[int, int]] = []
    for first in range(0, steps + 2, 2):
        batch = [(i, tuple(s for s in (first, first + 1) if s < len(script_for(i)))) for i in range(conversations)]
        batch = [(i, st) for i, st in batch if st]
        redeliveries = [(i, (s,)) for i, s in previous for _ in range(rng.randint(0, 2))]
        deliveries = batch + redeliveries
        if not deliveries:
            break
        rng.shuffle(deliveries)
        for p in range(processes):
            per_process[p].append(deliveries[p::processes])
        previous = [(i, s) for i, st in batch for s in st]
    return per_process
