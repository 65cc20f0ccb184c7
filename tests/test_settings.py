from __future__ import annotations

import pytest

from core.errors import SettingsError
from core.settings import load_settings

BASE = {"WHATSAPP_APP_SECRET": "s", "WHATSAPP_VERIFY_TOKEN": "v"}


def test_defaults() -> None:
    s = load_settings(BASE)
    assert s.backend == "sqlite"
    assert s.lock_timeout_ms == 30_000
    assert s.orphaned_run_max_age_ms == 300_000
    assert s.ai_providers == ("offline",)
    assert s.max_jobs_per_run == 50


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"WHATSAPP_VERIFY_TOKEN": "v"}, "WHATSAPP_APP_SECRET"),
        ({**BASE, "LOCK_TIMEOUT": "abc"}, "LOCK_TIMEOUT"),
        ({**BASE, "LOCK_TIMEOUT": "5"}, "LOCK_TIMEOUT"),
        ({**BASE, "AI_PROVIDER": "openai,skynet"}, "AI_PROVIDER"),
        ({**BASE, "WHATSAPP_API_BASE_URL": "ftp://x"}, "WHATSAPP_API_BASE_URL"),
        ({**BASE, "OUTBOX_AT_LEAST_ONCE": "maybe"}, "OUTBOX_AT_LEAST_ONCE"),
        ({**BASE, "REPORT_NOTIFY_NUMBERS": "5215512345678,jefe"}, "REPORT_NOTIFY_NUMBERS"),
        ({**BASE, "TEMPLATE_NEW_REPORT": "Reporte Nuevo"}, "TEMPLATE_NEW_REPORT"),
        ({**BASE, "TEMPLATE_LANGUAGE": "español"}, "TEMPLATE_LANGUAGE"),
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    assert info.value.name == name
    assert name in str(info.value) and "\n" not in str(info.value)


def test_failover_list() -> None:
    assert load_settings({**BASE, "AI_PROVIDER": "openai, gemini,offline"}).ai_providers == (
        "openai", "gemini", "offline")


def test_sql_server_backend() -> None:
    assert load_settings({**BASE, "SQL_CONNECTION_STRING": "Driver=x;Server=y"}).backend == "sqlserver"


def test_the_smallest_worker_budget_fits_one_whole_message() -> None:
    """WORKER_BUDGET_MS below one message's worst case could never start a message."""
    from bot.conversation.worker import MESSAGE_RESERVE_MS
    from core.settings import WORKER_BUDGET_MIN_MS

    assert WORKER_BUDGET_MIN_MS > MESSAGE_RESERVE_MS


def test_report_notices_settings() -> None:
    s = load_settings(BASE)
    assert s.report_notify_numbers == ()
    assert (s.template_new_report, s.template_status_change, s.template_handover, s.template_language) == (
        "reporte_nuevo", "reporte_estado", "atencion_humana", "es_MX")
    s = load_settings({**BASE, "REPORT_NOTIFY_NUMBERS": " +52 1 55 1234 5678, 5215598765432,5215598765432 ",
                       "TEMPLATE_STATUS_CHANGE": "estado_v2", "TEMPLATE_LANGUAGE": "es"})
    assert s.report_notify_numbers == ("5215512345678", "5215598765432")
    assert s.template_status_change == "estado_v2" and s.template_language == "es"
