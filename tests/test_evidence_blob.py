"""The Blob Storage adapter against Azurite's blob service (a real process on loopback): bodies below one
block and bodies staged in blocks, the container created on first use, nothing visible after a refused
download. Skipped with the reason when no `azurite-blob` executable is found (PATH, AZURITE_BLOB, or the
project's tools/azurite install)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core.media.fetch import EvidenceFetcher, fetch_pending_evidence
from core.media.graph_media import MediaApi
from core.media.limits import MB
from core.media.store import BLOCK_BYTES, BlobEvidenceStore, blob_store_from_settings
from core.settings import load_settings
from core.storage.database import Database
from core.storage.evidence import evidence_by_message
from core.storage.states import EvidenceState
from tests.conftest import ROOT, base_env, free_port
from tests.evidence_support import PNG, TOKEN, Clock, GraphServer, record, start_graph

# Azurite's well-known development account (public, documented by Microsoft).
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _azurite_blob() -> str | None:
    candidates = [os.environ.get("AZURITE_BLOB"), shutil.which("azurite-blob"),
                  str(ROOT / "tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    executable = _azurite_blob()
    if executable is None:
        pytest.skip("azurite-blob no está instalado (npm install azurite; o AZURITE_BLOB=<ruta>)")
    port = free_port()
    proc = subprocess.Popen([executable, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
                             "--skipApiVersionCheck", "--loose", "--silent"],
                            cwd=tmp_path_factory.mktemp("azurite"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"Azurite no arrancó: {proc.stderr.read().decode()[-500:] if proc.stderr else ''}")
        time.sleep(0.1)
    yield (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};"
           f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
async def graph() -> AsyncIterator[GraphServer]:
    server = await start_graph()
    yield server
    await server.close()


async def _blob_names(store: BlobEvidenceStore) -> list[str]:
    container = await store.container()
    return sorted([b.name async for b in container.list_blobs()])


async def test_bodies_are_stored_as_blobs_small_and_in_blocks(azurite: str, db_path: Path, sqlite_db: Database,
                                                              graph: GraphServer) -> None:
    container = f"evidencias-{os.getpid()}-{free_port()}"
    settings = load_settings(base_env(db_path, AzureWebJobsStorage=azurite, EVIDENCE_CONTAINER=container))
    store = blob_store_from_settings(settings)
    document = bytes(range(256)) * (9 * MB // 256)  # 9 MB: three staged blocks
    assert len(document) > 2 * BLOCK_BYTES
    await record(sqlite_db, graph.fake, "wamid.B1", PNG)
    await record(sqlite_db, graph.fake, "wamid.B2", document, kind="document", mime="application/pdf",
                 filename="manual.pdf")
    big = await record(sqlite_db, graph.fake, "wamid.B3", PNG)
    graph.fake.fail_media("oversize", media_id=big)
    fetcher = EvidenceFetcher(db=sqlite_db, api=MediaApi(graph.base_url, TOKEN), store=store, clock=Clock())
    try:
        assert await fetch_pending_evidence(fetcher) == 2
        small, large, refused = [await evidence_by_message(sqlite_db, f"wamid.B{i}") for i in (1, 2, 3)]
        assert small is not None and large is not None and refused is not None
        assert (small.state, large.state, refused.state) == (EvidenceState.GUARDADA, EvidenceState.GUARDADA,
                                                             EvidenceState.ERROR)
        assert small.path is not None and large.path is not None
        assert small.path.startswith("http://127.0.0.1:") and f"/{container}/" in small.path
        assert await store.read(small.path) == PNG
        assert await store.read(large.path) == document and large.size == len(document)
        assert len(await _blob_names(store)) == 2  # the refused body left nothing visible
        with pytest.raises(ValueError, match="no pertenece"):
            await store.read("http://elsewhere.example/x")
    finally:
        await fetcher.aclose()


async def test_a_second_store_on_the_same_container_finds_it(azurite: str, db_path: Path) -> None:
    settings = load_settings(base_env(db_path, AzureWebJobsStorage=azurite))
    stores = [blob_store_from_settings(settings) for _ in range(2)]
    try:
        await asyncio.gather(*(s.container() for s in stores))  # both create it: one wins, neither fails
        upload = stores[0].begin("5215512345678/00000001-wamid.X.png", "image/png")
        await upload.write(PNG)
        path = await upload.commit()
        assert path.endswith("/evidencias/5215512345678/00000001-wamid.X.png")
        assert await stores[1].read(path) == PNG
    finally:
        for s in stores:
            await s.aclose()
