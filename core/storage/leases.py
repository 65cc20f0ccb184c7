"""Conversation leases (`BloqueosConversacion`): acquire without waiting, extend, release; each one statement."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.errors import QueryTimeout
from core.storage.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Lease:
    key: str
    owner: str
    token: int  # fencing token: grows on every acquisition, never goes back
    expires_at_ms: int
    took_over_from: str | None = None  # set when an expired lease of another owner was taken over


async def acquire_lease(db: Database, key: str, owner: str, ttl_ms: int, now_ms: int) -> Lease | None:
    """Take the lease if it is free, released or expired; None when someone else holds it."""
    expires = now_ms + ttl_ms
    row = await db.write(
        lambda tx: tx.fetch_one(
            "lease_acquire", {"clave": key, "propietario": owner, "expira": expires, "ahora": now_ms}
        )
    )
    if row is None:
        return None
    return Lease(key, owner, int(row["token"]), expires, row["anterior"])


async def extend_lease(db: Database, lease: Lease, ttl_ms: int, now_ms: int) -> Lease | None:
    """Push the expiry out; None if the lease was lost (expired or taken over)."""
    expires = now_ms + ttl_ms
    params = {"clave": lease.key, "propietario": lease.owner, "token": lease.token, "expira": expires, "ahora": now_ms}
    changed = await db.write(lambda tx: tx.execute("lease_extend", params))
    if changed != 1:
        return None
    return Lease(lease.key, lease.owner, lease.token, expires, lease.took_over_from)


async def release_lease(db: Database, lease: Lease) -> bool:
    params = {"clave": lease.key, "propietario": lease.owner, "token": lease.token}
    return await db.write(lambda tx: tx.execute("lease_release", params)) == 1


async def clear_expired_leases(db: Database, now_ms: int) -> list[tuple[str, int]]:
    """Free every expired lease that still names an owner (its holder died); answers (key, token) of each.

    A timed-out statement frees nothing this time (logged; the next sweep tries again) instead of stopping
    the sweep that calls it: an expired lease only delays its conversation until it is freed."""
    try:
        rows = await db.write(lambda tx: tx.fetch_all("leases_clear_expired", {"ahora": now_ms}))
    except QueryTimeout as exc:
        log.warning("BLOQUEOS_VENCIDOS_SIN_LIBERAR: %s; el próximo barrido lo reintenta", exc)
        return []
    return [(r["clave"], int(r["token"])) for r in rows]
