"""`python -m local_host`: what `func start` does, without Core Tools.

Reads local.settings.json (or the example), migrates and seeds the embedded SQLite database, then
serves every function of `function_app.app` at http://127.0.0.1:7071/api/<route>.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from core.errors import BotError, SettingsError
from local_host.settings_file import load_local_settings

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("local_host")


MIN_FUNCTION_KEY = 16


def port_in_use(host: str, port: int) -> str | None:
    """Why `host:port` cannot be served (another program holds it), or None when it is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def follow_port(port: int) -> None:
    """The built-in fake Graph API lives on this host: a URL pointing at it on another local port (the
    example settings say 7071) follows the port actually served, so replies never reach another app."""
    url = os.environ.get("WHATSAPP_API_BASE_URL", "")
    parts = urlsplit(url)
    if parts.hostname in ("127.0.0.1", "localhost") and parts.path.startswith("/_fake_graph") and parts.port != port:
        os.environ["WHATSAPP_API_BASE_URL"] = urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the Function App locally")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FUNCTIONS_HTTPWORKER_PORT", "7071")))
    parser.add_argument("--no-timers", action="store_true", help="do not run timer functions")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a non-loopback --host; FUNCTION-level routes then require LOCAL_FUNCTION_KEY")
    args = parser.parse_args(argv)

    from local_host.server import is_loopback

    if not is_loopback(args.host) and not args.allow_remote:
        print(f"local_host: {args.host} no es una dirección de loopback; otras máquinas (y páginas vía DNS "
              "rebinding) podrían usar el host. Añade --allow-remote y define LOCAL_FUNCTION_KEY para exponerlo",
              file=sys.stderr)
        return 2
    os.environ["LOCAL_HOST"] = "1"
    busy = port_in_use(args.host, args.port)
    if busy:
        print(f"local_host: el puerto {args.port} ya está en uso ({busy}); elige otro con --port N "
              "(o FUNCTIONS_HTTPWORKER_PORT=N)", file=sys.stderr)
        return 2
    try:
        settings_path = load_local_settings(ROOT)
        function_key: str | None = None
        if not is_loopback(args.host):
            function_key = os.environ.get("LOCAL_FUNCTION_KEY", "")
            if len(function_key) < MIN_FUNCTION_KEY:
                print(f"local_host: --allow-remote necesita LOCAL_FUNCTION_KEY de al menos {MIN_FUNCTION_KEY} "
                      "caracteres (la clave que exigirán las rutas de nivel FUNCTION)", file=sys.stderr)
                return 2
        follow_port(args.port)
        from core.settings import load_settings
        from core.telemetry import configure_logging

        configure_logging()
        settings = load_settings()
    except SettingsError as exc:
        print(f"local_host: {exc}", file=sys.stderr)
        return 2

    from bot.runtime import build_runtime, use_runtime
    from core.handoff import HANDOFF_QUEUE
    from core.media.store import LocalEvidenceStore
    from core.storage.migrate import migrate_sqlite, seed_sqlite
    from core.storage.sqlite import SqliteDatabase
    from function_app import app
    from local_host.queues import LocalQueue
    from local_host.server import QUEUES_KEY, build_web_app
    from local_host.storage_queue import HOST_LEASE_S
    from local_host.timers import resolve_schedule

    # AzureWebJobsStorage set (Azurite or an account): the worker queue is that account's Storage queue,
    # written by the app's own StorageQueueHandoff as on Azure, and evidence goes to its blob container.
    # Empty: an in-process queue, and evidence in EVIDENCE_DIR.
    storage = settings.storage if settings.storage.configured else None
    lease_s = float(os.environ.get("LOCAL_HOST_QUEUE_LEASE_S", "") or HOST_LEASE_S)
    web_app = build_web_app(app, run_timers=not args.no_timers, max_body_bytes=settings.webhook_max_body_bytes,
                            bind_host=args.host, storage=storage, lease_s=lease_s, function_key=function_key)
    worker_queue = web_app[QUEUES_KEY].get(HANDOFF_QUEUE)
    in_process = isinstance(worker_queue, LocalQueue)
    try:
        runtime = build_runtime(settings, handoff=worker_queue if in_process else None,
                                evidence_store=LocalEvidenceStore(settings.evidence_dir) if in_process else None)
        if isinstance(runtime.db, SqliteDatabase):
            version = migrate_sqlite(runtime.db)
            seed_sqlite(runtime.db)
            log.info("SQLite %s en versión de esquema %s", runtime.db.path, version)
    except SettingsError as exc:
        print(f"local_host: {exc}", file=sys.stderr)
        return 2
    except BotError as exc:
        print(f"local_host: no se pudo preparar la base de datos: {exc}", file=sys.stderr)
        return 2
    use_runtime(runtime)
    from local_host.console import mount_console

    console_url = mount_console(web_app, runtime, f"http://{args.host}:{args.port}")

    async def on_shutdown(_: web.Application) -> None:
        runtime.stop()  # drains finish the message in hand; the start-up sweep redrives the rest

    async def on_cleanup(_: web.Application) -> None:
        await runtime.aclose()

    web_app.on_shutdown.append(on_shutdown)
    web_app.on_cleanup.append(on_cleanup)
    base = f"http://{args.host}:{args.port}"
    source = settings_path.name if settings_path else "las variables de entorno"
    print(f"local_host: configuración de {source}", flush=True)
    for function in web_app["functions"]:
        print(f"  {function.name}: [{','.join(function.methods)}] {base}/api/{function.route}", flush=True)
    for timer in web_app["timers"]:
        print(f"  {timer.name}: timer {resolve_schedule(timer.schedule)}", flush=True)
    for queue_fn in web_app["queue_functions"]:
        where = f"Azure Storage, {storage.describe()}" if storage is not None else "en memoria"
        print(f"  {queue_fn.name}: cola {queue_fn.queue_name} ({where})", flush=True)
    if console_url:
        print(f"  consola de chat: {console_url}", flush=True)
    web.run_app(web_app, host=args.host, port=args.port, print=lambda *_: None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
