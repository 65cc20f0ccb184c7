"""Log events carry their tokens, masked phones, and no secret ever reaches any output.

Secrets are recognizable strings put in the settings; every test greps everything the logging system
produced (caplog records, the formatted console text, exception text) for them.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import events, metrics
from core.settings import Settings, load_settings
from core.telemetry import (
    REDACTOR,
    azure_monitor_plan,
    configure_logging,
    configure_telemetry,
    host_telemetry_mode,
    log_event,
    mask_phone,
    mask_wamid,
    plan_warning,
    secrets_of,
)
from tests.conftest import base_env

PHONE = "5215512345678"
BSUID = "MX.8812093347712650"
SECRETS = {
    "WHATSAPP_APP_SECRET": "appsecret-QWERTY-0001",
    "WHATSAPP_VERIFY_TOKEN": "verifytoken-ASDFG-0002",
    "WHATSAPP_ACCESS_TOKEN": "EAAGm0PX4ZCpsBAAccessTokenZXCVB0003",
    "OPENAI_API_KEY": "sk-proj-openaiKEY0004abcdefghij",
    "GEMINI_API_KEY": "AIzaGeminiKey0005abcdefghijklmnopqrstu",
    "SQL_CONNECTION_STRING": "Driver={ODBC Driver 18 for SQL Server};Server=tcp:x.database.windows.net;"
    "Database=bot;Uid=botuser;Pwd=SqlPassw0rd-0006;Encrypt=yes",
}
SECRET_VALUES = ["appsecret-QWERTY-0001", "verifytoken-ASDFG-0002", "EAAGm0PX4ZCpsBAAccessTokenZXCVB0003",
                 "sk-proj-openaiKEY0004abcdefghij", "AIzaGeminiKey0005abcdefghijklmnopqrstu", "SqlPassw0rd-0006"]


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels or None) or 0.0


@pytest.fixture
def secret_settings(db_path: Path) -> Settings:
    env = base_env(db_path, **SECRETS)
    return load_settings(env)


@pytest.fixture
def captured(
    secret_settings: Settings, caplog: pytest.LogCaptureFixture
) -> Iterator[tuple[pytest.LogCaptureFixture, io.StringIO]]:
    """caplog plus a console handler with the app's own format: both must stay clean."""
    configure_telemetry(secret_settings)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog, stream
    finally:
        root.removeHandler(handler)


def everything(caplog: pytest.LogCaptureFixture, stream: io.StringIO) -> str:
    parts = [stream.getvalue(), caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr({k: v for k, v in record.__dict__.items() if k not in ("exc_info",)}))
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def assert_clean(text: str) -> None:
    for secret in SECRET_VALUES:
        assert secret not in text, f"secret {secret[:8]}... leaked"
    assert PHONE not in text, "an unmasked phone leaked"
    assert BSUID not in text, "an unmasked BSUID leaked"


def test_mask_phone_keeps_last_four_and_is_idempotent() -> None:
    assert mask_phone(PHONE) == "*********5678"
    assert mask_phone(mask_phone(PHONE)) == mask_phone(PHONE)
    assert mask_phone(BSUID) == "*" * (len(BSUID) - 4) + "2650"
    assert mask_phone(None) == "<desconocido>"


