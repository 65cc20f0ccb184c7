"""The queue trigger over a real Azure Storage queue (Azurite or an account), with the Functions host's semantics.

Used by the local host when `AzureWebJobsStorage` is set; the app writes to the same queue through
`core.handoff.StorageQueueHandoff`, the path it takes on Azure. What the host does, and this does:
- polls with `batchSize` messages at a time, fetching again once `newBatchThreshold` or fewer are running;
  an empty poll doubles the wait from 100 ms up to `maxPollingInterval`, a non-empty one resets it;
- receives each message invisible for a lease (the host's 10 minutes) and renews it at half time while the
  function runs, so a slow invocation is never handed to a second one; a process that dies stops renewing
  and the message comes back when the lease runs out, with its dequeue count one higher;
- deletes the message when the function returns; when it raises, makes it visible again after
  `visibilityTimeout`; a message that failed `maxDequeueCount` times (or comes back having exceeded it)
  is copied to `<queue>-poison` and deleted;
- messages are base64 text (`messageEncoding`), decoded before the function sees them.
A storage service that fails is logged with its own error code and message, and polling goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.functions.queue import QueueMessage

from core.azure_storage import StorageConnection
from core.handoff import close_queue_client, describe_storage_error, queue_client
from local_host.queues import SHUTDOWN_GRACE_S, QueueOptions

log = logging.getLogger("local_host.storage_queue")
HOST_LEASE_S = 600.0  # the Functions host receives queue messages invisible for 10 minutes
MIN_POLL_S = 0.1


@dataclass
class StorageQueueListener:
    name: str
    connection: StorageConnection
    options: QueueOptions = field(default_factory=QueueOptions)
    lease_s: float = HOST_LEASE_S
    invocations: int = 0
    poisoned: int = 0
    _in_flight: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _client: Any = None
    _poison_client: Any = None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def poison_name(self) -> str:
        return f"{self.name}-poison"

    def _queue(self) -> Any:
        if self._client is None:
            self._client = queue_client(self.connection, self.name, retry_total=1, connection_timeout=2,
                                        read_timeout=5)
        return self._client

    async def _ensure(self, client: Any) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            await client.create_queue()

    async def run(self, fn: Callable[..., Any], arg_name: str) -> None:
        """Invoke `fn(**{arg_name: QueueMessage})` for each message until cancelled."""
        opts = self.options
        wait = MIN_POLL_S
        created = False
        try:
            while True:
                if self._in_flight > opts.new_batch_threshold:
                    await asyncio.sleep(MIN_POLL_S / 2)
                    continue
                try:
                    if not created:
                        await self._ensure(self._queue())
                        created = True
                    received = [m async for m in self._queue().receive_messages(
                        messages_per_page=opts.batch_size, max_messages=opts.batch_size,
                        visibility_timeout=max(1, int(self.lease_s)))]
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.error("Cola %s: la lectura falló (%s); reintento en %.1f s", self.name,
                              describe_storage_error(exc), wait, exc_info=True)
                    created = False  # the service may come back without the queue
                    received = []
                if received:
                    wait = MIN_POLL_S
                    for message in received:
                        self._start(fn, arg_name, message)
                    continue
                await asyncio.sleep(wait)
                wait = min(wait * 2, opts.max_polling_interval_s)
        finally:
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_GRACE_S)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.aclose()

    def _start(self, fn: Callable[..., Any], arg_name: str, message: Any) -> None:
        self._in_flight += 1
        task = asyncio.create_task(self._handle(fn, arg_name, message), name=f"{self.name}:{message.id[:8]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, fn: Callable[..., Any], arg_name: str, message: Any) -> None:
        receipt = [message.pop_receipt]
        try:
            if message.dequeue_count > self.options.max_dequeue_count:
                await self._poison(message, receipt[0])  # came back after crashes: the host poisons it unrun
                return
            keeper = asyncio.create_task(self._keep_invisible(message, receipt))
            try:
                ok = await self._invoke(fn, arg_name, message)
            finally:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
            if ok:
                await self._queue().delete_message(message.id, receipt[0])
            elif message.dequeue_count >= self.options.max_dequeue_count:
                await self._poison(message, receipt[0])
            else:
                await self._queue().update_message(message.id, receipt[0],
                                                   visibility_timeout=int(self.options.visibility_timeout_s))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the message stays invisible until its lease ends, then comes back
            log.error("Cola %s: no se pudo cerrar el mensaje %s (%s); volverá al vencer su visibilidad",
                      self.name, message.id, describe_storage_error(exc), exc_info=True)
        finally:
            self._in_flight -= 1

    async def _invoke(self, fn: Callable[..., Any], arg_name: str, message: Any) -> bool:
        content = message.content if isinstance(message.content, bytes) else str(message.content).encode()
        inserted = message.inserted_on or datetime.now(UTC)
        request = QueueMessage(
            id=message.id, body=content, dequeue_count=message.dequeue_count, insertion_time=inserted,
            expiration_time=message.expires_on or inserted + timedelta(days=7), pop_receipt=message.pop_receipt,
        )
        self.invocations += 1
        try:
            if inspect.iscoroutinefunction(fn):
                await fn(**{arg_name: request})
            else:
                await asyncio.to_thread(fn, **{arg_name: request})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Cola %s: la función falló (intento %d de %d)", self.name, message.dequeue_count,
                          self.options.max_dequeue_count)
            return False
        return True

    async def _keep_invisible(self, message: Any, receipt: list[str]) -> None:
        """Renew the lease at half time, as the host does, while the function runs."""
        while True:
            await asyncio.sleep(self.lease_s / 2)
            try:
                updated = await self._queue().update_message(message.id, receipt[0],
                                                             visibility_timeout=max(1, int(self.lease_s)))
                receipt[0] = updated.pop_receipt
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("Cola %s: no se pudo renovar la visibilidad de %s (%s)", self.name, message.id,
                          describe_storage_error(exc), exc_info=True)

    async def _poison(self, message: Any, receipt: str) -> None:
        if self._poison_client is None:
            self._poison_client = queue_client(self.connection, self.poison_name, retry_total=1)
            await self._ensure(self._poison_client)
        content = message.content.decode("utf-8", "replace") if isinstance(message.content, bytes) else message.content
        await self._poison_client.send_message(content)
        await self._queue().delete_message(message.id, receipt)
        self.poisoned += 1
        log.error("Cola %s: mensaje %s movido a %s tras %d intentos", self.name, message.id, self.poison_name,
                  message.dequeue_count)

    async def aclose(self) -> None:
        for client in (self._client, self._poison_client):
            if client is not None:
                try:
                    await close_queue_client(client)
                except Exception:
                    log.warning("Cola %s: no se pudo cerrar el cliente", self.name, exc_info=True)
        self._client = self._poison_client = None
