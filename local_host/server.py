"""Serve `function_app.app` on one asyncio loop: HTTP functions at /api/<route>, timers on schedule,
queue triggers from in-process queues (local_host/queues.py).

aiohttp does the HTTP; this module only converts aiohttp requests into `func.HttpRequest` and
`func.HttpResponse` back, the way the Functions Python worker does.

The surface is closed by default: it binds loopback, refuses a Host that is not this machine's name
(DNS rebinding) and any Origin but its own (scheme, host and port: another page on another loopback
port is another site). Binding any other address needs `--allow-remote`, and then FUNCTION-level routes
(campaigns, metrics) demand the key in `LOCAL_FUNCTION_KEY` (`x-functions-key` header or `?code=`),
as Azure does; locally on loopback, as with Core Tools, keys are not checked.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
from aiohttp import web

from core.azure_storage import StorageConnection
from local_host.queues import HOST_JSON, LocalQueue, QueueOptions
from local_host.storage_queue import HOST_LEASE_S, StorageQueueListener
from local_host.timers import LOCAL_STARTUP_RUNS, run_timer

log = logging.getLogger("local_host")
# The default cap when the app's own setting is not given; aiohttp refuses a bigger body (413) while
# reading it, so an oversized POST never sits in memory whole.
MAX_BODY_BYTES = 3 * 1024 * 1024
# A client that declares a body and does not send it gets 408 after this long, instead of holding a
# connection and a task forever.
BODY_READ_TIMEOUT_S = 10.0
EXTRA_ROUTES_KEY: web.AppKey[list[Callable[[web.Application], None]]] = web.AppKey("extra_routes", list)
QUEUES_KEY: web.AppKey[dict[str, LocalQueue | StorageQueueListener]] = web.AppKey("queues", dict)


@dataclass(frozen=True, slots=True)
class HttpFunction:
    name: str
    route: str
    methods: tuple[str, ...]
    arg_name: str
    fn: Callable[..., Any]
    auth_level: str = "anonymous"  # anonymous | function | admin, as the trigger declares it


@dataclass(frozen=True, slots=True)
class TimerFunction:
    name: str
    schedule: str
    run_on_startup: bool
    arg_name: str
    fn: Callable[..., Any]


@dataclass(frozen=True, slots=True)
class QueueFunction:
    name: str
    queue_name: str
    arg_name: str
    fn: Callable[..., Any]


def discover(app: func.FunctionApp) -> tuple[list[HttpFunction], list[TimerFunction], list[QueueFunction]]:
    http: list[HttpFunction] = []
    timers: list[TimerFunction] = []
    queues: list[QueueFunction] = []
    for function in app.get_functions():
        # The trigger's attributes depend on its type (route, schedule, queue_name): read dynamically.
        trigger: Any = function.get_trigger()
        fn = function.get_user_function()
        name = str(function.get_function_name())
        if trigger.type == "httpTrigger":
            route = trigger.route or name
            methods = tuple(str(getattr(m, "value", m)).upper() for m in (trigger.methods or ["GET", "POST"]))
            level = str(getattr(trigger.auth_level, "value", trigger.auth_level) or "function").lower()
            http.append(HttpFunction(name, route.strip("/"), methods, trigger.name, fn, level))
        elif trigger.type == "timerTrigger":
            startup = bool(trigger.run_on_startup) or name in LOCAL_STARTUP_RUNS
            timers.append(TimerFunction(name, trigger.schedule, startup, trigger.name, fn))
        elif trigger.type == "queueTrigger":
            queues.append(QueueFunction(name, trigger.queue_name, trigger.name, fn))
        else:
            log.warning("Función %s con trigger %s no soportado localmente; se omite", name, trigger.type)
    return http, timers, queues


def to_http_request(request: web.Request, body: bytes) -> func.HttpRequest:
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=dict(request.headers),
        params=dict(request.query),
        route_params=dict(request.match_info),
        body=body,
    )


def to_web_response(response: func.HttpResponse) -> web.Response:
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
    return web.Response(
        status=response.status_code,
        body=response.get_body(),
        headers=headers,
        content_type=response.mimetype or "text/plain",
        charset=response.charset if (response.mimetype or "").startswith(("text/", "application/json")) else None,
    )


def _has_key(request: web.Request, key: str) -> bool:
    given = request.headers.get("x-functions-key") or request.query.get("code") or ""
    return hmac.compare_digest(given.encode("utf-8", "replace"), key.encode("utf-8"))


def make_handler(function: HttpFunction, function_key: str | None = None) -> Callable[[web.Request], Any]:
    """`function_key`: when set, a FUNCTION- or ADMIN-level route answers 401 without it."""
    is_async = inspect.iscoroutinefunction(function.fn)
    needs_key = function_key is not None and function.auth_level != "anonymous"

    async def handler(request: web.Request) -> web.StreamResponse:
        if needs_key and not _has_key(request, function_key or ""):
            log.warning("Función %s: sin clave de función válida; 401", function.name)
            return web.Response(status=401, text="Unauthorized: function key required")
        try:
            async with asyncio.timeout(BODY_READ_TIMEOUT_S):
                body = await request.read()
        except TimeoutError:
            log.warning("Función %s: el cuerpo no llegó en %.0f s; 408", function.name, BODY_READ_TIMEOUT_S)
            return web.Response(status=408, text="Request Timeout")
        req = to_http_request(request, body)
        try:
            if is_async:
                result = await function.fn(**{function.arg_name: req})
            else:
                result = await asyncio.to_thread(function.fn, **{function.arg_name: req})
        except Exception:
            log.exception("Función %s falló", function.name)
            return web.Response(status=500, text="Internal Server Error")
        if not isinstance(result, func.HttpResponse):
            return web.Response(status=204)
        return to_web_response(result)

    return handler


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
# The only route a foreign page may reach: Meta posts here, and each POST is proven by its signature.
OPEN_ROUTES = frozenset({"/api/whatsapp/webhook"})


def _hostname(value: str) -> str:
    """`host:port`, `[::1]:port` or a URL's netloc -> the bare, lowercased host name."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _origin(scheme: str, netloc: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the scheme's default port filled in: what "same origin" compares."""
    parts = urlsplit(f"{scheme}://{netloc}")
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme.lower(), (parts.hostname or "").lower(), port or (443 if scheme.lower() == "https" else 80)


def local_only(bind_host: str) -> Callable[..., Any]:
    """Refuse what a web page could make a browser send: a Host that is not this machine's loopback name
    (DNS rebinding) and any Origin but our own, scheme, host and port (a form or fetch from another site,
    or from another app on another loopback port). The console signs webhooks and starts broadcasts, so
    a page must not drive it."""
    wildcard = bind_host in ("0.0.0.0", "::", "")
    allowed = LOOPBACK_NAMES | ({_hostname(bind_host)} if not wildcard else set())

    @web.middleware
    async def middleware(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        if request.path in OPEN_ROUTES:
            return await handler(request)
        host = _hostname(request.host or "")
        if not wildcard and host not in allowed:
            log.warning("Local host: Host %r rechazado en %s (solo nombres locales)", host[:60], request.path)
            return web.Response(status=403, text="Forbidden: Host not allowed")
        origin = request.headers.get("Origin")
        if origin is not None:
            parts = urlsplit(origin)
            theirs = _origin(parts.scheme, parts.netloc) if origin != "null" else ("null", "", 0)
            if theirs != _origin(request.scheme, request.host or ""):
                log.warning("Local host: Origin %r rechazado en %s (solo el propio origen)", origin[:80], request.path)
                return web.Response(status=403, text="Forbidden: cross-site request")
        if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
            return web.Response(status=403, text="Forbidden: cross-site request")
        return await handler(request)

    return middleware


def is_loopback(bind_host: str) -> bool:
    """Only the usual loopback names count; any other address (even 127.0.0.2) needs `--allow-remote`."""
    return _hostname(bind_host) in LOOPBACK_NAMES


def build_web_app(app: func.FunctionApp, *, run_timers: bool = True, host_json: Path = HOST_JSON,
                  max_body_bytes: int = MAX_BODY_BYTES, bind_host: str = "127.0.0.1",
                  storage: StorageConnection | None = None, lease_s: float = HOST_LEASE_S,
                  function_key: str | None = None) -> web.Application:
    """Every function of `app` on one aiohttp app. Queue triggers read in-process queues, or, given a
    configured `storage` connection, that account's Storage queues with the host's semantics.
    `function_key`: required off loopback (`--allow-remote`); FUNCTION-level routes then check it."""
    if not is_loopback(bind_host) and not function_key:
        raise ValueError(f"{bind_host} no es loopback: hace falta una clave de función (LOCAL_FUNCTION_KEY)")
    http, timers, queue_functions = discover(app)
    web_app = web.Application(client_max_size=max_body_bytes, middlewares=[local_only(bind_host)])
    for function in http:
        for method in function.methods:
            web_app.router.add_route(method, f"/api/{function.route}", make_handler(function, function_key))
    web_app["functions"] = http
    web_app["timers"] = timers
    web_app["queue_functions"] = queue_functions
    options = QueueOptions.from_host_json(host_json)
    queues: dict[str, LocalQueue | StorageQueueListener] = {
        f.queue_name: StorageQueueListener(f.queue_name, storage, options, lease_s=lease_s)
        if storage is not None and storage.configured else LocalQueue(f.queue_name, options)
        for f in queue_functions
    }
    web_app[QUEUES_KEY] = queues

    if queue_functions:

        async def queues_ctx(_: web.Application) -> Any:
            tasks = [asyncio.create_task(queues[f.queue_name].run(f.fn, f.arg_name), name=f.name)
                     for f in queue_functions]
            yield
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        web_app.cleanup_ctx.append(queues_ctx)

    if run_timers and timers:

        async def timers_ctx(_: web.Application) -> Any:
            tasks = [
                asyncio.create_task(run_timer(t.name, t.fn, t.arg_name, t.schedule, t.run_on_startup), name=t.name)
                for t in timers
            ]
            yield
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        web_app.cleanup_ctx.append(timers_ctx)
    return web_app
