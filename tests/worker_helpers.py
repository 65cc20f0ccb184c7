"""The conversation worker on an in-process queue, as the local host runs it, for tests and benches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bot.functions.conversation import handle_queue_message
from bot.runtime import Runtime, use_runtime
from core.handoff import HANDOFF_QUEUE
from local_host.queues import LocalQueue, QueueOptions
from local_host.server import HOST_JSON


@contextlib.asynccontextmanager
async def serving_worker(rt: Runtime, options: QueueOptions | None = None) -> AsyncIterator[LocalQueue]:
    """Install an in-process hand-off queue on `rt` and run the queue trigger's body over it."""
    queue = LocalQueue(HANDOFF_QUEUE, options or QueueOptions.from_host_json(HOST_JSON))
    rt.handoff = queue
    use_runtime(rt)  # the trigger reads the process runtime, as on Azure
    task = asyncio.create_task(queue.run(handle_queue_message, "msg"))
    try:
        yield queue
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        use_runtime(None)


async def settle(queue: LocalQueue, within_s: float = 60.0) -> None:
    """Wait until the worker has nothing queued or running."""
    async with asyncio.timeout(within_s):
        await queue.join()
