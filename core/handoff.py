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

from core.azure_storage import StorageConnection
from core.errors import BotError
from core.resilience.breaker import CircuitBreaker

log = logging.getLogger(__name__)

# Lowercase letters, digits and hyphens: an Azure Storage queue name. The trigger in
# bot/functions/conversation.py listens on the same name.
HANDOFF_QUEUE = "conversaciones-pendientes"
# The webhook's ack must not wait on a slow storage account: past this, the hand-off is abandoned
# (logged) and the rows wait for Meta's redelivery or the sweep.
ENQUEUE_TIMEOUT_S = 2.0
ENQUEUE_CONCURRENCY = 32  # puts in flight at once: a 2,000-message delivery does not open 2,000 requests
# After a failed write the queue is not tried again for this long: every POST in between is acked at once
# (its rows are durable; the sweep redrives them), instead of each waiting out the timeout on a dead account.
QUEUE_COOLDOWN_MS = 5_000


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
    code = getattr(exc, "error_code", None)
    if code:  # the service's code without an HTTP status (a response the SDK could not read whole)
        message = str(getattr(exc, "message", None) or exc).strip().splitlines()
        return f"{type(exc).__name__}: {getattr(code, 'value', code)}: {(message[0] if message else '')[:300]}"
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
    """An Azure Storage queue written with `azure-storage-queue` (async), base64 text like the binding.

    The account comes from `AzureWebJobsStorage` in either form the Functions host accepts: a connection
    string, or identity-based settings (`__accountName`/`__queueServiceUri` + managed identity).
    """

    def __init__(self, connection: StorageConnection, queue_name: str = HANDOFF_QUEUE) -> None:
        # Unconfigured, it is still built (the app starts, health says why) and every enqueue fails.
        self._connection = connection
        self.queue_name = queue_name
        self._client: Any = None
        self._created = False
        self._breaker = CircuitBreaker(f"cola:{queue_name}", failure_threshold=1, success_threshold=1,
                                       cooldown_ms=QUEUE_COOLDOWN_MS)

    def __repr__(self) -> str:  # the connection string holds the account key
        return f"StorageQueueHandoff(queue={self.queue_name!r}, account={self._connection.describe()!r})"

    def _queue(self) -> Any:
        if self._client is None:
            # No SDK retries: its first backoff is 15 s, far past the ack's budget; the sweep is the retry.
            self._client = queue_client(self._connection, self.queue_name,
                                        retry_total=0, connection_timeout=2, read_timeout=2)
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
        if not self._connection.configured:
            raise HandoffError("AzureWebJobsStorage no está configurado: el webhook no puede entregar al worker")
        from azure.core.exceptions import AzureError

        permit = self._breaker.acquire()
        if permit is None:
            raise HandoffError(f"no se pudo encolar {len(keys)} conversaciones: la cola falló hace menos de "
                               f"{QUEUE_COOLDOWN_MS // 1000} s; no se reintenta todavía")
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
        except (AzureError, OSError, TimeoutError) as exc:
            if getattr(exc, "error_code", None) == "QueueNotFound":
                self._created = False  # deleted, or a storage account rebuilt: create it again next time
            self._breaker.record_failure(permit)
            cause = describe_storage_error(exc)
            raise HandoffError(f"no se pudo encolar {len(keys)} conversaciones: {cause}") from None
        except BaseException:
            self._breaker.release(permit)
            raise
        self._breaker.record_success(permit)

    async def aclose(self) -> None:
        if self._client is not None:
            await close_queue_client(self._client)
            self._client = None


def queue_client(connection: StorageConnection, queue_name: str, **options: Any) -> Any:
    """An async `QueueClient` writing and reading base64 text, as the queue trigger expects by default."""
    from azure.storage.queue import BinaryBase64DecodePolicy, TextBase64EncodePolicy
    from azure.storage.queue.aio import QueueClient

    options = {"message_encode_policy": TextBase64EncodePolicy(),
               "message_decode_policy": BinaryBase64DecodePolicy(), **options}
    args = connection.client_args("queue")
    if "conn_str" in args:
        return QueueClient.from_connection_string(args["conn_str"], queue_name, **options)
    return QueueClient(args["account_url"], queue_name, credential=args["credential"], **options)


async def close_queue_client(client: Any) -> None:
    """Close the client and the identity credential it was given (its own token cache and session)."""
    credential = getattr(client, "credential", None)
    await client.close()
    close = getattr(credential, "close", None)
    if close is not None:
        await close()
