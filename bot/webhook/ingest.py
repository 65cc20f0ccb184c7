"""`/api/whatsapp/webhook`: Meta's verification handshake (GET) and webhook deliveries (POST).

POST, in order: size cap (413) -> signature on the raw bytes (401, nothing written) -> JSON (400) ->
parse every entry/change/message/status -> register the whole delivery in one transaction (one
atomic statement per item) -> hand the conversations with pending messages to the worker queue ->
200. The request takes no lease, calls no AI and sends nothing, so the ack costs the same whatever
the AI and the send limit are doing. Once the registration commits, the pending rows are the durable
inbox, so a failed hand-off is logged and the answer is still 200 (Meta's redelivery hands the key
off again, and the sweep redrives it anyway). If the registration itself fails, nothing was kept, so
the answer is 503 and Meta delivers again. So is a database that does not answer within
REQUEST_DB_WAIT_MS (another process holding the write lock, a failover): the request never hangs. A
registration that commits after that 503 is harmless, since Meta's redelivery is deduplicated and still
hands the conversation off while its message is pending.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Mapping

from bot.conversation.worker import hand_off
from bot.webhook.parse import parse_payload
from bot.webhook.signature import SIGNATURE_HEADER, verify_signature
from core.clock import Clock
from core.errors import StorageError
from core.handoff import HandoffQueue
from core.metrics import database_wait_exceeded_total, webhook_ignored_total
from core.settings import Settings
from core.storage.inbox import InboxRegistrar

log = logging.getLogger(__name__)

ACK = "EVENT_RECEIVED"


def _content_length(value: object) -> int | None:
    text = value.strip() if isinstance(value, str) else ""
    if not (text.isascii() and text.isdigit()):  # str.isdigit() also accepts "²", which int() refuses
        return None
    return int(text)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")  # json.loads accepts NaN/Infinity by default; Meta never sends them


def decode_json(body: bytes) -> object:
    """The JSON value of `body`; ValueError for anything that is not strict JSON (including too deep)."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


class Webhook:
    """The webhook's two requests. `settings` gives the app secret, the verify token, the body limit, the
    served numbers and how long a request waits for the database."""

    def __init__(self, settings: Settings, registrar: InboxRegistrar, handoff: HandoffQueue, clock: Clock) -> None:
        self.settings = settings
        self.registrar = registrar
        self.handoff = handoff
        self.clock = clock

    async def post(self, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """Answer one webhook POST with (HTTP status, plain-text body). Only programming errors raise."""
        settings = self.settings
        lowered = {str(k).lower(): v for k, v in headers.items()}
        limit = settings.webhook_max_body_bytes
        declared = _content_length(lowered.get("content-length"))
        if (declared is not None and declared > limit) or len(body) > limit:
            log.warning("Webhook: cuerpo de %d bytes excede el límite de %d; rechazado (413)",
                        max(declared or 0, len(body)), limit)
            return 413, "Payload Too Large"

        signature = lowered.get(SIGNATURE_HEADER)
        if not verify_signature(settings.whatsapp_app_secret, body, signature):
            # The body is never logged: it is unauthenticated input and may carry personal data.
            log.warning("Webhook: firma X-Hub-Signature-256 %s; rechazado (401), %d bytes sin leer",
                        "ausente" if not signature else "inválida", len(body))
            return 401, "Unauthorized"

        try:
            payload = decode_json(body)
        except ValueError as exc:
            log.warning("Webhook: cuerpo firmado que no es JSON (%s); rechazado (400)", type(exc).__name__)
            return 400, "Bad Request: body is not JSON"

        batch = parse_payload(payload, served=settings.served_phone_number_ids)
        if batch.foreign:
            webhook_ignored_total.labels(reason="numero_ajeno").inc(batch.foreign)
        if batch.own_sender:
            webhook_ignored_total.labels(reason="remitente_propio").inc(batch.own_sender)
        if batch.implausible_sender:
            webhook_ignored_total.labels(reason="remitente_invalido").inc(batch.implausible_sender)
        if not batch.messages and not batch.statuses:
            return 200, ACK  # unknown shapes, errors and other fields: acknowledged (a non-200 is redelivered forever)

        wait_ms = settings.request_db_wait_ms
        try:
            result = await asyncio.wait_for(
                self.registrar.register(batch.messages, batch.statuses, self.clock()), wait_ms / 1000)
        except TimeoutError:
            database_wait_exceeded_total.labels(route="webhook").inc()
            log.error("Webhook: la base de datos no respondió en %d ms (bloqueo de escritura retenido o base "
                      "saturada); 503 para que Meta la reenvíe", wait_ms)
            return 503, "Service Unavailable"
        except StorageError as exc:
            log.error("Webhook: no se pudo registrar la entrega (%s); 503 para que Meta la reenvíe", exc)
            return 503, "Service Unavailable"

        # New messages, and redeliveries still pending: a hand-off lost last time heals on Meta's next try.
        keys = [msg.conversation_key for msg, reg in zip(batch.messages, result.messages, strict=True)
                if reg.needs_handling]
        if keys:
            await hand_off(self.handoff, keys, origin="webhook")
        return 200, ACK

    def verify(self, params: Mapping[str, str]) -> tuple[int, str]:
        return _handshake(self.settings.whatsapp_verify_token, params)


def _handshake(expected: str, params: Mapping[str, str]) -> tuple[int, str]:
    """Meta's subscription handshake: echo `hub.challenge` when the verify token matches, else 403."""
    mode = params.get("hub.mode")
    token = params.get("hub.verify_token")
    challenge = params.get("hub.challenge")
    ok = (
        mode == "subscribe"
        and isinstance(token, str)
        and bool(expected)
        and hmac.compare_digest(token.encode("utf-8", "replace"), expected.encode("utf-8"))
        and isinstance(challenge, str)
    )
    if not ok:
        log.warning("Webhook: verificación rechazada (modo %r, token %s)", str(mode)[:20],
                    "ausente" if not token else "incorrecto")
        return 403, "Forbidden"
    log.info("Webhook: verificación de suscripción aceptada")
    return 200, str(challenge)
