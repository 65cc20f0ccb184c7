"""Golden transcripts: every flow, as the user's turns and the bot's exact replies, in `tests/transcripts/`.

Each file is replayed through the real path: a signed Meta-shaped webhook, the inbox, the queue
worker, the flows and the outbound queue, to a fake Graph API that enforces WhatsApp's limits. The
bot's replies are rendered as text and compared with the file, so any change to the Spanish copy shows
up as a diff in review. To accept a deliberate change: `UPDATE_TRANSCRIPTS=1 make test`, then read the
diff.

Turn syntax (one per line; `#` lines are comments and are kept):
    usuario: <text>                     a text message
    usuario+: <text>                    sent together with the previous message (one delivery, one turn)
    usuario: [botón <id> | <title>]     a reply button pressed; [lista <id> | <title>] a list row chosen
    usuario: [foto] / [foto: <caption>] an image (also [video], [nota de voz], [documento: <name>], [sticker])
    usuario: [ubicación] / [ubicación: <name>]   a shared location
    usuario: [contacto]                 a shared contact card
    (30 minutos sin actividad)          the idle sweep runs after the session aged 31 minutes
    (mantenimiento: RPT-000001 en_proceso | nota)   maintenance changes a status (the HTTP function's code)
    (mantenimiento libera la conversación)          maintenance gives a handed-over conversation back
    (3 horas después) / (1 día sin actividad)    the session's clocks move back that much, then the sweep runs
The bot's messages follow as `bot: ` lines; a reply's later lines are indented, and its buttons or list
rows are shown as `[título]`.

Every transcript is replayed twice: with the offline rules (the default) and through the OpenAI provider
against the fake AI server on loopback, which answers what a well-behaved model would. Both must match.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.conversation_panel import panel
from bot.runtime import Runtime, build_runtime
from core.settings import load_settings
from local_host.fake_ai import FakeOpenAI, serve
from local_host.meta_payloads import Identity, button_reply, list_reply, text_message, webhook_body
from local_host.queues import serving_worker, settle, worker_queue
from tests.conftest import base_env
from tests.conversation_helpers import query
from tests.outbox_support import InProcessGraph
from tests.webhook_helpers import signed_headers

TRANSCRIPTS = Path(__file__).parent / "transcripts"
PHONE = "5215512340001"
UPDATE = os.environ.get("UPDATE_TRANSCRIPTS") == "1"
MODEL_WORDS = {"preguntas"}  # transcripts where the fake model's assistant answers differ from the offline ones
_BUTTON = re.compile(r"^\[botón (\S+) \| (.+)\]$")
_MAINTENANCE = re.compile(r"^\(mantenimiento: (RPT-\d+) (\w+)(?: \| (.+))?\)$")
_LIST = re.compile(r"^\[lista (\S+) \| (.+)\]$")
_MEDIA = {"foto": ("image", {"id": "1234567890", "mime_type": "image/jpeg", "sha256": "x" * 64}),
          "imagen": ("image", {"id": "1234567891", "mime_type": "image/jpeg", "sha256": "x" * 64}),
          "video": ("video", {"id": "1234567892", "mime_type": "video/mp4", "sha256": "x" * 64}),
          "nota de voz": ("audio", {"id": "2234567890", "mime_type": "audio/ogg; codecs=opus", "voice": True,
                                    "sha256": "x" * 64}),
          "audio": ("audio", {"id": "2234567891", "mime_type": "audio/ogg", "sha256": "x" * 64}),
          "documento": ("document", {"id": "4234567890", "mime_type": "application/pdf", "sha256": "x" * 64}),
          "sticker": ("sticker", {"id": "3234567890", "mime_type": "image/webp", "sha256": "x" * 64}),
          "ubicación": ("location", {"latitude": 19.43, "longitude": -99.13}),
          "contacto": ("contacts", None)}
_TIME = {"(30 minutos sin actividad)": 31 * 60_000, "(3 horas después)": 3 * 3_600_000,
         "(1 día sin actividad)": 25 * 3_600_000}


def _message(said: str, serial: int) -> dict:
    if m := _BUTTON.match(said):
        return button_reply(m.group(1), m.group(2))
    if m := _LIST.match(said):
        return list_reply(m.group(1), m.group(2))
    if said.startswith("[") and said.endswith("]"):
        name, _, extra = said[1:-1].partition(":")
        if name in _MEDIA:
            kind, content = _MEDIA[name]
            if kind == "contacts":
                return {"type": "contacts", "contacts": [{"name": {"formatted_name": "Juan Pérez"},
                                                          "phones": [{"phone": "+5215511112222"}]}]}
            content = dict(content)
            if "id" in content:
                content["id"] = f"{content['id']}{serial:04d}"
            if extra.strip():
                key = {"location": "name", "document": "filename"}.get(kind, "caption")
                content[key] = extra.strip()
            return {"type": kind, kind: content}
    return text_message(said)


async def _age(db_path: Path, ms: int) -> None:
    fields = ("ultimo_reporte_en", "ultimo_mensaje_en", "atencion_hasta")
    query(db_path, f"UPDATE SesionesChat SET UltimaActividad = UltimaActividad - {ms}")
    for f in fields:
        query(db_path, f"UPDATE SesionesChat SET DatosTemp = json_set(DatosTemp, '$.{f}', "
                       f"json_extract(DatosTemp, '$.{f}') - {ms}) WHERE json_extract(DatosTemp, '$.{f}') IS NOT NULL")


def render(payload: dict) -> list[str]:
    """A Graph send as transcript lines."""
    if payload.get("type") == "text":
        body, buttons = payload["text"]["body"], []
    else:
        interactive = payload["interactive"]
        body = interactive["body"]["text"]
        action = interactive["action"]
        buttons = [b["reply"]["title"] for b in action.get("buttons", [])]
        buttons += [row["title"] for s in action.get("sections", []) for row in s["rows"]]
    body = re.sub(r"\b\d{2}/\d{2}/\d{4}\b", "DD/MM/AAAA", body)  # report dates are the real clock's
    lines = body.split("\n")
    out = [f"bot: {lines[0]}"] + [f"     {line}" if line else "" for line in lines[1:]]
    if buttons:
        out.append("     " + " ".join(f"[{b}]" for b in buttons))
    return out


def user_turns(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith(("usuario: ", "usuario+: ", "(", "#"))]  # the bot's lines are what the test checks


def _groups(turns: list[str]) -> list[list[str]]:
    """Turns with the `usuario+:` lines joined to the message before them."""
    out: list[list[str]] = []
    for turn in turns:
        if turn.startswith("usuario+: ") and out:
            out[-1].append(turn)
        else:
            out.append([turn])
    return out


async def replay(rt: Runtime, graph: InProcessGraph, db_path: Path, turns: list[str]) -> str:
    who = Identity(phone=PHONE, bsuid="MX.1500000000000001", name="Técnico", username=None)
    out: list[str] = []
    clock = 1_763_880_000
    serial = 0
    async with serving_worker(rt) as queue:
        for group in _groups(turns):
            first = group[0]
            out.extend(group)
            if first.startswith("#"):
                continue
            seen = len(graph.fake.sent)
            if first in _TIME:
                await _age(db_path, _TIME[first])
                await rt.sweeper.sweep()
            elif m := _MAINTENANCE.match(first):
                number, status, note = m.group(1), m.group(2), m.group(3)
                body = json.dumps({"estado": status, "nota": note} if note else {"estado": status}).encode()
                assert (await rt.reports.change_status(number, body)).status == 200
            elif first == "(mantenimiento libera la conversación)":
                assert (await rt.reports.release_conversation(PHONE)).status == 200
            else:
                body: dict | None = None
                for line in group:
                    said = line.split(": ", 1)[1]
                    clock += 1
                    serial += 1
                    _, one = webhook_body(who, _message(said, serial), timestamp=clock,
                                          phone_number_id=rt.settings.whatsapp_phone_number_id)
                    if body is None:
                        body = one
                    else:
                        body["entry"][0]["changes"][0]["value"]["messages"] += \
                            one["entry"][0]["changes"][0]["value"]["messages"]
                raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
                assert (await rt.webhook.post(signed_headers(raw), raw))[0] == 200
            await settle(queue)
            for send in graph.fake.sent[seen:]:
                out.extend(render(send["payload"]))
    return "\n".join(out) + "\n"


@pytest.fixture(params=["offline", "fake_ai"])
async def ai_env(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    if request.param == "offline":
        yield {}
        return
    fake = FakeOpenAI()
    served = await serve(fake.app())
    yield {"AI_PROVIDER": "openai,offline", "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": served.base_url + "/v1"}
    await served.close()


@pytest.mark.parametrize("path", sorted(TRANSCRIPTS.glob("*.txt")), ids=lambda p: p.stem)
async def test_transcript(path: Path, db_path: Path, graph: InProcessGraph, ai_env: dict[str, str]) -> None:
    if ai_env and path.stem in MODEL_WORDS:
        pytest.skip("the assistant's answers are the model's own words")
    rt = build_runtime(load_settings(base_env(db_path, WHATSAPP_API_BASE_URL=graph.base_url,
                                              OUTBOX_RATE_PER_SECOND="1000", **ai_env)), handoff=worker_queue())
    try:
        actual = await replay(rt, graph, db_path, user_turns(path))
    finally:
        await rt.aclose()
    expected = await asyncio.to_thread(path.read_text, encoding="utf-8")
    if UPDATE and actual != expected and not ai_env:
        await asyncio.to_thread(path.write_text, actual, encoding="utf-8")
        pytest.skip(f"{path.name} rewritten (UPDATE_TRANSCRIPTS=1): review the diff")
    assert actual == expected
    assert not [s for s in graph.fake.sent if s.get("error")]


def test_every_flow_has_a_transcript() -> None:
    names = {p.stem for p in TRANSCRIPTS.glob("*.txt")}
    assert {"refrigerador", "refrigerador_con_falla", "vehiculo", "cancelar", "menu", "preguntas",
            "no_textual", "expiracion", "tres_codigos_fallidos", "reportes_numerados", "todo_en_un_mensaje",
            "rafaga_tres_mensajes", "duplicado_misma_falla", "como_va_mi_reporte", "hablar_con_persona",
            "borrador_un_dia", "me_equivoque", "sin_etiqueta_lista"} <= names


def test_panel_reaches_a_report_number_quickly() -> None:
    """What a worker pays: everything in one message is 2 messages (it plus "sí"); the panel's median <= 3."""
    counts = panel()
    assert len(list(TRANSCRIPTS.glob("*.txt"))) >= 30 and len(counts) >= 25
    for all_in_one in ("todo_en_un_mensaje", "vehiculo_todo_junto", "ingles"):
        assert counts[all_in_one] == 2
    assert statistics.median(counts.values()) <= 3
