"""Wiring, done once per process: settings, database and the services built on them.

Azure imports `function_app` once per worker process and keeps it warm, so the runtime is built
lazily on first use and reused. Tests build their own with `use_runtime`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from core.handoff import HandoffQueue, StorageQueueHandoff
from core.settings import Settings, load_settings
from core.storage import open_database
from core.storage.database import Database
from core.telemetry import configure_logging, configure_telemetry

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    extras: dict[str, object] = field(default_factory=dict)
    # The webhook -> worker queue. The local host and tests install an in-process one; on Azure it is
    # built on first use from AzureWebJobsStorage (raising HandoffError, which callers log, if unset).
    handoff: HandoffQueue | None = None
    # Set when the host is shutting down: drains finish the message in hand and start no other.
    stopping: bool = False

    def get_handoff(self) -> HandoffQueue:
        if self.handoff is None:
            self.handoff = StorageQueueHandoff(self.settings.azure_webjobs_storage)
        return self.handoff

    async def aclose(self) -> None:
        from bot.assistant import close_ai

        await close_ai(self)
        if self.handoff is not None:
            await self.handoff.aclose()
        self.db.close()


_current: Runtime | None = None


def build_runtime(settings: Settings | None = None) -> Runtime:
    settings = settings or load_settings()
    configure_telemetry(settings)  # secrets known before the first line that could carry them
    return Runtime(settings=settings, db=open_database(settings))


def get_runtime() -> Runtime:
    global _current
    if _current is None:
        configure_logging()
        _current = build_runtime()
    return _current


def use_runtime(runtime: Runtime | None) -> None:
    """Install (or clear) the process runtime; the local host and tests call this."""
    global _current
    _current = runtime
