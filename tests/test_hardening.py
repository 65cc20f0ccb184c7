"""The hardening a security reviewer asks for: a health check that tells the truth, no acknowledgement
of what was not durably written, a local host no web page can drive, private files, no stale leases."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.health import check_health
from bot.runtime import Runtime, build_runtime
from core.settings import load_settings
from core.storage.sqlite import SqliteDatabase
from core.storage.stats import read_stats
from tests import storm_worker as sw
from tests.conftest import ROOT, base_env, free_port
from tests.conversation_helpers import put_in_inbox, query, text_message
from tests.test_local_host import start_host, wait_ready
from tests.webhook_helpers import encode, ledger, signed_headers, text_payload


@pytest.fixture
async def rt(settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings)
    yield runtime
    await runtime.aclose()


async def post(rt: Runtime, wamid: str) -> int:
    body = encode(text_payload(wamid, "5215512345678", "hola"))
    return (await rt.webhook.post(signed_headers(body), body))[0]


# -- health and durability -------------------------------------------------------------------------


async def test_a_deleted_database_is_unhealthy_and_nothing_more_is_acknowledged(rt: Runtime, db_path: Path) -> None:
    assert (await check_health(rt.db)).ok and await post(rt, "wamid.BEFORE") == 200
    shutil.rmtree(db_path.parent)  # `rm -rf .data` under a running app
    health = await check_health(rt.db)
    assert not health.ok and health.reason in ("database does not accept writes", "database unavailable")
    assert await post(rt, "wamid.AFTER") == 503  # Meta delivers again later, to a database that exists


def replace_database(db_path: Path, template: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(template, db_path)


async def test_a_replaced_database_file_is_unhealthy(rt: Runtime, db_path: Path, sqlite_template: Path) -> None:
    assert await post(rt, "wamid.R1") == 200
    replace_database(db_path, sqlite_template)  # a restore or a deploy swapped the files under the app
    assert not (await check_health(rt.db)).ok
    assert await post(rt, "wamid.R2") == 503
    assert [r["MessageId"] for r in ledger(db_path)] == []  # the new file got nothing it was not told


async def test_health_never_shows_the_driver_text(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    db = SqliteDatabase(str(tmp_path / "dir"), pool_size=1)  # a directory is not a database
    try:
        body = (await check_health(db)).as_dict()
    finally:
        db.close()
    assert body["status"] == "unavailable" and body["reason"] == "database unavailable"
    assert str(tmp_path) not in json.dumps(body) and "sqlite" not in body["reason"]


READ_ONLY_PROBE = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[2])
from bot.health import check_health
from bot.runtime import build_runtime
from core.settings import load_settings
from tests.conftest import base_env
from tests.webhook_helpers import encode, signed_headers, text_payload
from pathlib import Path

async def main():
    rt = build_runtime(load_settings(base_env(Path(sys.argv[1]))))
    health = await check_health(rt.db)
    body = encode(text_payload("wamid.RO1", "5215512345678", "hola"))
    status, _ = await rt.webhook.post(signed_headers(body), body)
    print(json.dumps({"health_ok": health.ok, "reason": health.reason, "webhook": status}))
    await rt.aclose()

asyncio.run(main())
"""


def test_a_read_only_database_is_unhealthy_and_the_webhook_answers_503(sqlite_template: Path) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ro-db-"))
    try:
        os.chmod(workdir, 0o777)  # SQLite may create its -shm here; the database itself stays read-only
        db = workdir / "bot.sqlite3"
        shutil.copyfile(sqlite_template, db)
        os.chmod(db, 0o444)
        command = [sys.executable, "-c", READ_ONLY_PROBE, str(db), str(ROOT)]
        if os.geteuid() == 0:  # root writes through any mode bits unless it drops the capabilities that allow it
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root without util-linux setpriv: cannot make a file read-only for root")
            command = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--", *command]
        out = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr[-2000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assert result == {"health_ok": False, "reason": result["reason"], "webhook": 503}
    assert result["reason"] in ("database does not accept writes", "database unavailable")


def test_the_database_is_created_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "data" / "bot.sqlite3"
    db = SqliteDatabase(str(path), pool_size=1)
    try:
        db.run_sync(lambda tx: None)
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (path.parent, path, Path(f"{path}-wal"))}
    finally:
        db.close()
    assert modes == {"data": 0o700, "bot.sqlite3": 0o600, "bot.sqlite3-wal": 0o600}


# -- the local host cannot be driven by a web page -----------------------------------------------------


