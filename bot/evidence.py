"""Evidence in the bot: download what users sent after the transition that recorded it, retry it from a
timer, and read voice notes aloud to the conversation (docs/evidence.md).

The conversation records an `Evidencias` row with its transition (`core.storage.evidence.record_evidence`)
and then calls `fetch_pending_evidence(rt, phone)`; a download that fails is retried by `sweep_evidence`.
Neither raises: a body that cannot be fetched never blocks or loses the report it belongs to.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence

from bot.messages import InboundMessage, MessageKind
from bot.runtime import Runtime
from core.media import fetch
from core.storage.evidence import save_transcript
from core.telemetry import mask_phone

log = logging.getLogger("bot.evidence")
SWEEP_ROUNDS = 5  # batches per timer tick; the next tick takes the rest
# What a confirmation calls each kind: (one, several).
_NAMES = {"image": ("foto", "fotos"), "audio": ("nota de voz", "notas de voz"), "video": ("video", "videos"),
          "document": ("documento", "documentos"), "sticker": ("sticker", "stickers")}


def evidence_summary(kinds: Sequence[str]) -> str:
    """`["image", "image", "audio"]` -> "2 fotos y 1 nota de voz" (kinds in the order first seen); "" for none."""
    counts = Counter(k for k in kinds if k in _NAMES)
    parts = [f"{n} {_NAMES[k][0] if n == 1 else _NAMES[k][1]}" for k, n in counts.items()]
    return ", ".join(parts[:-1]) + " y " + parts[-1] if len(parts) > 1 else "".join(parts)


async def fetch_pending_evidence(rt: Runtime, phone: str | None = None) -> int:
    """Download the due evidence of `phone` (or of everyone); answers how many bodies were stored.
    Safe to call concurrently from several tasks and processes: each row is claimed before its download."""
    try:
        return await fetch.fetch_pending_evidence(rt.get_evidence(), phone)
    except Exception as exc:  # the database or the store's set-up: the sweep tries again
        log.warning("Descarga de evidencias falló (%s): %s", mask_phone(phone) if phone else "todas", exc,
                    exc_info=True)
        return 0


async def sweep_evidence(rt: Runtime) -> int:
    """The timer's pass: due rows in a few bounded batches (new ones, failed ones whose backoff ended,
    claims whose holder died)."""
    stored = 0
    for _ in range(SWEEP_ROUNDS):
        fetcher = rt.get_evidence()
        before = stored
        stored += await fetch_pending_evidence(rt)
        if stored - before < fetcher.batch:
            break
    return stored


async def transcribe_voice_note(rt: Runtime, message: InboundMessage) -> str | None:
    """The text of an audio message, read by the configured AI provider within `TRANSCRIPTION_BUDGET_MS`,
    and kept on its evidence row. None with the offline provider, for other messages, on timeout or error."""
    transcriber = rt.get_transcriber()
    if transcriber.name == "offline" or message.kind != MessageKind.AUDIO or not message.media_id:
        return None
    budget_s = rt.settings.transcription_budget_ms / 1000
    who = mask_phone(message.conversation_key)
    started = time.monotonic()
    try:
        async with asyncio.timeout(budget_s):
            audio, mime = await fetch.download_bytes(rt.get_evidence().api, message.media_id, kind="audio",
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
        await save_transcript(rt.db, phone=message.conversation_key, message_id=message.wamid,
                              media_id=message.media_id, mime=message.mime_type, sha256=message.sha256,
                              transcript=text, now_ms=int(time.time() * 1000))
    except Exception as exc:  # the text still serves the conversation; only the stored copy is missing
        log.warning("No se guardó la transcripción de %s (%s): %s", message.wamid, who, exc, exc_info=True)
    log.info("Nota de voz %s (%s) transcrita con %s en %d ms", message.wamid, who, transcriber.name,
             int((time.monotonic() - started) * 1000))
    return text
