"""The Storage-queue path against a real Queue service (Azurite on loopback): the app's own
StorageQueueHandoff writes, the local host's StorageQueueListener reads with the Functions host's
semantics, and the real queue-trigger body answers through a fake Graph API. Nothing of the project's
own is mocked; Azurite is a real process, and so is the worker that is killed."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import azure.functions as func
import pytest

from bot.functions.conversation import handle_queue_message
from bot.runtime import Runtime, build_runtime, use_runtime
from core.azure_storage import read_storage_connection
from core.handoff import HANDOFF_QUEUE, HandoffError, StorageQueueHandoff
from core.settings import load_settings
from local_host.queues import QueueOptions
from local_host.storage_queue import StorageQueueListener
from tests.azurite_support import Azurite, azurite_fixture  # noqa: F401  (the `azurite` fixture)
from tests.conftest import ROOT, base_env, free_port
from tests.conversation_helpers import query
from tests.outbox_support import InProcessGraph
from tests.webhook_helpers import encode, signed_headers, text_payload

FAST = QueueOptions(batch_size=16, new_batch_threshold=8, visibility_timeout_s=0.0, max_dequeue_count=5,
                    max_polling_interval_s=0.5)


def raw_client(azurite: Azurite, name: str):  # the SDK's QueueClient, no decode policy
    from azure.storage.queue.aio import QueueClient

    return QueueClient.from_connection_string(azurite.connection_string, name)


async def peek_all(azurite: Azurite, name: str) -> list[str]:
    async with raw_client(azurite, name) as client:
        return [m.content for m in await client.peek_messages(max_messages=32)]


def runtime_on(db_path: Path, graph: InProcessGraph, azurite: Azurite) -> Runtime:
    return build_runtime(load_settings(base_env(db_path, WHATSAPP_API_BASE_URL=graph.base_url,
                                                AzureWebJobsStorage=azurite.connection_string)))


async def post(rt: Runtime, payload: dict) -> tuple[int, float]:
    body = encode(payload)
    started = time.perf_counter()
    status, _ = await rt.webhook.post(signed_headers(body), body)
    return status, time.perf_counter() - started


class Worker:
    """The listener running the real trigger body over Azurite, in this event loop."""

    def __init__(self, rt: Runtime, azurite: Azurite, lease_s: float = 30.0) -> None:
        self.listener = StorageQueueListener(HANDOFF_QUEUE, read_storage_connection(
            {"AzureWebJobsStorage": azurite.connection_string}), FAST, lease_s=lease_s)
        self.rt = rt
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StorageQueueListener:
        use_runtime(self.rt)
        self.task = asyncio.create_task(self.listener.run(handle_queue_message, "msg"))
        return self.listener

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        use_runtime(None)


async def until(predicate, within_s: float, step_s: float = 0.05) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {within_s} s")
        await asyncio.sleep(step_s)


def answered(graph: InProcessGraph) -> set[str]:
    return {s["recipient"] for s in graph.fake.sent}


@pytest.fixture
async def rt(db_path: Path, graph: InProcessGraph, azurite: Azurite) -> AsyncIterator[Runtime]:
    runtime = runtime_on(db_path, graph, azurite)
    yield runtime
    await runtime.aclose()


async def test_the_webhook_writes_base64_keys_and_the_listener_answers(rt: Runtime, graph: InProcessGraph,
                                                                      azurite: Azurite, db_path: Path) -> None:
    assert isinstance(rt.handoff, StorageQueueHandoff)  # the Azure path, not an in-process queue
    assert (await post(rt, text_payload("wamid.AZQ1", "5215512345678", "Hola, el refrigerador no enfría")))[0] == 200
    # On the wire, as the trigger's default messageEncoding expects: base64 of the conversation key.
    assert await peek_all(azurite, HANDOFF_QUEUE) == [base64.b64encode(b"5215512345678").decode()]
    async with Worker(rt, azurite) as listener:
        await until(lambda: "5215512345678" in answered(graph), 20)
        await until(lambda: listener.in_flight == 0, 10)
    assert query(db_path, "SELECT Estado FROM MensajesProcesados") == [("procesado",)]
    assert await peek_all(azurite, HANDOFF_QUEUE) == []  # deleted once the function returned
    assert listener.invocations == 1


async def test_a_failing_message_comes_back_with_a_growing_dequeue_count_then_goes_to_poison(
        azurite: Azurite) -> None:
    connection = read_storage_connection({"AzureWebJobsStorage": azurite.connection_string})
    writer = StorageQueueHandoff(connection, "q-falla")
    await writer.enqueue(["malo", "bueno"])
    await writer.aclose()
    seen: list[tuple[str, int]] = []

    async def fn(msg: func.QueueMessage) -> None:
        seen.append((msg.get_body().decode(), msg.dequeue_count))
        if msg.get_body() == b"malo":
            raise RuntimeError("falla a propósito")

    listener = StorageQueueListener("q-falla", connection, QueueOptions(visibility_timeout_s=0.0, max_dequeue_count=3,
                                                                        max_polling_interval_s=0.3))
    task = asyncio.create_task(listener.run(fn, "msg"))
    try:
        await until(lambda: listener.poisoned == 1 and listener.in_flight == 0, 20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sorted(seen) == [("bueno", 1), ("malo", 1), ("malo", 2), ("malo", 3)]
    # Copied as it was, base64 like every message the trigger reads (a redrive puts it back unchanged).
    assert await peek_all(azurite, "q-falla-poison") == [base64.b64encode(b"malo").decode()]
    assert await peek_all(azurite, "q-falla") == []


@pytest.mark.slow
async def test_a_storm_through_azurite_answers_everyone_once(rt: Runtime, graph: InProcessGraph,
                                                             db_path: Path, azurite: Azurite) -> None:
    users = [f"52155{i:08d}" for i in range(60)]
    async with Worker(rt, azurite) as listener:
        posts = []
        for round_ in range(2):  # every message delivered twice, concurrently
            posts += [post(rt, text_payload(f"wamid.ST{i}", user, "Hola, el refrigerador no enfría"))
                      for i, user in enumerate(users)]
            del round_
        results = await asyncio.gather(*posts)
        assert {status for status, _ in results} == {200}
        await until(lambda: answered(graph) >= set(users), 60, 0.1)
        await until(lambda: listener.in_flight == 0, 20)
    per_user = [sum(1 for s in graph.fake.sent if s["recipient"] == u) for u in users]
    assert per_user == [1] * len(users)
    assert query(db_path, "SELECT COUNT(*) FROM MensajesProcesados WHERE Estado = 'procesado'") == [(60,)]


CRASHING_WORKER = textwrap.dedent("""
    import asyncio, sys, time
    from pathlib import Path
    from core.azure_storage import read_storage_connection
    from local_host.queues import QueueOptions
    from local_host.storage_queue import StorageQueueListener

    conn_str, marker = sys.argv[1], Path(sys.argv[2])

    async def hang(msg):
        marker.write_text(f"{msg.get_body().decode()} {msg.dequeue_count}")
        await asyncio.sleep(3600)  # killed here, holding the message

    listener = StorageQueueListener("q-caida", read_storage_connection({"AzureWebJobsStorage": conn_str}),
                                    QueueOptions(max_polling_interval_s=0.3), lease_s=2)
    asyncio.run(listener.run(hang, "msg"))
