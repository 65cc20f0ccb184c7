"""SQLite adapter (standard library): the embedded default.

WAL so readers never block the writer; `BEGIN IMMEDIATE` for every write transaction, because a
deferred one that reads and then writes fails at once with SQLITE_BUSY when another writer holds the
lock. Several processes can share the file: a writer that finds the lock taken by another process
retries its `BEGIN IMMEDIATE` every few milliseconds for up to 10 s (`begin_immediate`).
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from core.errors import DatabaseUnavailable, QueryTimeout, SchemaOutdated, StorageError, TransientDatabaseError
from core.storage.database import Database, Tx

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
# SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ... 100 ms between tries, so a writer that
# loses a few races against other processes waits far longer than the lock was held. Ours retries
# after 0.2 ms, doubling to at most 4 ms (with jitter so waiting processes do not retry in step).
SPIN_FIRST_S = 0.0002
SPIN_MAX_S = 0.004


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def retry_while_busy(conn: sqlite3.Cursor | sqlite3.Connection, sql: str,
                     budget_s: float = BUSY_TIMEOUT_MS / 1000) -> sqlite3.Cursor:
    """Run `sql`, retrying briefly while another process holds the lock it needs."""
    deadline = time.monotonic() + budget_s
    pause = SPIN_FIRST_S
    while True:
        try:
            return conn.execute(sql)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause * random.uniform(0.5, 1.5))
        pause = min(pause * 2, SPIN_MAX_S)


def begin_immediate(conn: sqlite3.Cursor | sqlite3.Connection, budget_s: float = BUSY_TIMEOUT_MS / 1000) -> None:
    """Take the file's write lock, waiting up to `budget_s` for another process to release it."""
    retry_while_busy(conn, "BEGIN IMMEDIATE", budget_s)


