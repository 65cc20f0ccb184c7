"""Azurite (Microsoft's Azure Storage emulator) as a process on loopback, for the tests, the benches and
`make azurite`.

Installed by the project's own files: `npm ci --prefix tools/azurite` (.ci/run and `make azurite` do it).
Each instance gets its own ports and a log under its directory, and `--skipApiVersionCheck` because the
pinned azure-storage-queue may speak a newer API version than the emulator knows.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from core.azure_storage import azurite_connection_string

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


AZURITE = ROOT / "tools" / "azurite" / "node_modules" / ".bin" / "azurite"
INSTALL_HINT = "Azurite no está instalado: npm ci --prefix tools/azurite (o make azurite)"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Azurite:
    """One emulator: `start()`, `stop()` (SIGTERM, or `kill=True`), `connection_string`."""

    def __init__(self, location: Path, ports: dict[str, int] | None = None, *, persistent: bool = False) -> None:
        # In memory by default: Azurite's disk persistence serializes concurrent requests (16 concurrent
        # sends: p50 240 ms on disk, 50 ms in memory on the build machine). `persistent` keeps the queues
        # across a stop and start, like a real service's outage.
        self.persistent = persistent
        self.location = location
        self.ports = ports or {"blob": free_port(), "queue": free_port(), "table": free_port()}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = location / "azurite.log"

    @property
    def connection_string(self) -> str:
        return azurite_connection_string("127.0.0.1", {"blob": self.ports["blob"], "queue": self.ports["queue"]})

    def start(self, within_s: float = 30.0) -> None:
        self.location.mkdir(parents=True, exist_ok=True)
        command = [
            str(AZURITE), "--silent", "--loose", "--skipApiVersionCheck", "--disableTelemetry",
            *(["--location", str(self.location / "data")] if self.persistent else ["--inMemoryPersistence"]),
            "--blobHost", "127.0.0.1", "--blobPort", str(self.ports["blob"]),
            "--queueHost", "127.0.0.1", "--queuePort", str(self.ports["queue"]),
            "--tableHost", "127.0.0.1", "--tablePort", str(self.ports["table"]),
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + within_s
        while not (_listening(self.ports["queue"]) and _listening(self.ports["blob"])):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Azurite no arrancó: {self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        deadline = time.monotonic() + 10
        while _listening(self.ports["queue"]) and time.monotonic() < deadline:
            time.sleep(0.05)


def azurite_installed() -> bool:
    return AZURITE.exists()
