"""Writers of several processes share one SQLite file: a writer that finds the lock taken by another
process retries its BEGIN IMMEDIATE briefly instead of sleeping in SQLite's busy handler, and gives up
(a transient error, retried by the transaction runner) only after its budget."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from core.storage.sqlite import SqliteDatabase, begin_immediate

HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("INSERT INTO SondaSalud (Id, EscritoEn) VALUES (1, 1) ON CONFLICT (Id) DO UPDATE SET EscritoEn = 1")
conn.execute("COMMIT")
"""


def _hold(db_path: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db_path), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_writer_waits_for_another_process_and_then_writes(db_path: Path) -> None:
    db = SqliteDatabase(str(db_path), pool_size=1)
    holder = _hold(db_path, 0.3)
    try:
        db.run_sync(lambda tx: tx.execute("health_probe", {"ahora": 2}))
        assert holder.wait(10) == 0
    finally:
        holder.kill()
        db.close()
    with closing(sqlite3.connect(db_path)) as conn, conn:  # both writes landed: the holder's first, ours after it
        assert conn.execute("SELECT EscritoEn FROM SondaSalud").fetchall() == [(2,)]


def test_a_writer_gives_up_after_its_budget_and_the_error_is_transient(db_path: Path) -> None:
    db = SqliteDatabase(str(db_path), pool_size=1)
    holder = _hold(db_path, 5)
    conn = db._connect()
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked") as caught:
            begin_immediate(conn, budget_s=0.2)
        from core.errors import TransientDatabaseError

        assert isinstance(db._translate(caught.value), TransientDatabaseError)
    finally:
        conn.close()
        holder.kill()
        holder.wait(10)
        db.close()
