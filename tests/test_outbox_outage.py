"""Graph API outages delay replies and never drop them: 429/130429, connection refused and 5xx, each for
the equivalent of 80 s.

Time is shrunk 20 times as a whole (backoff base 100 ms instead of 2 s, cap 15 s instead of 5 min, the
outbox sweep every 0.5 s instead of 10 s), so each outage runs 4 s of wall time against a real fake Graph
server on loopback and a real SQLite file. Before this, 45 s of 429 sent 5 of 30 replies to `error` and
55 s of connection refused 20 of 20: attempts were used up in about 40 s.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bot.runtime import Runtime
from core.clock import system_clock
from core.settings import load_settings
from core.storage.inspection import count_by_state, list_recipient
from core.storage.sqlite import SqliteDatabase
from tests.conftest import base_env, free_port
from tests.outbox_support import InProcessGraph, queue_texts

pytestmark = pytest.mark.slow

SCALE = 20  # wall time runs this many times faster than production time
OUTAGE_S = 80 / SCALE
SWEEP_EVERY_S = 10 / SCALE
USERS = 30


@pytest.fixture
async def graph() -> AsyncIterator[InProcessGraph]:
    server = await InProcessGraph(free_port()).start()
    yield server
    await server.stop()


@pytest.fixture
async def rt(db_path: Path, graph: InProcessGraph) -> AsyncIterator[Runtime]:
    env = base_env(db_path, WHATSAPP_API_BASE_URL=graph.base_url, OUTBOX_RATE_PER_SECOND="1000",
                   OUTBOX_BACKOFF_BASE_MS=str(2_000 // SCALE), OUTBOX_BACKOFF_CAP_MS=str(300_000 // SCALE))
    runtime = Runtime(settings=load_settings(env), db=SqliteDatabase(str(db_path), pool_size=2))
    yield runtime
    await runtime.aclose()


async def _deliver_through(rt: Runtime, outage: Callable[[], Awaitable[None]]) -> list[str]:
    """Queue one reply per user, start the outage, dispatch as the worker does (eagerly, then the sweep
    timer and the retry timers) until every row is settled; answers the recipients in the order Meta got them."""
    recipients = [f"52155{i:08d}" for i in range(USERS)]
    queue_texts(rt.db, [(r, f"hola {r}") for r in recipients], now_ms=system_clock())
    await outage()
    await asyncio.gather(*(rt.outbox.dispatch_recipient(r) for r in recipients))
    deadline = time.monotonic() + 6 * OUTAGE_S
    while time.monotonic() < deadline:
        counts = await count_by_state(rt.db)
        if counts.get("pendiente") + counts.get("procesando") == 0:
            break
        await asyncio.sleep(SWEEP_EVERY_S)
        await rt.outbox.sweep()
    return recipients


async def _assert_every_reply_sent_once(rt: Runtime, graph: InProcessGraph, recipients: list[str]) -> None:
    counts = await count_by_state(rt.db)
    assert counts.get("enviado") == USERS and counts.get("error") == 0 and counts.get("incierto") == 0, \
        counts.as_dict()
    sent = Counter(s["recipient"] for s in graph.fake.sent)
    assert sorted(sent) == recipients and max(sent.values()) == 1
    waited = [row for r in recipients for row in await list_recipient(rt.db, r)]
    assert any(row.postponements >= 1 for row in waited)  # the outage was really met


@pytest.mark.parametrize(("status", "code"), [(429, 130429), (429, 4), (503, 131016)])
async def test_an_outage_of_graph_errors_delays_every_reply_and_drops_none(
    rt: Runtime, graph: InProcessGraph, status: int, code: int
) -> None:
    async def outage() -> None:
        graph.fake.fail_for(status, code, OUTAGE_S)

    recipients = await _deliver_through(rt, outage)
    # 130429 and 4 pause the whole number (for every instance), so fewer requests than replies may meet
    # the outage: Meta is not hammered while it says "not now".
    assert graph.fake.refused_during_outage >= (1 if code in (130429, 4) else USERS)
    await _assert_every_reply_sent_once(rt, graph, recipients)


async def test_an_outage_of_refused_connections_delays_every_reply_and_drops_none(
    rt: Runtime, graph: InProcessGraph
) -> None:
    await graph.stop()

    async def back_later() -> None:
        await asyncio.sleep(OUTAGE_S)
        await graph.start()

    async def outage() -> None:
        asyncio.get_running_loop().create_task(back_later())

    recipients = await _deliver_through(rt, outage)
    await _assert_every_reply_sent_once(rt, graph, recipients)
    # Attempts that never connected are not held against OUTBOX_MAX_ATTEMPTS.
    rows = [row for r in recipients for row in await list_recipient(rt.db, r)]
    assert all(row.attempts == 1 for row in rows)
