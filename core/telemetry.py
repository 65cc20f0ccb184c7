"""Logging for the whole app: one setup, event names in the message text, phones masked.

Application Insights keeps the message text (with the default Functions logging path `extra=` fields
are dropped), and the seeds' KQL searches it, so every event token is written into the message.
"""

from __future__ import annotations

import logging
import os
import sys

_configured = False


def mask_phone(phone: str | None) -> str:
    """Keep the last 4 characters: `5215512345678` -> `*********5678`; BSUIDs the same way."""
    if not phone:
        return "<desconocido>"
    tail = phone[-4:]
    return "*" * max(len(phone) - 4, 0) + tail


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def configure_logging(level: str | None = None) -> None:
    """Readable console logs locally. Idempotent; on Azure the worker owns the handlers."""
    global _configured
    if _configured:
        return
    _configured = True
    root = logging.getLogger()
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO"))
    if os.environ.get("FUNCTIONS_WORKER_RUNTIME") and not os.environ.get("LOCAL_HOST"):
        return  # the Functions worker already forwards logging records to the host
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)
    for noisy in ("azure", "httpx", "httpcore", "aiohttp.access", "openai", "google_genai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
