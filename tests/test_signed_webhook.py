"""scripts/signed_webhook.py, the deploy smoke test, against a loopback receiver that checks signatures
the way the webhook must (HMAC-SHA256 of the raw body with the app secret, constant-time compare)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import APP_SECRET, FIXTURES, ROOT


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            expected = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
            ok = hmac.compare_digest(expected, self.headers.get("X-Hub-Signature-256", ""))
            if ok:
                bodies.append(body)
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/whatsapp/webhook", bodies
    finally:
        server.shutdown()
        server.server_close()


def payload(tmp_path: Path, senders: int = 1) -> Path:
    """A text-message delivery in Meta's shape (the shared fixtures are used too when they are there)."""
    messages = [{"from": f"52155{i:08d}", "id": f"wamid.TEST{i}", "timestamp": "1763900000", "type": "text",
                 "text": {"body": "mi refri no enfría"}} for i in range(senders)]
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "106540352242922"},
        "messages": messages}}]}]}
    path = tmp_path / f"delivery{senders}.json"
    path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    return path


def run(url: str, *args: str, secret: str | None = APP_SECRET) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WHATSAPP_APP_SECRET"}
    if secret is not None:
        env["WHATSAPP_APP_SECRET"] = secret
    return subprocess.run([sys.executable, "scripts/signed_webhook.py", url, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_signed_payload_is_accepted_byte_for_byte(receiver, tmp_path: Path) -> None:
    url, bodies = receiver
    fixture = payload(tmp_path)
    proc = run(url, "--fixture", str(fixture))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("200 in ")
    assert bodies == [fixture.read_bytes()]


@pytest.mark.skipif(not (FIXTURES / "text_message.json").exists(), reason="shared fixtures not beside the repo")
def test_default_fixture_from_the_shared_folder(receiver) -> None:
    url, bodies = receiver
    assert run(url).returncode == 0
    assert bodies == [(FIXTURES / "text_message.json").read_bytes()]


def test_fresh_id_makes_a_new_delivery(receiver, tmp_path: Path) -> None:
    url, bodies = receiver
    assert run(url, "--fresh-id", "--fixture", str(payload(tmp_path))).returncode == 0
    assert run(url, "--fresh-id", "--fixture", str(payload(tmp_path, senders=3))).returncode == 0
    first = json.loads(bodies[0])["entry"][0]["changes"][0]["value"]["messages"][0]
    assert first["id"].startswith("wamid.smoke-") and first["id"] != "wamid.TEST0"
    assert first["timestamp"] != "1763900000"
    ids = [m["id"] for e in json.loads(bodies[1])["entry"] for c in e["changes"] for m in c["value"]["messages"]]
    assert len(ids) == 3 and len(set(ids)) == 3


def test_bad_signature_path_and_wrong_secret(receiver, tmp_path: Path) -> None:
    url, bodies = receiver
    fixture = str(payload(tmp_path))
    assert run(url, "--bad-signature", "--fixture", fixture).returncode == 0  # 401 was expected and came
    wrong = run(url, "--fixture", fixture, secret="not-the-app-secret")
    assert wrong.returncode == 1 and wrong.stdout.startswith("401")
    missing = run(url, "--fixture", fixture, secret=None)
    assert missing.returncode == 2 and "WHATSAPP_APP_SECRET" in missing.stderr
    assert bodies == []
    assert APP_SECRET not in wrong.stdout + wrong.stderr
