"""Free-form questions and orphan recovery: real SQLite, the real OpenAI SDK against the fake server,
and a real OS process killed with a response in flight."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from bot.assistant import enqueue_answer
from bot.runtime import Runtime
from bot.texts import ASSISTANT_WORDS as WORDS
from core.ai.assistant import (
    AskOutcome,
    OfflineAssistant,
    ask,
    has_active_response,
    recover_orphaned_runs,
    refresh_active_response,
)
from core.ai.openai_provider import OpenAIAssistant
from core.metrics import orphaned_runs_cancelled_total
from core.storage import ai_runs
from core.storage.sqlite import SqliteDatabase
from local_host.fake_ai import FakeOpenAI
from tests.ai.conftest import Served, openai_assistant
from tests.conftest import ROOT, base_env

PHONE = "5215512345678"
BSUID = "MX.a1b2c3d4e5"
PENDING_BUDGET_MS = 400


def add_session(db_path: Path, key: str) -> None:
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("INSERT INTO SesionesChat (Telefono) VALUES (?)", (key,))


def outbox(db_path: Path) -> list[tuple[str, str, str | None]]:
    with closing(sqlite3.connect(db_path)) as conn, conn:
        rows = conn.execute("SELECT Destinatario, Contenido, MessageIdOrigen FROM ColaEnvios ORDER BY Id").fetchall()
    return [(d, json.loads(c)["body"], m) for d, c, m in rows]


async def settled_now(db, backend, deliver) -> list[tuple[str, str]]:
    """What the sweeper's pass settles now: `(conversation_key, text)` per answer or apology."""
    report = await recover_orphaned_runs(db, backend, max_age_ms=300_000, words=WORDS, deliver=deliver)
    return list(report.delivered)


def cancelled_total() -> float:
    return orphaned_runs_cancelled_total._value.get()


async def pending_question(
    db: SqliteDatabase, backend: OpenAIAssistant, key: str, question: str = "¿x?", message_id: str | None = None
) -> AskOutcome:
    """Ask a question the fake never finishes; the conversation is created first so the SDK client is warm
    and the small budget is spent waiting on the response, not on the first connection."""
    conversation = await backend.create_conversation(key)
    outcome = await ask(db, backend, key, question, conversation, budget_ms=PENDING_BUDGET_MS,
                        message_id=message_id, words=WORDS)
    assert outcome.pending, outcome
    return outcome


async def test_offline_answers_at_once_and_records_nothing(sqlite_db: SqliteDatabase) -> None:
    outcome = await ask(sqlite_db, OfflineAssistant(WORDS), PHONE, "¿Cómo reporto una falla?", None, words=WORDS)
    assert outcome.status == "completed" and outcome.answer == WORDS.offline
    assert outcome.response_id is None and not outcome.pending
    assert not await has_active_response(sqlite_db, PHONE)
    assert await ai_runs.list_active_ai_runs(sqlite_db) == []


async def test_answer_inline_when_done_within_budget(
    sqlite_db: SqliteDatabase, db_path: Path, openai_server: Served
) -> None:
    add_session(db_path, PHONE)
    fake: FakeOpenAI = openai_server.fake  # type: ignore[assignment]
    fake.background_completes_after = 0.1
    backend = openai_assistant(openai_server.base_url)
    outcome = await ask(sqlite_db, backend, PHONE, "¿Qué hago si la puerta no cierra?", None,
                        message_id="wamid.Q1", words=WORDS)
    assert outcome.status == "completed" and outcome.answer == fake.background_answer
    assert outcome.conversation_id in fake.conversations
    assert await ai_runs.get_ai_conversation(sqlite_db, PHONE) == outcome.conversation_id
    run = await ai_runs.get_ai_run(sqlite_db, outcome.response_id or "")
    assert run is not None and run.state == "completed" and run.message_id == "wamid.Q1"
    assert not await has_active_response(sqlite_db, PHONE)
    # The same conversation is reused for the next question.
    again = await ask(sqlite_db, backend, PHONE, "¿Y si sigue igual?", outcome.conversation_id, words=WORDS)
    assert again.conversation_id == outcome.conversation_id and again.status == "completed"
    assert len(fake.conversations) == 1


