"""WhatsApp's limits for inbound media, and the checks a downloaded body must pass before it is kept.

Sizes and types as the Cloud API documents them: image 5 MB (jpeg, png); audio 16 MB (aac, amr, mp3,
m4a, ogg; voice notes are ogg/opus); video 16 MB (mp4, 3gpp); document 100 MB (any type); sticker
webp, 100 KB static or 500 KB animated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

MB = 1024 * 1024
KB = 1024
STATIC_STICKER_MAX = 100 * KB


@dataclass(frozen=True, slots=True)
class MediaLimit:
    max_bytes: int
    mime_types: frozenset[str] | None  # None: any type (documents)


LIMITS: dict[str, MediaLimit] = {
    "image": MediaLimit(5 * MB, frozenset({"image/jpeg", "image/png"})),
    "audio": MediaLimit(16 * MB, frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"})),
    "video": MediaLimit(16 * MB, frozenset({"video/mp4", "video/3gpp"})),
    "document": MediaLimit(100 * MB, None),
    "sticker": MediaLimit(500 * KB, frozenset({"image/webp"})),
}

EXTENSIONS = {
    "image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "audio/aac": ".aac", "audio/amr": ".amr",
    "audio/mpeg": ".mp3", "audio/mp4": ".m4a", "audio/ogg": ".ogg", "video/mp4": ".mp4", "video/3gpp": ".3gp",
    "application/pdf": ".pdf",
}


class MediaRejected(Exception):
    """The body can never be right (too big, a type WhatsApp does not allow, a digest that differs)."""


def base_mime(mime: str | None) -> str:
    """`audio/ogg; codecs=opus` -> `audio/ogg`."""
    return (mime or "").split(";", 1)[0].strip().lower()


def check_declared(kind: str, mime: str | None, size: int | None) -> None:
    """Before downloading: the type and size Meta declares must be within WhatsApp's limits."""
    limit = LIMITS.get(kind)
    if limit is None:
        raise MediaRejected(f"tipo de evidencia desconocido: {kind}")
    if limit.mime_types is not None and base_mime(mime) not in limit.mime_types:
        raise MediaRejected(f"tipo MIME no permitido para {kind}: {mime or 'ninguno'}")
    if size is not None and size > limit.max_bytes:
        raise MediaRejected(f"{kind} de {size} bytes excede el límite de {limit.max_bytes}")


def check_sticker(size: int, head: bytes) -> None:
    """A static sticker may have 100 KB; only an animated one (WebP VP8X with the animation flag) 500 KB."""
    animated = len(head) > 20 and head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and bool(head[20] & 0x02)
    if not animated and size > STATIC_STICKER_MAX:
        raise MediaRejected(f"sticker estático de {size} bytes excede el límite de {STATIC_STICKER_MAX}")


def digest_matches(declared: str, digest: bytes) -> bool:
    """Meta writes a body's SHA-256 as hex in some places and base64 in others: accept either."""
    value = declared.strip()
    if value.lower() == digest.hex():
        return True
    try:
        padded = value + "=" * (-len(value) % 4)
        decoded = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return False
    return decoded == digest


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def extension(mime: str | None, filename: str | None = None) -> str:
    if filename and "." in filename:
        ext = "." + filename.rsplit(".", 1)[1].lower()
        if ext[1:].isalnum() and len(ext) <= 8:
            return ext
    return EXTENSIONS.get(base_mime(mime), ".bin")
