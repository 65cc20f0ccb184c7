"""Delivery status of an outbound message, as Meta reports it in a webhook (`value.statuses[]`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

# Delivery only moves forward; `failed` is terminal and always recorded.
STATUS_RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    wamid: str  # the outbound message's wamid (the same id comes back once per status)
    status: str  # sent / delivered / read / failed, or whatever Meta adds later
    timestamp: int  # WhatsApp's Unix seconds
    recipient: str | None = None  # `recipient_id` (phone) or the recipient's BSUID
    error_code: int | None = None
    error_title: str | None = None

    @property
    def dedup_key(self) -> str:
        """Statuses reuse the outbound wamid, so the ledger keys them on (wamid, status)."""
        return f"{self.wamid}:{self.status}"

    @property
    def rank(self) -> int | None:
        """Position in sent < delivered < read (< failed); None for a status this code does not track."""
        return STATUS_RANK.get(self.status)

    @property
    def error_text(self) -> str | None:
        if self.error_code is None and not self.error_title:
            return None
        return f"{self.error_code if self.error_code is not None else '?'}: {self.error_title or ''}".strip()

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> StatusUpdate:
        data = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
