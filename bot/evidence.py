"""Evidence in the bot: download what users sent after the transition that recorded it, retry it from a
timer, and read voice notes aloud to the conversation (docs/evidence.md).

The conversation records an `Evidencias` row with its transition (`core.storage.evidence.record_evidence`)
and then calls `EvidenceService.fetch_pending(phone)`; a download that fails is retried by its `sweep`.
"""

from __future__ import annotations

import asyncio
import logging
import time

from bot.messages import InboundMessage, MessageKind
from core.clock import Clock
from core.media import fetch
from core.media.fetch import EvidenceFetcher
from core.media.transcribe import Transcriber
from core.storage.database import Database
from core.storage.evidence import save_transcript
from core.telemetry import mask_phone

log = logging.getLogger("bot.evidence")
SWEEP_ROUNDS = 5  # batches per timer tick; the next tick takes the rest


class EvidenceService:
    """Downloads of what users sent (after the transition that recorded it, and from a timer), and voice
    notes read as text. Neither path raises: a body that cannot be fetched never blocks or loses the
    report it belongs to."""

    def __init__(self, db: Database, fetcher: EvidenceFetcher, transcriber: Transcriber, *,
                 transcription_budget_ms: int, clock: Clock) -> None:
        self.db = db
        self.fetcher = fetcher
        self.transcriber = transcriber
        self.transcription_budget_ms = transcription_budget_ms
        self.clock = clock

    async def fetch_pending(self, phone: str | None = None) -> int:
        """Download the due evidence of `phone` (or of everyone); answers how many bodies were stored.
        Safe to call concurrently from several tasks and processes: each row is claimed before its download."""
        try:
            return await fetch.fetch_pending_evidence(self.fetcher, phone)
        except Exception:  # the database or the store's set-up: the sweep tries again
            log.warning("Descarga de evidencias falló (%s)", mask_phone(phone) if phone else "todas", exc_info=True)
            return 0

    async def sweep(self) -> int:
        """The timer's pass: due rows in a few bounded batches (new ones, failed ones whose backoff ended,
        claims whose holder died)."""
        stored = 0
        for _ in range(SWEEP_ROUNDS):
            before = stored
            stored += await self.fetch_pending()
            if stored - before < self.fetcher.batch:
                break
        return stored

    async def transcribe(self, message: InboundMessage) -> str | None:
        """The text of an audio message, read by the configured AI provider within `TRANSCRIPTION_BUDGET_MS`,
        and kept on its evidence row. None with the offline provider, for other messages, on timeout or error."""
        transcriber = self.transcriber
        if transcriber.name == "offline" or message.kind != MessageKind.AUDIO or not message.media_id:
            return None
        budget_s = self.transcription_budget_ms / 1000
        who = mask_phone(message.conversation_key)
        started = time.monotonic()
        try:
            async with asyncio.timeout(budget_s):
                audio, mime = await fetch.download_bytes(self.fetcher.api, message.media_id, kind="audio",
                                                         declared_sha256=message.sha256, mime=message.mime_type)
                text = await transcriber.transcribe(audio, mime)
        except TimeoutError:
            log.warning("Transcripción de %s (%s) excedió %.1f s: se sigue sin ella", message.wamid, who, budget_s)
            return None
        except Exception as exc:
            log.warning("Transcripción de %s (%s) falló con %s: %s", message.wamid, who, transcriber.name,
                        type(exc).__name__, exc_info=True)
            return None
        if not text:
            return None
        try:
            await save_transcript(self.db, phone=message.conversation_key, message_id=message.wamid,
                                  media_id=message.media_id, mime=message.mime_type, sha256=message.sha256,
                                  transcript=text, now_ms=self.clock())
        except Exception:  # the text still serves the conversation; only the stored copy is missing
            log.warning("No se guardó la transcripción de %s (%s)", message.wamid, who, exc_info=True)
        log.info("Nota de voz %s (%s) transcrita con %s en %d ms", message.wamid, who, transcriber.name,
                 int((time.monotonic() - started) * 1000))
        return text
