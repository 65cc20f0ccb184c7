"""`X-Hub-Signature-256`: `sha256=<hex>` HMAC-SHA256 of the raw request body, keyed with the app secret.

Checked on the exact bytes received, before any parsing, with a constant-time comparison.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "x-hub-signature-256"
_PREFIX = "sha256="


def sign_body(secret: str, body: bytes) -> str:
    """The header value Meta would send for `body` (tests and benches sign with this too)."""
    return _PREFIX + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """True only for a well-formed `sha256=<hex>` header matching `body`. Never raises."""
    if not secret or not header or not isinstance(header, str):
        return False
    header = header.strip()
    if header[: len(_PREFIX)].lower() != _PREFIX:
        return False
    given = header[len(_PREFIX):].lower().encode("utf-8", "replace")  # compare_digest refuses non-ASCII str
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest().encode("ascii")
    return hmac.compare_digest(expected, given)
