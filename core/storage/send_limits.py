"""`LimiteEnvios`: the send limit of each business number, one token bucket row shared by every instance.

Tokens are kept in thousandths (integers in both dialects). A take reads the row, refills it for the
time since `ActualizadoEn` at the number's rate (never more than its burst), takes what it may, and
writes it back, all in one write transaction: two instances can never spend the same tokens. Time only
moves forward (`ActualizadoEn` keeps the latest clock seen), so an instance whose clock runs behind
cannot refill the bucket twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.storage.database import Database, Tx

MILLI = 1000


@dataclass(frozen=True, slots=True)
class Take:
    tokens: int  # taken now (0 when none is free)
    wait_ms: int  # when `tokens` is 0: how long until one is free (or the pause ends)


def _refilled(row: dict[str, object], now_ms: int, rate_per_second: float, burst_milli: int) -> tuple[int, int, int]:
    milli, updated, paused_until = (int(row["MiliTokens"]), int(row["ActualizadoEn"]),  # type: ignore[call-overload]
                                    int(row["PausaHasta"]))  # type: ignore[call-overload]
    elapsed = max(0, now_ms - updated)
    # rate tokens/s is `rate` thousandths per millisecond.
    return min(burst_milli, milli + int(elapsed * rate_per_second)), max(updated, now_ms), paused_until


def _row(tx: Tx, number: str, now_ms: int, burst_milli: int) -> dict[str, object]:
    row = tx.fetch_one("send_limit_read", {"numero_negocio": number})
    if row is None:
        tx.execute("send_limit_ensure", {"numero_negocio": number, "mili_tokens": burst_milli, "ahora": now_ms})
        row = tx.fetch_one("send_limit_read", {"numero_negocio": number})
    assert row is not None
    return row


async def take_tokens(db: Database, number: str, *, up_to: int, now_ms: int, rate_per_second: float,
                      burst: int) -> Take:
    burst_milli = burst * MILLI

    def run(tx: Tx) -> Take:
        milli, updated, paused_until = _refilled(_row(tx, number, now_ms, burst_milli), now_ms, rate_per_second,
                                                 burst_milli)
        taken = 0 if now_ms < paused_until else min(up_to, milli // MILLI)
        milli -= taken * MILLI
        tx.execute("send_limit_write", {"numero_negocio": number, "mili_tokens": milli, "ahora": updated,
                                        "pausa_hasta": paused_until})
        if taken:
            return Take(taken, 0)
        return Take(0, max(paused_until - now_ms, math.ceil((MILLI - milli) / rate_per_second), 1))

    return await db.write(run)


async def give_back_tokens(db: Database, number: str, tokens: int, *, now_ms: int, rate_per_second: float,
                           burst: int) -> None:
    """Tokens taken and not used (fewer rows were due): back into the bucket, never above its burst."""
    burst_milli = burst * MILLI

    def run(tx: Tx) -> None:
        milli, updated, paused_until = _refilled(_row(tx, number, now_ms, burst_milli), now_ms, rate_per_second,
                                                 burst_milli)
        milli = min(burst_milli, milli + tokens * MILLI)
        tx.execute("send_limit_write", {"numero_negocio": number, "mili_tokens": milli, "ahora": updated,
                                        "pausa_hasta": paused_until})

    await db.write(run)


async def pause_number(db: Database, number: str, *, until_ms: int, now_ms: int, rate_per_second: float,
                       burst: int) -> None:
    """Meta said the number (or the app) is over its limit: no instance sends from it until `until_ms`."""
    burst_milli = burst * MILLI

    def run(tx: Tx) -> None:
        milli, updated, paused_until = _refilled(_row(tx, number, now_ms, burst_milli), now_ms, rate_per_second,
                                                 burst_milli)
        tx.execute("send_limit_write", {"numero_negocio": number, "mili_tokens": milli, "ahora": updated,
                                        "pausa_hasta": max(paused_until, until_ms)})

    await db.write(run)
