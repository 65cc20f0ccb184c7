"""The `azurite` fixture: a real Azurite process on loopback for one test (local_host/azurite.py starts it).

Without the npm package the tests that need it are skipped with the install command as the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local_host.azurite import INSTALL_HINT, Azurite, azurite_installed


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
