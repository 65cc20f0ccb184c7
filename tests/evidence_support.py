"""Helpers shared by the evidence tests: the fake Graph API on loopback, rows recorded as the conversation
does, and a fetcher with a clock the test moves."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from core.media.fetch import EvidenceFetcher
from core.media.graph_media import MediaApi
from core.media.store import LocalEvidenceStore
from core.storage.database import Database
from core.storage.evidence import record_evidence
from local_host.fake_ai import serve
from local_host.fake_graph import FakeGraph

TOKEN = "test-access-token"
PHONE = "5215512345678"
NOW = 1_800_000_000_000
# The smallest valid PNG: a 1x1 pixel.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
                       "AAAABJRU5ErkJggg==")


@dataclass
class Clock:
    now: int = NOW

    def __call__(self) -> int:
        return self.now


@dataclass
class GraphServer:
    fake: FakeGraph
    base_url: str  # with the API version, as WHATSAPP_API_BASE_URL
    root: str
    _served: object

    async def close(self) -> None:
        await self._served.close()  # type: ignore[attr-defined]


async def start_graph() -> GraphServer:
    fake = FakeGraph(access_token=TOKEN)
    app: web.Application = fake.build_app()
    served = await serve(app)
    return GraphServer(fake, served.base_url + "/v23.0", served.base_url, served)


def webhook_sha(body: bytes) -> str:
    """The digest as a webhook carries it (base64); the media endpoint gives hex."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


async def record(db: Database, graph: FakeGraph, message_id: str, body: bytes, *, kind: str = "image",
                 mime: str = "image/png", phone: str = PHONE, declared_sha: str | None = None,
                 filename: str | None = None) -> str:
    """Upload `body` to the fake Graph API and record its evidence row as the conversation would."""
    media_id = graph.media_id_of(graph.add_media(body, mime))
    sha = declared_sha if declared_sha is not None else webhook_sha(body)
    await db.write(lambda tx: record_evidence(tx, phone=phone, message_id=message_id, media_id=media_id, kind=kind,
                                              mime=mime, sha256=sha, filename=filename, now_ms=NOW))
    return media_id


def fetcher(db: Database, base_url: str, root: Path, clock: Clock, **kw: int) -> EvidenceFetcher:
    return EvidenceFetcher(db=db, api=MediaApi(base_url, TOKEN), store=LocalEvidenceStore(root), clock=clock, **kw)


def leftovers(root: Path) -> list[str]:
    """Partial files a failed download must not leave behind."""
    return sorted(p.name for p in root.rglob("*.parcial"))


def files_in(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def read_bytes(path: str) -> bytes:
    return Path(path).read_bytes()
