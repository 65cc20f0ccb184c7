from __future__ import annotations

import json

import azure.functions as func

from bot.health import check_health
from bot.runtime import get_runtime

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    result = await check_health(get_runtime().db)
    return func.HttpResponse(
        json.dumps(result.as_dict()), status_code=200 if result.ok else 503, mimetype="application/json"
    )
