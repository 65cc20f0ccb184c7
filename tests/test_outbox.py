"""The outbound queue in one process: real SQLite, a real fake Graph server on loopback, the real client."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.outbound.campaigns import campaign_status, queue_campaign
from bot.runtime import Runtime
from core.clock import system_clock
from core.settings import load_settings
from core.storage.inspection import count_by_state, list_recipient, register_status
from core.storage.outbox import (
    OutboxState,
    Outcome,
    claim_outbound,
    claim_outbound_recipient,
    get_outbound,
    record_outcomes,
    settle_stuck,
)
from core.storage.sqlite import SqliteDatabase
from core.whatsapp.client import WhatsAppClient
from core.whatsapp.errors import (
    AuthorizationError,
    InvalidParameterError,
    PermanentWhatsAppError,
    RecipientError,
    ServerError,
    ThrottlingError,
    error_from_response,
)
from core.whatsapp.graph import GraphApi, GraphTimeouts
from core.whatsapp.outgoing import Choice, OutgoingMessage
from core.whatsapp.ratelimit import SendLimits
from core.whatsapp.status import StatusUpdate
from tests.conftest import ShiftedClock, base_env, free_port
from tests.outbox_support import InProcessGraph, queue_texts

TOKEN = "EAAG-secret-token-do-not-log-123"
LATER = 3_600_000  # one hour: far past any backoff


@pytest.fixture
async def graph() -> AsyncIterator[InProcessGraph]:
    server = await InProcessGraph(free_port(), access_token=TOKEN).start()
    yield server
    await server.stop()


def make_runtime(db_path: Path, graph: InProcessGraph, adapters: dict[str, Any] | None = None, **extra: str) -> Runtime:
    adapters = adapters or {}
    env = base_env(db_path, WHATSAPP_API_BASE_URL=graph.base_url, WHATSAPP_ACCESS_TOKEN=TOKEN,
                   OUTBOX_RATE_PER_SECOND="10000", **extra)
    return Runtime(load_settings(env), SqliteDatabase(str(db_path), pool_size=2), clock=ShiftedClock(), **adapters)


@pytest.fixture
async def rt(db_path: Path, graph: InProcessGraph) -> AsyncIterator[Runtime]:
    runtime = make_runtime(db_path, graph, OUTBOX_MAX_ATTEMPTS="3")
    yield runtime
    await runtime.aclose()


def at(rt: Runtime, offset_ms: int) -> Runtime:
    """The runtime with its clock `offset_ms` ahead of now."""
    assert isinstance(rt.clock, ShiftedClock)
    rt.clock.offset_ms = offset_ms
    return rt


# -- claims, ordering and fencing (storage) --------------------------------------------------------


async def test_claim_takes_only_the_head_of_each_recipients_queue(rt: Runtime) -> None:
    queue_texts(rt.db, [("5215500000001", "a1"), ("5215500000001", "a2"), ("5215500000002", "b1")])
    now = system_clock()
    first = await claim_outbound(rt.db, limit=10, now_ms=now)
    assert [(c.recipient, json.loads(c.content)["body"]) for c in first] == [
        ("5215500000001", "a1"), ("5215500000002", "b1")]
    # a2 stays unclaimable while a1 is 'procesando', for the sweep and for the eager path alike.
    assert await claim_outbound(rt.db, limit=10, now_ms=now) == []
    assert await claim_outbound_recipient(rt.db, "5215500000001", now_ms=now) == []
    a1 = first[0]
    assert await record_outcomes(rt.db, [Outcome(a1, OutboxState.ENVIADO, wamid="wamid.A1")], now_ms=now,
                                 max_attempts=3) == [True]
    second = await claim_outbound_recipient(rt.db, "5215500000001", now_ms=now)
    assert [json.loads(c.content)["body"] for c in second] == ["a2"]
    assert second[0].attempts == 1 and second[0].token != a1.token


async def test_a_reply_waits_while_the_earlier_one_backs_off(rt: Runtime) -> None:
    queue_texts(rt.db, [("5215500000001", "a1"), ("5215500000001", "a2")])
    now = system_clock()
    [a1] = await claim_outbound(rt.db, limit=10, now_ms=now)
    await record_outcomes(rt.db, [Outcome(a1, OutboxState.PENDIENTE, error="throttled", next_attempt_ms=now + 5000)],
                          now_ms=now, max_attempts=3)
    assert await claim_outbound(rt.db, limit=10, now_ms=now) == []  # a2 is due but must not overtake a1
    [again] = await claim_outbound(rt.db, limit=10, now_ms=now + 5000)
    assert again.id == a1.id and again.attempts == 2


async def test_marks_are_fenced_by_claim_token_and_state(rt: Runtime) -> None:
    queue_texts(rt.db, [("5215500000001", "a1")])
    now = system_clock()
    [claim] = await claim_outbound(rt.db, limit=1, now_ms=now)
    stale = Outcome(claim.__class__(**{**{s: getattr(claim, s) for s in claim.__slots__}, "token": "other"}),
                    OutboxState.ENVIADO, wamid="wamid.X")
    assert await record_outcomes(rt.db, [stale], now_ms=now, max_attempts=3) == [False]
    # The worker "dies": past the claim timeout the row becomes 'incierto' and the late mark is refused.
    assert await settle_stuck(rt.db, now_ms=now + 61_000, claim_timeout_ms=60_000) == 1
    late = Outcome(claim, OutboxState.ENVIADO, wamid="wamid.LATE")
    assert await record_outcomes(rt.db, [late], now_ms=now, max_attempts=3) == [False]
    row = await get_outbound(rt.db, claim.id)
    assert row is not None and row.state == "incierto" and row.wamid is None and "desconocido" in row.last_error
    assert await claim_outbound(rt.db, limit=10, now_ms=now + LATER) == []  # never resent blindly


async def test_error_rows_are_never_claimed_and_free_the_next_reply(rt: Runtime) -> None:
    queue_texts(rt.db, [("5215500000001", "a1"), ("5215500000001", "a2")])
    now = system_clock()
    [a1] = await claim_outbound(rt.db, limit=10, now_ms=now)
    await record_outcomes(rt.db, [Outcome(a1, OutboxState.ERROR, error="131026")], now_ms=now, max_attempts=3)
    [a2] = await claim_outbound(rt.db, limit=10, now_ms=now + LATER)
    assert json.loads(a2.content)["body"] == "a2"


async def test_at_least_once_requeues_stuck_rows_until_attempts_run_out(db_path: Path, graph: InProcessGraph) -> None:
    runtime = make_runtime(db_path, graph, OUTBOX_AT_LEAST_ONCE="true", OUTBOX_MAX_ATTEMPTS="2")
    try:
        queue_texts(runtime.db, [("5215500000001", "a1")])
        now = system_clock()
        for step, expected in enumerate(("pendiente", "incierto")):
            [claim] = await claim_outbound(runtime.db, limit=1, now_ms=now + step * 61_000)
            await settle_stuck(runtime.db, now_ms=now + (step + 1) * 61_000, claim_timeout_ms=60_000,
                               at_least_once=True, max_attempts=2)
            row = await get_outbound(runtime.db, claim.id)
            assert row is not None and row.state == expected
    finally:
        runtime.db.close()


# -- the dispatcher against the fake Graph API -------------------------------------------------------


async def test_sweep_sends_text_buttons_list_and_bsuid(rt: Runtime, graph: InProcessGraph) -> None:
    messages = [
        ("5215500000001", OutgoingMessage("hola")),
        ("5215500000002", OutgoingMessage("¿Es el equipo?", buttons=(Choice("si", "Sí"), Choice("no", "No")))),
        ("MX.AbC123xyz", OutgoingMessage("Elige", list_button="Ver", rows=(Choice("1", "Refrigerador"),))),
    ]

    def run(tx) -> None:
        from core.storage.outbox import queue_reply

        for recipient, message in messages:
            queue_reply(tx, recipient, kind=message.kind, content=message.to_json(), now_ms=system_clock(),
                        origin_message_id="wamid.IN")

    rt.db.run_sync(run)
    result = await rt.outbox.sweep()
    assert (result.claimed, result.sent, result.failed) == (3, 3, 0)
    sent = {s["recipient"]: s["payload"] for s in graph.fake.sent}
    assert sent["5215500000001"]["to"] == "5215500000001" and sent["5215500000001"]["type"] == "text"
    assert sent["5215500000002"]["interactive"]["type"] == "button"
    assert "to" not in sent["MX.AbC123xyz"] and sent["MX.AbC123xyz"]["recipient"] == "MX.AbC123xyz"
    rows = [r for rec, _ in messages for r in await list_recipient(rt.db, rec)]
    assert all(r.state == "enviado" and r.wamid and r.attempts == 1 for r in rows)
    assert {r.wamid for r in rows} == {s["wamid"] for s in graph.fake.sent}
    # Status webhooks move the sent row forward, through the webhook's own registration.
    delivered = await register_status(rt.db, StatusUpdate(rows[0].wamid or "", "delivered", 1), system_clock())
    assert delivered.outbound_updated
    assert (await get_outbound(rt.db, rows[0].id)).delivery_state == "delivered"  # type: ignore[union-attr]
    assert not (await register_status(rt.db, StatusUpdate("wamid.unknown", "read", 1), system_clock())).outbound_updated


async def test_status_that_beats_the_send_is_applied_when_the_wamid_is_stored(
    rt: Runtime, graph: InProcessGraph
) -> None:
    queue_texts(rt.db, [("5215500000001", "hola")])
    early = "wamid.FAKE00000001"  # Meta can post `delivered` before our send's answer is committed
    graph.fake.next_wamid = early
    await register_status(rt.db, StatusUpdate(early, "delivered", 1), system_clock())
    assert await rt.outbox.dispatch_recipient("5215500000001") == 1
    [row] = await list_recipient(rt.db, "5215500000001")
    assert row.wamid == early and row.delivery_state == "delivered"


async def test_throttled_then_sent_once_after_backoff(db_path: Path, graph: InProcessGraph) -> None:
    rt = make_runtime(db_path, graph, OUTBOX_BACKOFF_BASE_MS="2400")  # the pause outlasts the sweep's 1 s wait
    queue_texts(rt.db, [("5215500000001", "a1")])
    graph.fake.fail_next(429, 130429, count=1, message="Rate limit hit")
    before = system_clock()
    first = await rt.outbox.sweep()
    assert (first.claimed, first.retried, first.sent) == (1, 1, 0)
    [row] = await list_recipient(rt.db, "5215500000001")
    # A throttle is not held against OUTBOX_MAX_ATTEMPTS; it only grows the backoff.
    assert (row.state, row.attempts, row.postponements) == ("pendiente", 0, 1) and "130429" in (row.last_error or "")
    assert row.next_attempt_ms >= before + 1200  # half of the 2.4 s base, at least
    # 130429 is about the whole number: its sends pause, for every instance (the pause is in the database).
    other_instance = SendLimits(rt.db, 10000).for_number(rt.settings.whatsapp_phone_number_id)
    assert await other_instance.take(1, max_wait_s=0) == 0
    assert (await rt.outbox.sweep()).claimed == 0  # not due yet
    # No sweep needed: the row's retry timer fires at its due time, after the pause (2.4 s at most).
    for _ in range(60):
        if graph.fake.sent:
            break
        await asyncio.sleep(0.1)
    assert [s["recipient"] for s in graph.fake.sent] == ["5215500000001"]
    assert (await at(rt, LATER).outbox.sweep()).claimed == 0
    [row] = await list_recipient(rt.db, "5215500000001")
    assert row.state == "enviado" and row.attempts == 1 and row.last_error is None
    await rt.aclose()


async def test_permanent_error_is_kept_and_not_retried(rt: Runtime, graph: InProcessGraph) -> None:
    queue_texts(rt.db, [("5215500000001", "a1")])
    graph.fake.fail_next(400, 131026, count=1, message="Message undeliverable")
    result = await rt.outbox.sweep()
    assert (result.failed, result.sent) == (1, 0)
    [row] = await list_recipient(rt.db, "5215500000001")
    assert row.state == "error" and row.attempts == 1
    assert "RecipientError" in row.last_error and "code=131026" in row.last_error and "fbtrace_id=" in row.last_error
    assert (await at(rt, LATER).outbox.sweep()).claimed == 0
    assert graph.fake.sent == []


async def test_5xx_storm_is_bounded_by_max_attempts(rt: Runtime, graph: InProcessGraph) -> None:
    queue_texts(rt.db, [("5215500000001", "a1")])
    graph.fake.fail_next(503, 131016, count=100, message="Service unavailable")
    for step in range(6):
        await at(rt, step * LATER).outbox.sweep()
    [row] = await list_recipient(rt.db, "5215500000001")
    assert row.state == "error" and row.attempts == 3 and "131016" in (row.last_error or "")
    assert graph.fake.failures[0].count == 97  # exactly 3 requests reached the server
    assert graph.fake.sent == []


async def test_no_answer_means_incierto_not_a_resend(db_path: Path, graph: InProcessGraph) -> None:
    short = GraphApi(graph.base_url, TOKEN, timeouts=GraphTimeouts(connect_s=2.0, read_s=0.3))
    rt = make_runtime(db_path, graph, {"whatsapp": WhatsAppClient(short, load_settings(base_env(db_path))
                                                                  .whatsapp_phone_number_id)})
    queue_texts(rt.db, [("5215500000001", "a1")])
    graph.fake.delay_ms = 800
    result = await rt.outbox.sweep()
    assert result.uncertain == 1
    graph.fake.delay_ms = 0
    assert (await at(rt, LATER).outbox.sweep()).claimed == 0
    [row] = await list_recipient(rt.db, "5215500000001")
    assert row.state == "incierto" and "ReadTimeout" in (row.last_error or "")
    await rt.aclose()


async def test_dispatch_recipient_sends_replies_in_order(rt: Runtime, graph: InProcessGraph) -> None:
    queue_texts(rt.db, [("5215500000001", f"a{i}") for i in range(4)] + [("5215500000002", "b0")])
    assert await rt.outbox.dispatch_recipient("5215500000001") == 4
    assert [s["payload"]["text"]["body"] for s in graph.fake.sent] == ["a0", "a1", "a2", "a3"]
    assert await rt.outbox.dispatch_recipient("5215500000001") == 0
    # A throttled head stops the eager path; the reply behind it waits for the sweep.
    queue_texts(rt.db, [("5215500000002", "b1")])
    graph.fake.fail_next(400, 131056, count=1, message="pair rate limit")
    assert await rt.outbox.dispatch_recipient("5215500000002") == 0
    [b0, b1] = await list_recipient(rt.db, "5215500000002")
    assert (b0.state, b1.state) == ("pendiente", "pendiente") and b0.next_attempt_ms >= system_clock() + 5000


async def test_sweep_respects_max_jobs_and_time_budget(db_path: Path, graph: InProcessGraph) -> None:
    runtime = make_runtime(db_path, graph, MAX_TRABAJOS_POR_EJECUCION="7")
    try:
        queue_texts(runtime.db, [(f"52155000{i:05d}", "x") for i in range(20)])
        assert (await runtime.outbox.sweep()).claimed == 7
        exhausted = await runtime.outbox.sweep(budget_s=0)
        assert exhausted.claimed == 0 and exhausted.stopped_early
        counts = await count_by_state(runtime.db)
        assert (counts.get("enviado"), counts.get("pendiente")) == (7, 13)
    finally:
        await runtime.aclose()


# -- the Graph client ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "kind", "transient"),
    [
        (429, 130429, ThrottlingError, True),
        (400, 131056, ThrottlingError, True),
        (400, 80007, ThrottlingError, True),
        (403, 4, ThrottlingError, True),
        (500, 1, ServerError, True),
        (503, 999999, ServerError, True),
        (400, 131026, RecipientError, False),
        (400, 131047, RecipientError, False),
        (400, 100, InvalidParameterError, False),
        (401, 190, AuthorizationError, False),
        (400, 123456, PermanentWhatsAppError, False),
    ],
)
def test_errors_classified_by_graph_code(status: int, code: int, kind: type, transient: bool) -> None:
    body = {"error": {"message": "m", "code": code, "fbtrace_id": "Axyz", "error_data": {"details": "d"}}}
    error = error_from_response(status, body)
    assert type(error) is kind and error.transient is transient
    assert (error.code, error.status, error.fbtrace_id, error.details) == (code, status, "Axyz", "d")
    assert type(error_from_response(502, "<html>bad gateway</html>")) is ServerError


async def test_token_is_never_logged(rt: Runtime, graph: InProcessGraph, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("aiohttp", "aiohttp.client", "aiohttp.internal"):  # every line the HTTP stack can write
        caplog.set_level(logging.DEBUG, logger=name)
    queue_texts(rt.db, [("5215500000001", "ok"), ("5215500000002", "denied")])
    assert await rt.outbox.dispatch_recipient("5215500000001") == 1
    graph.fake.access_token = "a-different-token"  # our token is now refused: 401 / code 190
    assert await rt.outbox.dispatch_recipient("5215500000002") == 0
    [row] = await list_recipient(rt.db, "5215500000002")
    assert row.state == "error" and "code=190" in (row.last_error or "")
    client = rt.whatsapp
    assert "OUTBOX_ENVIADO" in caplog.text and "OUTBOX_ERROR" in caplog.text
    for text in (caplog.text, row.last_error or "", repr(client), repr(rt.settings)):
        assert TOKEN not in text
    assert "5215500000001" not in caplog.text  # phones masked too


async def test_the_send_limit_is_one_bucket_row_per_number_refilled_by_time(rt: Runtime) -> None:
    """At 80/s with a quarter second of burst: 20 at once, then one every 12.5 ms; another number has its own."""
    from core.storage.send_limits import give_back_tokens, take_tokens

    def take(up_to: int, at_ms: int, number: str = "106540352242922"):
        return take_tokens(rt.db, number, up_to=up_to, now_ms=at_ms, rate_per_second=80, burst=20)

    assert (await take(16, 1_000)).tokens == 16
    assert (await take(16, 1_000)).tokens == 4
    empty = await take(16, 1_000)
    assert (empty.tokens, empty.wait_ms) == (0, 13)
    assert (await take(16, 1_100)).tokens == 8  # 100 ms at 80/s
    assert (await take(16, 1_050)).tokens == 0  # a clock running behind refills nothing
    assert (await take(16, 1_000, number="106540352299999")).tokens == 16
    await give_back_tokens(rt.db, "106540352242922", 50, now_ms=1_100, rate_per_second=80, burst=20)
    assert (await take(50, 1_100)).tokens == 20  # given back, never above the burst
    with pytest.raises(ValueError):
        SendLimits(rt.db, 0).for_number("1")


# -- campaigns -------------------------------------------------------------------------------------


def _body(**data: object) -> bytes:
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("campaign", "body", "fragment"),
    [
        ("bad name!", _body(mensaje="x", destinatarios=["5215500000001"]), "nombre de campaña"),
        ("c1", b"{not json", "JSON"),
        ("c1", b"[]", "objeto"),
        ("c1", _body(destinatarios=["5215500000001"]), "'mensaje'"),
        ("c1", _body(mensaje="   ", destinatarios=["5215500000001"]), "'mensaje'"),
        ("c1", _body(mensaje="x" * 5000, destinatarios=["5215500000001"]), "4096"),
        ("c1", _body(mensaje="x", destinatarios=[]), "'destinatarios'"),
        ("c1", _body(mensaje="x", destinatarios="5215500000001"), "'destinatarios'"),
        ("c1", _body(mensaje="x", destinatarios=["5215500000001", "12ab", 7]), "destinatarios inválidos"),
        ("c1", _body(mensaje="x", destinatarios=["5215500000001"], extra=1), "campos desconocidos"),
    ],
)
async def test_campaign_rejects_bad_input_and_queues_nothing(
    rt: Runtime, campaign: str, body: bytes, fragment: str
) -> None:
    response = await queue_campaign(rt.db, campaign, body, now_ms=system_clock())
    assert response.status == 400 and fragment in response.body["error"]
    assert (await count_by_state(rt.db)).total == 0


async def test_campaign_is_idempotent_per_recipient_even_concurrently(rt: Runtime) -> None:
    recipients = [f"+52155{i:08d}" for i in range(27)]
    body = _body(mensaje="Aviso de mantenimiento", destinatarios=[*recipients, recipients[0], "MX.Bsuid01"])
    responses = await asyncio.gather(*(queue_campaign(rt.db, "mantenimiento-01", body, now_ms=system_clock())
                                       for _ in range(3)))
    assert sorted(r.body["encolados"] for r in responses) == [0, 0, 28]
    assert all(r.status == 202 and r.body["destinatarios"] == 28 for r in responses)
    status = await campaign_status(rt.db, "mantenimiento-01")
    assert status.status == 200 and status.body["estados"]["pendiente"] == 28
    assert (await campaign_status(rt.db, "otra")).status == 404
    # The same recipients in another campaign are another message.
    other = await queue_campaign(rt.db, "mantenimiento-02", body, now_ms=system_clock())
    assert other.body["encolados"] == 28


def test_functions_are_registered(app_triggers: dict) -> None:
    triggers = app_triggers
    from local_host.timers import resolve_schedule

    assert len(resolve_schedule(triggers["outbox_sweep"].schedule).split()) == 6
    assert triggers["campaign_queue"].route == triggers["campaign_counts"].route == "campanas/{campana}"
    assert str(getattr(triggers["campaign_queue"].auth_level, "value", "")).lower() == "function"


async def test_a_reply_past_its_deadline_is_abandoned_logged_and_counted_never_sent(
    rt: Runtime, graph: InProcessGraph, caplog: pytest.LogCaptureFixture
) -> None:
    from core.metrics import outbound_abandoned_total
    from core.storage.outbox import REPLY_DEADLINE_MS

    now = system_clock()
    queue_texts(rt.db, [("5215500000001", "tarde")], now_ms=now, deadline_ms=60_000)
    queue_texts(rt.db, [("5215500000002", "a tiempo")], now_ms=now, deadline_ms=REPLY_DEADLINE_MS)
    before = outbound_abandoned_total.labels("plazo")._value.get()
    result = await at(rt, 61_000).outbox.sweep()
    assert (result.abandoned, result.sent) == (1, 1)
    [late] = await list_recipient(rt.db, "5215500000001")
    assert late.state == "error" and "plazo" in (late.last_error or "") and late.wamid is None
    [on_time] = await list_recipient(rt.db, "5215500000002")
    assert on_time.state == "enviado" and on_time.deadline_ms == now + 24 * 3600_000 == now + REPLY_DEADLINE_MS
    assert [s["recipient"] for s in graph.fake.sent] == ["5215500000002"]
    assert outbound_abandoned_total.labels("plazo")._value.get() == before + 1
    assert any("OUTBOX_ABANDONADO" in r.getMessage() and "motivo=plazo" in r.getMessage() for r in caplog.records)
