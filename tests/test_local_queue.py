"""The local host's queue trigger keeps the Functions host semantics the app relies on."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import azure.functions as func
import pytest

from core.metrics import REGISTRY
from local_host.queues import HOST_JSON, LocalQueue, QueueOptions


async def run_until_idle(queue: LocalQueue, fn, within_s: float = 10.0) -> None:
    task = asyncio.create_task(queue.run(fn, "msg"))
    try:
        async with asyncio.timeout(within_s):
            await queue.join()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_options_come_from_host_json() -> None:
    opts = QueueOptions.from_host_json(HOST_JSON)
    queues = json.loads(HOST_JSON.read_text())["extensions"]["queues"]
    assert opts.batch_size == queues["batchSize"] and opts.new_batch_threshold == queues["newBatchThreshold"]
    assert opts.max_dequeue_count == queues["maxDequeueCount"]
    assert opts.max_polling_interval_s <= 2.0  # the first reply after an idle spell waits at most this
    assert queues["messageEncoding"] == "base64"  # what StorageQueueHandoff writes


def test_host_defaults_without_extensions(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text('{"version": "2.0"}')
    opts = QueueOptions.from_host_json(tmp_path / "host.json")
    assert (opts.batch_size, opts.new_batch_threshold, opts.max_dequeue_count) == (16, 8, 5)
    assert opts.max_polling_interval_s == 60.0


async def test_a_failing_message_is_retried_with_a_growing_dequeue_count_then_poisoned() -> None:
    queue = LocalQueue("q", QueueOptions(visibility_timeout_s=0.05, max_dequeue_count=3))
    seen: list[tuple[str, int]] = []

    async def fn(msg: func.QueueMessage) -> None:
        seen.append((msg.get_body().decode(), msg.dequeue_count))
        if msg.get_body() == b"malo":
            raise RuntimeError("boom")

    await queue.enqueue(["malo", "bueno"])
    await run_until_idle(queue, fn)
    assert sorted(seen) == [("bueno", 1), ("malo", 1), ("malo", 2), ("malo", 3)]
    assert [m.body for m in queue.poison] == ["malo"]
    assert queue.depth() == 0


async def test_concurrency_is_batch_size_plus_threshold() -> None:
    queue = LocalQueue("q", QueueOptions(batch_size=4, new_batch_threshold=2))
    running = peak = 0

    async def fn(msg: func.QueueMessage) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep((int(msg.get_body()) % 4 + 1) * 0.01)  # uneven: a batch finishes one by one
        running -= 1

    await queue.enqueue([str(i) for i in range(50)])
    await run_until_idle(queue, fn)
    assert queue.invocations == 50
    assert 4 < peak <= 4 + 2


async def test_messages_carry_insertion_time_and_depth_is_exported() -> None:
    queue = LocalQueue("cola-prueba")
    await queue.enqueue(["a", "b"])
    assert REGISTRY.get_sample_value("handoff_queue_depth", {"queue": "cola-prueba"}) == 2
    times = []

    async def fn(msg: func.QueueMessage) -> None:
        times.append(msg.insertion_time)

    await run_until_idle(queue, fn)
    assert len(times) == 2 and all(t is not None and t.tzinfo is not None for t in times)
    assert REGISTRY.get_sample_value("handoff_queue_depth", {"queue": "cola-prueba"}) == 0


async def test_a_message_enqueued_while_idle_wakes_the_loop_at_once() -> None:
    queue = LocalQueue("q", QueueOptions(max_polling_interval_s=30))
    got = asyncio.Event()

    async def fn(msg: func.QueueMessage) -> None:
        got.set()

    task = asyncio.create_task(queue.run(fn, "msg"))
    try:
        await asyncio.sleep(0.05)  # idle, waiting
        await queue.enqueue(["x"])
        async with asyncio.timeout(2):
            await got.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("bad", ["1:2", "x:y:z"])
def test_a_malformed_timespan_is_refused(bad: str, tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"queues": {"visibilityTimeout": bad}}}))
    with pytest.raises(ValueError):
        QueueOptions.from_host_json(tmp_path / "host.json")
