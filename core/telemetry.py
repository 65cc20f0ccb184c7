"""Logging and telemetry for the whole app: one setup, event names in the message text, phones masked,
secrets never written anywhere.

Application Insights keeps the message text (with the default Functions logging path `extra=` fields
are dropped), and the operations queries search it, so every event token is written into the message, and
its context twice: as `key=value` at the end of the text (always there) and as custom dimensions
(there when the worker exports through OpenTelemetry). docs/operations.md explains the three export
modes and why none duplicates a log line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from core.settings import Settings

log = logging.getLogger(__name__)

_configured = False
_azure_monitor_mode: str | None = None
_lock = threading.Lock()

# Context keys whose values identify a person: masked by `log_event` whatever the caller passes.
PHONE_KEYS = frozenset({"telefono", "destinatario", "clave", "user_id", "bsuid", "phone"})
# The standard LogRecord attributes: an `extra` key with one of these names would make logging raise.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REDACTED = "***"
# Secret shapes worth hiding even when they are not one of our settings (a key pasted into an error).
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (
        re.compile(
            r"(?i)\b([A-Za-z_-]*(?:token|secret|password|passwd|pwd|api[_-]?key|apikey|key|sig|authorization))"
            r"(['\"]?\s*[=:]\s*)(['\"]?)[^\s&;,'\"]{6,}"
        ),
        r"\1\2\3" + REDACTED,
    ),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), "sk-" + REDACTED),  # OpenAI keys
    (re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"), "AIza" + REDACTED),  # Google API keys
    (re.compile(r"\bEAA[A-Za-z0-9]{30,}"), "EAA" + REDACTED),  # Meta Graph access tokens
)
MIN_SECRET_LENGTH = 6  # shorter setting values would mask ordinary words; the patterns still apply
# Personal data in outside text (Graph errors, status titles, exception messages, payload fields): a run
# of 10-15 digits, optionally with `+`, spaces or dashes, is a phone number until proven otherwise.
_PHONE_RUN = re.compile(r"(?<![\w.#*])\+?\d(?:[ -]?\d){9,14}(?![\w])")
# Meta's wamids are base64 of a payload that starts with the sender's number.
_WAMID = re.compile(r"\bwamid\.[A-Za-z0-9+/=_-]{8,}")
MAX_MESSAGE_CHARS = 4_000  # a log line, whatever a caller or a payload put in it
MAX_FIELD_CHARS = 500  # each custom dimension


def mask_phone(phone: str | None) -> str:
    """Keep the last 4 characters: `5215512345678` -> `*********5678`; BSUIDs the same way. Idempotent."""
    if not phone:
        return "<desconocido>"
    tail = phone[-4:]
    return "*" * min(max(len(phone) - 4, 0), 16) + tail  # bounded: a 1 MB `from` is not a 1 MB line


def mask_wamid(wamid: str | None) -> str:
    """`wamid.` plus 10 hex of its SHA-256: stable (the same message always logs the same id, so lines
    can be joined) and free of the phone number Meta encodes inside the wamid."""
    if not wamid:
        return "<sin-wamid>"
    if wamid.startswith("wamid#"):
        return wamid
    return "wamid#" + hashlib.sha256(wamid.encode("utf-8", "replace")).hexdigest()[:10]


def scrub_personal(text: str) -> str:
    """Mask phone-like digit runs (keeping the last 4) and replace wamids by their stable hash."""
    text = _WAMID.sub(lambda m: mask_wamid(m.group(0)), text)
    return _PHONE_RUN.sub(lambda m: mask_phone(re.sub(r"\D", "", m.group(0))), text)


def bound(text: str, limit: int) -> str:
    """Cut `text` to `limit` characters, saying how much was dropped."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[+{len(text) - limit} caracteres]"


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


# -- secrets -------------------------------------------------------------------------------------


