"""Background assistant responses as values, and the port an assistant backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

ACTIVE_STATUSES = frozenset({"queued", "in_progress"})
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "incomplete"})


@dataclass(frozen=True, slots=True)
class RemoteResponse:
    """A provider-side response: `id` is None for answers that never lived on a server (offline)."""

    id: str | None
    status: str  # queued | in_progress | completed | failed | cancelled | incomplete
    text: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class AssistantBackend(Protocol):
    """Answers free-form questions. Calls may raise `AIProviderError`; callers apply time limits."""

    name: str

    async def create_conversation(self, conversation_key: str) -> str: ...

    async def start_response(self, conversation_id: str, question: str) -> RemoteResponse: ...

    async def retrieve_response(self, response_id: str) -> RemoteResponse: ...

    async def cancel_response(self, response_id: str) -> RemoteResponse: ...