def _create_private(path: Path) -> None:
    """The database holds people's phone numbers: its folder 0700 and its file 0600 when we create them
    (SQLite gives the -wal and -shm files the mode of the database file)."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        try:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError:
            pass  # reported by the first connection, with the driver's reason


class WriterLock:
    """The in-process write lock, where an urgent writer (the webhook's registration) goes first.

    Two conditions on one mutex, so a release wakes exactly one waiter (an urgent one if any) instead of
    every pool thread at once, which only fought over the GIL to go back to sleep.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._urgent = threading.Condition(self._mutex)
        self._normal = threading.Condition(self._mutex)
        self._held = False
        self._urgent_waiting = 0

    def acquire(self, *, urgent: bool = False, blocking: bool = True) -> bool:
        with self._mutex:
            if not blocking:
                if self._held:
                    return False
                self._held = True
                return True
            if urgent:
                self._urgent_waiting += 1
                try:
                    while self._held:
                        self._urgent.wait()
                finally:
                    self._urgent_waiting -= 1
            else:
                while self._held or self._urgent_waiting:
                    self._normal.wait()
            self._held = True
            return True

    def release(self) -> None:
        with self._mutex:
            self._held = False
            if self._urgent_waiting:
                self._urgent.notify()
            else:
                self._normal.notify()


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: str, pool_size: int = 8) -> None:
        self.path = path
        self._now_local = threading.local()  # try_write_now's connections (no busy timeout), one per thread
        # Writers of this process queue here instead of in SQLite's busy handler, which sleeps in steps
        # of up to 100 ms and turned a few colliding writes into long latency tails. Other processes
        # sharing the file still meet the busy timeout.
        self._writer = WriterLock()
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file this process opened
        if path != ":memory:":
            _create_private(Path(path))
        super().__init__(pool_size)

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    def check_identity(self) -> None:
        """Raise DatabaseUnavailable if the file this process opened was deleted or replaced.

        SQLite keeps writing to a deleted file through the descriptors it holds: every commit succeeds
        and every row is gone at the next start. So a write is only durable if the file is still there.
        """
        if self.path == ":memory:" or self._identity is None:
            return
        try:
            st = os.stat(self.path)
        except OSError:
            raise DatabaseUnavailable("el archivo de la base de datos ya no existe") from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise DatabaseUnavailable("el archivo de la base de datos fue reemplazado")

    def _connect(self, wait_s: float = BUSY_TIMEOUT_MS / 1000) -> sqlite3.Connection:
        """A connection without SQLite's busy handler (it sleeps 1 to 100 ms between tries): writers wait
        in `begin_immediate`, WAL readers never wait on a writer, and the rare busy read (WAL recovery)
        is retried as transient. Switching a new file to WAL waits up to `wait_s` the same way."""
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        try:
            if retry_while_busy(conn, "PRAGMA journal_mode = WAL", wait_s).fetchone()[0].lower() != "wal":
                raise DatabaseUnavailable(f"no se pudo pasar {self.path} a modo WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL mode
            conn.execute("PRAGMA foreign_keys = ON")
            if self.path != ":memory:":
                st = os.stat(self.path)
                with self._lock:
                    if self._identity is None:
                        self._identity = (st.st_dev, st.st_ino)
                self.check_identity()  # a connection opened after the file was replaced is no better
        except BaseException:
            conn.close()  # a connection that could not be set up is nobody's to close later
            raise
        return conn

    def _begin(self, connection: sqlite3.Connection, write: bool) -> sqlite3.Cursor:
        cursor = connection.cursor()
        self.counts.round_trips += 1  # a call into the library, not a network trip, counted alike
        if write:
            begin_immediate(cursor)
        else:
            cursor.execute("BEGIN")
        return cursor

    def _commit(self, connection: sqlite3.Connection, cursor: sqlite3.Cursor) -> None:
        self.counts.round_trips += 1
        cursor.execute("COMMIT")

    def _rollback(self, connection: sqlite3.Connection, cursor: sqlite3.Cursor) -> None:
        if connection.in_transaction:
            self.counts.round_trips += 1
            cursor.execute("ROLLBACK")

    def _translate(self, exc: Exception) -> Exception | None:
        if not isinstance(exc, sqlite3.Error):
            return None
        text = str(exc).lower()
        if isinstance(exc, sqlite3.OperationalError):
            if _is_busy(exc):
                return TransientDatabaseError(f"SQLite ocupado por otro escritor: {exc}")
            if text == "interrupted":  # a statement cancelled mid-way: SQLite's twin of a query timeout
                return QueryTimeout(f"SQLite: consulta interrumpida: {exc}")
            if "no such table" in text or "no such column" in text:
                return SchemaOutdated(f"esquema de SQLite sin migrar: {exc}")
            if "unable to open" in text or "disk i/o" in text or "readonly" in text:
                return DatabaseUnavailable(f"SQLite no disponible: {exc}")
        return StorageError(f"error de SQLite: {exc}")

    def _is_duplicate_key(self, exc: Exception) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE constraint failed" in str(exc)

    def _once(self, fn: Callable[[Tx], T], write: bool) -> T:
        if not write:
            return super()._once(fn, write)
        self._writer.acquire(urgent=self.on_urgent_thread)
        try:
            result = super()._once(fn, write)
        finally:
            self._writer.release()
        self.check_identity()  # committed, but to a file that is still the database?
        return result

    def try_write_now(self, fn: Callable[[Tx], T]) -> tuple[bool, T | None]:
        """`BEGIN IMMEDIATE` on a per-thread connection with no busy timeout: the write lock now, or not at all.

        A held lock (another process, or a pool thread mid-transaction) answers (False, None) at once,
        so an event loop calling this never blocks on another writer; its own work is a few statements.
        """
        if not self._writer.acquire(blocking=False):
            return False, None
        try:
            done, result = self._try_write_now(fn)
        finally:
            self._writer.release()
        if done:
            with self._translated():
                self.check_identity()
        return done, result

    def _try_write_now(self, fn: Callable[[Tx], T]) -> tuple[bool, T | None]:
        local = self._now_local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        with self._translated():
            if conn is None:
                conn = self._connect(wait_s=0)  # never waits on the event loop
                local.conn = conn
                with self._lock:
                    self._connections.append(conn)
            cursor = conn.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    return False, None
                raise
            self.counts.round_trips += 1
            self.counts.transactions += 1
            if self.counts.trace is not None:
                self.counts.trace.append("-- transacción de escritura (sin espera)")
            try:
                result = fn(Tx(cursor, self.queries, self.dialect, counts=self.counts,
                               is_duplicate_key=self._is_duplicate_key))
                self.counts.round_trips += 1
                cursor.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    self.counts.round_trips += 1
                    conn.execute("ROLLBACK")
                raise
        self.transactions += 1
        return True, result

    def executescript(self, script: str) -> None:
        """Run a whole script (seeds) on this thread's connection. `executescript` commits as it goes, so
        no `begin_immediate` can wrap it: SQLite's busy handler waits for other processes instead."""
        conn: Any = self._connection()
        with self._translated():
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            try:
                conn.executescript(script)
            finally:
                conn.execute("PRAGMA busy_timeout = 0")