class Redactor:
    """Replaces known secret values and secret-shaped substrings with `***`."""

    def __init__(self) -> None:
        self._values: tuple[str, ...] = ()
        self._exact: re.Pattern[str] | None = None

    def set_secrets(self, values: Iterable[str]) -> None:
        kept = sorted({v for v in values if v and len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._values = tuple(kept)
        self._exact = re.compile("|".join(re.escape(v) for v in kept)) if kept else None

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._values

    def redact(self, text: str) -> str:
        if self._exact is not None:
            text = self._exact.sub(REDACTED, text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


REDACTOR = Redactor()


def secrets_of(settings: Settings) -> list[str]:
    """Every setting value that must never reach a log line, plus the secret parts of connection strings."""
    values = [
        settings.whatsapp_app_secret,
        settings.whatsapp_access_token,
        settings.whatsapp_verify_token,
        settings.openai_api_key,
        settings.gemini_api_key,
    ]
    for conn in (settings.sql_connection_string, settings.applicationinsights_connection_string,
                 settings.azure_webjobs_storage):
        for name, value in connection_string_parts(conn):
            if name.lower() in ("pwd", "password", "instrumentationkey", "accountkey", "sharedaccesskey"):
                values += [value, value.replace("}", "}}")]  # as used, and as written in the string
    return values


def connection_string_parts(conn: str) -> list[tuple[str, str]]:
    """`name=value;...` pairs of an ODBC/Azure connection string. A value in braces may hold `;` and `=`,
    and `}}` inside braces is one `}` (ODBC quoting: `Pwd={p@ss;w0rd}}x}` is the password `p@ss;w0rd}x`)."""
    parts: list[tuple[str, str]] = []
    i, n = 0, len(conn or "")
    while i < n:
        eq = conn.find("=", i)
        if eq < 0:
            break
        name = conn[i:eq].strip().strip(";").strip()
        j = eq + 1
        while j < n and conn[j] == " ":
            j += 1
        if j < n and conn[j] == "{":
            value_chars: list[str] = []
            j += 1
            while j < n:
                if conn[j] == "}":
                    if j + 1 < n and conn[j + 1] == "}":
                        value_chars.append("}")
                        j += 2
                        continue
                    j += 1
                    break
                value_chars.append(conn[j])
                j += 1
            value = "".join(value_chars)
            end = conn.find(";", j)
        else:
            end = conn.find(";", j)
            value = conn[j:end if end >= 0 else n].strip()
        if name:
            parts.append((name, value))
        i = n if end < 0 else end + 1
    return parts


class _RedactedError(Exception):
    """Stands in for an exception whose text carried a secret, so exporters only see the cleaned text."""


_redacted_types: dict[tuple[str, str], type[_RedactedError]] = {}


def _redacted_type(original: type[BaseException] | None) -> type[_RedactedError]:
    """A stand-in class named like the original, so `exceptions | summarize by type` still groups right."""
    name = original.__name__ if original else "Exception"
    module = original.__module__ if original else __name__
    key = (module, name)
    if key not in _redacted_types:
        _redacted_types[key] = type(name, (_RedactedError,), {"__module__": module})
    return _redacted_types[key]


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not hide the line; keep what we can
        message = f"{record.msg!s} {record.args!r}"
    clean = bound(scrub_personal(REDACTOR.redact(message)), MAX_MESSAGE_CHARS)
    record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[1] is not None:
        exc_type, exc, tb = record.exc_info
        full = "".join(traceback.format_exception(exc_type, exc, tb))
        clean_full = scrub_personal(REDACTOR.redact(full))
        if clean_full != full:
            # Same frames, cleaned message; a chained cause cannot be rebuilt, so its cleaned text
            # travels as a note of the stand-in.
            stand_in = _redacted_type(exc_type)
            clean_exc = stand_in(scrub_personal(REDACTOR.redact(str(exc))))
            if exc.__cause__ is not None or exc.__context__ is not None:
                clean_exc.add_note("Cadena original (depurada):\n" + clean_full.rstrip("\n"))
            record.exc_info = (stand_in, clean_exc, tb)
            record.exc_text = clean_full.rstrip("\n")
    if record.stack_info:
        record.stack_info = REDACTOR.redact(record.stack_info)
    for key, value in list(record.__dict__.items()):
        if key not in _RESERVED and isinstance(value, str):
            setattr(record, key, bound(scrub_personal(REDACTOR.redact(value)), MAX_FIELD_CHARS))


_original_make_record: Callable[..., logging.LogRecord] | None = None


def _install_record_redaction() -> None:
    """Clean every record where it is made, before any handler (console, worker, OpenTelemetry) sees it.

    `Logger.makeRecord` is wrapped rather than the record factory, because `extra=` fields are added
    after the factory returns and they reach Application Insights as custom dimensions. The wrap is on
    the class, so loggers created before (the worker's, the SDKs') are covered too.
    """
    global _original_make_record
    if _original_make_record is not None:
        return
    original = logging.Logger.makeRecord
    _original_make_record = original

    def make_record(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = original(self, *args, **kwargs)
        _redact_record(record)
        return record

    logging.Logger.makeRecord = make_record  # type: ignore[method-assign]


class RedactingSpanProcessor:
    """Cleans span attributes (`url.full` of an outbound call, ...) when the span starts.

    The instrumentations set the URL before `on_start`, and the span is still writable there; every
    processor's `on_start` runs before any export, so the order among processors does not matter.
    """

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        attributes = getattr(span, "attributes", None) or {}
        for key, value in list(attributes.items()):
            if isinstance(value, str):
                clean = REDACTOR.redact(value)
                if clean != value:
                    span.set_attribute(key, clean)

    def _on_ending(self, span: Any) -> None:
        return None

    def on_end(self, span: Any) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _add_span_redaction() -> None:
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if hasattr(provider, "add_span_processor"):  # an SDK provider (ours or the worker's), not the no-op proxy
        provider.add_span_processor(RedactingSpanProcessor())


# -- events --------------------------------------------------------------------------------------


def _dimension(key: str, value: object) -> str | int | float | bool:
    if key in PHONE_KEYS and value is not None:
        return mask_phone(str(value))
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def event_context(context: Mapping[str, object]) -> dict[str, str | int | float | bool]:
    """Context as custom dimensions: phones masked, values flattened to what exporters accept."""
    dims: dict[str, str | int | float | bool] = {}
    for key, value in context.items():
        if not _KEY.match(key) or key in _RESERVED:
            raise ValueError(f"context key {key!r} cannot be a log dimension")
        if value is not None:
            dims[key] = _dimension(key, value)
    return dims


def log_event(
    logger: logging.Logger, level: int, event: str, text: str = "", /, *, exc_info: BaseException | None = None,
    **context: object,
) -> dict[str, str | int | float | bool]:
    """Log `EVENT: text | k=v ...` with the context also as custom dimensions; answer the dimensions.

    `event` is the token the KQL searches for (THREAD_LOCK_BUSY, [ConcurrencyRetry], ...). Phone-like
    keys (`telefono`, `destinatario`, `clave`, ...) are masked here, so callers cannot forget. `exc_info`
    adds that exception's traceback to the line.
    """
    dims = event_context(context)
    head = f"{event}: {text}" if text and not event.startswith("[") else f"{event} {text}".rstrip()
    tail = " ".join(f"{k}={v}" for k, v in dims.items())
    logger.log(level, f"{head} | {tail}" if tail else head, extra=dims, exc_info=exc_info)
    return dims


# -- setup ---------------------------------------------------------------------------------------


def _truthy(name: str, env: Mapping[str, str]) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def on_functions_worker(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("FUNCTIONS_WORKER_RUNTIME")) and not env.get("LOCAL_HOST")


APP_ROOT = Path(__file__).resolve().parents[1]


def host_telemetry_mode(env: Mapping[str, str] | None = None) -> str:
    """`telemetryMode` of the app's host.json, lower-cased (`applicationinsights` when absent)."""
    env = os.environ if env is None else env
    root = Path(env.get("AzureWebJobsScriptRoot") or APP_ROOT)
    try:
        host = json.loads((root / "host.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "applicationinsights"
    mode = host.get("telemetryMode") if isinstance(host, dict) else None
    return str(mode or "applicationinsights").lower()


def azure_monitor_plan(env: Mapping[str, str] | None = None, host_mode: str | None = None) -> str:
    """Which part of the Azure Monitor export this process owns (docs/operations.md, "Three export modes").

    On Functions the host relays every worker log record to Application Insights unless BOTH host.json
    says `"telemetryMode": "OpenTelemetry"` AND the worker declares it exports logs itself
    (PYTHON_ENABLE_OPENTELEMETRY or PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY); the classic host
    honours only a capability the Python worker never sends.

    - `off`: no connection string.
    - `worker`: PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true; the Functions worker already called
      configure_azure_monitor before importing the app. Calling it again would export everything twice.
    - `full`: logs, exceptions, metrics and dependencies from here: outside Functions (local host,
      scripts), or on Functions with PYTHON_ENABLE_OPENTELEMETRY=true and an OpenTelemetry host.
    - `no-logs`: the host relays every log record to `traces` itself; we export metrics and
      dependencies only, or each line would arrive twice.
    """
    env = os.environ if env is None else env
    if not env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip():
        return "off"
    if not on_functions_worker(env):
        return "full"
    if _truthy("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", env):
        return "worker"
    host_mode = host_telemetry_mode(env) if host_mode is None else host_mode.lower()
    if _truthy("PYTHON_ENABLE_OPENTELEMETRY", env) and host_mode == "opentelemetry":
        return "full"
    return "no-logs"


def plan_warning(env: Mapping[str, str], host_mode: str) -> str | None:
    """A settings combination that duplicates or loses log lines, in one sentence; None when coherent."""
    if not on_functions_worker(env) or not env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip():
        return None
    worker_otel = _truthy("PYTHON_ENABLE_OPENTELEMETRY", env) or _truthy(
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", env
    )
    if worker_otel and host_mode != "opentelemetry":
        return ("PYTHON_ENABLE_OPENTELEMETRY/PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY sin \"telemetryMode\": "
                "\"OpenTelemetry\" en host.json: el host sigue retransmitiendo los logs (posibles duplicados "
                "con PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY)")
    return None


# Outbound HTTP through httpx (the OpenAI and Gemini SDKs) becomes `dependencies`; Graph API sends go
# through aiohttp and are followed by their own events (OUTBOX_*, REPLY_LATENCY) instead. The rest of the
# distro's instrumentations are off: no web framework here, and `requests`/`urllib3` would also trace
# the exporter's own uploads to the ingestion endpoint.
INSTRUMENTATION_OPTIONS: dict[str, dict[str, bool]] = {
    "httpx": {"enabled": True},
    "azure_sdk": {"enabled": False},
    "django": {"enabled": False},
    "fastapi": {"enabled": False},
    "flask": {"enabled": False},
    "psycopg2": {"enabled": False},
    "requests": {"enabled": False},
    "urllib": {"enabled": False},
    "urllib3": {"enabled": False},
}


def _configure_azure_monitor(connection_string: str, plan: str, **overrides: Any) -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor

    previous = os.environ.get("OTEL_LOGS_EXPORTER")
    if plan == "no-logs":
        # The distro reads this switch (its `disable_logging` keyword is overwritten by it).
        os.environ["OTEL_LOGS_EXPORTER"] = "none"
    try:
        configure_azure_monitor(
            connection_string=connection_string,
            logger_name="",  # the root logger: every module's records, one handler
            instrumentation_options=INSTRUMENTATION_OPTIONS,
            enable_live_metrics=overrides.pop("enable_live_metrics", True),
            **overrides,
        )
    finally:
        if plan == "no-logs":
            if previous is None:
                os.environ.pop("OTEL_LOGS_EXPORTER", None)
            else:
                os.environ["OTEL_LOGS_EXPORTER"] = previous


def configure_logging(level: str | None = None) -> None:
    """Readable console logs locally. Idempotent; on Azure the worker owns the handlers.

    The Functions host captures the worker's stdout/stderr too, so a console handler there would
    write every line twice.
    """
    global _configured
    _install_record_redaction()
    if _configured:
        return
    _configured = True
    root = logging.getLogger()
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO"))
    for noisy in ("azure", "httpx", "httpcore", "aiohttp.access", "openai", "google_genai", "opentelemetry"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if on_functions_worker():
        return  # the Functions worker already forwards logging records to the host
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)


def configure_telemetry(settings: Settings, **azure_monitor_overrides: Any) -> str:
    """Once per process: console logging, secret redaction for `settings`, Azure Monitor export.

    Safe to call again (tests build many runtimes): the secrets are refreshed, the exporters are set
    up only the first time. Answers the Azure Monitor plan in force (see `azure_monitor_plan`).
    """
    global _azure_monitor_mode
    REDACTOR.set_secrets(list(REDACTOR.secrets) + secrets_of(settings))
    configure_logging()
    with _lock:
        if _azure_monitor_mode is not None:
            return _azure_monitor_mode
        env = dict(os.environ)
        env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = settings.applicationinsights_connection_string
        host_mode = host_telemetry_mode(env)
        plan = azure_monitor_plan(env, host_mode)
        warning = plan_warning(env, host_mode)
        if warning:
            log.warning("Telemetría: %s", warning)
        if plan in ("full", "no-logs"):
            try:
                _configure_azure_monitor(
                    settings.applicationinsights_connection_string, plan, **azure_monitor_overrides
                )
            except Exception as exc:  # telemetry must never take the bot down with it
                log.error("Telemetría: Azure Monitor no se pudo configurar (%s: %s); sigue sin exportar",
                          type(exc).__name__, exc, exc_info=True)
                plan = "off"
        if plan != "off":
            from core.metrics_export import install_metrics_bridge

            _add_span_redaction()
            install_metrics_bridge()
        _azure_monitor_mode = plan
    log.info("Telemetría: Azure Monitor %s", plan)
    return plan
