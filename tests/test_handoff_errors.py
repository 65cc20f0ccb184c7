"""A hand-off that fails says why: the storage service's own status, error code and message, and a
refused connection told apart from a timeout. Before, the log said only `HttpResponseError` or
`TimeoutError`, hiding Azurite's "API version not supported" and calling a refused connection a timeout.
Real loopback servers stand in for the storage account: none listening, one that never answers, and one
that answers like Azurite refusing the SDK's API version.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from core.azure_storage import StorageConnection
from core.handoff import HandoffError, StorageQueueHandoff
from tests.conftest import free_port

KEY = base64.b64encode(bytes(64)).decode()  # any well-formed key: nothing here checks signatures


def _connection_string(port: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
            f"QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")


async def _failure(port: int) -> str:
    queue = StorageQueueHandoff(StorageConnection(connection_string=_connection_string(port)))
    try:
        with pytest.raises(HandoffError) as caught:
            await queue.enqueue(["5215500000001"])
    finally:
        await queue.aclose()
    return str(caught.value)


async def test_a_refused_connection_says_refused() -> None:
    message = await _failure(free_port())  # nothing listens there
    assert "conexión rechazada" in message and "tiempo" not in message, message


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(30)  # accepted, read, never answered

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_a_server_that_never_answers_says_timeout(silent_port: int) -> None:
    message = await _failure(silent_port)
    assert "tiempo de espera agotado" in message and "rechazada" not in message, message


@pytest.fixture
async def azurite_like_port() -> AsyncIterator[int]:
    async def refuse(request: web.Request) -> web.Response:
        version = request.headers.get("x-ms-version", "?")
        body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>InvalidHeaderValue</Code><Message>The API '
                f'version {version} is not supported by Azurite. Please upgrade Azurite to latest version and '
                f'retry.</Message></Error>')
        return web.Response(status=400, text=body, content_type="application/xml",
                            headers={"x-ms-error-code": "InvalidHeaderValue"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


async def test_the_services_error_code_and_message_are_kept(azurite_like_port: int) -> None:
    message = await _failure(azurite_like_port)
    assert "HTTP 400" in message and "InvalidHeaderValue" in message, message
    assert "is not supported by Azurite" in message, message
