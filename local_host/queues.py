"""Azure Storage queue triggers, in process: what the Functions host does for a queue, without Azure.

`LocalQueue` is the queue (it satisfies `core.handoff.HandoffQueue`, so the app writes to it as it
would to Azure) and `run` is the host's trigger loop for one function, with the semantics that
matter to the app:

- at-least-once: a message leaves the queue only when its invocation returns; if it raises, the
  message becomes visible again after `visibilityTimeout`, with its `dequeue_count` one higher;
- after `maxDequeueCount` failed invocations it moves to `<queue>-poison`;
- `batchSize` messages are fetched at once and a new batch is fetched when the number still running
  drops to `newBatchThreshold`, so at most batchSize + newBatchThreshold run at a time;
- all of it read from host.json `extensions.queues`, with the host's defaults.

Unlike Azure it is woken at once by a new message instead of polling (on Azure an idle queue is
polled at most every `maxPollingInterval`), and it lives in memory: a restart drops what it holds.
The inbox rows are the truth, so the start-up sweep hands every pending conversation back to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import inspect
import itertools
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azure.functions.queue import QueueMessage

from core.metrics import handoff_queue_depth

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger("local_host.queues")
HOST_JSON = Path(__file__).resolve().parents[1] / "host.json"
SHUTDOWN_GRACE_S = 10.0


def _timespan_s(value: object, default: float) -> float:
    """host.json timespans are `hh:mm:ss[.fff]`."""
    if not isinstance(value, str) or not value.strip():
        return default
    parts = value.strip().split(":")
    if len(parts) != 3:
        raise ValueError(f"timespan must be hh:mm:ss, got {value!r}")
    hours, minutes, seconds = parts
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@dataclass(frozen=True, slots=True)
class QueueOptions:
    """host.json `extensions.queues`, with the Functions host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    visibility_timeout_s: float = 0.0
    max_dequeue_count: int = 5
    max_polling_interval_s: float = 60.0

    @classmethod
    def from_host_json(cls, path: Path) -> QueueOptions:
        try:
            queues = json.loads(path.read_text(encoding="utf-8")).get("extensions", {}).get("queues", {})
        except FileNotFoundError:
            return cls()
        batch = int(queues.get("batchSize", 16))
        return cls(
            batch_size=batch,
            new_batch_threshold=int(queues.get("newBatchThreshold", batch // 2)),
            visibility_timeout_s=_timespan_s(queues.get("visibilityTimeout"), 0.0),
            max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
            max_polling_interval_s=_timespan_s(queues.get("maxPollingInterval"), 60.0),
        )


@dataclass(slots=True)
class _Message:
    id: str
    body: str
    insertion_time: datetime
    dequeue_count: int = 0


@dataclass
class LocalQueue:
    name: str
    options: QueueOptions = field(default_factory=QueueOptions)
    poison: list[_Message] = field(default_factory=list)
    _visible: deque[_Message] = field(default_factory=deque)
    _delayed: list[tuple[float, int, _Message]] = field(default_factory=list)  # heap: (visible at, seq, msg)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _in_flight: int = 0
    _changed: asyncio.Event | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    invocations: int = 0

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        handoff_queue_depth.labels(queue=self.name).set(self.depth())
        self._event().set()

    # -- the queue, as the app writes to it (core.handoff.HandoffQueue) ---------------------------

    async def enqueue(self, keys: Sequence[str]) -> None:
        now = datetime.now(UTC)
        for key in keys:
            self._visible.append(_Message(uuid.uuid4().hex, key, now))
        self._notify()

    def waiting(self) -> list[str]:
        """The bodies of the visible messages, oldest first."""
        return [m.body for m in self._visible]

    def depth(self) -> int:
        """Messages waiting (visible or delayed), not counting those being processed."""
        return len(self._visible) + len(self._delayed)

    async def aclose(self) -> None:
        """Nothing to release: the host's cleanup cancels `run`."""

    # -- the host's trigger loop ------------------------------------------------------------------

    def _due_delayed(self) -> float | None:
        """Move delayed messages whose visibility timeout passed; answers seconds until the next one."""
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            self._visible.append(heapq.heappop(self._delayed)[2])
        return self._delayed[0][0] - now if self._delayed else None

    async def run(self, fn: Callable[..., Any], arg_name: str) -> None:
        """Invoke `fn(**{arg_name: QueueMessage})` for each message until cancelled."""
        opts = self.options
        try:
            while True:
                event = self._event()
                event.clear()
                wait = self._due_delayed()
                if self._visible and self._in_flight <= opts.new_batch_threshold:
                    for _ in range(min(opts.batch_size, len(self._visible))):
                        self._start(fn, arg_name, self._visible.popleft())
                    handoff_queue_depth.labels(queue=self.name).set(self.depth())
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait if wait is not None else opts.max_polling_interval_s):
                        await event.wait()
        finally:
            # Shutting down: fetch nothing more, give running invocations a grace period to finish
            # (a reply half sent would otherwise end `incierto`), then cancel what is left.
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_GRACE_S)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self, fn: Callable[..., Any], arg_name: str, msg: _Message) -> None:
        msg.dequeue_count += 1
        self._in_flight += 1
        task = asyncio.create_task(self._invoke(fn, arg_name, msg), name=f"{self.name}:{msg.id[:8]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _invoke(self, fn: Callable[..., Any], arg_name: str, msg: _Message) -> None:
        request = QueueMessage(
            id=msg.id, body=msg.body.encode("utf-8"), dequeue_count=msg.dequeue_count,
            insertion_time=msg.insertion_time, expiration_time=msg.insertion_time + timedelta(days=7),
            pop_receipt=uuid.uuid4().hex,
        )
        try:
            self.invocations += 1
            if inspect.iscoroutinefunction(fn):
                await fn(**{arg_name: request})
            else:
                await asyncio.to_thread(fn, **{arg_name: request})
        except asyncio.CancelledError:
            raise
        except Exception:
            self._failed(msg)
        finally:
            self._in_flight -= 1
            self._notify()

    def _failed(self, msg: _Message) -> None:
        if msg.dequeue_count >= self.options.max_dequeue_count:
            self.poison.append(msg)
            log.exception("Cola %s: mensaje %s movido a %s-poison tras %d intentos", self.name, msg.id,
                          self.name, msg.dequeue_count)
            return
        log.exception("Cola %s: la función falló (intento %d de %d); visible de nuevo en %.1f s", self.name,
                      msg.dequeue_count, self.options.max_dequeue_count, self.options.visibility_timeout_s)
        heapq.heappush(self._delayed, (time.monotonic() + self.options.visibility_timeout_s, next(self._seq), msg))

    def idle(self) -> bool:
        """Nothing queued, delayed or running."""
        return not self.depth() and not self._in_flight

    async def join(self) -> None:
        """Wait until `idle()` (tests and benches; wrap it in `asyncio.timeout`)."""
        while not self.idle():
            event = self._event()
            event.clear()
            await event.wait()

    @property
    def in_flight(self) -> int:
        return self._in_flight


def worker_queue(options: QueueOptions | None = None) -> LocalQueue:
    """The conversation worker's queue, in process, with host.json's settings unless `options` says otherwise."""
    from core.handoff import HANDOFF_QUEUE

    return LocalQueue(HANDOFF_QUEUE, options or QueueOptions.from_host_json(HOST_JSON))


@contextlib.asynccontextmanager
async def serving_worker(rt: Runtime) -> AsyncIterator[LocalQueue]:
    """The conversation worker on the in-process queue `rt` hands off to (built with `worker_queue()`),
    outside the HTTP host (tests and benches). Installs the runtime as the process runtime (the trigger
    reads it, as on Azure), then runs the queue trigger's own body over the queue until the block ends.
    """
    from bot.functions.conversation import handle_queue_message
    from bot.runtime import use_runtime

    queue = rt.handoff
    if not isinstance(queue, LocalQueue):
        raise TypeError("serving_worker needs a runtime built with handoff=worker_queue()")
    use_runtime(rt)
    task = asyncio.create_task(queue.run(handle_queue_message, "msg"))
    try:
        yield queue
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        use_runtime(None)


async def settle(queue: LocalQueue, within_s: float = 60.0) -> None:
    """Wait until the queue has nothing queued, delayed or running; TimeoutError after `within_s`."""
    async with asyncio.timeout(within_s):
        await queue.join()