def test_every_event_logs_its_token_masked_and_counts(captured) -> None:
    caplog, stream = captured
    before = {
        "race": value("race_errors_total"),
        "retries": value("concurrency_retries_total", operation="updateSession"),
        "dups": value("duplicate_deliveries_total"),
        "timeouts": value("ai_timeouts_total", operation="extractStructuredData"),
        "orphans": value("orphaned_runs_cancelled_total"),
    }
    events.lock_acquired(PHONE, 30_000, 7)
    events.lock_busy(PHONE)
    events.lock_busy(BSUID)
    events.lock_timeout(PHONE, 30_000, 7)
    events.orphaned_runs_recovery_start(300_000)
    events.orphaned_run_cancelled(PHONE, "resp_xyz789", "in_progress", 7 * 60_000, "conv_abc123")
    events.orphaned_runs_recovery_complete(15, 1)
    events.concurrency_retry("updateSession", PHONE, 1, 3, 52)
    events.concurrency_retry("updateSession", PHONE, 2, 3, 108)
    events.concurrency_exhausted("updateSession", PHONE, 3, 4)
    events.ai_timeout("extractStructuredData", 4000, "openai")
    events.breaker_state_changed("openai", "CLOSED", "OPEN", 5)
    events.duplicate_delivery("wamid.HBgLNTIxNTUxMjM0NTY3OBUCABIYFDNB", 3, PHONE)

    messages = [r.getMessage() for r in caplog.records if r.name == "reportes_bot.eventos"]
    expected_starts = [
        "THREAD_LOCK_ACQUIRED: ", "THREAD_LOCK_BUSY: ", "THREAD_LOCK_BUSY: ", "THREAD_LOCK_TIMEOUT: ",
        "ORPHANED_RUNS_RECOVERY_START: ", "ORPHANED_RUN_CANCELLED: ", "ORPHANED_RUNS_RECOVERY_COMPLETE: ",
        "[ConcurrencyRetry] updateSession(*********5678) - Intento 1/3 falló, reintentando en 52ms",
        "[ConcurrencyRetry] updateSession(*********5678) - Intento 2/3 falló, reintentando en 108ms",
        "ConcurrencyError: ", "[Timeout] extractStructuredData excedió 4000ms, usando fallback",
        "[CircuitBreaker] State changed CLOSED -> OPEN",
        f"Mensaje duplicado detectado (MERGE): {mask_wamid('wamid.HBgLNTIxNTUxMjM0NTY3OBUCABIYFDNB')}, reintento #3",
    ]
    assert len(messages) == len(expected_starts)
    for message, start in zip(messages, expected_starts, strict=True):
        assert message.startswith(start), message
    # context is in the text (the classic Functions path keeps only the text) and in the dimensions
    busy = [r for r in caplog.records if r.getMessage().startswith("THREAD_LOCK_BUSY")]
    assert busy[0].telefono == "*********5678" and "telefono=*********5678" in busy[0].getMessage()
    assert busy[1].telefono.endswith("2650") and BSUID not in busy[1].getMessage()
    assert busy[0].levelno == logging.WARNING
    orphan = next(r for r in caplog.records if r.getMessage().startswith("ORPHANED_RUN_CANCELLED"))
    assert orphan.runId == "resp_xyz789" and orphan.ageMinutes == 7 and orphan.status == "in_progress"
    complete = next(r for r in caplog.records if r.getMessage().startswith("ORPHANED_RUNS_RECOVERY_COMPLETE"))
    assert "runsChecked=15" in complete.getMessage() and "runsCancelled=1" in complete.getMessage()
    # the counters moved by exactly what happened
    assert value("race_errors_total") - before["race"] == 1  # the timeout (the two busy leases count apart)
    assert value("concurrency_retries_total", operation="updateSession") - before["retries"] == 2
    assert value("duplicate_deliveries_total") - before["dups"] == 1
    assert value("ai_timeouts_total", operation="extractStructuredData") - before["timeouts"] == 1
    assert value("orphaned_runs_cancelled_total") - before["orphans"] == 1
    assert value("circuit_breaker_state", provider="openai") == 2
    events.breaker_state_changed("openai", "OPEN", "HALF_OPEN")
    assert value("circuit_breaker_state", provider="openai") == 1
    assert_clean(everything(caplog, stream))


