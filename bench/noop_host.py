"""`python -m bench.noop_host [local_host options]`: the local host plus the no-op function of `bench/noop.py`.

Registers the no-op blueprint on `function_app.app` before `local_host` serves that same object, so
both functions go through the identical aiohttp -> func.HttpRequest -> func.HttpResponse path.
With `BENCH_INLINE_DRAIN=0` the webhook's in-request drain is switched off in this process only, so
the ingest path (verify, parse, register) is measured alone; the rows stay pending.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from bench.noop import bp
from bot.conversation import drain
from bot.runtime import Runtime
from function_app import app
from local_host.__main__ import main


async def _no_drain(rt: Runtime, keys: Iterable[str], deadline: float) -> None:
    return None


if __name__ == "__main__":
    app.register_functions(bp)
    if os.environ.get("BENCH_INLINE_DRAIN") == "0":
        drain.drain_conversations = _no_drain  # type: ignore[assignment]
    sys.exit(main())