async def test_pending_response_blocks_the_phone_and_the_sweeper_delivers_it_once(
    sqlite_db: SqliteDatabase, db_path: Path, openai_server: Served
) -> None:
    fake: FakeOpenAI = openai_server.fake  # type: ignore[assignment]
    fake.background_completes_after = None  # still running when the webhook's budget ends
    backend = openai_assistant(openai_server.base_url)
    started = time.monotonic()
    outcome = await pending_question(sqlite_db, backend, BSUID, "¿Cuánto tarda un técnico?", message_id="w1")
    assert time.monotonic() - started < PENDING_BUDGET_MS / 1000 * 1.1 + 0.5  # loose: includes the warm-up call
    assert outcome.answer is None and outcome.response_id
    assert await has_active_response(sqlite_db, BSUID)
    assert not await has_active_response(sqlite_db, PHONE)

    calls = fake.calls
    busy = await ask(sqlite_db, backend, BSUID, "¿hola?", outcome.conversation_id, words=WORDS)
    assert busy.status == "busy" and busy.answer is None
    assert fake.calls == calls  # nothing sent to a locked conversation

    assert await settled_now(sqlite_db, backend, enqueue_answer) == []
    fake.responses[outcome.response_id].complete_at = 0.0  # the model finishes
    runs = [settled_now(sqlite_db, backend, enqueue_answer) for _ in range(3)]
    results = await asyncio.gather(*runs)
    delivered = [pair for result in results for pair in result]
    assert delivered == [(BSUID, fake.background_answer)]
    assert outbox(db_path) == [(BSUID, fake.background_answer, "w1")]
    assert not await has_active_response(sqlite_db, BSUID)
    assert await settled_now(sqlite_db, backend, enqueue_answer) == []


async def test_provider_failure_answers_an_apology_and_records_nothing(
    sqlite_db: SqliteDatabase, openai_server: Served
) -> None:
    openai_server.fake.always("status", status=500)
    outcome = await ask(sqlite_db, openai_assistant(openai_server.base_url), PHONE, "¿horario?", None, words=WORDS)
    assert outcome.status == "failed" and outcome.answer == WORDS.failed
    assert not await has_active_response(sqlite_db, PHONE)


async def test_hanging_provider_never_holds_ask_past_its_budget(
    sqlite_db: SqliteDatabase, openai_server: Served
) -> None:
    openai_server.fake.always("hang")
    started = time.monotonic()
    outcome = await ask(sqlite_db, openai_assistant(openai_server.base_url), PHONE, "¿horario?", None,
                        budget_ms=400, words=WORDS)
    assert time.monotonic() - started <= 0.4 * 1.1 + 0.25
    assert outcome.status == "failed"


async def test_orphan_is_cancelled_after_the_threshold_and_not_before(
    sqlite_db: SqliteDatabase, db_path: Path, openai_server: Served, caplog: pytest.LogCaptureFixture
) -> None:
    fake: FakeOpenAI = openai_server.fake  # type: ignore[assignment]
    fake.background_completes_after = None
    backend = openai_assistant(openai_server.base_url)
    outcome = await pending_question(sqlite_db, backend, PHONE, "¿pregunta larga?", message_id="w9")
    run = await ai_runs.get_ai_run(sqlite_db, outcome.response_id or "")
    assert run is not None and run.active
    max_age = 5_000
    before = cancelled_total()

    early = await recover_orphaned_runs(sqlite_db, backend, max_age_ms=max_age, words=WORDS,
                                        now_ms=lambda: run.created_ms + max_age)
    assert (early.checked, early.cancelled) == (1, 0)
    assert fake.cancelled == [] and await has_active_response(sqlite_db, PHONE)

    caplog.clear()
    with caplog.at_level(logging.INFO):
        late = await recover_orphaned_runs(
            sqlite_db, backend, max_age_ms=max_age, words=WORDS, now_ms=lambda: run.created_ms + 7 * 60_000,
            deliver=enqueue_answer
        )
    assert (late.checked, late.cancelled) == (1, 1)
    assert fake.cancelled == [run.id]
    assert cancelled_total() == before + 1
    settled = await ai_runs.get_ai_run(sqlite_db, run.id)
    assert settled is not None and settled.state == "cancelled"
    assert not await has_active_response(sqlite_db, PHONE)
    assert outbox(db_path) == [(PHONE, WORDS.abandoned, "w9")]
    text = caplog.text
    assert "ORPHANED_RUNS_RECOVERY_START" in text
    assert "ORPHANED_RUN_CANCELLED" in text and f"runId={run.id}" in text  # the field names the queries read
    assert f"threadId={run.conversation_id}" in text and "status=in_progress" in text and "ageMinutes=7" in text
    assert "*********5678" in text and PHONE not in text
    assert "ORPHANED_RUNS_RECOVERY_COMPLETE" in text and "runsChecked=1 runsCancelled=1" in text


