"""The real Azure Monitor exporter, pointed at a loopback ingestion endpoint, in a child process.

Proves per export plan (core/telemetry.azure_monitor_plan) that each log line reaches `traces` at most
once, with its custom dimensions; that exceptions, outbound HTTP dependencies and the registry's
counters and database gauges reach Application Insights; and that no secret or phone is in any item.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.telemetry import mask_wamid
from tests.conftest import ROOT, base_env
from tests.fake_ingestion import FakeIngestion

ACCESS_TOKEN = "EAAGm0PX4ZCpsBProbeAccessToken0009"
APP_SECRET = "probe-app-secret-0010"


def run_probe(tmp_path: Path, ingestion: FakeIngestion, **extra: str) -> str:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WHATSAPP_", "SQL", "APPLICATIONINSIGHTS", "PYTHON_", "FUNCTIONS_", "OTEL_"))}
    env.update(base_env(tmp_path / "probe.sqlite3", WHATSAPP_ACCESS_TOKEN=ACCESS_TOKEN, WHATSAPP_APP_SECRET=APP_SECRET))
    env.update({
        "APPLICATIONINSIGHTS_CONNECTION_STRING": (
            f"InstrumentationKey=00000000-1111-2222-3333-444444444444;IngestionEndpoint={ingestion.url}"
        ),
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        # The distro's default sampler lets 5 spans/s through and may drop the very first one; keep all here.
        "OTEL_TRACES_SAMPLER": "microsoft.fixed_percentage",
        "OTEL_TRACES_SAMPLER_ARG": "1.0",
        "TMPDIR": str(tmp_path),
    })
    env.update(extra)
    proc = subprocess.run([sys.executable, "-m", "tests.azure_monitor_probe", ingestion.url], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return next(line.split("=", 1)[1] for line in proc.stdout.splitlines() if line.startswith("PLAN="))


def traces_with(ingestion: FakeIngestion, token: str) -> list[dict]:
    return [i["data"]["baseData"] for i in ingestion.of_type("Message") if token in i["data"]["baseData"]["message"]]


def assert_no_secret(ingestion: FakeIngestion) -> None:
    everything = "\n".join(ingestion.raw)
    assert ACCESS_TOKEN not in everything and APP_SECRET not in everything
    assert "5215512345678" not in everything


def assert_metrics_and_dependencies(ingestion: FakeIngestion) -> None:
    assert sum(p["value"] for p in ingestion.metric("lease_busy_total")) == 1  # the probe emits one busy lease
    assert sum(p["value"] for p in ingestion.metric("duplicate_deliveries_total")) == 1
    # gauges: one point per export (the flush, then the exit's final collection), always the same value
    outbox = ingestion.metric("outbox_backlog")
    assert outbox and {(p["value"], p["properties"].get("estado")) for p in outbox} == {(2, "error")}
    locks = ingestion.metric("thread_locks_active")
    assert locks and {p["value"] for p in locks} == {3}
    deps = [i["data"]["baseData"] for i in ingestion.of_type("RemoteDependency")]
    graph = [d for d in deps if "/graph" in d.get("data", "")]
    assert len(graph) == 1 and "access_token=***" in graph[0]["data"]
    gemini = [d for d in deps if "/gemini/" in d.get("data", "")]
    assert gemini and "generateContent" in gemini[0]["data"]  # Gemini's call is traced too


def otel_host(tmp_path: Path) -> str:
    """A copy of the app's host.json switched to the host's OpenTelemetry mode."""
    root = tmp_path / "otel-host"
    root.mkdir()
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    host["telemetryMode"] = "OpenTelemetry"
    (root / "host.json").write_text(json.dumps(host), encoding="utf-8")
    return str(root)


@pytest.mark.parametrize("where", ["local", "functions-opentelemetry-host"])
def test_full_plan_exports_logs_once_with_dimensions(tmp_path: Path, where: str) -> None:
    extra = {} if where == "local" else {"FUNCTIONS_WORKER_RUNTIME": "python", "PYTHON_ENABLE_OPENTELEMETRY": "true",
                                         "AzureWebJobsScriptRoot": otel_host(tmp_path)}
    with FakeIngestion() as ingestion:
        assert run_probe(tmp_path, ingestion, **extra) == "full"
    busy = traces_with(ingestion, "THREAD_LOCK_BUSY")
    assert len(busy) == 1
    assert busy[0]["properties"]["telefono"] == "*********5678"
    dup = traces_with(ingestion, f"Mensaje duplicado detectado (MERGE): {mask_wamid('wamid.PROBE0001')}, reintento #2")
    assert len(dup) == 1 and dup[0]["properties"]["reintento"] == "2"
    exceptions = [i["data"]["baseData"]["exceptions"][0] for i in ingestion.of_type("Exception")]
    assert [e["typeName"] for e in exceptions] == ["RuntimeError"]
    assert "Graph API rejected token ***" in exceptions[0]["stack"]
    assert_metrics_and_dependencies(ingestion)
    assert_no_secret(ingestion)


def test_classic_functions_host_gets_the_logs_so_we_export_none(tmp_path: Path) -> None:
    # Without PYTHON_ENABLE_OPENTELEMETRY the host relays every record to `traces` itself.
    with FakeIngestion() as ingestion:
        assert run_probe(tmp_path, ingestion, FUNCTIONS_WORKER_RUNTIME="python") == "no-logs"
    assert ingestion.of_type("Message") == [] and ingestion.of_type("Exception") == []
    assert_metrics_and_dependencies(ingestion)
    assert_no_secret(ingestion)


@pytest.mark.parametrize("worker_setting", ["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"])
def test_worker_configured_distro_is_not_configured_twice(tmp_path: Path, worker_setting: str) -> None:
    with FakeIngestion() as ingestion:
        plan = run_probe(tmp_path, ingestion, FUNCTIONS_WORKER_RUNTIME="python", PROBE_WORKER_PRECONFIGURE="1",
                         AzureWebJobsScriptRoot=otel_host(tmp_path), **{worker_setting: "true"})
    assert plan == "worker"
    assert len(traces_with(ingestion, "THREAD_LOCK_BUSY")) == 1  # one handler, one line
    assert_metrics_and_dependencies(ingestion)
    assert_no_secret(ingestion)
    json.dumps(ingestion.items)  # every item was valid JSON on the wire


def test_a_malformed_connection_string_does_not_stop_the_app(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WHATSAPP_", "SQL", "APPLICATIONINSIGHTS", "PYTHON_", "FUNCTIONS_", "OTEL_"))}
    env.update(base_env(tmp_path / "x.sqlite3", APPLICATIONINSIGHTS_CONNECTION_STRING="not-a-connection-string"))
    code = ("from core.settings import load_settings; from core.telemetry import configure_telemetry;"
            "print('PLAN=' + configure_telemetry(load_settings(), enable_live_metrics=False))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "PLAN=off" in proc.stdout
    assert "Azure Monitor no se pudo configurar (ValueError" in proc.stderr
