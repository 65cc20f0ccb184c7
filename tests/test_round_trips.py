"""Round trips and transactions one text message with one reply costs the database, counted by the
adapter on the real path: the signed webhook POST registers it, then the queue worker drains the
conversation (lease, session, transition, reply queued) and sends the reply to a fake Graph API on
loopback. docs/benchmarks.md ("Round trips per message") publishes these figures and the calls behind them.

The counts are deterministic for this flow (one message, no concurrency, no timing), so they are asserted
exactly: a change that adds or removes a statement or a transaction must update them and the doc. SQL
Server runs the same statements; each write transaction costs one COMMIT round trip there (reads run in
autocommit on their own connection: none), where SQLite makes a BEGIN and a COMMIT call for every
transaction. The opt-in SQL Server run asserts its own figures on a real server.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from itertools import pairwise
from pathlib import Path

import pytest

from bot.runtime import Runtime, build_runtime
from core.settings import load_settings
from tests.conftest import SQLSERVER_ENV, _sqlserver_db, base_env
from tests.conversation_helpers import SqlServer, query, replies
from tests.outbox_support import InProcessGraph
from tests.webhook_helpers import encode, signed_headers, text_payload

PHONE = "5215512345678"

# (round trips, statements, transactions) per stage and dialect.
EXPECTED = {
    "sqlite": {"webhook": (3, 1, 1), "worker": (41, 23, 9)},
    "tsql": {"webhook": (2, 1, 1), "worker": (29, 23, 9)},
}
# The worker's transactions and their statements, in the order they usually run (the chat save and the
# session read run concurrently, so the test compares them as a multiset).
WORKER_CALLS = [
    "-- transacción de escritura", "lease_acquire",
    "-- transacción de lectura", "inbox_pending", "has_active_ai_run", "session_get",
    "-- transacción de escritura", "lease_check", "inbox_mark_processed", "chat_save_user", "session_insert",
    "history_insert", "enqueue_outbound", "chat_save_bot",
    "-- transacción de lectura", "outbound_head_numbers",
    "-- transacción de escritura", "send_limit_read", "send_limit_ensure", "send_limit_read", "send_limit_write",
    "-- transacción de escritura", "claimed_with_token", "claim_outbound_recipient",
    "-- transacción de escritura", "mark_outbound_sent", "recorded_delivery_statuses",
    "-- transacción de lectura", "outbound_head_numbers",
    "-- transacción de escritura", "lease_release", "inbox_pending",
]


def _transactions(trace: list[str]) -> list[tuple[str, ...]]:
    """The trace cut at each transaction's first line: one tuple per transaction."""
    cuts = [i for i, line in enumerate(trace) if line.startswith("--")] + [len(trace)]
    return [tuple(trace[a:b]) for a, b in pairwise(cuts)]


class RecordingHandoff:
    """The hand-off queue, kept in memory: the test runs the worker itself."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def enqueue(self, keys: Sequence[str]) -> None:
        self.keys.extend(keys)

    async def aclose(self) -> None:
        pass


@pytest.fixture(params=["sqlite", "sqlserver"])
async def rt(request: pytest.FixtureRequest, db_path: Path, graph: InProcessGraph) -> AsyncIterator[Runtime]:
    extra = {"WHATSAPP_API_BASE_URL": graph.base_url}
    if request.param == "sqlserver":
        if not os.environ.get(SQLSERVER_ENV):
            pytest.skip(f"SQL Server run is opt-in: set {SQLSERVER_ENV}")
        _sqlserver_db().close()
        extra["SQL_CONNECTION_STRING"] = os.environ[SQLSERVER_ENV]
    runtime = build_runtime(load_settings(base_env(db_path, **extra)), handoff=RecordingHandoff())
    yield runtime
    await runtime.aclose()


async def test_round_trips_of_one_text_message_with_one_reply(rt: Runtime, db_path: Path,
                                                              graph: InProcessGraph) -> None:
    counts = rt.db.counts
    counts.trace = trace = []
    body = encode(text_payload("wamid.ROUNDTRIP0001", PHONE, "Hola, el refrigerador no enfría"))
    assert (await rt.webhook.post(signed_headers(body), body))[0] == 200
    webhook = counts.snapshot()
    assert rt.handoff.keys == [PHONE]  # type: ignore[union-attr]
    assert trace[-1] == "register_delivery"
    webhook_writes = sum(line.startswith("-- transacción de escritura") for line in trace)
    trace.clear()

    assert await rt.worker.work(PHONE) == 1
    worker = tuple(a - b for a, b in zip(counts.snapshot(), webhook, strict=True))

    target = SqlServer(os.environ[SQLSERVER_ENV]) if rt.db.dialect == "tsql" else db_path
    assert len(replies(target, PHONE)) == 1 and len(graph.fake.sent) == 1
    assert query(target, "SELECT Estado FROM ColaEnvios") == [("enviado",)]
    assert Counter(_transactions(trace)) == Counter(_transactions(WORKER_CALLS)), "\n".join(trace)
    assert {"webhook": webhook, "worker": worker} == EXPECTED[rt.db.dialect]
    # Every statement is one round trip; the rest is transaction control, by the dialect's rule.
    worker_writes = sum(line.startswith("-- transacción de escritura") for line in trace)
    for (round_trips, statements, transactions), writes in ((webhook, webhook_writes), (worker, worker_writes)):
        control = 2 * transactions if rt.db.dialect == "sqlite" else writes
        assert round_trips == statements + control
