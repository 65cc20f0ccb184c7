"""The hand-off path in one process, with real parts: a signed POST through the webhook handler, the
SQLite inbox, the in-process queue running the real queue-trigger body, and a fake Graph API served
on loopback. Nothing of the project's own is mocked."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from bot.runtime import Runtime, build_runtime
from core.handoff import HandoffError, HandoffQueue
from core.metrics import queue_wait_seconds, reply_latency_seconds
from core.settings import load_settings
from local_host.queues import serving_worker, settle, worker_queue
from tests.conftest import ROOT, base_env, free_port
from tests.conversation_helpers import query
from tests.outbox_support import InProcessGraph, queue_texts
from tests.webhook_helpers import encode, signed_headers, text_payload

ANA = "5215512345678"




def runtime_for(db_path: Path, graph: InProcessGraph, handoff: HandoffQueue | None = None, **extra: str) -> Runtime:
    """A runtime whose worker queue is in process (`serving_worker` runs it), unless `handoff` is given."""
    settings = load_settings(base_env(db_path, WHATSAPP_API_BASE_URL=graph.base_url, **extra))
    return build_runtime(settings, handoff=handoff or worker_queue())


class RefusingQueue:
    """A queue that is down: every hand-off fails (and is logged); the inbox rows stay durable."""

    async def enqueue(self, keys: Sequence[str]) -> None:
        raise HandoffError("cola caída (prueba)")

    async def aclose(self) -> None:
        pass


async def post_through(queue: HandoffQueue, db_path: Path, graph: InProcessGraph, payload: dict) -> int:
    """POST `payload` through another instance whose webhook hands off to `queue`."""
    other = runtime_for(db_path, graph, handoff=queue)
    try:
        body = encode(payload)
        return (await other.webhook.post(signed_headers(body), body))[0]
    finally:
        await other.aclose()


@pytest.fixture
async def rt(db_path: Path, graph: InProcessGraph) -> AsyncIterator[Runtime]:
    runtime = runtime_for(db_path, graph)
    yield runtime
    await runtime.aclose()


async def post(rt: Runtime, payload: dict) -> tuple[int, float]:
    body = encode(payload)
    started = time.perf_counter()
    status, _ = await rt.webhook.post(signed_headers(body), body)
    return status, time.perf_counter() - started


def sent_to(graph: InProcessGraph, recipient: str) -> list[str]:
    return [s["payload"]["text"]["body"] for s in graph.fake.sent if s["recipient"] == recipient]


def histogram_count(histogram) -> float:
    return next(s.value for s in histogram.collect()[0].samples if s.name.endswith("_count"))


async def test_a_message_is_answered_through_the_queue(rt: Runtime, graph: InProcessGraph, db_path: Path) -> None:
    waits, latencies = histogram_count(queue_wait_seconds), histogram_count(reply_latency_seconds)
    async with serving_worker(rt) as queue:
        assert (await post(rt, text_payload("wamid.Q1", ANA, "Hola, el refrigerador no enfría")))[0] == 200
        await settle(queue)
    (reply,) = sent_to(graph, ANA)
    assert "código SAP" in reply or "SAP" in reply
    assert query(db_path, "SELECT Estado FROM MensajesProcesados") == [("procesado",)]
    assert query(db_path, "SELECT Estado FROM ColaEnvios") == [("enviado",)]
    assert histogram_count(queue_wait_seconds) == waits + 1
    assert histogram_count(reply_latency_seconds) == latencies + 1


async def test_each_queue_message_delivered_three_times_is_handled_once(rt: Runtime, graph: InProcessGraph,
                                                                       db_path: Path) -> None:
    # The POST's hand-off fails and is logged; the row is durable.
    assert await post_through(RefusingQueue(), db_path, graph,
                              text_payload("wamid.DUPQ", ANA, "Hola, el refrigerador no enfría")) == 200
    async with serving_worker(rt) as queue:
        # At-least-once: the same key three times at once (three instances) ...
        counts = await asyncio.gather(*(rt.worker.work(ANA) for _ in range(3)))
        # ... and three more queue messages for it, one after another.
        await queue.enqueue([ANA, ANA, ANA])
        await settle(queue)
    assert sorted(counts) == [0, 0, 1]
    assert query(db_path, "SELECT COUNT(*) FROM HistorialSesiones WHERE MessageId = 'wamid.DUPQ'") == [(1,)]
    assert len(sent_to(graph, ANA)) == 1


class DroppingQueue:
    """Accepts every key and loses it, as a queue message that expired or was deleted by hand."""

    def __init__(self) -> None:
        self.dropped: list[str] = []

    async def enqueue(self, keys: Sequence[str]) -> None:
        self.dropped.extend(keys)


    async def aclose(self) -> None:
        pass


async def test_a_dropped_queue_message_is_redriven_by_the_sweep(rt: Runtime, graph: InProcessGraph,
                                                              db_path: Path) -> None:
    dropping = DroppingQueue()
    assert await post_through(dropping, db_path, graph,
                              text_payload("wamid.LOST", ANA, "Hola, el refrigerador no enfría")) == 200
    assert dropping.dropped == [ANA]
    assert query(db_path, "SELECT Estado FROM MensajesProcesados") == [("pendiente",)]
    async with serving_worker(rt) as queue:
        result = await rt.sweeper.sweep(grace_ms=0)
        assert (result.conversations, result.handed_off) == (1, 1)
        await settle(queue)
    assert query(db_path, "SELECT Estado FROM MensajesProcesados") == [("procesado",)]
    assert len(sent_to(graph, ANA)) == 1


async def test_a_send_cancelled_before_its_request_left_is_released_and_sent_once(
    rt: Runtime, graph: InProcessGraph, db_path: Path
) -> None:
    # One token, the next a second later: the second row waits on the limit, unclaimed, when the timeout hits.
    slow = runtime_for(db_path, graph, OUTBOX_RATE_PER_SECOND="1")
    queue_texts(rt.db, [("5215500000001", "primera"), ("5215500000002", "segunda")])
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await slow.outbox.sweep()
    finally:
        await slow.aclose()
    rows = query(db_path, "SELECT Destinatario, Estado, Intentos, TokenReclamo FROM ColaEnvios ORDER BY Id")
    assert rows == [("5215500000001", "enviado", 1, rows[0][3]), ("5215500000002", "pendiente", 0, None)]
    assert (await rt.outbox.sweep()).sent == 1  # the normal limit from settings
    assert [s["recipient"] for s in graph.fake.sent] == ["5215500000001", "5215500000002"]
    assert query(db_path, "SELECT Estado, Intentos FROM ColaEnvios ORDER BY Id") == [("enviado", 1), ("enviado", 1)]


async def test_a_send_cancelled_with_its_request_in_flight_is_incierto(rt: Runtime, graph: InProcessGraph,
                                                                      db_path: Path) -> None:
    graph.fake.delay_ms = 5_000  # Meta is slow to answer; the request has left
    queue_texts(rt.db, [("5215500000003", "tal vez")])
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.0):
            await rt.outbox.sweep()
    assert query(db_path, "SELECT Estado FROM ColaEnvios") == [("incierto",)]


async def test_three_slow_server_errors_from_graph_are_retried_and_delivered(rt: Runtime, graph: InProcessGraph,
                                                                            db_path: Path) -> None:
    """Each of three replies first gets a 500 after 2 s; none is lost and none is `incierto`."""
    graph.fake.fail_next(500, 999, count=3, delay_ms=2_000, message="temporarily unavailable")
    users = [f"52155000001{i}" for i in range(3)]
    async with serving_worker(rt) as queue:
        for i, user in enumerate(users):
            payload = text_payload(f"wamid.SLOW500.{i}", user, "Hola, el refrigerador no enfría")
            assert (await post(rt, payload))[0] == 200
        await settle(queue)
        for _ in range(20):
            if query(db_path, "SELECT COUNT(*) FROM ColaEnvios WHERE Estado <> 'enviado'") == [(0,)]:
                break
            query(db_path, "UPDATE ColaEnvios SET ProximoIntento = 0 WHERE Estado = 'pendiente'")
            await rt.outbox.sweep()
    assert query(db_path, "SELECT Estado, COUNT(*) FROM ColaEnvios GROUP BY Estado") == [("enviado", 3)]
    assert sorted(s["recipient"] for s in graph.fake.sent) == users


@pytest.mark.slow
async def test_one_delivery_with_2000_messages_is_acked_and_every_user_answered(db_path: Path,
                                                                                 graph: InProcessGraph) -> None:
    # The send limit is lifted so the test takes seconds; the ack does not depend on it either way.
    rt = runtime_for(db_path, graph, OUTBOX_RATE_PER_SECOND="100000")
    users = [f"52156{i:08d}" for i in range(2_000)]
    payload = text_payload("wamid.BIG.0", users[0], "Hola, el refrigerador no enfría")
    value = payload["entry"][0]["changes"][0]["value"]
    first = value["messages"][0]
    value["messages"] = [dict(first, id=f"wamid.BIG.{i}", **{"from": user}) for i, user in enumerate(users)]
    value["contacts"] = [{"profile": {"name": "x"}, "wa_id": user} for user in users]
    try:
        async with serving_worker(rt) as queue:
            status, _ = await post(rt, payload)
            assert status == 200
            assert queue.in_flight <= queue.options.batch_size + queue.options.new_batch_threshold
            await settle(queue, 240)
    finally:
        await rt.aclose()
    assert query(db_path, "SELECT Estado, COUNT(*) FROM MensajesProcesados GROUP BY Estado") == [("procesado", 2_000)]
    assert len({s["recipient"] for s in graph.fake.sent}) == 2_000 and len(graph.fake.sent) == 2_000


@pytest.fixture
def hanging_ai() -> Iterator[int]:
    """A fake OpenAI API whose every call hangs, in its own process; answers its port."""
    from tests.test_conversation_storm import wait_for_port

    ai_port, gemini_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "local_host.fake_ai", "--openai-port", str(ai_port), "--gemini-port",
         str(gemini_port), "--behavior", "hang"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(ai_port)
        yield ai_port
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.slow
async def test_a_hanging_ai_delays_the_first_reply_by_its_budgets_not_the_acks(
    db_path: Path, graph: InProcessGraph, hanging_ai: int
) -> None:
    rt = runtime_for(db_path, graph, AI_PROVIDER="openai,offline", OPENAI_API_KEY="sk-test",
                     OPENAI_BASE_URL=f"http://127.0.0.1:{hanging_ai}/v1")
    try:
        async with serving_worker(rt) as queue:
            started = time.monotonic()
            status, ack_s = await post(rt, text_payload("wamid.HANG1", ANA, "Hola, el refrigerador no enfría"))
            acks = [ack_s] + [(await post(rt, text_payload(f"wamid.HANGDUP{i}", "5215599990001", "hola")))[1]
                              for i in range(5)]
            for _ in range(600):
                if sent_to(graph, ANA):
                    break
                await asyncio.sleep(0.05)
            first_reply_s = time.monotonic() - started
            await settle(queue, 60)
    finally:
        await rt.aclose()
    assert status == 200
    assert max(acks) < 1.0, f"acks {acks}"  # the old in-request drain answered after 3.5 s
    # detect 3 s + extract 4 s on fallbacks; the old path waited for a sweep (20-22 s).
    assert first_reply_s <= 10.0, f"first reply after {first_reply_s:.1f} s"
    assert len(sent_to(graph, ANA)) == 1


async def test_each_reply_goes_out_from_the_number_the_user_wrote_to(db_path: Path, graph: InProcessGraph) -> None:
    """Several served numbers used to share one sender (WHATSAPP_PHONE_NUMBER_ID): now the outbox row keeps
    the number the user wrote to (metadata.phone_number_id) and the reply leaves from it."""
    second = "106540352299999"
    rt = runtime_for(db_path, graph, WHATSAPP_PHONE_NUMBER_IDS=f"106540352242922,{second}")
    try:
        async with serving_worker(rt) as queue:
            to_second = text_payload("wamid.NUM2", ANA, "Hola, el refrigerador no enfría")
            to_second["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = second
            to_default = text_payload("wamid.NUM1", "5215587654321", "Hola, el camión no arranca")
            assert (await post(rt, to_second))[0] == 200 and (await post(rt, to_default))[0] == 200
            await settle(queue, 30)
            for _ in range(100):
                if len({s["recipient"] for s in graph.fake.sent}) == 2:
                    break
                await asyncio.sleep(0.05)
    finally:
        await rt.aclose()
    senders = {s["recipient"]: s["phone_number_id"] for s in graph.fake.sent}
    assert senders == {ANA: second, "5215587654321": "106540352242922"}
    # The two conversations are handled concurrently: their rows may be queued in either order.
    assert set(query(db_path, "SELECT Destinatario, NumeroNegocio FROM ColaEnvios")) == {
        (ANA, second), ("5215587654321", "106540352242922")}
