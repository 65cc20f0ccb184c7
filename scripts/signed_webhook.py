"""POST a WhatsApp webhook payload signed like Meta signs it: the deploy smoke test (docs/operations.md).

    WHATSAPP_APP_SECRET=... python scripts/signed_webhook.py \
        https://<app>.azurewebsites.net/api/whatsapp/webhook --fixture text_message.json --fresh-id

The body is sent byte for byte as signed (`X-Hub-Signature-256: sha256=<HMAC-SHA256 hex>`). With
`--fresh-id` every message gets a new wamid and the current timestamp, so the run is a new delivery
rather than a duplicate of the last smoke test. `--bad-signature` checks the 401 path (nothing is
written). Exit status 0 when the answer is the expected one (200, or 401 with --bad-signature).
Only the standard library and httpx (already a dependency) are used; the secret is read from the
environment so it never lands in shell history.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DIRS = (ROOT / "tests" / "fixtures" / "whatsapp",)


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def find_fixture(name: str) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    for folder in FIXTURE_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise SystemExit(f"signed_webhook: fixture {name!r} not found (looked in {', '.join(map(str, FIXTURE_DIRS))})")


def refresh_ids(payload: dict, now: int | None = None) -> dict:
    """New wamid and timestamp for every message, so the smoke test is a new delivery."""
    now = int(time.time()) if now is None else now
    for entry in payload.get("entry", []):
        for change in entry.get("changes", []):
            for message in change.get("value", {}).get("messages", []) or []:
                message["id"] = f"wamid.smoke-{uuid.uuid4().hex}"
                message["timestamp"] = str(now)
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="webhook URL, e.g. http://127.0.0.1:7071/api/whatsapp/webhook")
    parser.add_argument("--fixture", default="text_message.json", help="file name in the fixtures folder, or a path")
    parser.add_argument("--fresh-id", action="store_true", help="new wamid/timestamp per message")
    parser.add_argument("--bad-signature", action="store_true", help="sign with a wrong secret; expect 401")
    parser.add_argument("--timeout", type=float, default=15.0)
    args = parser.parse_args(argv)

    secret = os.environ.get("WHATSAPP_APP_SECRET", "")
    if not secret:
        print("signed_webhook: set WHATSAPP_APP_SECRET in the environment", file=sys.stderr)
        return 2
    raw = find_fixture(args.fixture).read_bytes()
    body = json.dumps(refresh_ids(json.loads(raw)), ensure_ascii=False).encode("utf-8") if args.fresh_id else raw
    signature = sign(body, secret + "-wrong" if args.bad_signature else secret)
    started = time.perf_counter()
    try:
        response = httpx.post(
            args.url, content=body, timeout=args.timeout,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
        )
    except httpx.HTTPError as exc:
        print(f"signed_webhook: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    elapsed_ms = (time.perf_counter() - started) * 1000
    expected = 401 if args.bad_signature else 200
    print(f"{response.status_code} in {elapsed_ms:.0f} ms (expected {expected}) {response.text[:200]}")
    return 0 if response.status_code == expected else 1


if __name__ == "__main__":
    sys.exit(main())
