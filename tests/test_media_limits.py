"""WhatsApp's media limits and the digest check, as pure functions."""

from __future__ import annotations

import base64
import hashlib

import pytest

from core.media.limits import (
    KB,
    MB,
    MediaRejected,
    base_mime,
    check_declared,
    check_sticker,
    digest_matches,
    extension,
)
from core.media.store import evidence_key


@pytest.mark.parametrize(("kind", "mime", "size"), [
    ("image", "image/jpeg", 5 * MB), ("image", "IMAGE/PNG", 1), ("audio", "audio/ogg; codecs=opus", 16 * MB),
    ("audio", "audio/mpeg", None), ("video", "video/3gpp", 16 * MB), ("document", "application/zip", 100 * MB),
    ("document", None, 1), ("sticker", "image/webp", 500 * KB),
])
def test_within_the_limits(kind: str, mime: str | None, size: int | None) -> None:
    check_declared(kind, mime, size)


@pytest.mark.parametrize(("kind", "mime", "size", "reason"), [
    ("image", "image/jpeg", 5 * MB + 1, "excede el límite"), ("image", "image/gif", 1, "tipo MIME no permitido"),
    ("image", None, 1, "ninguno"), ("audio", "audio/wav", 1, "tipo MIME"), ("video", "video/quicktime", 1, "MIME"),
    ("video", "video/mp4", 16 * MB + 1, "límite"), ("document", "application/pdf", 100 * MB + 1, "límite"),
    ("sticker", "image/png", 1, "MIME"), ("location", "image/png", 1, "desconocido"),
])
def test_outside_the_limits(kind: str, mime: str | None, size: int, reason: str) -> None:
    with pytest.raises(MediaRejected, match=reason):
        check_declared(kind, mime, size)


def test_a_static_sticker_has_100_kb_and_an_animated_one_500() -> None:
    static = b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(16)
    animated = b"RIFF\x00\x00\x00\x00WEBPVP8X" + bytes(4) + b"\x02" + bytes(11)
    check_sticker(100 * KB, static)
    with pytest.raises(MediaRejected, match="sticker estático"):
        check_sticker(100 * KB + 1, static)
    check_sticker(500 * KB, animated)


def test_digests_in_hex_or_base64() -> None:
    digest = hashlib.sha256(b"foto").digest()
    assert digest_matches(digest.hex(), digest) and digest_matches(digest.hex().upper(), digest)
    assert digest_matches(base64.b64encode(digest).decode(), digest)
    assert digest_matches(base64.urlsafe_b64encode(digest).decode().rstrip("="), digest)
    assert not digest_matches(hashlib.sha256(b"otra").hexdigest(), digest)
    assert not digest_matches("no es un digest!", digest) and not digest_matches("", digest)


def test_names_and_extensions() -> None:
    assert base_mime(" Audio/OGG ; codecs=opus") == "audio/ogg" and base_mime(None) == ""
    assert extension("image/jpeg") == ".jpg" and extension("application/x-rara") == ".bin"
    assert extension("application/pdf", "Orden de Servicio.PDF") == ".pdf"
    assert extension("application/pdf", "raro.p d f") == ".pdf"  # a name's odd suffix falls back to the type
    key = evidence_key("MX.88120933", 7, "wamid.HBgM+abc/def==", ".jpg")
    assert key == "MX.88120933/00000007-wamid.HBgM_abc_def==.jpg"
    assert evidence_key("..", 1, "../x", ".bin") == "__/00000001-___x.bin"
    assert ".." not in evidence_key("a/../../etc", 1, "...", "..")
