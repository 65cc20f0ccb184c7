"""EjecucionesIA queries on every dialect (SQLite always; SQL Server when its connection string is set)."""

from __future__ import annotations

from core.storage import ai_runs
from core.storage.database import Database


async def test_ai_run_lifecycle(any_db: Database) -> None:
    await ai_runs.record_ai_run(any_db, "resp_1", "5215500000001", "conv_1", "queued", "wamid.1", 1_000)
    await ai_runs.record_ai_run(any_db, "resp_2", "MX.user2", None, "in_progress", None, 2_000)
    assert await ai_runs.has_active_ai_run(any_db, "5215500000001")
    assert not await ai_runs.has_active_ai_run(any_db, "5215500000009")
    assert [r.id for r in await ai_runs.list_active_ai_runs(any_db, 10)] == ["resp_1", "resp_2"]
    assert [r.id for r in await ai_runs.list_active_ai_runs(any_db, 1)] == ["resp_1"]
    assert [r.id for r in await ai_runs.list_active_ai_runs_for_phone(any_db, "MX.user2")] == ["resp_2"]

    assert await ai_runs.update_active_ai_run_status(any_db, "resp_1", "in_progress", 1_500)
    run = await ai_runs.get_ai_run(any_db, "resp_1")
    assert run is not None and run.state == "in_progress" and run.updated_ms == 1_500
    assert run.conversation_id == "conv_1" and run.message_id == "wamid.1" and run.active

    seen: list[str] = []
    assert await ai_runs.settle_ai_run(any_db, "resp_1", "completed", "respuesta", 3_000, lambda tx: seen.append("a"))
    assert not await ai_runs.settle_ai_run(any_db, "resp_1", "cancelled", "otra", 3_100, lambda tx: seen.append("b"))
    assert seen == ["a"]  # only the winner's follow-up runs
    assert not await ai_runs.update_active_ai_run_status(any_db, "resp_1", "in_progress", 3_200)
    run = await ai_runs.get_ai_run(any_db, "resp_1")
    assert run is not None and (run.state, run.result) == ("completed", "respuesta") and not run.active
    assert not await ai_runs.has_active_ai_run(any_db, "5215500000001")
    assert await ai_runs.get_ai_run(any_db, "resp_missing") is None


async def test_conversation_id_needs_a_session_row(any_db: Database) -> None:
    assert not await ai_runs.set_ai_conversation(any_db, "5215500000042", "conv_x")
    assert await ai_runs.get_ai_conversation(any_db, "5215500000042") is None
