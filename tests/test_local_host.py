"""The local host as a real OS process: start-up, /api/health, and one clear line for bad settings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT, base_env, free_port


def _env(db: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "SQL"))}
    env.update(base_env(db, **extra))
    return env


def start_host(db: Path, port: int, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "local_host", "--port", str(port), "--no-timers"],
        cwd=ROOT, env=_env(db, **extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_ready(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"host exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("host did not start")


def test_health_on_a_fresh_database(tmp_path: Path) -> None:
    port = free_port()
    proc = start_host(tmp_path / "fresh" / "bot.sqlite3", port)
    try:
        response = wait_ready(f"http://127.0.0.1:{port}/api/health", proc)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok" and body["backend"] == "sqlite" and body["schema_version"] >= 1
        assert httpx.get(f"http://127.0.0.1:{port}/api/nope").status_code == 404
    finally:
        proc.terminate()
        proc.wait(10)


def test_bad_setting_stops_startup_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "local_host", "--port", str(free_port())],
        cwd=ROOT, env=_env(tmp_path / "x.sqlite3", LOCK_TIMEOUT="soon"), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == ["local_host: Configuración inválida: LOCK_TIMEOUT debe ser un número entero; se recibió 'soon'"]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_local_host_runs_the_queue_worker_end_to_end(tmp_path: Path) -> None:
    """A signed POST is acknowledged, the in-process queue trigger answers it, and the queue shows up in
    the console state and in /api/metrics."""
    from tests.webhook_helpers import encode, signed_headers, text_payload

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_host(tmp_path / "bot.sqlite3", port, WHATSAPP_API_BASE_URL=f"{base}/_fake_graph/v23.0")
    phone = "5215512340000"
    try:
        wait_ready(base + "/api/health", proc)
        body = encode(text_payload("wamid.LOCALQ1", phone, "Hola, el refrigerador no enfría"))
        ack = httpx.post(base + "/api/whatsapp/webhook", content=body, headers=signed_headers(body))
        assert (ack.status_code, ack.text) == (200, "EVENT_RECEIVED")
        deadline = time.monotonic() + 20
        state: dict = {}
        while time.monotonic() < deadline:
            state = httpx.get(base + "/_console/api/state", params={"user": phone}).json()
            if any(t["side"] == "bot" for t in state["thread"]) and not state["queue"]["in_flight"]:
                break
            time.sleep(0.1)
        assert [t["side"] for t in state["thread"]] == ["bot"]
        assert state["queue"] == {"name": "conversaciones-pendientes", "depth": 0, "in_flight": 0, "poison": 0}
        metrics = httpx.get(base + "/api/metrics").text
        assert 'handoff_queue_depth{queue="conversaciones-pendientes"} 0.0' in metrics
        assert "reply_latency_seconds_count 1.0" in metrics and "queue_wait_seconds_count 1.0" in metrics
        assert 'handoff_total{origin="webhook",outcome="ok"} 1.0' in metrics
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert "conversation_worker: cola conversaciones-pendientes (en memoria)" in out


def test_body_limits_are_enforced_while_reading(tmp_path: Path) -> None:
    """A 10 MB POST is refused at the 3 MiB cap without being read whole; a declared body that never
    comes gets 408 instead of holding the connection forever."""
    import socket

    from local_host.server import BODY_READ_TIMEOUT_S

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_host(tmp_path / "bot.sqlite3", port)
    try:
        wait_ready(base + "/api/health", proc)
        huge = b'{"x": "' + b"a" * (10 * 1024 * 1024) + b'"}'
        try:
            status = httpx.post(base + "/api/whatsapp/webhook", content=huge, timeout=30).status_code
        except httpx.TransportError:  # the server may close the connection before the upload ends
            status = 413
        assert status == 413
        with socket.create_connection(("127.0.0.1", port), timeout=BODY_READ_TIMEOUT_S + 10) as sock:
            sock.sendall(b"POST /api/whatsapp/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"partial\":")
            started = time.monotonic()
            answer = sock.recv(200)
        assert answer.startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < BODY_READ_TIMEOUT_S + 5
        assert httpx.get(base + "/api/health").status_code == 200  # still serving
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_busy_port_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "local_host", "--port", str(port)], cwd=ROOT,
                              env=_env(tmp_path / "x.sqlite3"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""  # no URL printed for a host that is not serving
    (line,) = proc.stderr.strip().splitlines()
    assert f"el puerto {port} ya está en uso" in line and "--port" in line


def test_the_fake_graph_url_follows_the_port(tmp_path: Path) -> None:
    """The example settings point replies at 7071; served on another port, replies must come here."""
    from tests.webhook_helpers import encode, signed_headers, text_payload

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_host(tmp_path / "bot.sqlite3", port, WHATSAPP_API_BASE_URL="http://127.0.0.1:7071/_fake_graph/v23.0")
    phone = "5215512340077"
    try:
        wait_ready(base + "/api/health", proc)
        assert httpx.get(base + "/_console/api/config").json()["fake_graph"] is True
        body = encode(text_payload("wamid.PORT1", phone, "Hola, el refrigerador no enfría"))
        assert httpx.post(base + "/api/whatsapp/webhook", content=body, headers=signed_headers(body)).status_code == 200
        deadline = time.monotonic() + 20
        thread: list = []
        while time.monotonic() < deadline and not thread:
            thread = [t for t in httpx.get(base + "/_console/api/state", params={"user": phone}).json()["thread"]
                      if t["side"] == "bot"]
            time.sleep(0.1)
        assert thread
    finally:
        proc.terminate()
        proc.wait(10)


def test_monitoring_alerts_help_writes_nothing() -> None:
    alerts = ROOT / "monitoring" / "alerts.json"
    before = alerts.stat().st_mtime_ns
    out = subprocess.run([sys.executable, "-m", "monitoring.alerts", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "usage" in out.stdout and alerts.stat().st_mtime_ns == before
    check = subprocess.run([sys.executable, "-m", "monitoring.alerts", "--check"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0 and "up to date" in check.stdout