def test_the_local_host_refuses_cross_site_origins_and_foreign_hosts(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_host(tmp_path / "bot.sqlite3", port, WHATSAPP_API_BASE_URL=f"{base}/_fake_graph/v23.0")
    try:
        wait_ready(base + "/api/health", proc)
        evil = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
        # A form post from another site: a broadcast, a console send, a fake Graph send. All refused.
        assert httpx.post(base + "/api/campanas/promo", content=b'{"destinatarios":["5215512345678"]}',
                          headers=evil).status_code == 403
        assert httpx.post(base + "/_console/api/send", content=b'{"user":"5215512345678","text":"hola"}',
                          headers=evil).status_code == 403
        assert httpx.get(base + "/_console/api/state", params={"user": "5215512345678"},
                         headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        # DNS rebinding: evil.example resolving to 127.0.0.1 reaches us with its own Host header.
        assert httpx.get(base + "/_console/api/conversations", headers={"Host": f"evil.example:{port}"}
                         ).status_code == 403
        assert httpx.get(base + "/api/health", headers={"Host": f"evil.example:{port}"}).status_code == 403
        # Another page on another loopback port, or our host under another scheme or spelling, is another
        # origin: refused (a dev server on :8888 could drive the console before).
        for other in (f"http://127.0.0.1:{port + 1}", "http://127.0.0.1:8888", f"https://127.0.0.1:{port}",
                      f"http://localhost:{port}", "http://127.0.0.1", "null"):
            assert httpx.get(base + "/_console/api/conversations", headers={"Origin": other}).status_code == 403, other
        # The page itself, same origin, and localhost spellings: served.
        assert httpx.get(base + "/_console/api/conversations", headers={"Origin": base}).status_code == 200
        assert httpx.get(f"http://localhost:{port}/_console/api/conversations",
                         headers={"Origin": f"http://localhost:{port}"}).status_code == 200
        assert httpx.get(f"http://localhost:{port}/api/health").status_code == 200
        # Meta's webhook is the one open route: its signature is the proof, whatever the Origin.
        body = encode(text_payload("wamid.ORIGIN1", "5215512345678", "hola"))
        assert httpx.post(base + "/api/whatsapp/webhook", content=body,
                          headers={**signed_headers(body), "Origin": "http://evil.example"}).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
    assert query(tmp_path / "bot.sqlite3", "SELECT COUNT(*) FROM ColaEnvios WHERE Campana IS NOT NULL") == [(0,)]


# -- leases after kill -9 ------------------------------------------------------------------------------


@pytest.mark.slow
def test_leases_of_a_killed_process_are_cleared_by_the_sweep(db_path: Path, tmp_path: Path) -> None:

    phone = "5215599990001"
    put_in_inbox(db_path, text_message(phone, "Hola, el refrigerador no enfría", 100, wamid="wamid.K9.0"))
    put_in_inbox(db_path, text_message(phone, "10004512", 110, wamid="wamid.K9.1"))
    put_in_inbox(db_path, text_message(phone, "sí", 120, wamid="wamid.K9.2"))
    ready = tmp_path / "ready"
    proc = mp.get_context("spawn").Process(target=sw.hold_lease_and_hang, args=(str(db_path), phone, str(ready), 800))
    proc.start()
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert time.monotonic() < deadline and proc.is_alive()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    time.sleep(1.0)  # past the 800 ms TTL: the lease is expired, still naming the dead owner

    async def sweep() -> tuple[int, int, int]:
        import asyncio

        from local_host.queues import serving_worker, settle, worker_queue

        rt = build_runtime(load_settings(base_env(db_path, LOCK_TIMEOUT="800")), handoff=worker_queue())
        before = await read_stats(rt.db, int(time.time() * 1000))
        async with serving_worker(rt) as queue:
            await rt.sweeper.sweep(grace_ms=0)
            await settle(queue)
        after = await read_stats(rt.db, int(time.time() * 1000))
        await rt.aclose()
        await asyncio.sleep(0)
        return before.leases_expired, after.leases_expired, after.leases_active

    import asyncio

    expired_before, expired_after, active_after = asyncio.run(sweep())
    assert (expired_before, expired_after, active_after) == (1, 0, 0)
    assert query(db_path, "SELECT Estado, COUNT(*) FROM MensajesProcesados GROUP BY Estado") == [("procesado", 3)]
    assert query(db_path, "SELECT COUNT(*) FROM Reportes") == [(1,)]


def test_a_non_loopback_bind_needs_the_flag_and_then_function_keys(tmp_path: Path) -> None:
    """127.0.0.2 stands in for a LAN address (binding a real one would expose the test run)."""
    port = free_port()
    db = tmp_path / "bot.sqlite3"
    env = _host_env(db)
    refused = subprocess.run([sys.executable, "-m", "local_host", "--host", "127.0.0.2", "--port", str(port)],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--allow-remote" in refused.stderr
    no_key = subprocess.run([sys.executable, "-m", "local_host", "--host", "127.0.0.2", "--port", str(port),
                             "--allow-remote"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert no_key.returncode == 2 and "LOCAL_FUNCTION_KEY" in no_key.stderr
    key = "k" * 24
    proc = subprocess.Popen([sys.executable, "-m", "local_host", "--host", "127.0.0.2", "--port", str(port),
                             "--allow-remote", "--no-timers"], cwd=ROOT, env=env | {"LOCAL_FUNCTION_KEY": key},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.2:{port}"
    campaign = b'{"mensaje": "hola", "destinatarios": ["5215512345678"]}'
    try:
        assert wait_ready(base + "/api/health", proc).status_code == 200  # anonymous stays open
        assert httpx.post(base + "/api/campanas/promo", content=campaign).status_code == 401
        assert httpx.get(base + "/api/metrics", params={"code": "wrong"}).status_code == 401
        assert httpx.get(base + "/api/metrics", params={"code": key}).status_code == 200
        assert httpx.post(base + "/api/campanas/promo", content=campaign,
                          headers={"x-functions-key": key}).status_code == 202
        # The webhook keeps its own proof, the signature; the signing console is not served off loopback.
        body = encode(text_payload("wamid.REMOTE1", "5215512345678", "hola"))
        assert httpx.post(base + "/api/whatsapp/webhook", content=body, headers=signed_headers(body)).status_code == 200
        assert httpx.get(base + "/").status_code == 404
    finally:
        proc.terminate()
        proc.wait(10)
    assert query(db, "SELECT COUNT(*) FROM ColaEnvios WHERE Campana = 'promo'") == [(1,)]


def _host_env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "SQL", "LOCAL_FUNCTION_KEY"))}
    return env | base_env(db)
