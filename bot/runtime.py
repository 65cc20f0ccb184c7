"""The composition root: settings, database, adapters and the services built on them, once per process.

Azure imports `function_app` once per worker process and keeps it warm, so the runtime is built lazily
on first use and reused. Every service receives only what it uses (a database, a sender, a queue, a
clock...) through its constructor; this module is the one place that knows how they fit together. The
local host and tests build the same graph with other adapters, passed to the constructor (an in-process
queue, a Graph client pointed at a fake server, a hanging AI provider); nothing is swapped afterwards.
`build_runtime` builds every service at once (`Runtime.prepare`); the clients open their connections on
first use. `aclose` closes what was built.
"""

from __future__ import annotations

import logging
import sys
import threading
from functools import cached_property
from typing import Any

from bot import texts
from bot.assistant import Questions
from bot.conversation.drain import ConversationDrain, DrainConfig
from bot.conversation.engine import ConversationEngine, flow_rules
from bot.conversation.model import Rules
from bot.conversation.sweeper import ConversationSweeper
from bot.conversation.worker import ConversationWorker
from bot.evidence import EvidenceService
from bot.outbound.dispatcher import Dispatcher, OutboxConfig
from bot.reports_api import ReportsApi
from bot.webhook.ingest import Webhook
from core.ai.remote import AssistantBackend
from core.ai.service import build_assistant_backend, build_intent_service, preload_provider_modules
from core.ai.types import IntentProvider
from core.clock import Clock, system_clock
from core.handoff import HandoffQueue, StorageQueueHandoff
from core.media.fetch import EvidenceFetcher, build_evidence_fetcher
from core.media.store import EvidenceStore
from core.media.transcribe import Transcriber, build_transcriber
from core.notify import NotifyConfig
from core.settings import Settings, load_settings
from core.storage import open_database
from core.storage.database import Database
from core.storage.inbox import InboxRegistrar
from core.telemetry import configure_logging, configure_telemetry
from core.whatsapp.client import MessageSender, WhatsAppClient
from core.whatsapp.ratelimit import SendLimits

log = logging.getLogger(__name__)

# Adapters a caller may pass instead of the ones the settings describe.
_ADAPTERS = ("handoff", "intent", "assistant", "whatsapp", "evidence_fetcher", "transcriber")
_DERIVED = ("outbox", "evidence", "questions", "engine", "drain", "worker", "sweeper", "webhook", "reports")


