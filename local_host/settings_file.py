"""Read `local.settings.json` (or the example) into the environment, the way Core Tools does."""

from __future__ import annotations

import json
import os
from pathlib import Path

from core.errors import SettingsError


def load_local_settings(root: Path) -> Path | None:
    """Copy `Values` into `os.environ`; variables already set in the environment win (tests rely on it)."""
    for name in ("local.settings.json", "local.settings.json.example"):
        path = root / name
        if path.exists():
            break
    else:
        return None
    try:
        values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    except json.JSONDecodeError as exc:
        raise SettingsError(path.name, f"no es JSON válido ({exc.msg}, línea {exc.lineno})") from None
    if not isinstance(values, dict):
        raise SettingsError(path.name, "debe contener un objeto 'Values'")
    for key, value in values.items():
        os.environ.setdefault(str(key), str(value))
    return path
