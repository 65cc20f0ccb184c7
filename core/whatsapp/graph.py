"""The thin HTTP layer over the Graph API: one method per endpoint, every call through `_request`.

aiohttp, one pooled session per process (created on first use, inside the running loop), explicit
timeouts, and typed errors from `errors.py`. aiohttp is already the transport of the hand-off queue's
SDK, and it sends several times faster than httpx on the same machine (docs/benchmarks.md), which
leaves headroom far above Meta's per-number limit. The bearer token lives only in the session's default
headers: it is never part of a URL, an error or a log line.

What an error means for the send decides the row's fate, so the mapping is careful:
- the connection could not be made (refused, DNS, connect timeout): nothing left, retry later;
- the request went out and no answer came (read timeout, the server hung up): `SendOutcomeUnknown`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from core.whatsapp.errors import NetworkError, SendOutcomeUnknown, error_from_response

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GraphTimeouts:
    """Connect fast or fail (nothing was sent, safe to retry); give Meta longer to answer a send."""

    connect_s: float = 5.0
    read_s: float = 15.0

    def client_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=None, connect=self.connect_s, sock_connect=self.connect_s,
                                     sock_read=self.read_s)


DEFAULT_TIMEOUTS = GraphTimeouts()
MAX_CONNECTIONS = 64


class GraphApi:
    def __init__(self, base_url: str, access_token: str, *, timeouts: GraphTimeouts = DEFAULT_TIMEOUTS,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self._headers = {"Content-Type": "application/json"}
        if access_token:
            self._headers["Authorization"] = f"Bearer {access_token}"
        self.base_url = base_url.rstrip("/")
        self._timeouts = timeouts
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # the default repr could drag headers into a traceback
        return f"GraphApi(base_url={self.base_url!r})"

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeouts.client_timeout(),
                                                  connector=connector, raise_for_status=False)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send_message(self, phone_number_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST /{phone_number_id}/messages; answers Graph's JSON (`messages[0].id` is the wamid)."""
        return await self._request("POST", f"/{phone_number_id}/messages", payload)

    async def _request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8") if payload is not None else None
        try:
            async with self._http().request(method, self.base_url + path, data=data) as response:
                status = response.status
                raw = await response.read()
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            raise NetworkError(f"sin conexión con Graph API: {type(exc).__name__}") from None
        except aiohttp.ServerTimeoutError:
            # The request went out; the answer did not come in time.
            raise SendOutcomeUnknown("sin respuesta de Graph API: ReadTimeout") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            # Disconnected mid-answer, a broken payload: the request may have been processed.
            raise SendOutcomeUnknown(f"sin respuesta de Graph API: {type(exc).__name__}") from None
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if 200 <= status < 300 and isinstance(body, dict):
            return body
        if 200 <= status < 300:
            # Meta accepted something but we cannot read what: treat it like a lost answer.
            raise SendOutcomeUnknown(f"respuesta ilegible de Graph API (HTTP {status})")
        raise error_from_response(status, body)