class Runtime:
    def __init__(self, settings: Settings, db: Database, *, clock: Clock = system_clock,
                 handoff: HandoffQueue | None = None, intent: IntentProvider | None = None,
                 assistant: AssistantBackend | None = None, whatsapp: MessageSender | None = None,
                 evidence_store: EvidenceStore | None = None, transcriber: Transcriber | None = None) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        # Set when the host shuts down: drains finish the message in hand and start no other; no new retry timers.
        self.stopping = threading.Event()
        self._evidence_store = evidence_store  # default: Blob Storage, or EVIDENCE_DIR
        given = {"handoff": handoff, "intent": intent, "assistant": assistant, "whatsapp": whatsapp,
                 "transcriber": transcriber}
        # A given adapter takes the place of its cached property below.
        self.__dict__.update({name: value for name, value in given.items() if value is not None})

    # -- adapters: what the settings describe, unless the constructor was given one ---------------------

    @cached_property
    def handoff(self) -> HandoffQueue:
        """The webhook -> worker queue: the Storage queue of AzureWebJobsStorage."""
        return StorageQueueHandoff(self.settings.storage)

    @cached_property
    def intent(self) -> IntentProvider:
        return build_intent_service(self.settings)

    @cached_property
    def assistant(self) -> AssistantBackend:
        return build_assistant_backend(self.settings, texts.ASSISTANT_WORDS)

    @cached_property
    def whatsapp(self) -> MessageSender:
        """The Graph API client (one pooled HTTP client per process)."""
        return WhatsAppClient.from_settings(self.settings)

    @cached_property
    def evidence_fetcher(self) -> EvidenceFetcher:
        return build_evidence_fetcher(self.settings, self.db, self._evidence_store, clock=self.clock)

    @cached_property
    def transcriber(self) -> Transcriber:
        return build_transcriber(self.settings)

    @cached_property
    def send_limits(self) -> SendLimits:
        return SendLimits(self.db, self.settings.outbox_rate_per_second, self.clock)

    @cached_property
    def registrar(self) -> InboxRegistrar:
        """SQLite has one writer, so one group commit at a time, as large as it comes. On SQL Server half the
        pool may register at once, in small groups: each insert holds its key locks until its transaction
        commits, so two groups holding copies of the same wamids can still wait on each other (a deadlock
        victim, 1205, retries its whole group); small groups keep that rare and cheap."""
        sqlite = self.db.dialect == "sqlite"
        in_flight = 1 if sqlite else max(1, self.settings.db_pool_size // 2)
        return InboxRegistrar(self.db, max_in_flight=in_flight, max_posts=256 if sqlite else 16)

    # -- services ------------------------------------------------------------------------------------

    @cached_property
    def notify(self) -> NotifyConfig:
        return NotifyConfig.from_settings(self.settings)

    @cached_property
    def rules(self) -> Rules:
        return flow_rules(self.settings)

    @cached_property
    def outbox(self) -> Dispatcher:
        return Dispatcher(self.db, self.whatsapp, self.send_limits, OutboxConfig.from_settings(self.settings),
                          self.clock, self.stopping)

    @cached_property
    def evidence(self) -> EvidenceService:
        return EvidenceService(self.db, self.evidence_fetcher, self.transcriber,
                               transcription_budget_ms=self.settings.transcription_budget_ms, clock=self.clock)

    @cached_property
    def questions(self) -> Questions:
        return Questions(self.db, self.assistant, orphan_max_age_ms=self.settings.orphaned_run_max_age_ms,
                         clock=self.clock)

    @cached_property
    def engine(self) -> ConversationEngine:
        return ConversationEngine(self.db, self.intent, self.questions, self.evidence.transcribe, rules=self.rules,
                                  notify=self.notify, clock=self.clock)

    @cached_property
    def drain(self) -> ConversationDrain:
        s = self.settings
        config = DrainConfig(s.lock_timeout_ms, s.turn_gap_seconds, s.inbox_max_attempts)
        return ConversationDrain(self.db, self.engine, self.outbox, self.evidence, self.questions, config,
                                 self.clock, self.stopping)

    @cached_property
    def worker(self) -> ConversationWorker:
        return ConversationWorker(self.db, self.drain, self.handoff, budget_ms=self.settings.worker_budget_ms)

    @cached_property
    def sweeper(self) -> ConversationSweeper:
        s = self.settings
        return ConversationSweeper(self.db, self.handoff, self.questions, self.outbox, rules=self.rules,
                                   lease_ttl_ms=s.lock_timeout_ms, idle_minutes=s.session_idle_minutes,
                                   clock=self.clock)

    @cached_property
    def webhook(self) -> Webhook:
        return Webhook(self.settings, self.registrar, self.handoff, self.clock)

    @cached_property
    def reports(self) -> ReportsApi:
        return ReportsApi(self.db, self.outbox, self.notify, self.clock)

    def prepare(self) -> None:
        """Build every service now. Building the AI clients takes a few hundred milliseconds of the event
        loop; done inside the first worker invocation, that froze every webhook ack of the process."""
        for name in ("webhook", "worker", "sweeper", "reports"):
            getattr(self, name)

    def stop(self) -> None:
        """The host is shutting down: finish what is in hand, start nothing new."""
        self.stopping.set()

    async def aclose(self) -> None:
        """Close every service and adapter this runtime built or was given, then the database."""
        built = self.__dict__
        if "outbox" in built:
            await self.outbox.aclose()
        for name in _ADAPTERS:
            close = getattr(built.get(name), "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # closing must not stop the others from closing
                    log.warning("No se pudo cerrar %s", name, exc_info=True)
        for name in (*_ADAPTERS, *_DERIVED):
            built.pop(name, None)
        self.db.close()


_current: Runtime | None = None


# The event loop thread gives up the GIL on every socket call and then waits for it while the database
# threads run Python; at the default 5 ms switch interval that wait dominated the webhook's tail under
# load (measured in bench/handoff.py: ack p99 37 -> 28 ms, throughput +15 %). 1 ms keeps it short.
GIL_SWITCH_INTERVAL_S = 0.001


def build_runtime(settings: Settings | None = None, **adapters: Any) -> Runtime:
    """The process runtime for `settings` (read from the environment if not given); `adapters` are passed
    to `Runtime` (an in-process queue, a fake Graph client...)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    settings = settings or load_settings()
    configure_telemetry(settings)  # secrets known before the first line that could carry them
    preload_provider_modules(settings)
    runtime = Runtime(settings, open_database(settings), **adapters)
    runtime.prepare()
    return runtime


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
