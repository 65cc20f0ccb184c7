"""Run in a child process by tests/test_azure_monitor.py: set telemetry up as the app does, emit one of
each kind of telemetry, flush, exit. OpenTelemetry providers are process-global, hence the process.

`python -m tests.azure_monitor_probe <target url>`; settings come from the environment. With
PROBE_WORKER_PRECONFIGURE=1 it first calls configure_azure_monitor the way the Functions worker does
when PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true.
"""

from __future__ import annotations

import logging
import os
import sys

import httpx


def main(target: str) -> None:
    if os.environ.get("PROBE_WORKER_PRECONFIGURE") == "1":
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(enable_live_metrics=False, disable_offline_storage=True)

    from core import events
    from core.metrics_export import GaugeSample, record_db_stats
    from core.settings import load_settings
    from core.telemetry import configure_telemetry

    settings = load_settings()
    plan = configure_telemetry(settings, enable_live_metrics=False, disable_offline_storage=True)
    events.lock_busy("5215512345678")
    events.duplicate_delivery("wamid.PROBE0001", 2, "5215512345678")
    try:
        raise RuntimeError(f"Graph API rejected token {settings.whatsapp_access_token}")
    except RuntimeError:
        logging.getLogger("bot.probe").exception("envío fallido")
    httpx.get(f"{target}graph?access_token={settings.whatsapp_access_token}", timeout=5)
    gemini_call()
    record_db_stats([GaugeSample("outbox_backlog", 2, (("estado", "error"),)), GaugeSample("thread_locks_active", 3)])

    from opentelemetry import _logs, metrics, trace

    for provider in (trace.get_tracer_provider(), _logs.get_logger_provider(), metrics.get_meter_provider()):
        flush = getattr(provider, "force_flush", None)
        if flush:
            flush()
    print(f"PLAN={plan}", flush=True)


def gemini_call() -> None:
    """One Gemini request through the real SDK client the app builds, to a loopback server answering an empty
    candidate list: its dependency must be recorded (on its own the SDK would pick aiohttp, which nothing
    here traces)."""
    import asyncio
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from core.ai.gemini_provider import GeminiProvider, build_gemini_client
    from core.errors import AIProviderError

    class Gemini(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = b'{"candidates": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gemini)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/gemini"

    async def run() -> None:
        provider = GeminiProvider(build_gemini_client("AIzaProbe", base), "gemini-2.5-flash")
        try:
            await provider.detect_intent("hola")
        except AIProviderError:
            pass
        finally:
            await provider.aclose()

    try:
        asyncio.run(run())
    finally:
        server.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
