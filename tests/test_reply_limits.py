"""Replies stay inside WhatsApp's limits: the model refuses to be built over them, flows cut what they
echo, and the fake Graph API refuses over-limit sends like the real one (error 100)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot.runtime import build_runtime
from core.settings import load_settings
from core.whatsapp.outgoing import Choice, OutgoingMessage, fit
from local_host.queues import serving_worker, settle, worker_queue
from tests.conftest import base_env
from tests.outbox_support import InProcessGraph
from tests.webhook_helpers import encode, signed_headers, text_payload

OK = Choice("a", "Sí")


@pytest.mark.parametrize(("build", "problem"), [
    (lambda: OutgoingMessage(body="x" * 4097), "cuerpo de 4097 > 4096"),
    (lambda: OutgoingMessage(body="x" * 1025, buttons=(OK,)), "cuerpo de 1025 > 1024"),
    (lambda: OutgoingMessage(body="x", buttons=(OK, OK, OK, OK)), "4 botones > 3"),
    (lambda: OutgoingMessage(body="x", buttons=(Choice("a", "y" * 21),)), "> 20"),
    (lambda: OutgoingMessage(body="x", list_button="Ver", rows=(Choice("a", "y" * 25),)), "> 24"),
    (lambda: OutgoingMessage(body="x", list_button="Ver", rows=(Choice("a", "y", "d" * 73),)), "> 72"),
    (lambda: OutgoingMessage(body="x", list_button="Ver", rows=tuple(Choice(str(i), "y") for i in range(11))),
     "11 filas > 10"),
    (lambda: OutgoingMessage(body="x", buttons=(OK,), header="h" * 61), "encabezado > 60"),
    (lambda: OutgoingMessage(body="x", buttons=(OK,), footer="f" * 61), "pie > 60"),
    (lambda: OutgoingMessage(body=""), "cuerpo vacío"),
])
def test_the_model_refuses_every_limit(build, problem: str) -> None:
    with pytest.raises(ValueError, match="límites de WhatsApp") as caught:
        build()
    assert problem in str(caught.value)


def test_limits_exactly_at_the_edge_are_accepted_and_survive_json() -> None:
    msg = OutgoingMessage(body="x" * 1024, buttons=(Choice("a", "y" * 20),) * 3, header="h" * 60, footer="f" * 60)
    assert OutgoingMessage.from_json(msg.to_json()) == msg
    rows = tuple(Choice(str(i), "t" * 24, "d" * 72) for i in range(10))
    listed = OutgoingMessage(body="elige", list_button="Ver opciones", rows=rows)
    assert OutgoingMessage.from_json(listed.to_json()) == listed
    assert fit("abcdef", 4) == "abc…" and fit("abc", 4) == "abc"




async def test_the_fake_graph_refuses_over_limit_sends_like_meta(graph: InProcessGraph) -> None:
    url = f"{graph.base_url}/106540352242922/messages"
    long_text = {"messaging_product": "whatsapp", "to": "5215512345678", "type": "text", "text": {"body": "x" * 4097}}
    async with httpx.AsyncClient() as client:
        answer = await client.post(url, json=long_text)
        ok = await client.post(url, json={**long_text, "text": {"body": "x" * 4096}})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == 100
    assert "4096" in answer.json()["error"]["message"] and ok.status_code == 200


async def test_a_4000_character_description_still_gets_its_report_number(db_path: Path,
                                                                         graph: InProcessGraph) -> None:
    """The confirmation used to repeat the whole description (4,161 characters): Meta refused it and the
    user never got a report number."""
    rt = build_runtime(load_settings(base_env(db_path, WHATSAPP_API_BASE_URL=graph.base_url)), handoff=worker_queue())
    phone = "5215512349999"
    steps = ["quiero reportar un refrigerador", "10004512", "🧊 " + "se descongela y gotea " * 180, "sí"]
    try:
        async with serving_worker(rt) as queue:
            for i, text in enumerate(steps):
                body = encode(text_payload(f"wamid.LIM.{i}", phone, text[:4000], ts=1_763_880_000 + i))
                assert (await rt.webhook.post(signed_headers(body), body))[0] == 200
                await settle(queue)
    finally:
        await rt.aclose()
    last = graph.fake.sent[-1]["payload"]["text"]["body"]
    assert "RPT-000001" in last and len(last) <= 4096 and "…" in last
    assert len(graph.fake.sent) == 4  # every reply accepted by a Graph API that enforces the limits
