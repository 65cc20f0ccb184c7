from __future__ import annotations

import json
import logging

import azure.functions as func

from bot.health import check_health
from bot.runtime import get_runtime
from core.errors import BotError
from core.storage import SqliteOnAzure

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        rt = get_runtime()
        result = (await check_health(rt.db, wait_ms=rt.settings.request_db_wait_ms)).as_dict()
        status = 200 if result["status"] == "ok" else 503
    except SqliteOnAzure as exc:  # its reason names no secret: say it where the operator looks first
        logging.getLogger(__name__).error("Health: la app no puede arrancar: %s", exc)
        result, status = {"status": "unavailable", "reason": str(exc)}, 503
    except BotError as exc:  # bad settings or a database adapter that cannot even be built
        logging.getLogger(__name__).error("Health: la app no puede arrancar: %s", exc)
        result, status = {"status": "unavailable", "reason": "configuration or database error (see the log)"}, 503
    return func.HttpResponse(json.dumps(result), status_code=status, mimetype="application/json")
