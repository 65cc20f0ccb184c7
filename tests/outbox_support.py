"""Helpers shared by the outbox tests and bench: a fake Graph server (in-process or as a process), queueing."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import httpx
from aiohttp import web

from core.storage.database import Database
from core.storage.outbox import queue_reply
from core.whatsapp.outgoing import OutgoingMessage
from local_host.fake_graph import FakeGraph

ROOT = Path(__file__).resolve().parents[1]


class InProcessGraph:
    """FakeGraph served on 127.0.0.1:<port> in the current event loop."""

    def __init__(self, port: int, access_token: str | None = None) -> None:
        self.fake = FakeGraph(access_token=access_token)
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/v23.0"
        self._runner: web.AppRunner | None = None

    async def start(self) -> InProcessGraph:
        self._runner = web.AppRunner(self.fake.build_app())
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def sent_by_graph(port: int) -> list[dict]:
    return httpx.get(f"http://127.0.0.1:{port}/_sent", timeout=10).json()


NO_DEADLINE_MS = 10**15  # rows queued at time 0 by default would be long past a real deadline


def queue_texts(db: Database, items: Sequence[tuple[str, str]], now_ms: int = 0,
                deadline_ms: int = NO_DEADLINE_MS) -> None:
    """Queue (recipient, body) text replies in one transaction, in order, as the engine does."""

    def run(tx) -> None:
        for recipient, body in items:
            message = OutgoingMessage(body=body)
            queue_reply(tx, recipient, kind=message.kind, content=message.to_json(), now_ms=now_ms,
                        origin_message_id=None, deadline_ms=deadline_ms)

    db.run_sync(run)


def worker_env(base: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "SQL", "OUTBOX_", "MAX_TRABAJOS"))}
    env.update(base)
    env.update(extra)
    return env
