"""Wiring, done once per process: settings, database and the services built on them.

Azure imports `function_app` once per worker process and keeps it warm, so the runtime is built
lazily on first use and reused. Each service is a typed field built on first use (`get_*`); tests
install their own by assigning the field. `aclose` closes every one of them.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass, field

from core.ai.remote import AssistantBackend
from core.ai.service import build_assistant_backend, build_intent_service, preload_provider_modules
from core.ai.types import IntentProvider
from core.handoff import HandoffQueue, StorageQueueHandoff
from core.media.fetch import EvidenceFetcher, build_evidence_fetcher
from core.media.transcribe import Transcriber, build_transcriber
from core.settings import Settings, load_settings
from core.storage import open_database
from core.storage.database import Database
from core.storage.inbox import InboxRegistrar
from core.telemetry import configure_logging, configure_telemetry
from core.whatsapp.client import MessageSender, WhatsAppClient
from core.whatsapp.ratelimit import SendLimits

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    # The webhook -> worker queue. The local host and tests install an in-process one; on Azure it is
    # built on first use from AzureWebJobsStorage (raising HandoffError, which callers log, if unset).
    handoff: HandoffQueue | None = None
    intent: IntentProvider | None = None  # intent detection, extraction, term interpretation
    assistant: AssistantBackend | None = None  # free-form questions
    whatsapp: MessageSender | None = None  # the Graph API client (one pooled HTTP client per process)
    registrar: InboxRegistrar | None = None  # the webhook's group commit
    evidence: EvidenceFetcher | None = None  # media downloads: Graph's media API -> the evidence store
    transcriber: Transcriber | None = None  # voice notes to text (NoTranscriber with the offline rules)
    send_limits: SendLimits | None = None  # each business number's send limit, taken before a claim
    # Sends waiting out a backoff, per recipient: each fires at its row's next due time (the sweep is the
    # fallback when the process is gone). Cancelled by `aclose`.
    retry_timers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    # Set when the host is shutting down: drains finish the message in hand and start no other.
    stopping: bool = False

    def get_handoff(self) -> HandoffQueue:
        if self.handoff is None:
            self.handoff = StorageQueueHandoff(self.settings.storage)
        return self.handoff

    def get_intent(self) -> IntentProvider:
        if self.intent is None:
            self.intent = build_intent_service(self.settings)
        return self.intent

    def get_assistant(self) -> AssistantBackend:
        if self.assistant is None:
            self.assistant = build_assistant_backend(self.settings)
        return self.assistant

    def get_whatsapp(self) -> MessageSender:
        if self.whatsapp is None:
            self.whatsapp = WhatsAppClient.from_settings(self.settings)
        return self.whatsapp

    def get_send_limits(self) -> SendLimits:
        if self.send_limits is None:
            self.send_limits = SendLimits(self.db, self.settings.outbox_rate_per_second)
        return self.send_limits

    def get_registrar(self) -> InboxRegistrar:
        """SQLite has one writer, so one group commit at a time, as large as it comes. On SQL Server half the
        pool may register at once, in small groups: each insert holds its key locks until its transaction
        commits, so two groups holding copies of the same wamids can still wait on each other (a deadlock
        victim, 1205, retries its whole group); small groups keep that rare and cheap."""
        if self.registrar is None:
            sqlite = self.db.dialect == "sqlite"
            in_flight = 1 if sqlite else max(1, self.settings.db_pool_size // 2)
            self.registrar = InboxRegistrar(self.db, max_in_flight=in_flight, max_posts=256 if sqlite else 16)
        return self.registrar

    def get_evidence(self) -> EvidenceFetcher:
        if self.evidence is None:
            self.evidence = build_evidence_fetcher(self.settings, self.db)
        return self.evidence

    def get_transcriber(self) -> Transcriber:
        if self.transcriber is None:
            self.transcriber = build_transcriber(self.settings)
        return self.transcriber

    async def aclose(self) -> None:
        """Close every service this runtime built (or was given), then the database."""
        timers = list(self.retry_timers.values())
        for timer in timers:
            timer.cancel()
        await asyncio.gather(*timers, return_exceptions=True)  # a cancelled send writes its row back first
        self.retry_timers.clear()
        for service in (self.intent, self.assistant, self.whatsapp, self.handoff, self.evidence, self.transcriber):
            close = getattr(service, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception as exc:  # closing must not stop the others from closing
                    log.warning("No se pudo cerrar %s: %s", type(service).__name__, exc, exc_info=True)
        self.intent = self.assistant = self.whatsapp = self.handoff = None
        self.evidence = self.transcriber = None
        self.db.close()


_current: Runtime | None = None


# The event loop thread gives up the GIL on every socket call and then waits for it while the database
# threads run Python; at the default 5 ms switch interval that wait dominated the webhook's tail under
# load (measured in bench/handoff.py: ack p99 37 -> 28 ms, throughput +15 %). 1 ms keeps it short.
GIL_SWITCH_INTERVAL_S = 0.001


def build_runtime(settings: Settings | None = None) -> Runtime:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    settings = settings or load_settings()
    configure_telemetry(settings)  # secrets known before the first line that could carry them
    preload_provider_modules(settings)
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
