"""The WhatsApp client the app uses: `send(recipient, message) -> wamid` (text, interactive or template).

It does not rate limit: the dispatcher takes the number's send-limit tokens (`ratelimit.py`) before it
claims rows, so that a claimed row never waits on the limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from core.settings import Settings
from core.whatsapp.errors import SendOutcomeUnknown
from core.whatsapp.graph import GraphApi
from core.whatsapp.outgoing import AnyOutgoing


class MessageSender(Protocol):
    """What the dispatcher needs of a WhatsApp client (tests give it stand-ins)."""

    async def send(self, recipient: str, message: AnyOutgoing, *, phone_number_id: str | None = None,
                   on_request: Callable[[], None] | None = None) -> str: ...


class WhatsAppClient:
    def __init__(self, api: GraphApi, phone_number_id: str) -> None:
        self.api = api
        self.phone_number_id = phone_number_id

    @classmethod
    def from_settings(cls, settings: Settings) -> WhatsAppClient:
        api = GraphApi(settings.whatsapp_api_base_url, settings.whatsapp_access_token)
        return cls(api, settings.whatsapp_phone_number_id)

    def __repr__(self) -> str:
        return f"WhatsAppClient(phone_number_id={self.phone_number_id!r})"

    async def send(self, recipient: str, message: AnyOutgoing, *, phone_number_id: str | None = None,
                   on_request: Callable[[], None] | None = None) -> str:
        """Send one message; answers its wamid. Raises the typed errors of `core.whatsapp.errors`.

        `on_request` is called just before the HTTP request starts: a cancellation before that point
        means nothing can have reached Meta.
        """
        if on_request is not None:
            on_request()
        body = await self.api.send_message(phone_number_id or self.phone_number_id,
                                           message.to_graph_payload(recipient))
        return _wamid(body)

    async def aclose(self) -> None:
        await self.api.aclose()


def _wamid(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict) and messages[0].get("id"):
        return str(messages[0]["id"])
    # Accepted (2xx) without an id: it may well be on its way, so it must not be resent blindly.
    raise SendOutcomeUnknown("Graph API aceptó el envío sin devolver un wamid")
