"""The outbound queue (`ColaEnvios`): claim, settle and count, as domain values.

Every state change after a claim is fenced by the claim token and `Estado = 'procesando'`, so a worker
whose claim was settled (declared `incierto`) or re-claimed cannot overwrite what happened since.
The SQL and the per-recipient ordering rule live in `sql/<dialect>/outbox.sql`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.storage.database import Database, Tx
from core.storage.inbox import apply_recorded_status_tx
from core.storage.states import OutboxState
from core.storage.text import fit_units

ERROR_MAX_CHARS = 1000  # UltimoError is NVARCHAR(1000) on SQL Server
# A conversation reply is useful while Meta's customer-service window is open: 24 h after the user wrote.
REPLY_DEADLINE_MS = 24 * 3600_000
# A campaign message that could not go out within three days is news nobody wants any more.
CAMPAIGN_DEADLINE_MS = 72 * 3600_000


@dataclass(frozen=True, slots=True)
class ClaimedSend:
    """A row this worker owns until it marks it (or the claim times out)."""

    id: int
    recipient: str
    kind: str
    content: str  # OutgoingMessage.to_json()
    attempts: int  # including this one
    campaign: str | None
    origin_message_id: str | None
    token: str
    postponements: int = 0  # retry-laters so far: the exponent of the next backoff
    business_number: str | None = None  # the number it goes out from; None: the default number

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ClaimedSend:
        return cls(
            id=int(row["Id"]),
            recipient=row["Destinatario"],
            kind=row["Tipo"],
            content=row["Contenido"],
            attempts=int(row["Intentos"]),
            campaign=row["Campana"],
            origin_message_id=row["MessageIdOrigen"],
            token=row["TokenReclamo"],
            postponements=int(row["Aplazamientos"]),
            business_number=row["NumeroNegocio"],
        )


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A row as operators and tests see it."""

    id: int
    recipient: str
    kind: str
    content: str
    state: str
    attempts: int
    next_attempt_ms: int
    claim_token: str | None
    claimed_at_ms: int | None
    wamid: str | None
    delivery_state: str | None
    last_error: str | None
    campaign: str | None
    origin_message_id: str | None
    sent_at_ms: int | None
    deadline_ms: int | None  # when a still unsent row is given up; None: never
    postponements: int
    business_number: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> OutboxRow:
        return cls(
            id=int(row["Id"]),
            recipient=row["Destinatario"],
            kind=row["Tipo"],
            content=row["Contenido"],
            state=row["Estado"],
            attempts=int(row["Intentos"]),
            next_attempt_ms=int(row["ProximoIntento"]),
            claim_token=row["TokenReclamo"],
            claimed_at_ms=row["ReclamadoEn"],
            wamid=row["WamidEnviado"],
            delivery_state=row["EstadoEntrega"],
            last_error=row["UltimoError"],
            campaign=row["Campana"],
            origin_message_id=row["MessageIdOrigen"],
            sent_at_ms=row["EnviadoEn"],
            deadline_ms=row["VenceEn"],
            postponements=int(row["Aplazamientos"]),
            business_number=row["NumeroNegocio"],
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one claimed send ended, to be written back with `record_outcomes`."""

    claim: ClaimedSend
    state: OutboxState  # ENVIADO, PENDIENTE (retry later), ERROR or INCIERTO
    wamid: str | None = None
    error: str | None = None
    next_attempt_ms: int = 0
    # PENDIENTE only: False when the request provably never reached Meta or Meta throttled it, so the
    # attempt is not held against OUTBOX_MAX_ATTEMPTS (the deadline still bounds the row).
    counts_attempt: bool = True


@dataclass(frozen=True, slots=True)
class StateCounts:
    counts: dict[str, int]

    def get(self, state: OutboxState | str) -> int:
        return self.counts.get(str(state), 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return {str(s): self.counts.get(str(s), 0) for s in OutboxState} | {"total": self.total}


@dataclass(frozen=True, slots=True)
class CampaignEnqueue:
    queued: int  # new rows
    existing: int  # already queued for this campaign: left alone


CAMPAIGN_CHUNK = 500  # campaign rows per transaction


def new_claim_token() -> str:
    return uuid.uuid4().hex


def _claimed(rows: list[dict[str, Any]]) -> list[ClaimedSend]:
    # RETURNING/OUTPUT order is unspecified; callers rely on Id order.
    return sorted((ClaimedSend.from_row(r) for r in rows), key=lambda c: c.id)


def _claim_once(tx: Tx, query: str, params: dict[str, Any]) -> list[ClaimedSend]:
    """Claim, unless this token already holds rows: `Database` retries a transaction whose commit
    answer was lost, and the retry must get the first attempt's rows back, not claim more."""
    mine = tx.fetch_all("claimed_with_token", {"token_reclamo": params["token_reclamo"]})
    return _claimed(mine or tx.fetch_all(query, params))


def _numbers(number: str, default_number: str) -> dict[str, str]:
    # Rows with no number (queued before 009, or with no inbox row to read it from) go out from the default.
    return {"numero_negocio": number, "numero_predeterminado": default_number}


async def claim_outbound(db: Database, *, limit: int, now_ms: int, token: str | None = None, number: str = "",
                         default_number: str = "") -> list[ClaimedSend]:
    """Atomically take up to `limit` due `pendiente` rows that go out from `number`, at most one per recipient
    (its oldest open row)."""
    params = {"token_reclamo": token or new_claim_token(), "ahora": now_ms, "n": limit}
    params |= _numbers(number, default_number)
    return await db.write(lambda tx: _claim_once(tx, "claim_outbound", params))


async def claim_outbound_recipient(
    db: Database, recipient: str, *, now_ms: int, limit: int = 1, token: str | None = None, number: str = "",
    default_number: str = "",
) -> list[ClaimedSend]:
    """The eager path: the recipient's oldest open row, if it is due and nobody else holds an earlier one."""
    params = {"token_reclamo": token or new_claim_token(), "ahora": now_ms, "n": limit, "destinatario": recipient}
    params |= _numbers(number, default_number)
    return await db.write(lambda tx: _claim_once(tx, "claim_outbound_recipient", params))


async def recipient_numbers(db: Database, recipient: str) -> list[str | None]:
    """The business numbers the recipient's waiting rows go out from (None: the default number)."""
    rows = await db.read(lambda tx: tx.fetch_all("outbound_head_numbers", {"destinatario": recipient}))
    return [r["numero"] for r in rows]


def _truncate(text: str | None) -> str | None:
    return None if text is None else fit_units(text, ERROR_MAX_CHARS)


def _record(tx: Tx, outcome: Outcome, now_ms: int, max_attempts: int) -> int:
    fence = {"id": outcome.claim.id, "token_reclamo": outcome.claim.token}
    if outcome.state is OutboxState.ENVIADO:
        marked = tx.execute("mark_outbound_sent", fence | {"wamid": outcome.wamid, "ahora": now_ms})
        if marked and outcome.wamid:
            apply_recorded_status_tx(tx, outcome.wamid)  # statuses Meta posted before this commit
        return marked
    if outcome.state is OutboxState.PENDIENTE:
        return tx.execute(
            "mark_outbound_retry",
            fence | {"max_intentos": max_attempts, "proximo_intento": outcome.next_attempt_ms,
                     "error": _truncate(outcome.error), "descontar": 0 if outcome.counts_attempt else 1},
        )
    if outcome.state is OutboxState.ERROR:
        return tx.execute("mark_outbound_failed", fence | {"error": _truncate(outcome.error)})
    if outcome.state is OutboxState.INCIERTO:
        return tx.execute("mark_outbound_uncertain", fence | {"error": _truncate(outcome.error)})
    raise ValueError(f"not a final outcome: {outcome.state}")


async def record_outcomes(
    db: Database, outcomes: Sequence[Outcome], *, now_ms: int, max_attempts: int
) -> list[bool]:
    """Write back several outcomes in one transaction; False where the claim was no longer ours."""
    if not outcomes:
        return []
    return await db.write(lambda tx: [_record(tx, o, now_ms, max_attempts) == 1 for o in outcomes])


async def release_claim(db: Database, claim: ClaimedSend) -> bool:
    """Give back a claim whose request never left (a cancelled send): `pendiente`, no attempt counted."""
    fence = {"id": claim.id, "token_reclamo": claim.token}
    return await db.write(lambda tx: tx.execute("release_outbound_claim", fence)) == 1


async def settle_stuck(
    db: Database, *, now_ms: int, claim_timeout_ms: int, at_least_once: bool = False, max_attempts: int = 5
) -> int:
    """Rows `procesando` past their claim timeout: their worker died mid-send, so the outcome is unknown.

    By default they become `incierto` (never resent blindly); with at-least-once they go back to
    `pendiente` until their attempts run out.
    """
    limit = now_ms - claim_timeout_ms
    reason = f"reclamo vencido tras {claim_timeout_ms} ms: resultado del envío desconocido"
    if at_least_once:
        params = {"limite": limit, "ahora": now_ms, "max_intentos": max_attempts, "error": reason}
        return await db.write(lambda tx: tx.execute("settle_outbound_requeue", params))
    return await db.write(lambda tx: tx.execute("settle_outbound_uncertain", {"limite": limit, "error": reason}))


async def abandon_expired(db: Database, *, now_ms: int, limit: int = 500) -> list[tuple[int, str]]:
    """Rows still `pendiente` past their deadline become `error`: answers their (Id, recipient)."""
    reason = "abandonado: plazo vencido sin poder enviarlo"

    def run(tx: Tx) -> list[tuple[int, str]]:
        rows = tx.fetch_all("abandon_outbound_expired", {"ahora": now_ms, "n": limit, "error": reason})
        return sorted((int(r["Id"]), str(r["Destinatario"])) for r in rows)

    return await db.write(run)


async def enqueue_campaign(
    db: Database, campaign: str, recipients: Sequence[str], *, kind: str, content: str, now_ms: int,
    deadline_ms: int = CAMPAIGN_DEADLINE_MS,
) -> CampaignEnqueue:
    """Queue one message per recipient, once per (campaign, recipient), in transactions of at most
    CAMPAIGN_CHUNK rows: a big list never holds its locks for seconds. A failure part way leaves the
    earlier chunks queued; calling again queues only the rest (the unique key skips the others)."""

    def run(chunk: Sequence[str]) -> Callable[[Tx], int]:
        def insert(tx: Tx) -> int:
            return sum(tx.execute("enqueue_campaign", {"campana": campaign, "destinatario": recipient,
                                                       "tipo_envio": kind, "contenido": content, "ahora": now_ms,
                                                       "vence_en": now_ms + deadline_ms})
                       for recipient in chunk)
        return insert

    queued = 0
    for start in range(0, len(recipients), CAMPAIGN_CHUNK):
        queued += await db.write(run(recipients[start:start + CAMPAIGN_CHUNK]))
    return CampaignEnqueue(queued=queued, existing=len(recipients) - queued)


def _counts(rows: list[dict[str, Any]]) -> StateCounts:
    return StateCounts({r["estado"]: int(r["total"]) for r in rows})


async def count_campaign(db: Database, campaign: str) -> StateCounts:
    return await db.read(lambda tx: _counts(tx.fetch_all("count_outbound_campaign", {"campana": campaign})))


async def get_outbound(db: Database, row_id: int) -> OutboxRow | None:
    row = await db.read(lambda tx: tx.fetch_one("get_outbound", {"id": row_id}))
    return None if row is None else OutboxRow.from_row(row)


def queue_reply(tx: Tx, recipient: str, *, kind: str, content: str, now_ms: int, origin_message_id: str | None,
                deadline_ms: int = REPLY_DEADLINE_MS) -> None:
    """Queue one reply inside the caller's transaction (the engine commits it with the session change);
    it is given up `deadline_ms` after `now_ms` if it could not be sent by then."""
    tx.execute(
        "enqueue_outbound",
        {"destinatario": recipient, "tipo_envio": kind, "contenido": content, "ahora": now_ms,
         "message_id_origen": origin_message_id, "vence_en": now_ms + deadline_ms},
    )


async def reconcile_delivery_statuses(db: Database, *, since_ms: int, limit: int = 200) -> int:
    """Apply recorded delivery statuses that no side applied (a status that beat its send's commit);
    answers how many rows moved forward."""

    def run(tx: Tx) -> int:
        rows = tx.fetch_all("outbound_status_behind", {"desde": since_ms, "n": limit})
        return sum(1 for r in rows if apply_recorded_status_tx(tx, r["wamid"]) is not None)

    return await db.write(run)
