from __future__ import annotations

import azure.functions as func

from bot.metrics import CONTENT_TYPE, render_metrics, sample_db_gauges
from bot.runtime import get_runtime

bp = func.Blueprint()


# FUNCTION level: on Azure a scraper sends `x-functions-key` (or ?code=); the local host does not check keys.
@bp.route(route="metrics", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def metrics(req: func.HttpRequest) -> func.HttpResponse:
    body = await render_metrics(get_runtime().db)
    return func.HttpResponse(body, status_code=200, headers={"Content-Type": CONTENT_TYPE}, mimetype="text/plain",
                             charset="utf-8")


# On one instance, on an app-setting schedule (each minute locally, every 5 minutes on Azure): keeps the
# database gauges flowing to Application Insights (customMetrics) even when nobody scrapes /api/metrics.
@bp.timer_trigger(schedule="%METRICS_SAMPLE_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=False)
async def muestreo_metricas(timer: func.TimerRequest) -> None:
    rt = get_runtime()
    if rt.settings.applicationinsights_connection_string:
        await sample_db_gauges(rt.db)
