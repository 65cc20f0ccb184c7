"""Golden transcripts: every flow, as the user's turns and the bot's exact replies, in `tests/transcripts/`.

Each file is replayed through the real path: a signed Meta-shaped webhook, the inbox, the queue
worker, the flows and the outbound queue, to a fake Graph API that enforces WhatsApp's limits. The
bot's replies are rendered as text and compared with the file, so any change to the Spanish copy shows
up as a diff in review. To accept a deliberate change: `UPDATE_TRANSCRIPTS=1 make test`, then read the
diff.

Turn syntax (one per line; `#` lines are comments and are kept):
    usuario: <text>                 a text message
    usuario: [botón <id> | <title>] a reply button pressed
    usuario: [imagen]               an image (any non-text type: imagen, audio, ubicación, sticker)
    (30 minutos sin actividad)      the idle sweep runs after the session aged 30 minutes
The bot's messages follow as `bot: ` lines; a reply's later lines are indented, and its buttons are
shown as `[título]`.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from bot.conversation.sweeper import sweep_conversations
from bot.runtime import Runtime, build_runtime
from bot.webhook.ingest import handle_webhook_post
from core.settings import load_settings
from local_host.meta_payloads import Identity, button_reply, signed, text_message, webhook_body
from local_host.queues import serving_worker, settle
from tests.conftest import APP_SECRET, base_env
from tests.conversation_helpers import query
from tests.outbox_support import InProcessGraph
from tests.webhook_helpers import signed_headers

TRANSCRIPTS = Path(__file__).parent / "transcripts"
PHONE = "5215512340001"
UPDATE = os.environ.get("UPDATE_TRANSCRIPTS") == "1"
_BUTTON = re.compile(r"^\[botón (\S+) \| (.+)\]$")
_MEDIA = {"imagen": ("image", {"id": "1234567890", "mime_type": "image/jpeg"}),
          "audio": ("audio", {"id": "2234567890", "mime_type": "audio/ogg"}),
          "sticker": ("sticker", {"id": "3234567890", "mime_type": "image/webp"}),
          "ubicación": ("location", {"latitude": 19.43, "longitude": -99.13})}


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
    lines = body.split("\n")
    out = [f"bot: {lines[0]}"] + [f"     {line}" if line else "" for line in lines[1:]]
    if buttons:
        out.append("     " + " ".join(f"[{b}]" for b in buttons))
    return out


def user_turns(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith(("usuario: ", "(", "#"))]  # the bot's lines are what the test checks




async def replay(rt: Runtime, graph: InProcessGraph, db_path: Path, turns: list[str]) -> str:
    who = Identity(phone=PHONE, bsuid="MX.1500000000000001", name="Técnico", username=None)
    out: list[str] = []
    clock = 1_763_880_000
    async with serving_worker(rt) as queue:
        for turn in turns:
            if turn.startswith("#"):
                out.append(turn)
                continue
            out.append(turn)
            seen = len(graph.fake.sent)
            if turn == "(30 minutos sin actividad)":
                query(db_path, "UPDATE SesionesChat SET UltimaActividad = UltimaActividad - 31 * 60000")
                await sweep_conversations(rt)
            else:
                said = turn.removeprefix("usuario: ")
                clock += 20
                if m := _BUTTON.match(said):
                    message = button_reply(m.group(1), m.group(2))
                elif said.startswith("[") and said.endswith("]") and said[1:-1] in _MEDIA:
                    kind, content = _MEDIA[said[1:-1]]
                    message = {"type": kind, kind: content}
                else:
                    message = text_message(said)
                wamid, body = webhook_body(who, message, phone_number_id=rt.settings.whatsapp_phone_number_id,
                                           timestamp=clock)
                raw = signed(wamid, body, APP_SECRET).body
                assert (await handle_webhook_post(rt, signed_headers(raw), raw))[0] == 200
            await settle(queue)
            for send in graph.fake.sent[seen:]:
                out.extend(render(send["payload"]))
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("path", sorted(TRANSCRIPTS.glob("*.txt")), ids=lambda p: p.stem)
async def test_transcript(path: Path, db_path: Path, graph: InProcessGraph) -> None:
    rt = build_runtime(load_settings(base_env(db_path, WHATSAPP_API_BASE_URL=graph.base_url,
                                              OUTBOX_RATE_PER_SECOND="1000")))
    try:
        actual = await replay(rt, graph, db_path, user_turns(path))
    finally:
        await rt.aclose()
    expected = await asyncio.to_thread(path.read_text, encoding="utf-8")
    if UPDATE and actual != expected:
        await asyncio.to_thread(path.write_text, actual, encoding="utf-8")
        pytest.skip(f"{path.name} rewritten (UPDATE_TRANSCRIPTS=1): review the diff")
    assert actual == expected
    assert not [s for s in graph.fake.sent if s.get("error")]


def test_every_flow_has_a_transcript() -> None:
    names = {p.stem for p in TRANSCRIPTS.glob("*.txt")}
    assert {"refrigerador", "refrigerador_con_falla", "vehiculo", "cancelar", "menu", "preguntas",
            "no_textual", "expiracion", "tres_codigos_fallidos", "reportes_numerados"} <= names
