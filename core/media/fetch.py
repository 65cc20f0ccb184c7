"""Download, check and store the bodies of recorded evidence (`Evidencias` rows in `pendiente`).

For each due row: claim it (one downloader at a time, across processes), ask Graph for the media's
short-lived URL, check the declared type and size against WhatsApp's limits, stream the body into the
store while counting and hashing it, check its SHA-256 against the one the webhook carried, and only
then make it visible and mark the row `guardada`. A failure never touches the conversation or its
report: the row goes back to `pendiente` with a growing backoff (the sweep retries it), and ends in
`error` after `max_attempts`, at once for a body that can never be right (too big, a forbidden type).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from core.clock import Clock, system_clock
from core.errors import StorageError
from core.media.graph_media import MediaApi
from core.media.limits import LIMITS, MediaRejected, check_declared, check_sticker, digest_matches, extension
from core.media.store import EvidenceStore, EvidenceUpload, evidence_key, store_from_settings
from core.settings import Settings
from core.storage.database import Database
from core.storage.evidence import ClaimedEvidence, claim_evidence, mark_failed, mark_saved, pending_evidence
from core.storage.states import EvidenceState
from core.telemetry import mask_phone
from core.whatsapp.errors import WhatsAppError

log = logging.getLogger("core.media.fetch")
CHUNK_BYTES = 256 * 1024
STICKER_HEAD_BYTES = 32


class MediaFetchError(Exception):
    """A download that went wrong this time and may go right the next (the row is retried)."""


class DigestMismatch(MediaFetchError):
    """The body's SHA-256 is not the one the webhook declared (a corrupt transfer: worth another try)."""


@dataclass
class EvidenceFetcher:
    """What the download needs. One per process; `api` keeps a pooled HTTP session."""

    db: Database
    api: MediaApi
    store: EvidenceStore
    max_attempts: int = 5
    claim_ms: int = 120_000  # a download's hold on its row: longer than the slowest 100 MB body
    retry_base_ms: int = 60_000  # first retry a minute later, then doubling
    retry_max_ms: int = 3_600_000
    batch: int = 20  # rows looked at per call; the sweep takes the rest
    concurrency: int = 4  # bodies downloaded at once
    clock: Clock = field(default=system_clock)

    def retry_delay_ms(self, attempts: int) -> int:
        return int(min(self.retry_base_ms * 2 ** max(attempts - 1, 0), self.retry_max_ms))

    async def aclose(self) -> None:
        await self.api.aclose()
        await self.store.aclose()


def build_evidence_fetcher(settings: Settings, db: Database, store: EvidenceStore | None = None,
                           clock: Clock = system_clock) -> EvidenceFetcher:
    return EvidenceFetcher(db=db, api=MediaApi(settings.whatsapp_api_base_url, settings.whatsapp_access_token),
                           store=store or store_from_settings(settings), max_attempts=settings.evidence_max_attempts,
                           claim_ms=settings.evidence_claim_ms, clock=clock)


@dataclass(frozen=True, slots=True)
class StoredBody:
    path: str
    size: int
    mime: str | None


async def fetch_pending_evidence(fetcher: EvidenceFetcher, phone: str | None = None) -> int:
    """Download every due `pendiente` row (of `phone`, or of anyone), up to `fetcher.batch`. Answers how
    many bodies were stored. Safe to call from several tasks and processes at once: a row someone else
    claimed is skipped. Never raises for a download that fails; that is recorded on its row."""
    ids = await pending_evidence(fetcher.db, fetcher.batch, now_ms=fetcher.clock(), phone=phone)
    if not ids:
        return 0
    gate = asyncio.Semaphore(fetcher.concurrency)

    async def one(evidence_id: int) -> bool:
        async with gate:
            try:
                claim = await claim_evidence(fetcher.db, evidence_id, now_ms=fetcher.clock(),
                                             hold_ms=fetcher.claim_ms)
                if claim is None:
                    return False  # another task or process has it, or it was settled meanwhile
                return await fetch_claimed(fetcher, claim)
            except StorageError as exc:  # the row keeps its state (or its claim, which expires): retried later
                log.warning("Evidencia %d: la base de datos falló (%s); se reintentará", evidence_id, exc)
                return False

    return sum(await asyncio.gather(*(one(i) for i in ids)))


