"""A dispatcher as its own OS process, for the multi-process outbox tests and the bench (test-only).

    python -m tests.outbox_worker sweep  --seconds 20          # sweep until the queue is drained
    python -m tests.outbox_worker eager  --recipients FILE     # dispatch_recipient over a list, until drained
    python -m tests.outbox_worker hang                         # one sweep that freezes after Meta accepted a send

Settings come from the environment (SQLITE_PATH, WHATSAPP_API_BASE_URL, ...). It prints one JSON line.
`hang` prints `ACEPTADO <wamid>` once the fake accepted the send and before the row is marked, then
sleeps, so a test can SIGKILL it at exactly that point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time

from bot.runtime import build_runtime
from core.settings import load_settings
from core.storage.inspection import count_by_state
from core.whatsapp.client import WhatsAppClient
from core.whatsapp.outgoing import OutgoingMessage


class _HangAfterSend:
    def __init__(self, inner) -> None:
        self.inner = inner

    async def send(self, recipient: str, message: OutgoingMessage, **kwargs) -> str:
        wamid = await self.inner.send(recipient, message, **kwargs)
        print(f"ACEPTADO {wamid}", flush=True)
        await asyncio.sleep(3600)
        return wamid


async def _open_rows(rt) -> int:
    counts = await count_by_state(rt.db)
    return counts.get("pendiente") + counts.get("procesando")


async def run(args: argparse.Namespace, recipients: list[str]) -> int:
    if args.mode == "hang":
        settings = load_settings()
        rt = build_runtime(settings, whatsapp=_HangAfterSend(WhatsAppClient.from_settings(settings)))
        await rt.outbox.sweep()
        return 0
    rt = build_runtime()
    deadline = time.monotonic() + args.seconds
    sent = claimed = rounds = 0
    while time.monotonic() < deadline:
        rounds += 1
        if args.mode == "sweep":
            result = await rt.outbox.sweep()
            sent, claimed = sent + result.sent, claimed + result.claimed
            if result.claimed == 0:
                if await _open_rows(rt) == 0:
                    break
                await asyncio.sleep(0.01)
        else:
            random.shuffle(recipients)
            for recipient in recipients:
                sent += await rt.outbox.dispatch_recipient(recipient)
            if await _open_rows(rt) == 0:
                break
    print(json.dumps({"mode": args.mode, "sent": sent, "claimed": claimed, "rounds": rounds}), flush=True)
    rt.db.close()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["sweep", "eager", "hang"])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--recipients", default=None)
    args = parser.parse_args(argv)
    recipients: list[str] = []
    if args.recipients:
        with open(args.recipients, encoding="utf-8") as handle:
            recipients = [line.strip() for line in handle if line.strip()]
    return asyncio.run(run(args, recipients))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
