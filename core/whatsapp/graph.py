"""The thin HTTP layer over the Graph API: one method per endpoint, every call through `_request`.

One pooled `httpx.AsyncClient` per process, explicit timeouts, and typed errors from `errors.py`.
The bearer token lives only in the client's default headers: it is never part of a URL, an error
or a log line (httpx logs the method and URL only).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from core.whatsapp.errors import NetworkError, SendOutcomeUnknown, error_from_response

log = logging.getLogger(__name__)

# Connect fast or fail (nothing was sent, safe to retry); give Meta longer to answer a send.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=32, keepalive_expiry=30.0)


class GraphApi:
    def __init__(
        self,
        base_url: str,
        access_token: str,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Content-Type": "application/json"}
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, limits=limits, transport=transport
        )

    def __repr__(self) -> str:  # the default repr could drag headers into a traceback
        return f"GraphApi(base_url={self.base_url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send_message(self, phone_number_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST /{phone_number_id}/messages; answers Graph's JSON (`messages[0].id` is the wamid)."""
        return await self._request("POST", f"/{phone_number_id}/messages", json=payload)

    async def _request(self, method: str, path: str, *, json: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = await self._http.request(method, path, json=json)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NetworkError(f"sin conexión con Graph API: {type(exc).__name__}") from None
        except (httpx.WriteError, httpx.WriteTimeout) as exc:
            # A body Meta did not fully receive cannot have been processed.
            raise NetworkError(f"envío interrumpido: {type(exc).__name__}") from None
        except httpx.TransportError as exc:
            # ReadTimeout, ReadError, RemoteProtocolError: the request went out, the answer did not come.
            raise SendOutcomeUnknown(f"sin respuesta de Graph API: {type(exc).__name__}") from None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict):
            return body
        if response.is_success:
            # Meta accepted something but we cannot read what: treat it like a lost answer.
            raise SendOutcomeUnknown(f"respuesta ilegible de Graph API (HTTP {response.status_code})")
        raise error_from_response(response.status_code, body)
