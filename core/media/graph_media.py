"""Meta's media API for inbound media: `GET /{media-id}` answers a short-lived download URL, which is then
fetched with the same bearer token. Its own pooled session, apart from the sending client's: a download
may take much longer than a send and goes to another host (Meta's CDN); errors are the Graph errors
of `core.whatsapp.errors`. The token lives only in the session's headers, never in a URL or a log line.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import aiohttp

from core.whatsapp.errors import NetworkError, error_from_response

CONNECT_S = 5.0
READ_S = 30.0  # between two reads of a body, not for the whole body
MAX_CONNECTIONS = 16


class MediaApi:
    def __init__(self, base_url: str, access_token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # the default repr could drag the token into a traceback
        return f"MediaApi(base_url={self.base_url!r})"

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_S, sock_connect=CONNECT_S, sock_read=READ_S)
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=timeout,
                                                  connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS))
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def media_info(self, media_id: str) -> dict[str, Any]:
        """GET /{media-id}: `url` (short-lived), `mime_type`, `sha256`, `file_size`."""
        async with self.open(f"{self.base_url}/{quote(media_id, safe='')}") as body:
            raw = await body.read()
        try:
            info = json.loads(raw)
        except ValueError:
            info = None
        if not isinstance(info, dict):
            raise NetworkError("respuesta ilegible de Graph API al pedir el medio")
        return info

    @asynccontextmanager
    async def open(self, url: str) -> AsyncIterator[aiohttp.StreamReader]:
        """GET `url` with the bearer token; the 2xx body as a stream (bodies reach 100 MB)."""
        try:
            async with self._http().get(url) as response:
                if not 200 <= response.status < 300:
                    raw = await response.read()
                    try:
                        error: Any = json.loads(raw) if raw else None
                    except ValueError:
                        error = None
                    raise error_from_response(response.status, error)
                yield response.content
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            raise NetworkError(f"sin conexión con Graph API: {type(exc).__name__}") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise NetworkError(f"descarga interrumpida: {type(exc).__name__}") from None