def test_secrets_are_redacted_from_messages_args_extras_and_exceptions(captured, secret_settings: Settings) -> None:
    caplog, stream = captured
    log = logging.getLogger("some.module")
    log.info("token=%s", secret_settings.whatsapp_access_token)
    log.warning("calling https://graph.facebook.com/v23.0/me?access_token=%s", secret_settings.whatsapp_access_token)
    log.error("openai said: invalid key %s", secret_settings.openai_api_key)
    log.info("headers %s", {"Authorization": f"Bearer {secret_settings.whatsapp_access_token}"})
    log.info("connecting with %s", secret_settings.sql_connection_string)
    log.info("ctx", extra={"detalle": f"secret is {secret_settings.whatsapp_app_secret}"})
    log.info("gemini %s and verify %s", secret_settings.gemini_api_key, secret_settings.whatsapp_verify_token)
    try:
        try:
            raise KeyError(secret_settings.openai_api_key)
        except KeyError as inner:
            raise RuntimeError(f"upstream rejected {secret_settings.whatsapp_app_secret}") from inner
    except RuntimeError:
        log.exception("falló la llamada")
    text = everything(caplog, stream)
    assert_clean(text)
    assert "***" in text
    failed = next(r for r in caplog.records if r.getMessage() == "falló la llamada")
    assert failed.exc_info[0].__name__ == "RuntimeError"  # type kept for `exceptions | summarize by type`
    assert "upstream rejected ***" in stream.getvalue()
    assert "KeyError" in stream.getvalue()  # the chained cause survives, cleaned


def test_a_short_or_empty_secret_masks_nothing_else(captured) -> None:
    caplog, _stream = captured
    logging.getLogger("x").info("estado INICIO -> REFRI_ESPERA_SAP, equipo 10004512")
    assert caplog.records[-1].getMessage() == "estado INICIO -> REFRI_ESPERA_SAP, equipo 10004512"


def test_secrets_of_takes_the_secret_parts_of_connection_strings(secret_settings: Settings) -> None:
    values = secrets_of(secret_settings)
    assert "SqlPassw0rd-0006" in values and SECRETS["WHATSAPP_APP_SECRET"] in values
    assert "botuser" not in values  # only the secret part of the connection string
    configure_telemetry(secret_settings)
    assert set(SECRET_VALUES) <= set(REDACTOR.secrets)


def test_log_event_rejects_a_reserved_key(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="message"):
        log_event(logging.getLogger("x"), logging.INFO, "EVENTO", message="boom")
    caplog.set_level(logging.WARNING)
    events.ai_timeout("detectIntent.openai", 3000, provider="openai")  # the KQL reads the operation back with \w+
    assert "[Timeout] detectIntent excedió 3000ms, usando fallback" in caplog.text
    with pytest.raises(ValueError):
        events.breaker_state_changed("openai", "CLOSED", "BROKEN")


CS = {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}
FN = {**CS, "FUNCTIONS_WORKER_RUNTIME": "python"}


@pytest.mark.parametrize(
    ("env", "host_mode", "plan", "warns"),
    [
        ({}, "applicationinsights", "off", False),
        (CS, "applicationinsights", "full", False),  # local host, scripts
        ({**FN, "LOCAL_HOST": "1"}, "applicationinsights", "full", False),
        (FN, "applicationinsights", "no-logs", False),  # the default on Azure
        (FN, "opentelemetry", "no-logs", False),  # the host's OpenTelemetry relays our records
        ({**FN, "PYTHON_ENABLE_OPENTELEMETRY": "true"}, "opentelemetry", "full", False),
        ({**FN, "PYTHON_ENABLE_OPENTELEMETRY": "true"}, "applicationinsights", "no-logs", True),
        ({**FN, "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true"}, "opentelemetry", "worker", False),
        ({**FN, "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true"}, "applicationinsights", "worker", True),
    ],
)
def test_azure_monitor_plan(env: dict[str, str], host_mode: str, plan: str, warns: bool) -> None:
    assert azure_monitor_plan(env, host_mode) == plan
    assert (plan_warning(env, host_mode) is not None) == warns


def test_host_json_telemetry_mode_is_read(tmp_path: Path) -> None:
    assert host_telemetry_mode({}) == "applicationinsights"  # the shipped host.json: classic
    (tmp_path / "host.json").write_text('{"version": "2.0", "telemetryMode": "OpenTelemetry"}')
    assert host_telemetry_mode({"AzureWebJobsScriptRoot": str(tmp_path)}) == "opentelemetry"
    assert azure_monitor_plan({**FN, "PYTHON_ENABLE_OPENTELEMETRY": "1", "AzureWebJobsScriptRoot": str(tmp_path)}) \
        == "full"


def test_configure_logging_is_idempotent() -> None:
    configure_logging()
    handlers = list(logging.getLogger().handlers)
    configure_logging()
    assert logging.getLogger().handlers == handlers

