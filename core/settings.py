"""App settings, read once from the environment (app settings on Azure, local.settings.json locally).

A missing or malformed setting raises `SettingsError` naming it; hosts turn that into one clear line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.azure_storage import StorageConnection, read_storage_connection
from core.errors import SettingsError

GRAPH_API_DEFAULT = "https://graph.facebook.com/v23.0"
AI_PROVIDERS = ("offline", "openai", "gemini")
# One message's worst case (detect 3 s + extract 4 s + interpret 3 s + ask 1.5 s, plus margin) is 13.5 s:
# a worker budget below this could never start a message.
WORKER_BUDGET_MIN_MS = 15_000


def _text(env: Mapping[str, str], name: str, default: str | None = None, *, required: bool = False) -> str:
    value = env.get(name, "").strip()
    if value:
        return value
    if required:
        raise SettingsError(name, "es obligatoria y no está definida")
    return default or ""


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(name, f"debe ser un número entero; se recibió {raw!r}") from None
    if value < minimum:
        raise SettingsError(name, f"debe ser >= {minimum}; se recibió {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(name, f"debe ser true o false; se recibió {raw!r}")


def _providers(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("AI_PROVIDER", "").strip() or "offline"
    names = tuple(p.strip().lower() for p in raw.split(",") if p.strip())
    unknown = [p for p in names if p not in AI_PROVIDERS]
    if not names or unknown:
        raise SettingsError("AI_PROVIDER",
                            f"debe ser una lista separada por comas de {', '.join(AI_PROVIDERS)}; se recibió {raw!r}")
    return names


def _served_numbers(env: Mapping[str, str], default: str) -> tuple[str, ...]:
    raw = env.get("WHATSAPP_PHONE_NUMBER_IDS", "").strip()
    if not raw:
        return (default,)
    numbers = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    bad = [n for n in numbers if not (n.isascii() and n.isdigit())]
    if not numbers or bad:
        raise SettingsError("WHATSAPP_PHONE_NUMBER_IDS",
                            f"debe ser una lista de ids numéricos separados por comas; se recibió {raw!r}")
    return numbers


_TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")  # what Meta accepts as a template name
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")  # es, es_MX, en_US
_TEMPLATE_WHAT = "un nombre de plantilla de WhatsApp (minúsculas, dígitos y _)"


def _notify_numbers(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("REPORT_NOTIFY_NUMBERS", "").strip()
    numbers = tuple(dict.fromkeys(n.strip().lstrip("+").replace(" ", "") for n in raw.split(",") if n.strip()))
    bad = [n for n in numbers if not (n.isascii() and n.isdigit() and 8 <= len(n) <= 15)]
    if bad:
        raise SettingsError("REPORT_NOTIFY_NUMBERS",
                            f"debe ser una lista de teléfonos (8 a 15 dígitos) separados por comas; se recibió {raw!r}")
    return numbers


def _pattern(env: Mapping[str, str], name: str, default: str, pattern: re.Pattern[str], what: str) -> str:
    value = _text(env, name, default)
    if not pattern.match(value):
        raise SettingsError(name, f"debe ser {what}; se recibió {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    whatsapp_app_secret: str = field(repr=False)
    whatsapp_verify_token: str = field(repr=False)
    whatsapp_access_token: str = field(default="", repr=False)  # a repr lands in tracebacks and logs
    whatsapp_phone_number_id: str = "000000000000000"
    # The business numbers whose webhooks are served (replies go out from `whatsapp_phone_number_id`).
    served_phone_number_ids: tuple[str, ...] = ()
    whatsapp_api_base_url: str = GRAPH_API_DEFAULT
    sql_connection_string: str = ""
    sqlite_path: str = ".data/bot.sqlite3"
    ai_providers: tuple[str, ...] = ("offline",)
    openai_api_key: str = field(default="", repr=False)
    openai_base_url: str = ""
    openai_model: str = "gpt-4.1-mini"
    gemini_api_key: str = field(default="", repr=False)
    gemini_base_url: str = ""
    gemini_model: str = "gemini-2.5-flash"
    lock_timeout_ms: int = 30_000
    orphaned_run_max_age_ms: int = 300_000
    worker_budget_ms: int = 30_000  # a queue-triggered drain's time; it never starts a message it cannot finish
    azure_webjobs_storage: str = field(default="", repr=False)  # the hand-off queue's account (holds its key)
    # The same account in either form the host accepts (connection string or identity-based settings).
    storage: StorageConnection = field(default_factory=StorageConnection, repr=False)
    # WEBSITE_INSTANCE_ID is set by App Service on every Azure instance: there SQLite is refused.
    on_azure: bool = False
    webhook_max_body_bytes: int = 3 * 1024 * 1024
    session_idle_minutes: int = 30
    turn_gap_seconds: int = 8  # pending messages sent this close together are read as one turn
    draft_ttl_hours: int = 24  # an unfinished report is kept this long after the worker's last message
    report_followup_minutes: int = 120  # after filing, new details and evidence join the report
    report_correction_minutes: int = 30  # "me equivoqué de equipo" cancels the report this long after filing
    handover_minutes: int = 240  # the bot stays quiet after handing a conversation to a person
    inbox_max_attempts: int = 5
    max_jobs_per_run: int = 50  # MAX_TRABAJOS_POR_EJECUCION: outbox rows one timer run sends
    outbox_rate_per_second: int = 80
    outbox_max_attempts: int = 10  # failures Meta answered (5xx, unknown); throttles and no-connection do not count
    # A claim lives only while its request is in flight (the send limit is taken before the claim): HTTP
    # connect 5 s + read 15 s, plus the write-back.
    outbox_claim_timeout_ms: int = 30_000
    outbox_backoff_base_ms: int = 2_000  # first retry-later waits 50-100 % of this, doubling each time
    outbox_backoff_cap_ms: int = 300_000
    outbox_at_least_once: bool = False
    outbox_eager_dispatch: bool = True  # send replies right after their transition commits (else: the sweep only)
    applicationinsights_connection_string: str = field(default="", repr=False)
    db_pool_size: int = 8
    # How long the webhook and health wait for the database before answering 503 (Meta redelivers a 503;
    # a held write lock must not hang its requests).
    request_db_wait_ms: int = 5_000
    retention_ledger_days: int = 30  # dedup ledger: Meta redelivers for up to 7 days
    retention_outbox_days: int = 30  # settled sends (enviado, error, incierto)
    retention_history_days: int = 365  # chat history and transitions; 0 keeps them forever
    report_notify_numbers: tuple[str, ...] = ()  # maintenance numbers told of new reports and handovers
    template_new_report: str = "reporte_nuevo"  # approved templates for outside the 24-hour window
    template_status_change: str = "reporte_estado"
    template_handover: str = "atencion_humana"
    template_language: str = "es_MX"
    # Evidence (docs/evidence.md): bodies go to Blob Storage on the app's account, or to a local folder
    # when AzureWebJobsStorage is empty. Identity-based accounts name the service instead of a key.
    azure_blob_service_uri: str = ""  # AzureWebJobsStorage__blobServiceUri
    azure_storage_account_name: str = ""  # AzureWebJobsStorage__accountName
    azure_storage_client_id: str = ""  # AzureWebJobsStorage__clientId (a user-assigned managed identity)
    evidence_container: str = "evidencias"
    evidence_dir: str = ".data/evidencias"
    evidence_max_attempts: int = 5
    evidence_claim_ms: int = 120_000  # one download's hold on its row; a dead holder's row is due again after it
    transcription_model: str = "gpt-4o-mini-transcribe"  # OpenAI; Gemini transcribes with GEMINI_MODEL
    transcription_budget_ms: int = 4_000
    retention_status_days: int = 7  # delivery statuses in the ledger: Meta redelivers for up to 7 days
    retention_ai_runs_days: int = 30  # settled AI runs
    retention_lease_days: int = 7  # lease rows nobody took for this long

    @property
    def backend(self) -> str:
        return "sqlserver" if self.sql_connection_string else "sqlite"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build `Settings` from `env` (default: `os.environ`), validating every value."""
    env = os.environ if env is None else env
    phone_number_id = _text(env, "WHATSAPP_PHONE_NUMBER_ID", "000000000000000")
    base_url = _text(env, "WHATSAPP_API_BASE_URL", GRAPH_API_DEFAULT).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise SettingsError("WHATSAPP_API_BASE_URL", f"debe ser una URL http(s); se recibió {base_url!r}")
    return Settings(
        whatsapp_app_secret=_text(env, "WHATSAPP_APP_SECRET", required=True),
        whatsapp_verify_token=_text(env, "WHATSAPP_VERIFY_TOKEN", required=True),
        whatsapp_access_token=_text(env, "WHATSAPP_ACCESS_TOKEN"),
        whatsapp_phone_number_id=phone_number_id,
        served_phone_number_ids=_served_numbers(env, phone_number_id),
        whatsapp_api_base_url=base_url,
        sql_connection_string=_text(env, "SQL_CONNECTION_STRING"),
        sqlite_path=_text(env, "SQLITE_PATH", ".data/bot.sqlite3"),
        ai_providers=_providers(env),
        openai_api_key=_text(env, "OPENAI_API_KEY"),
        openai_base_url=_text(env, "OPENAI_BASE_URL"),
        openai_model=_text(env, "OPENAI_MODEL", "gpt-4.1-mini"),
        gemini_api_key=_text(env, "GEMINI_API_KEY"),
        gemini_base_url=_text(env, "GEMINI_BASE_URL"),
        gemini_model=_text(env, "GEMINI_MODEL", "gemini-2.5-flash"),
        lock_timeout_ms=_int(env, "LOCK_TIMEOUT", 30_000, minimum=100),
        orphaned_run_max_age_ms=_int(env, "ORPHANED_RUN_MAX_AGE", 300_000, minimum=1_000),
        worker_budget_ms=_int(env, "WORKER_BUDGET_MS", 30_000, minimum=WORKER_BUDGET_MIN_MS),
        azure_webjobs_storage=_text(env, "AzureWebJobsStorage"),
        storage=read_storage_connection(env),
        on_azure=bool(_text(env, "WEBSITE_INSTANCE_ID")),
        webhook_max_body_bytes=_int(env, "WEBHOOK_MAX_BODY_BYTES", 3 * 1024 * 1024, minimum=1024),
        session_idle_minutes=_int(env, "SESSION_IDLE_MINUTES", 30, minimum=1),
        turn_gap_seconds=_int(env, "TURN_GAP_SECONDS", 8, minimum=0),
        draft_ttl_hours=_int(env, "DRAFT_TTL_HOURS", 24, minimum=1),
        report_followup_minutes=_int(env, "REPORT_FOLLOWUP_MINUTES", 120, minimum=0),
        report_correction_minutes=_int(env, "REPORT_CORRECTION_MINUTES", 30, minimum=0),
        handover_minutes=_int(env, "HANDOVER_MINUTES", 240, minimum=1),
        inbox_max_attempts=_int(env, "INBOX_MAX_ATTEMPTS", 5, minimum=1),
        max_jobs_per_run=_int(env, "MAX_TRABAJOS_POR_EJECUCION", 50, minimum=1),
        outbox_rate_per_second=_int(env, "OUTBOX_RATE_PER_SECOND", 80, minimum=1),
        outbox_max_attempts=_int(env, "OUTBOX_MAX_ATTEMPTS", 10, minimum=1),
        outbox_claim_timeout_ms=_int(env, "OUTBOX_CLAIM_TIMEOUT_MS", 30_000, minimum=1_000),
        outbox_backoff_base_ms=_int(env, "OUTBOX_BACKOFF_BASE_MS", 2_000, minimum=1),
        outbox_backoff_cap_ms=_int(env, "OUTBOX_BACKOFF_CAP_MS", 300_000, minimum=1),
        outbox_at_least_once=_bool(env, "OUTBOX_AT_LEAST_ONCE", False),
        outbox_eager_dispatch=_bool(env, "OUTBOX_EAGER_DISPATCH", True),
        applicationinsights_connection_string=_text(env, "APPLICATIONINSIGHTS_CONNECTION_STRING"),
        db_pool_size=_int(env, "DB_POOL_SIZE", 8, minimum=1),
        request_db_wait_ms=_int(env, "REQUEST_DB_WAIT_MS", 5_000, minimum=100),
        retention_ledger_days=_int(env, "RETENTION_LEDGER_DAYS", 30, minimum=0),
        retention_outbox_days=_int(env, "RETENTION_OUTBOX_DAYS", 30, minimum=0),
        retention_history_days=_int(env, "RETENTION_HISTORY_DAYS", 365, minimum=0),
        report_notify_numbers=_notify_numbers(env),
        template_new_report=_pattern(env, "TEMPLATE_NEW_REPORT", "reporte_nuevo", _TEMPLATE_NAME, _TEMPLATE_WHAT),
        template_status_change=_pattern(env, "TEMPLATE_STATUS_CHANGE", "reporte_estado", _TEMPLATE_NAME,
                                        _TEMPLATE_WHAT),
        template_handover=_pattern(env, "TEMPLATE_HANDOVER", "atencion_humana", _TEMPLATE_NAME, _TEMPLATE_WHAT),
        template_language=_pattern(env, "TEMPLATE_LANGUAGE", "es_MX", _LANGUAGE_CODE,
                                   "un código de idioma de WhatsApp como es_MX"),
        azure_blob_service_uri=_text(env, "AzureWebJobsStorage__blobServiceUri").rstrip("/"),
        azure_storage_account_name=_text(env, "AzureWebJobsStorage__accountName"),
        azure_storage_client_id=_text(env, "AzureWebJobsStorage__clientId"),
        evidence_container=_text(env, "EVIDENCE_CONTAINER", "evidencias"),
        evidence_dir=_text(env, "EVIDENCE_DIR", ".data/evidencias"),
        evidence_max_attempts=_int(env, "EVIDENCE_MAX_ATTEMPTS", 5, minimum=1),
        evidence_claim_ms=_int(env, "EVIDENCE_CLAIM_MS", 120_000, minimum=1_000),
        transcription_model=_text(env, "OPENAI_TRANSCRIPTION_MODEL", "gpt-4o-mini-transcribe"),
        transcription_budget_ms=_int(env, "TRANSCRIPTION_BUDGET_MS", 4_000, minimum=100),
        retention_status_days=_int(env, "RETENTION_STATUS_DAYS", 7, minimum=0),
        retention_ai_runs_days=_int(env, "RETENTION_AI_RUNS_DAYS", 30, minimum=0),
        retention_lease_days=_int(env, "RETENTION_LEASE_DAYS", 7, minimum=0),
    )
