"""Maintenance's report endpoints (function key): read a report, change its status, release a handover."""

from __future__ import annotations

import azure.functions as func

from bot.outbound.campaigns import ApiResponse
from bot.runtime import get_runtime

bp = func.Blueprint()


def _http(response: ApiResponse) -> func.HttpResponse:
    return func.HttpResponse(response.json(), status_code=response.status, mimetype="application/json")


@bp.route(route="reportes/{numero}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def report_get(req: func.HttpRequest) -> func.HttpResponse:
    return _http(await get_runtime().reports.detail(req.route_params.get("numero", "")))


@bp.route(route="reportes/{numero}/estado", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def report_status(req: func.HttpRequest) -> func.HttpResponse:
    return _http(await get_runtime().reports.change_status(req.route_params.get("numero", ""), req.get_body()))


@bp.route(route="conversaciones/{telefono}/liberar", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def conversation_release(req: func.HttpRequest) -> func.HttpResponse:
    return _http(await get_runtime().reports.release_conversation(req.route_params.get("telefono", "")))
