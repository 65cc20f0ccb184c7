"""Transactions on a thread pool, one connection per worker thread, driver errors translated at the edge.

The drivers (sqlite3, pyodbc) block, so every transaction runs on a small dedicated pool and the
event loop never waits on the database. A transaction is a plain sync function of a `Tx`; it runs
whole, or not at all, and is retried as a whole on transient errors (its effects rolled back first).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from core.errors import StorageError, TransientDatabaseError
from core.storage.queries import Query, load_queries

T = TypeVar("T")
Row = dict[str, Any]
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeclaredTypes:
    """For a driver that takes declared parameter types (pyodbc): what each statement declares."""

    sizes: Mapping[str, list[Any]]  # query name -> the `setinputsizes` argument, one entry per parameter
    null: object  # the NULL to bind instead of None: typed by the declaration, so never described


class RoundTrips:
    """What a database's callers cost it, counted by the adapter: statements sent, and round trips (each
    statement plus each transaction-control call the dialect makes separately: SQLite's BEGIN and COMMIT,
    SQL Server's COMMIT or ROLLBACK; pyodbc opens a SQL Server transaction with its first statement).
    Plain integers bumped under the GIL: exact for one flow at a time, approximate under concurrency."""

    __slots__ = ("round_trips", "statements", "trace", "transactions")

    def __init__(self) -> None:
        self.round_trips = 0
        self.statements = 0
        self.transactions = 0  # begun, read or write, whatever their outcome
        self.trace: list[str] | None = None  # set to a list to record each transaction and named query

    def snapshot(self) -> tuple[int, int, int]:
        return self.round_trips, self.statements, self.transactions


class Tx:
    """One open transaction. Only storage modules use it; rows leave as domain values."""

    __slots__ = ("_counts", "_cursor", "_declared", "_is_duplicate_key", "_queries", "dialect")

    def __init__(self, cursor: Any, queries: dict[str, Query], dialect: str,
                 declared: DeclaredTypes | None = None, counts: RoundTrips | None = None,
                 is_duplicate_key: Callable[[Exception], bool] | None = None) -> None:
        self._cursor = cursor
        self._queries = queries
        self._declared = declared
        self._counts = counts
        self._is_duplicate_key = is_duplicate_key
        self.dialect = dialect

    def _run(self, name: str, params: Mapping[str, object] | None) -> Any:
        query = self._queries[name]
        bound = query.bind(params)
        if self._declared is not None and bound:
            self._cursor.setinputsizes(self._declared.sizes[name])
            if None in bound:
                bound = tuple(self._declared.null if v is None else v for v in bound)
        if self._counts is not None:  # counted before it runs: a statement that fails went to the server too
            self._counts.statements += 1
            self._counts.round_trips += 1
            if self._counts.trace is not None:
                self._counts.trace.append(name)
        self._cursor.execute(query.sql, bound)
        return self._cursor

    def execute(self, name: str, params: Mapping[str, object] | None = None) -> int:
        """Run a statement; answer the number of rows it changed."""
        return self._run(name, params).rowcount

    def fetch_all(self, name: str, params: Mapping[str, object] | None = None) -> list[Row]:
        cursor = self._run(name, params)
        if cursor.description is None:
            return []
        columns = [c[0] for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def fetch_one(self, name: str, params: Mapping[str, object] | None = None) -> Row | None:
        rows = self.fetch_all(name, params)
        return rows[0] if rows else None

    def insert_unless_duplicate(self, name: str, params: Mapping[str, object] | None = None) -> Row | None:
        """`fetch_one` for an insert that may meet a unique key another transaction just committed: the
        duplicate key (SQL Server 2627/2601, SQLite's UNIQUE) answers None instead of raising. Only that
        statement failed; the transaction goes on (neither dialect dooms it for a duplicate key)."""
        try:
            return self.fetch_one(name, params)
        except Exception as exc:
            if self._is_duplicate_key is not None and self._is_duplicate_key(exc):
                return None
            raise


AVAILABILITY_BUDGET_S = 30.0


def _is_availability(state: RetryCallState) -> bool:
    exc = state.outcome.exception() if state.outcome is not None else None
    return isinstance(exc, TransientDatabaseError) and exc.availability


def _stop_by_kind(attempts: int, budget_s: float) -> Callable[[RetryCallState], bool]:
    quick, slow = stop_after_attempt(attempts), stop_after_delay(budget_s)

    def stop(state: RetryCallState) -> bool:
        return slow(state) if _is_availability(state) else quick(state)

    return stop


def _wait_by_kind() -> Callable[[RetryCallState], float]:
    quick = wait_random_exponential(multiplier=0.02, max=0.5)
    slow = wait_random_exponential(multiplier=0.5, max=8.0)

    def wait(state: RetryCallState) -> float:
        return slow(state) if _is_availability(state) else quick(state)

    return wait


class Database:
    """Base of the two dialect adapters; subclasses know how to connect and what errors mean."""

    dialect: str = ""
    transient_attempts = 6

    def __init__(self, pool_size: int = 8) -> None:
        self.queries = load_queries(self.dialect)
        self._declared: DeclaredTypes | None = None  # a dialect whose driver takes declared types sets it
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix=f"db-{self.dialect}")
        self._local = threading.local()
        # One thread for the webhook's registrations, so an ack never queues behind the worker's
        # transactions in the shared pool (`write_urgent`).
        self._urgent_executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"db-{self.dialect}-urgent",
            initializer=lambda: setattr(self._local, "urgent", True),
        )
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self.transactions = 0  # committed write transactions, for the benchmarks
        self.reads = 0  # read transactions, for the benchmarks
        self.counts = RoundTrips()  # statements and round trips, bumped by the dialects' _begin/_commit/_rollback

    # -- to be provided by each dialect -------------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _begin(self, connection: Any, write: bool) -> Any:
        raise NotImplementedError

    def _commit(self, connection: Any, cursor: Any) -> None:
        raise NotImplementedError

    def _rollback(self, connection: Any, cursor: Any) -> None:
        raise NotImplementedError

    def _translate(self, exc: Exception) -> Exception | None:
        """Map a driver error to a project error, or None if it is not a driver error."""
        raise NotImplementedError

    def _is_duplicate_key(self, exc: Exception) -> bool:
        """Whether a driver error is a unique key or index violation (see `Tx.insert_unless_duplicate`)."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def _connect_for_reads(self) -> Any:
        """A connection for read-only work, or None to read on the thread's write connection (the default)."""
        return None

    # -- shared machinery ---------------------------------------------------------------------
    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _read_connection(self) -> Any:
        conn = getattr(self._local, "read_conn", None)
        if conn is None:
            conn = self._connect_for_reads()
            if conn is None:
                return self._connection()
            self._local.read_conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _discard_connection(self) -> None:
        """Close this thread's connections (a broken one cannot be told from its sibling's error)."""
        for attr in ("conn", "read_conn"):
            conn = getattr(self._local, attr, None)
            setattr(self._local, attr, None)
            if conn is None:
                continue
            with self._lock:
                if conn in self._connections:
                    self._connections.remove(conn)
            try:
                conn.close()
            except Exception:
                log.warning("No se pudo cerrar una conexión descartada", exc_info=True)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except Exception as exc:
            mapped = self._translate(exc)
            if mapped is None:
                raise
            if isinstance(mapped, TransientDatabaseError) and mapped.reconnect:
                self._discard_connection()
            raise mapped from exc

    def _once(self, fn: Callable[[Tx], T], write: bool) -> T:
        with self._translated():
            conn = self._connection() if write else self._read_connection()
            cursor = self._begin(conn, write)
            self.counts.transactions += 1
            if self.counts.trace is not None:
                self.counts.trace.append("-- transacción de " + ("escritura" if write else "lectura"))
            try:
                result = fn(Tx(cursor, self.queries, self.dialect, self._declared, self.counts, self._is_duplicate_key))
                self._commit(conn, cursor)
            except BaseException:
                try:
                    self._rollback(conn, cursor)
                except Exception:
                    log.warning("El rollback falló; se descarta la conexión", exc_info=True)
                    self._discard_connection()
                raise
            if write:
                self.transactions += 1
            else:
                self.reads += 1
            return result

    def run_sync(self, fn: Callable[[Tx], T], *, write: bool = True) -> T:
        """Run `fn` in one transaction on the calling thread, retrying transient failures.

        Two policies: contention (a deadlock victim, a lock timeout, a busy SQLite file) clears in
        milliseconds, so a few quick retries; availability (Azure SQL failing over, throttling, waking
        up) takes seconds, so a longer backoff, about 30 s in all.
        """
        for attempt in Retrying(
            retry=retry_if_exception_type(TransientDatabaseError),
            stop=_stop_by_kind(self.transient_attempts, AVAILABILITY_BUDGET_S),
            wait=_wait_by_kind(),
            reraise=True,
        ):
            with attempt:
                return self._once(fn, write)
        raise AssertionError("unreachable")

    def try_write_now(self, fn: Callable[[Tx], T]) -> tuple[bool, T | None]:
        """Run `fn` in one write transaction on the calling thread if that needs no waiting at all.

        For tiny transactions issued from the event loop: no hop to the pool (and no GIL ping-pong
        with it). Answers (False, None) without running anything when the dialect cannot promise a
        wait-free start (the default) or the write lock is taken; the caller then uses `write`.
        """
        return False, None

    async def write(self, fn: Callable[[Tx], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.run_sync, fn)

    async def write_urgent(self, fn: Callable[[Tx], T]) -> T:
        """`write` on the dedicated thread: for the webhook's registration, which Meta is waiting on."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._urgent_executor, self.run_sync, fn)

    def check_identity(self) -> None:
        """Raise DatabaseUnavailable if the database this process writes to is no longer the real one."""

    @property
    def on_urgent_thread(self) -> bool:
        return bool(getattr(self._local, "urgent", False))

    async def read(self, fn: Callable[[Tx], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: self.run_sync(fn, write=False))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._urgent_executor.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                try:
                    conn.close()
                except Exception:
                    log.warning("No se pudo cerrar una conexión al cerrar la base", exc_info=True)
            self._connections.clear()
