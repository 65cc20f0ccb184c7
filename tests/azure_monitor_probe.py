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
    record_db_stats([GaugeSample("outbox_backlog", 2, (("estado", "error"),)), GaugeSample("thread_locks_active", 3)])

    from opentelemetry import _logs, metrics, trace

    for provider in (trace.get_tracer_provider(), _logs.get_logger_provider(), metrics.get_meter_provider()):
        flush = getattr(provider, "force_flush", None)
        if flush:
            flush()
    print(f"PLAN={plan}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