async def fetch_claimed(fetcher: EvidenceFetcher, claim: ClaimedEvidence) -> bool:
    row = claim.evidence
    who = mask_phone(row.phone)
    try:
        stored = await download_to_store(fetcher.api, fetcher.store, claim)
    except MediaRejected as exc:
        await _failed(fetcher, claim, str(exc), final=True)
        return False
    except MediaFetchError as exc:
        await _failed(fetcher, claim, str(exc))
        return False
    except WhatsAppError as exc:
        await _failed(fetcher, claim, f"Graph API: {exc}")
        return False
    except Exception as exc:  # the store (disk, Blob Storage) or anything unforeseen: retried like the rest
        log.exception("Evidencia %s de %s: error inesperado al descargar", row.message_id, who)
        await _failed(fetcher, claim, f"{type(exc).__name__}: {exc}")
        return False
    if not await mark_saved(fetcher.db, claim, path=stored.path, size=stored.size, mime=stored.mime,
                            now_ms=fetcher.clock()):
        # Our claim expired and someone else took the row: they store the same body under the same key.
        log.warning("Evidencia %s de %s: el reclamo expiró antes de marcarla guardada", row.message_id, who)
        return False
    log.info("Evidencia %s de %s guardada (%s, %d bytes)", row.message_id, who, row.kind, stored.size)
    return True


async def _failed(fetcher: EvidenceFetcher, claim: ClaimedEvidence, error: str, *, final: bool = False) -> None:
    row = claim.evidence
    now = fetcher.clock()
    state = await mark_failed(fetcher.db, claim, error=error, max_attempts=fetcher.max_attempts,
                              retry_at_ms=now + fetcher.retry_delay_ms(row.attempts), now_ms=now, final=final)
    who = mask_phone(row.phone)
    if state == EvidenceState.ERROR:
        log.error("Evidencia %s de %s descartada tras %d intento(s): %s", row.message_id, who, row.attempts, error)
    else:
        log.warning("Evidencia %s de %s: intento %d falló (%s); se reintentará", row.message_id, who,
                    row.attempts, error)


async def download_to_store(api: MediaApi, store: EvidenceStore, claim: ClaimedEvidence) -> StoredBody:
    """Graph's media URL, the limits, the streamed body, the digest; the body becomes visible only if all hold."""
    row = claim.evidence
    info = await api.media_info(row.media_id)
    mime = _text(info.get("mime_type")) or row.mime
    declared_size = info.get("file_size")
    check_declared(row.kind, mime, int(declared_size) if isinstance(declared_size, int | str)
                   and str(declared_size).isdigit() else None)
    url = _text(info.get("url"))
    if not url:
        raise MediaFetchError("Graph API no devolvió la URL de descarga")
    # The webhook's digest is the one that matters (Graph's own answer could come from a replaced body).
    expected = row.sha256 or _text(info.get("sha256"))
    upload = store.begin(evidence_key(row.phone, row.id, row.message_id, extension(mime, row.filename)), mime)
    try:
        size, digest, head = await _stream(api, url, upload, LIMITS[row.kind].max_bytes, row.kind)
        if row.kind == "sticker":
            check_sticker(size, head)
        if expected and not digest_matches(expected, digest):
            raise DigestMismatch(f"el SHA-256 del cuerpo ({digest.hex()[:16]}…) no coincide con el declarado")
        path = await upload.commit()
    except BaseException:
        await upload.abort()
        raise
    return StoredBody(path=path, size=size, mime=mime)


async def _stream(api: MediaApi, url: str, upload: EvidenceUpload, max_bytes: int,
                  kind: str) -> tuple[int, bytes, bytes]:
    hasher = hashlib.sha256()
    size = 0
    head = b""
    async with api.open(url) as body:
        async for chunk in body.iter_chunked(CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:  # stop reading at once: never take in more than the limit
                raise MediaRejected(f"{kind} excede el límite de {max_bytes} bytes al descargarlo")
            if len(head) < STICKER_HEAD_BYTES:
                head += chunk[: STICKER_HEAD_BYTES - len(head)]
            hasher.update(chunk)
            await upload.write(chunk)
    return size, hasher.digest(), head


async def download_bytes(api: MediaApi, media_id: str, *, kind: str, declared_sha256: str | None,
                         mime: str | None = None) -> tuple[bytes, str | None]:
    """A small body in memory (a voice note to transcribe), with the same checks; answers (body, mime)."""
    info = await api.media_info(media_id)
    mime = _text(info.get("mime_type")) or mime
    check_declared(kind, mime, None)
    url = _text(info.get("url"))
    if not url:
        raise MediaFetchError("Graph API no devolvió la URL de descarga")
    buffer = _Buffer()
    _, digest, _ = await _stream(api, url, buffer, LIMITS[kind].max_bytes, kind)
    expected = declared_sha256 or _text(info.get("sha256"))
    if expected and not digest_matches(expected, digest):
        raise DigestMismatch("el SHA-256 del cuerpo no coincide con el declarado")
    return bytes(buffer.data), mime


class _Buffer:
    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, chunk: bytes) -> None:
        self.data += chunk

    async def commit(self) -> str:
        return ""

    async def abort(self) -> None:
        self.data.clear()


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None