async def test_an_old_response_found_completed_is_delivered_not_cancelled(
    sqlite_db: SqliteDatabase, db_path: Path, openai_server: Served
) -> None:
    fake: FakeOpenAI = openai_server.fake  # type: ignore[assignment]
    fake.background_completes_after = None
    backend = openai_assistant(openai_server.base_url)
    first = await pending_question(sqlite_db, backend, PHONE, "¿uno?")
    second = await pending_question(sqlite_db, backend, BSUID, "¿dos?")
    for outcome in (first, second):
        fake.responses[outcome.response_id or ""].complete_at = 0.0
    # The second one's retrieve fails: it is only seen completed through the cancel call.
    before = cancelled_total()
    future = int(time.time() * 1000) + 3_600_000
    fake.push("ok")  # first retrieve fine
    fake.push("status", status=500)  # second retrieve fails
    report = await recover_orphaned_runs(
        sqlite_db, backend, max_age_ms=1_000, words=WORDS, now_ms=lambda: future, deliver=enqueue_answer
    )
    assert report.cancelled == 0 and cancelled_total() == before
    assert sorted(report.delivered) == sorted([(PHONE, fake.background_answer), (BSUID, fake.background_answer)])
    assert fake.cancelled == []
    assert sorted(outbox(db_path)) == sorted(
        [(PHONE, fake.background_answer, None), (BSUID, fake.background_answer, None)]
    )


async def test_unreachable_provider_leaves_runs_for_the_next_sweep(
    sqlite_db: SqliteDatabase, openai_server: Served
) -> None:
    fake: FakeOpenAI = openai_server.fake  # type: ignore[assignment]
    fake.background_completes_after = None
    backend = openai_assistant(openai_server.base_url)
    outcome = await pending_question(sqlite_db, backend, PHONE)
    run = await ai_runs.get_ai_run(sqlite_db, outcome.response_id or "")
    assert run is not None
    dead = openai_assistant("http://127.0.0.1:9/v1")
    later = run.created_ms + 2_000  # an orphan (over 1 s) but not yet given up on (3 s)
    report = await recover_orphaned_runs(sqlite_db, dead, max_age_ms=1_000, words=WORDS, now_ms=lambda: later)
    assert report.checked == 1 and report.cancelled == 0
    assert await has_active_response(sqlite_db, PHONE)
    report = await recover_orphaned_runs(sqlite_db, backend, max_age_ms=1_000, words=WORDS, now_ms=lambda: later)
    assert report.cancelled == 1 and fake.cancelled == [outcome.response_id]


CHILD = """
import asyncio, sys
from bot.texts import ASSISTANT_WORDS
from core.ai.assistant import ask
from core.ai.openai_provider import OpenAIAssistant, build_openai_client
from core.storage.sqlite import SqliteDatabase

async def main():
    db = SqliteDatabase(sys.argv[1], pool_size=1)
    backend = OpenAIAssistant(build_openai_client("k", sys.argv[2]), "gpt-fake")
    await ask(db, backend, sys.argv[3], "¿pregunta que nunca termina?", None, budget_ms=120_000, words=ASSISTANT_WORDS)

asyncio.run(main())
"""


async def test_responses_left_by_a_killed_process_are_cancelled_after_the_age_threshold(
    sqlite_db: SqliteDatabase, db_path: Path, openai_server: Served
) -> None:
    fake: FakeOpenAI = openai_server.fake  # type: ignore[assignment]
    fake.background_completes_after = None
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(db_path), openai_server.base_url, PHONE, cwd=ROOT, env=env
    )
    try:
        deadline = time.monotonic() + 15
        while not await has_active_response(sqlite_db, PHONE):
            assert time.monotonic() < deadline, "the child never started its response"
            assert child.returncode is None
            await asyncio.sleep(0.05)
        child.send_signal(signal.SIGKILL)  # dies mid-wait, response in flight
        assert await asyncio.wait_for(child.wait(), 10) == -signal.SIGKILL
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()

    backend = openai_assistant(openai_server.base_url)
    (run,) = await ai_runs.list_active_ai_runs(sqlite_db)
    max_age = 1_500
    report = await recover_orphaned_runs(sqlite_db, backend, max_age_ms=max_age, words=WORDS,
                                         now_ms=lambda: run.created_ms + max_age)
    assert report.cancelled == 0 and fake.cancelled == []  # exactly at the threshold: not yet an orphan
    await asyncio.sleep(max(0.0, (run.created_ms + max_age + 50) / 1000 - time.time()))
    report = await recover_orphaned_runs(sqlite_db, backend, max_age_ms=max_age, words=WORDS)  # the real clock
    assert report.cancelled == 1 and fake.cancelled == [run.id]
    assert fake.responses[run.id].status == "cancelled"
    assert not await has_active_response(sqlite_db, PHONE)


