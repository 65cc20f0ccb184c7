"""Drain conversations under their lease (issue 4). Until the engine lands, new messages stay pending."""

from __future__ import annotations

from collections.abc import Iterable

from bot.runtime import Runtime


async def drain_conversations(rt: Runtime, keys: Iterable[str], deadline: float) -> None:
    """Handle the pending inbox rows of each conversation key, within `deadline` (time.monotonic())."""
    return None