""")


@pytest.mark.slow
async def test_a_message_held_by_a_killed_worker_comes_back_after_its_lease(azurite: Azurite,
                                                                            tmp_path: Path) -> None:
    connection = read_storage_connection({"AzureWebJobsStorage": azurite.connection_string})
    writer = StorageQueueHandoff(connection, "q-caida")
    await writer.enqueue(["5215512345678"])
    await writer.aclose()
    marker = tmp_path / "marker"
    child = subprocess.Popen(  # noqa: ASYNC220  (started once; the test then only polls a file)
        [sys.executable, "-c", CRASHING_WORKER, azurite.connection_string, str(marker)], cwd=ROOT,
        start_new_session=True)
    try:
        await until(marker.exists, 30)
        await asyncio.sleep(2.5)  # past one lease: the renewal keeps it invisible while the worker lives
        assert await peek_all(azurite, "q-caida") == []
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
    assert marker.read_text() == "5215512345678 1"
    seen: list[tuple[str, int]] = []

    async def record(msg: func.QueueMessage) -> None:
        seen.append((msg.get_body().decode(), msg.dequeue_count))

    listener = StorageQueueListener("q-caida", connection, QueueOptions(max_polling_interval_s=0.3))
    task = asyncio.create_task(listener.run(record, "msg"))
    try:
        await until(lambda: bool(seen), 10)  # the lease was 2 s: it is back within that
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert seen == [("5215512345678", 2)]


@pytest.mark.slow
async def test_azurite_down_the_webhook_still_acks_fast_and_everyone_is_answered_after(
        rt: Runtime, graph: InProcessGraph, db_path: Path, azurite: Azurite, caplog: pytest.LogCaptureFixture) -> None:
    users = [f"52166{i:08d}" for i in range(20)]
    # One delivery while the service is up: the SDK's first import and connection are paid here, as at a
    # cold start, not counted in the acks below.
    assert (await post(rt, text_payload("wamid.UP", "5216600000999", "Hola")))[0] == 200
    azurite.stop(kill=True)
    acks = [await post(rt, text_payload(f"wamid.DOWN{i}", user, "Hola, el refrigerador no enfría"))
            for i, user in enumerate(users)]
    assert {status for status, _ in acks} == {200}
    # A refused connection fails at once (no SDK retry), and after it the writer does not try for 5 s.
    assert max(seconds for _, seconds in acks) < 1.0, acks
    assert sorted(seconds for _, seconds in acks)[len(acks) // 2] < 0.1, acks
    assert query(db_path, "SELECT COUNT(*) FROM MensajesProcesados WHERE Estado = 'pendiente'") == [(21,)]
    assert "HANDOFF_FALLIDO" in caplog.text and "AccountKey" not in caplog.text
    azurite.start()
    async with Worker(rt, azurite):
        # What the 15 s timer does on Azure, here every second: the writer waits out its cool-down after
        # the failures, then hands every pending conversation over.
        handed = 0
        for _ in range(20):
            handed = (await rt.sweeper.sweep(grace_ms=0)).handed_off
            if handed:
                break
            await asyncio.sleep(1)
        assert handed >= 20  # the first one may already have been taken from the queue it reached
        await until(lambda: answered(graph) >= {*users, "5216600000999"}, 60, 0.1)
    assert query(db_path, "SELECT COUNT(*) FROM MensajesProcesados WHERE Estado = 'procesado'") == [(21,)]


async def test_an_unreachable_account_error_names_the_service_reason(azurite: Azurite) -> None:
    """Azurite refuses a wrong key with its own code; the error text keeps it."""
    bad = azurite.connection_string.replace("AccountKey=Eby8", "AccountKey=AAAA")
    writer = StorageQueueHandoff(read_storage_connection({"AzureWebJobsStorage": bad}), "q-clave")
    with pytest.raises(HandoffError, match=r"AuthorizationFailure|AuthenticationFailed|403"):
        await writer.enqueue(["x"])
    await writer.aclose()


@pytest.mark.slow
def test_the_local_host_uses_the_storage_queue_when_azurewebjobsstorage_is_set(tmp_path: Path,
                                                                              azurite: Azurite) -> None:
    import httpx

    from tests.test_local_host import start_host, wait_ready

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_host(tmp_path / "bot.sqlite3", port, WHATSAPP_API_BASE_URL=f"{base}/_fake_graph/v23.0",
                      AzureWebJobsStorage=azurite.connection_string)
    phone = "5215512340001"
    try:
        wait_ready(base + "/api/health", proc)
        body = encode(text_payload("wamid.LOCALAZ1", phone, "Hola, el refrigerador no enfría"))
        ack = httpx.post(base + "/api/whatsapp/webhook", content=body, headers=signed_headers(body))
        assert ack.status_code == 200
        deadline = time.monotonic() + 30
        thread: list = []
        while time.monotonic() < deadline and not thread:
            thread = [t for t in httpx.get(base + "/_console/api/state", params={"user": phone}).json()["thread"]
                      if t["side"] == "bot"]
            time.sleep(0.1)
        assert len(thread) == 1
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert "conversation_worker: cola conversaciones-pendientes (Azure Storage" in out