async def test_sweep_through_the_runtime_queues_the_answer(db_path: Path, openai_server: Served) -> None:
    from core.settings import load_settings

    settings = load_settings(base_env(db_path, ORPHANED_RUN_MAX_AGE="300000"))
    db = SqliteDatabase(str(db_path), pool_size=2)
    backend = openai_assistant(openai_server.base_url)
    rt = Runtime(settings, db, assistant=backend)
    fake: FakeOpenAI = openai_server.fake  # type: ignore[assignment]
    fake.background_completes_after = None

    conversation = await backend.create_conversation(PHONE)  # warm client: the budget goes to waiting
    outcome = await rt.questions.ask(
        PHONE, "¿qué cubre la garantía?", conversation, message_id="wq", budget_ms=PENDING_BUDGET_MS
    )
    assert outcome.pending and await rt.questions.has_active(PHONE)
    fake.responses[outcome.response_id or ""].complete_at = 0.0
    report = await rt.sweeper.sweep_ai_responses(startup=True)
    assert report.delivered == ((PHONE, fake.background_answer),)
    assert outbox(db_path) == [(PHONE, fake.background_answer, "wq")]
    assert not await rt.questions.has_active(PHONE)
    db.close()


def test_recovery_timer_runs_on_an_app_setting_schedule_and_locally_at_start(app_triggers: dict) -> None:
    """No runOnStartup on Azure (it would run at every scale-out); the local host runs it once at start."""
    from local_host.timers import LOCAL_STARTUP_RUNS, resolve_schedule

    timer = app_triggers["ai_recovery"]
    assert timer.type == "timerTrigger" and not timer.run_on_startup and "ai_recovery" in LOCAL_STARTUP_RUNS
    assert len(resolve_schedule(timer.schedule).split()) == 6


async def test_refresh_delivers_a_finished_response_for_that_phone_only(
    sqlite_db: SqliteDatabase, db_path: Path, openai_server: Served
) -> None:
    fake: FakeOpenAI = openai_server.fake  # type: ignore[assignment]
    fake.background_completes_after = None
    backend = openai_assistant(openai_server.base_url)
    mine = await pending_question(sqlite_db, backend, PHONE, "¿uno?", message_id="m1")
    other = await pending_question(sqlite_db, backend, BSUID, "¿dos?", message_id="m2")
    assert await refresh_active_response(sqlite_db, backend, PHONE, max_age_ms=300_000, words=WORDS,
                                         deliver=enqueue_answer)
    for outcome in (mine, other):
        fake.responses[outcome.response_id or ""].complete_at = 0.0
    still = await refresh_active_response(sqlite_db, backend, PHONE, max_age_ms=300_000, words=WORDS,
                                          deliver=enqueue_answer)
    assert still is False
    assert outbox(db_path) == [(PHONE, fake.background_answer, "m1")]
    assert await has_active_response(sqlite_db, BSUID)  # another phone's run is left to its own turn


async def test_a_conversation_the_provider_forgot_is_replaced(
    sqlite_db: SqliteDatabase, db_path: Path, openai_server: Served
) -> None:
    add_session(db_path, PHONE)
    fake: FakeOpenAI = openai_server.fake  # type: ignore[assignment]
    outcome = await ask(sqlite_db, openai_assistant(openai_server.base_url), PHONE, "¿hola?", "conv_gone", words=WORDS)
    assert outcome.status == "completed"
    assert outcome.conversation_id != "conv_gone" and outcome.conversation_id in fake.conversations
    assert await ai_runs.get_ai_conversation(sqlite_db, PHONE) == outcome.conversation_id


async def test_an_orphan_the_provider_cannot_cancel_is_abandoned_later_so_the_phone_is_freed(
    sqlite_db: SqliteDatabase, db_path: Path, openai_server: Served
) -> None:
    fake: FakeOpenAI = openai_server.fake  # type: ignore[assignment]
    fake.background_completes_after = None
    outcome = await pending_question(sqlite_db, openai_assistant(openai_server.base_url), PHONE)
    run = await ai_runs.get_ai_run(sqlite_db, outcome.response_id or "")
    assert run is not None
    offline = OfflineAssistant(WORDS)  # e.g. AI_PROVIDER switched to offline with a response in flight
    max_age = 10_000
    report = await recover_orphaned_runs(sqlite_db, offline, max_age_ms=max_age, words=WORDS,
                                         now_ms=lambda: run.created_ms + 20_000)
    assert report.cancelled == 0 and await has_active_response(sqlite_db, PHONE)
    report = await recover_orphaned_runs(
        sqlite_db, offline, max_age_ms=max_age, words=WORDS, now_ms=lambda: run.created_ms + 30_001,
        deliver=enqueue_answer
    )
    assert report.delivered == ((PHONE, WORDS.abandoned),)
    assert not await has_active_response(sqlite_db, PHONE)
    settled = await ai_runs.get_ai_run(sqlite_db, run.id)
    assert settled is not None and settled.state == "abandonado"
