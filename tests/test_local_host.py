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
    assert lines == ["local_host: Configuración inválida: LOCK_TIMEOUT must be an integer, got 'soon'"]
    assert "Traceback" not in proc.stdout + proc.stderr
