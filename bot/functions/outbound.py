"""Outbound triggers: the outbox sweep timer and the broadcast campaign endpoints."""

from __future__ import annotations

import azure.functions as func

from bot.outbound.campaigns import ApiResponse, campaign_status, queue_campaign
from bot.outbound.dispatcher import epoch_ms, sweep_outbox
from bot.runtime import get_runtime

bp = func.Blueprint()


def _http(response: ApiResponse) -> func.HttpResponse:
    return func.HttpResponse(response.json(), status_code=response.status, mimetype="application/json")


# Every 10 s. A timer runs on one instance at a time; the eager path and other processes may run too.
@bp.timer_trigger(arg_name="timer", schedule="*/10 * * * * *", run_on_startup=False, use_monitor=False)
async def outbox_sweep(timer: func.TimerRequest) -> None:
    await sweep_outbox(get_runtime())


@bp.route(route="campanas/{campana}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def campaign_queue(req: func.HttpRequest) -> func.HttpResponse:
    return _http(await queue_campaign(get_runtime(), req.route_params.get("campana", ""), req.get_body(),
                                      now_ms=epoch_ms()))


@bp.route(route="campanas/{campana}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def campaign_counts(req: func.HttpRequest) -> func.HttpResponse:
    return _http(await campaign_status(get_runtime(), req.route_params.get("campana", "")))
