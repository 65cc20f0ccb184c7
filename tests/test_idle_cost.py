"""What an idle app costs the database: each timer run that finds nothing is one read and no write, on the
real SQLite database (statements counted as they are executed); with work waiting, the sweep runs whole."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from azure.functions.timer import TimerRequest

from bot.functions import ai_recovery, conversation, metrics, outbound
from bot.runtime import Runtime, build_runtime, use_runtime
from core.settings import load_settings
from core.storage.database import Tx
from tests.conftest import base_env
from tests.conversation_helpers import query
from tests.outbox_support import InProcessGraph, queue_texts


@pytest.fixture
def executed(monkeypatch: pytest.MonkeyPatch) -> Iterator[collections.Counter[str]]:
    """Every named statement the storage layer runs, counted (the statements still run for real)."""
    counts: collections.Counter[str] = collections.Counter()
    real = Tx._run

    def counting(self: Tx, name: str, params: object) -> object:
        counts[name] += 1
        return real(self, name, params)  # type: ignore[arg-type]

    monkeypatch.setattr(Tx, "_run", counting)
    yield counts


class Keep:
    """A worker queue that keeps what it is given."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def enqueue(self, keys: list[str]) -> None:
        self.keys.extend(keys)

    async def aclose(self) -> None:
        pass


@pytest.fixture
def keeper() -> Keep:
    return Keep()


@pytest.fixture
async def rt(db_path: Path, graph: InProcessGraph, keeper: Keep) -> AsyncIterator[Runtime]:
    runtime = build_runtime(load_settings(base_env(db_path, WHATSAPP_API_BASE_URL=graph.base_url,
                                                   APPLICATIONINSIGHTS_CONNECTION_STRING="")), handoff=keeper)
    use_runtime(runtime)
    yield runtime
    use_runtime(None)
    await runtime.aclose()


TIMERS = {
    "conversation_sweep": (conversation.conversation_sweep, "conversation_sweep_due"),
    "outbox_sweep": (outbound.outbox_sweep, "outbox_sweep_due"),
    "ai_recovery": (ai_recovery.ai_recovery, "list_active_ai_runs"),
}


@pytest.mark.parametrize("name", sorted(TIMERS))
async def test_an_idle_run_is_one_read(name: str, rt: Runtime, executed: collections.Counter[str]) -> None:
    fn, expected = TIMERS[name]
    await fn(TimerRequest())  # the first run after a start may do its full recovery
    executed.clear()
    for _ in range(3):
        await fn(TimerRequest())
    assert dict(executed) == {expected: 3}


async def test_metrics_sampling_reads_nothing_without_application_insights(
        rt: Runtime, executed: collections.Counter[str]) -> None:
    await metrics.muestreo_metricas(TimerRequest())
    assert dict(executed) == {}


async def test_a_stalled_conversation_still_gets_the_whole_sweep(rt: Runtime, db_path: Path, keeper: Keep,
                                                                 executed: collections.Counter[str]) -> None:
    from tests.conversation_helpers import put_in_inbox, text_message

    await conversation.conversation_sweep(TimerRequest())  # first run
    put_in_inbox(db_path, text_message("5215512345678", "hola", 1_000))
    import sqlite3

    with closing(sqlite3.connect(db_path)) as conn, conn:  # received ten minutes ago: past the sweep's grace period
        conn.execute("UPDATE MensajesProcesados SET RecibidoEn = RecibidoEn - 600000")

    executed.clear()
    await conversation.conversation_sweep(TimerRequest())
    assert executed["conversation_sweep_due"] == 1 and executed["inbox_stalled_keys"] == 1
    assert keeper.keys == ["5215512345678"]


async def test_an_open_send_still_gets_the_whole_outbox_sweep(rt: Runtime, db_path: Path, graph: InProcessGraph,
                                                              executed: collections.Counter[str]) -> None:
    queue_texts(rt.db, [("5215512345678", "Hola")])
    await outbound.outbox_sweep(TimerRequest())
    assert executed["outbox_sweep_due"] == 1 and executed["claim_outbound"] >= 1
    assert query(db_path, "SELECT Estado FROM ColaEnvios") == [("enviado",)]
