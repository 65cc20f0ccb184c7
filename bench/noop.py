"""A no-op HTTP function: the yardstick the ingest benchmark compares the webhook against.

It lives under `bench/`, never in `function_app.py`, so production cannot expose it; only
`python -m bench.noop_host` registers it, on the same app object and the same local host path.
"""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()


@bp.route(route="bench/noop", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def bench_noop(req: func.HttpRequest) -> func.HttpResponse:
    req.get_body()  # touch the body like the webhook does, then answer like it does
    return func.HttpResponse("EVENT_RECEIVED", status_code=200, mimetype="text/plain", charset="utf-8")
