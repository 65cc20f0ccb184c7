"""The evidence download against a real fake Graph API on loopback and real SQLite: a body is fetched
through the media API, checked (size, type, digest) and stored; failures are retried with a backoff,
end in `error` after the last attempt, and never leave a partial file."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.media.fetch import fetch_pending_evidence
from core.media.limits import MB
from core.storage.database import Database
from core.storage.evidence import EvidenceView, evidence_by_message
from core.storage.states import EvidenceState
from local_host.fake_graph import FakeGraph
from tests.conftest import ROOT
from tests.evidence_support import (
    PHONE,
    PNG,
    Clock,
    GraphServer,
    fetcher,
    files_in,
    leftovers,
    read_bytes,
    record,
    start_graph,
)


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    return tmp_path / "evidencias"


@pytest.fixture
async def graph() -> AsyncIterator[GraphServer]:
    server = await start_graph()
    yield server
    await server.close()


async def _row(db: Database, message_id: str) -> EvidenceView:
    row = await evidence_by_message(db, message_id)
    assert row is not None
    return row


async def test_a_photo_is_downloaded_checked_and_stored(sqlite_db: Database, graph: GraphServer,
                                                        store_root: Path) -> None:
    media_id = await record(sqlite_db, graph.fake, "wamid.IMG1", PNG)
    f = fetcher(sqlite_db, graph.base_url, store_root, Clock())
    try:
        assert await fetch_pending_evidence(f) == 1
        assert await fetch_pending_evidence(f) == 0  # nothing left to do
    finally:
        await f.aclose()
    row = await _row(sqlite_db, "wamid.IMG1")
    assert (row.state, row.size, row.mime, row.attempts, row.last_error) == (EvidenceState.GUARDADA, len(PNG),
                                                                           "image/png", 1, None)
    assert row.path is not None and read_bytes(row.path) == PNG
    assert Path(row.path).name.endswith("-wamid.IMG1.png") and Path(row.path).parent.name == PHONE
    assert graph.fake.downloads == {media_id: 1}


async def test_a_hex_digest_is_accepted_too_and_a_document_keeps_its_extension(
        sqlite_db: Database, graph: GraphServer, store_root: Path) -> None:
    body = b"%PDF-1.4 reporte de servicio"
    await record(sqlite_db, graph.fake, "wamid.DOC1", body, kind="document", mime="application/pdf",
                 declared_sha=hashlib.sha256(body).hexdigest(), filename="Orden 45.PDF")
    f = fetcher(sqlite_db, graph.base_url, store_root, Clock())
    try:
        assert await fetch_pending_evidence(f) == 1
    finally:
        await f.aclose()
    row = await _row(sqlite_db, "wamid.DOC1")
    assert row.state == EvidenceState.GUARDADA and row.path is not None and row.path.endswith(".pdf")
    assert row.filename == "Orden 45.PDF"


async def test_a_digest_mismatch_is_retried_after_its_backoff(sqlite_db: Database, graph: GraphServer,
                                                              store_root: Path) -> None:
    await record(sqlite_db, graph.fake, "wamid.SHA", PNG)
    graph.fake.fail_media("wrong_sha", count=1)
    clock = Clock()
    f = fetcher(sqlite_db, graph.base_url, store_root, clock, retry_base_ms=60_000)
    try:
        assert await fetch_pending_evidence(f) == 0
        row = await _row(sqlite_db, "wamid.SHA")
        assert (row.state, row.attempts, row.path) == (EvidenceState.PENDIENTE, 1, None)
        assert row.last_error is not None and "SHA-256" in row.last_error
        assert leftovers(store_root) == [] and files_in(store_root) == []
        clock.now += 59_999
        assert await fetch_pending_evidence(f) == 0  # still backing off
        clock.now += 1
        assert await fetch_pending_evidence(f) == 1
    finally:
        await f.aclose()
    row = await _row(sqlite_db, "wamid.SHA")
    assert (row.state, row.attempts, row.last_error) == (EvidenceState.GUARDADA, 2, None)


async def test_a_webhook_digest_that_never_matches_ends_in_error(sqlite_db: Database, graph: GraphServer,
                                                                store_root: Path) -> None:
    await record(sqlite_db, graph.fake, "wamid.BAD", PNG, declared_sha="AAAA" + "A" * 40)
    clock = Clock()
    f = fetcher(sqlite_db, graph.base_url, store_root, clock, max_attempts=3, retry_base_ms=1_000)
    try:
        for _ in range(4):
            await fetch_pending_evidence(f)
            clock.now += 10_000
    finally:
        await f.aclose()
    row = await _row(sqlite_db, "wamid.BAD")
    assert (row.state, row.attempts) == (EvidenceState.ERROR, 3)


async def test_a_declared_size_over_the_limit_is_refused_without_downloading(
        sqlite_db: Database, graph: GraphServer, store_root: Path) -> None:
    media_id = await record(sqlite_db, graph.fake, "wamid.BIG", b"\xff\xd8" + bytes(5 * MB), mime="image/jpeg")
    f = fetcher(sqlite_db, graph.base_url, store_root, Clock())
    try:
        assert await fetch_pending_evidence(f) == 0
    finally:
        await f.aclose()
    row = await _row(sqlite_db, "wamid.BIG")
    assert (row.state, row.attempts) == (EvidenceState.ERROR, 1)  # final at once: it can never fit
    assert row.last_error is not None and "excede el límite" in row.last_error
    assert graph.fake.downloads.get(media_id) is None


async def test_a_body_that_runs_past_the_limit_is_cut_off_and_refused(sqlite_db: Database, graph: GraphServer,
                                                                     store_root: Path) -> None:
    await record(sqlite_db, graph.fake, "wamid.LONG", PNG)
    graph.fake.fail_media("oversize")  # the body streams on for 101 MB while the metadata says 68 bytes
    f = fetcher(sqlite_db, graph.base_url, store_root, Clock())
    try:
        assert await fetch_pending_evidence(f) == 0
    finally:
        await f.aclose()
    row = await _row(sqlite_db, "wamid.LONG")
    assert (row.state, row.attempts) == (EvidenceState.ERROR, 1)
    assert row.last_error is not None and "al descargarlo" in row.last_error
    assert leftovers(store_root) == [] and files_in(store_root) == []


async def test_a_type_whatsapp_does_not_allow_is_refused(sqlite_db: Database, graph: GraphServer,
                                                         store_root: Path) -> None:
    exe = await record(sqlite_db, graph.fake, "wamid.EXE", PNG)
    graph.fake.fail_media("wrong_mime", media_id=exe)  # Graph says application/x-msdownload for an "image"
    await record(sqlite_db, graph.fake, "wamid.GIF", b"GIF89a", mime="image/gif")
    f = fetcher(sqlite_db, graph.base_url, store_root, Clock())
    try:
        assert await fetch_pending_evidence(f) == 0
    finally:
        await f.aclose()
    for message_id, mime in (("wamid.EXE", "application/x-msdownload"), ("wamid.GIF", "image/gif")):
        row = await _row(sqlite_db, message_id)
        assert (row.state, row.attempts) == (EvidenceState.ERROR, 1)
        assert row.last_error == f"tipo MIME no permitido para image: {mime}"


async def test_graph_errors_are_retried_then_given_up(sqlite_db: Database, graph: GraphServer,
                                                      store_root: Path) -> None:
    await record(sqlite_db, graph.fake, "wamid.500", PNG)
    graph.fake.fail_media("500", count=10)
    clock = Clock()
    f = fetcher(sqlite_db, graph.base_url, store_root, clock, max_attempts=3, retry_base_ms=1_000)
    states = []
    try:
        for _ in range(3):
            await fetch_pending_evidence(f)
            states.append((await _row(sqlite_db, "wamid.500")).state)
            clock.now += 60_000
    finally:
        await f.aclose()
    assert states == [EvidenceState.PENDIENTE, EvidenceState.PENDIENTE, EvidenceState.ERROR]
    row = await _row(sqlite_db, "wamid.500")
    assert row.last_error is not None and row.last_error.startswith("Graph API:")


async def test_an_unreachable_graph_counts_an_attempt_and_blocks_nothing(sqlite_db: Database,
                                                                         store_root: Path) -> None:
    await record(sqlite_db, _graph_without_server(), "wamid.NET", PNG)
    f = fetcher(sqlite_db, "http://127.0.0.1:9/v23.0", store_root, Clock())
    try:
        assert await fetch_pending_evidence(f) == 0
    finally:
        await f.aclose()
    row = await _row(sqlite_db, "wamid.NET")
    assert (row.state, row.attempts) == (EvidenceState.PENDIENTE, 1)


def _graph_without_server() -> FakeGraph:
    return FakeGraph()  # only mints a media id


async def test_two_concurrent_fetchers_download_each_body_once(sqlite_db: Database, graph: GraphServer,
                                                                store_root: Path) -> None:
    media = [await record(sqlite_db, graph.fake, f"wamid.C{i}", PNG + bytes([i])) for i in range(12)]
    graph.fake.fail_media("slow", count=100, delay_ms=20)  # both are mid-download at the same time
    clock = Clock()
    a = fetcher(sqlite_db, graph.base_url, store_root, clock)
    b = fetcher(sqlite_db, graph.base_url, store_root, clock)
    try:
        stored = await asyncio.gather(fetch_pending_evidence(a), fetch_pending_evidence(b),
                                      fetch_pending_evidence(a, PHONE))
    finally:
        await a.aclose()
        await b.aclose()
    assert sum(stored) == 12
    assert graph.fake.downloads == {m: 1 for m in media}


async def test_two_processes_download_each_body_once(db_path: Path, sqlite_db: Database, graph: GraphServer,
                                                     store_root: Path) -> None:
    media = [await record(sqlite_db, graph.fake, f"wamid.P{i}", PNG + bytes([i])) for i in range(20)]
    graph.fake.fail_media("slow", count=100, delay_ms=20)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "tests.evidence_worker", str(db_path), graph.base_url, str(store_root)]
    procs = [await asyncio.create_subprocess_exec(*args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                                  stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [await asyncio.wait_for(p.communicate(), 60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1].decode()[-2000:] for o in outputs]
    assert sum(int(o[0].decode().split()[-1]) for o in outputs) == 20
    assert graph.fake.downloads == {m: 1 for m in media}
    rows = [await _row(sqlite_db, f"wamid.P{i}") for i in range(20)]
    assert {(r.state, r.attempts) for r in rows} == {(EvidenceState.GUARDADA, 1)}


async def test_a_downloader_killed_mid_body_leaves_the_row_to_the_next_one(
        db_path: Path, sqlite_db: Database, graph: GraphServer, store_root: Path) -> None:
    body = PNG * 4096  # about 280 KB, streamed in two halves
    media_id = await record(sqlite_db, graph.fake, "wamid.KILL", body)
    graph.fake.fail_media("stall", media_id=media_id, delay_ms=60_000)  # the first download stops half way
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.evidence_worker", str(db_path), graph.base_url, str(store_root), "1000",
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):  # until the half body sits in a partial file
            if leftovers(store_root):
                break
            await asyncio.sleep(0.05)
        assert leftovers(store_root), "the worker never started writing"
    finally:
        proc.kill()  # SIGKILL: no cleanup of any kind runs
        await proc.wait()
    row = await _row(sqlite_db, "wamid.KILL")
    assert (row.state, row.attempts) == (EvidenceState.PENDIENTE, 1)  # claimed by the dead process

    clock = Clock(now=row.updated_ms)
    f = fetcher(sqlite_db, graph.base_url, store_root, clock)
    try:
        assert await fetch_pending_evidence(f) == 0  # its claim still holds
        clock.now += 1_000
        assert await fetch_pending_evidence(f) == 1
    finally:
        await f.aclose()
    row = await _row(sqlite_db, "wamid.KILL")
    assert (row.state, row.attempts) == (EvidenceState.GUARDADA, 2) and row.path is not None
    assert read_bytes(row.path) == body and leftovers(store_root) == []
    assert graph.fake.downloads == {media_id: 1}
