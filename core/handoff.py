"""The hand-off from the webhook to the queue-triggered worker: a queue of conversation keys.

A queue message carries only a conversation key. The inbox rows in SQL stay the truth: a duplicate
message finds the conversation's lease busy or nothing pending, and a lost one is redriven by the
sweep. So the queue needs no exactly-once delivery and no payload beyond the key.

On Azure the queue is an Azure Storage queue on `AzureWebJobsStorage`, written with the SDK rather
than an output binding: a failed write is an exception we catch (and log, answering 200, since the
inbox rows are already durable) instead of a failed invocation that would answer Meta with a 500.
The local host installs its own in-process queue with the same contract.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from core.errors import BotError

log = logging.getLogger(__name__)

# Lowercase letters, digits and hyphens: an Azure Storage queue name. The trigger in
# bot/functions/conversation.py listens on the same name.
HANDOFF_QUEUE = "conversaciones-pendientes"
# The webhook's ack must not wait on a slow storage account: past this, the hand-off is abandoned
# (logged) and the rows wait for Meta's redelivery or the sweep.
ENQUEUE_TIMEOUT_S = 2.0
ENQUEUE_CONCURRENCY = 32  # puts in flight at once: a 2,000-message delivery does not open 2,000 requests


class HandoffError(BotError):
    """The keys could not be queued; the inbox rows are durable, so the sweep will redrive them."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps: the SDK's `inner_exception`, then `__cause__` / `__context__`."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        inner = getattr(current, "inner_exception", None)
        current = inner if isinstance(inner, BaseException) else (current.__cause__ or current.__context__)


def describe_storage_error(exc: BaseException) -> str:
    """What the storage service or the network said, kept for the log: the service's HTTP status, error
    code and message (Azurite explains "API version not supported" there), or whether the connection
    was refused or timed out, which the bare class name (`ServiceRequestError`) does not tell apart."""
    status = getattr(exc, "status_code", None)
    if status is not None:
        code = getattr(exc, "error_code", None)
        code = getattr(code, "value", code) or "sin código"  # the SDK's StorageErrorCode enum, or text
        message = str(getattr(exc, "message", None) or exc).strip().splitlines()
        return f"{type(exc).__name__}: HTTP {status} {code}: {(message[0] if message else '')[:300]}"
    for link in _chain(exc):
        if isinstance(link, ConnectionRefusedError) or getattr(link, "errno", None) == errno.ECONNREFUSED:
            return f"{type(exc).__name__}: conexión rechazada ({str(link)[:200]})"
        if isinstance(link, TimeoutError):
            return f"{type(exc).__name__}: tiempo de espera agotado"
    return f"{type(exc).__name__}: {str(exc).strip()[:300]}"


class HandoffQueue(Protocol):
    async def enqueue(self, keys: Sequence[str]) -> None: ...

    async def aclose(self) -> None: ...


class StorageQueueHandoff:
    """An Azure Storage queue written with `azure-storage-queue` (async), base64 text like the binding."""

    def __init__(self, connection_string: str, queue_name: str = HANDOFF_QUEUE) -> None:
        if not connection_string:
            raise HandoffError("AzureWebJobsStorage no está configurado: el webhook no puede entregar al worker")
        self._connection_string = connection_string
        self.queue_name = queue_name
        self._client: Any = None
        self._created = False

    def __repr__(self) -> str:  # the connection string holds the account key
        return f"StorageQueueHandoff(queue={self.queue_name!r})"

    def _queue(self) -> Any:
        if self._client is None:
            # Imported lazily: the local host and the tests never load the Azure SDK.
            from azure.storage.queue import TextBase64EncodePolicy
            from azure.storage.queue.aio import QueueClient

            self._client = QueueClient.from_connection_string(
                self._connection_string, self.queue_name,
                message_encode_policy=TextBase64EncodePolicy(),  # the trigger's default messageEncoding
                # No SDK retry: the storage SDK's first retry waits 15 s, far past the enqueue timeout, so a
                # refused connection would surface as our timeout; the sweep redrives a failed hand-off.
                retry_total=0, connection_timeout=2, read_timeout=2,
            )
        return self._client

    async def _ensure_queue(self) -> None:
        if self._created:
            return
        from azure.core.exceptions import ResourceExistsError

        try:
            await self._queue().create_queue()
        except ResourceExistsError:
            pass
        self._created = True

    async def enqueue(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        from azure.core.exceptions import AzureError

        gate = asyncio.Semaphore(ENQUEUE_CONCURRENCY)

        async def send(key: str) -> None:
            async with gate:
                await queue.send_message(key)

        try:
            # A delivery with thousands of conversations gets proportionally more time, never unbounded.
            async with asyncio.timeout(ENQUEUE_TIMEOUT_S + len(keys) / 500):
                await self._ensure_queue()
                queue = self._queue()
                await asyncio.gather(*(send(key) for key in keys))
        except TimeoutError:
            raise HandoffError(f"no se pudo encolar {len(keys)} conversaciones: tiempo de espera agotado "
                               f"({ENQUEUE_TIMEOUT_S + len(keys) / 500:.1f} s)") from None
        except (AzureError, OSError) as exc:
            cause = describe_storage_error(exc)
            raise HandoffError(f"no se pudo encolar {len(keys)} conversaciones: {cause}") from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
