from __future__ import annotations

import azure.functions as func

from bot.runtime import get_runtime

bp = func.Blueprint()


# Anonymous: Meta cannot send a function key; every POST is authenticated by its HMAC signature instead.
@bp.route(route="whatsapp/webhook", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def whatsapp_webhook(req: func.HttpRequest) -> func.HttpResponse:
    rt = get_runtime()
    if req.method.upper() == "GET":
        status, text = rt.webhook.verify(req.params)
    else:
        status, text = await rt.webhook.post(req.headers, req.get_body())
    return func.HttpResponse(text, status_code=status, mimetype="text/plain", charset="utf-8")
