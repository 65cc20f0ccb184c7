"""Outbound triggers: the outbox sweep timer and the broadcast campaign endpoints."""

from __future__ import annotations

import azure.functions as func

from bot.outbound.campaigns import ApiResponse, campaign_status, queue_campaign
from bot.outbound.dispatcher import STATUS_RECONCILE_WINDOW_MS
from bot.runtime import get_runtime
from core.storage.idle import outbox_sweep_due

bp = func.Blueprint()


def _http(response: ApiResponse) -> func.HttpResponse:
    return func.HttpResponse(response.json(), status_code=response.status, mimetype="application/json")


# An app setting: every 10 s locally, every minute on Azure (infra/), where replies go out eagerly and the
# sweep only retries and settles. A timer runs on one instance at a time; the eager path may run too.
@bp.timer_trigger(arg_name="timer", schedule="%OUTBOX_SWEEP_SCHEDULE%", run_on_startup=False, use_monitor=False)
async def outbox_sweep(timer: func.TimerRequest) -> None:
    rt = get_runtime()
    # Nothing open, claimed or recently sent: one read, no claim written (core/storage/idle.py).
    if not await outbox_sweep_due(rt.db, rt.clock() - STATUS_RECONCILE_WINDOW_MS):
        return
    await rt.outbox.sweep()


@bp.route(route="campanas/{campana}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def campaign_queue(req: func.HttpRequest) -> func.HttpResponse:
    rt = get_runtime()
    return _http(await queue_campaign(rt.db, req.route_params.get("campana", ""), req.get_body(), now_ms=rt.clock()))


@bp.route(route="campanas/{campana}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def campaign_counts(req: func.HttpRequest) -> func.HttpResponse:
    return _http(await campaign_status(get_runtime().db, req.route_params.get("campana", "")))
