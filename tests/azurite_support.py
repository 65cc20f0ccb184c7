"""Azurite (Microsoft's Azure Storage emulator) as a real process on loopback, for the Storage-queue tests.

Installed by the project's own files: `npm ci --prefix tools/azurite` (.ci/run and `make azurite` do it).
Without it the tests that need it are skipped with that command as the reason. Each instance gets free
ports and its own data directory (so a stop and start keeps the queues, like a restarted service), and
`--skipApiVersionCheck` because the pinned azure-storage-queue may speak a newer API version than the
emulator knows.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.azure_storage import azurite_connection_string
from tests.conftest import ROOT, free_port

AZURITE = ROOT / "tools" / "azurite" / "node_modules" / ".bin" / "azurite"
INSTALL_HINT = "Azurite no está instalado: npm ci --prefix tools/azurite (o make azurite)"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Azurite:
    """One emulator: `start()`, `stop()` (SIGTERM, or `kill=True`), `connection_string`."""

    def __init__(self, location: Path) -> None:
        self.location = location
        self.ports = {"blob": free_port(), "queue": free_port(), "table": free_port()}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = location / "azurite.log"

    @property
    def connection_string(self) -> str:
        return azurite_connection_string("127.0.0.1", {"blob": self.ports["blob"], "queue": self.ports["queue"]})

    def start(self, within_s: float = 30.0) -> None:
        self.location.mkdir(parents=True, exist_ok=True)
        command = [
            str(AZURITE), "--silent", "--loose", "--skipApiVersionCheck", "--disableTelemetry",
            "--location", str(self.location),
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


@pytest.fixture(name="azurite")
def azurite_fixture(tmp_path: Path) -> Iterator[Azurite]:
    """A running Azurite for one test (import `azurite_fixture` to use it as `azurite`)."""
    if not azurite_installed():
        pytest.skip(INSTALL_HINT)
    emulator = Azurite(tmp_path / "azurite")
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
