"""Read-only views of one conversation for the local chat console's state panel (local host only).

Everything is read in one transaction, so the panel never shows a session from before a transition
next to an outbox from after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.storage.database import Database, Row, Tx

RECENT_LIMIT = 10
# Separators a lease key may put between a prefix and the conversation key ("conv:5215512345678").
_LEASE_SEPARATORS = (":", "|", "/", "#")


# The views below are the console's JSON (asdict): their field names are the keys its page reads, in
# Spanish like the columns they show.


@dataclass(frozen=True, slots=True)
class SessionView:
    telefono: str
    estado: str
    version: int
    datos_temp: str
    ultima_actividad: int  # epoch ms


@dataclass(frozen=True, slots=True)
class LeaseView:
    clave: str
    propietario: str | None
    expira_en: int  # epoch ms; a lease is live while expira_en > now
    token: int
    adquirido_en: int | None


@dataclass(frozen=True, slots=True)
class ConsoleInboxRow:
    message_id: str
    tipo: str
    estado: str
    reintentos: int
    intentos: int
    ultimo_error: str | None
    wa_timestamp: int
    recibido_en: int
    procesado_en: int | None


@dataclass(frozen=True, slots=True)
class ConsoleOutboxRow:
    id: int
    tipo: str
    estado: str
    intentos: int
    wamid_enviado: str | None
    message_id_origen: str | None
    ultimo_error: str | None
    enviado_en: int | None


@dataclass(frozen=True, slots=True)
class ConsoleReportRow:
    numero: str
    tipo_equipo: str
    descripcion: str
    creado_en: str
    estado: str = "abierto"
    ultima_nota: str | None = None


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    telefono: str
    estado: str
    ultima_actividad: int


@dataclass(frozen=True, slots=True)
class ConversationState:
    key: str
    session: SessionView | None
    leases: tuple[LeaseView, ...]
    inbox_open: tuple[ConsoleInboxRow, ...]  # pendiente / error, oldest first
    inbox_recent: tuple[ConsoleInboxRow, ...]  # any state, newest first
    outbox_counts: dict[str, int]
    outbox_recent: tuple[ConsoleOutboxRow, ...]  # newest first
    reports: tuple[ConsoleReportRow, ...]  # newest first


def _int(value: object, default: int = 0) -> int:
    return default if value is None else int(value)  # type: ignore[call-overload]


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _inbox(row: Row) -> ConsoleInboxRow:
    return ConsoleInboxRow(
        message_id=str(row["MessageId"]),
        tipo=str(row["Tipo"]),
        estado=str(row["Estado"]),
        reintentos=_int(row["Reintentos"]),
        intentos=_int(row["Intentos"]),
        ultimo_error=row["UltimoError"],
        wa_timestamp=_int(row["WaTimestamp"]),
        recibido_en=_int(row["RecibidoEn"]),
        procesado_en=_opt_int(row["ProcesadoEn"]),
    )


def _outbox(row: Row) -> ConsoleOutboxRow:
    return ConsoleOutboxRow(
        id=_int(row["Id"]),
        tipo=str(row["Tipo"]),
        estado=str(row["Estado"]),
        intentos=_int(row["Intentos"]),
        wamid_enviado=row["WamidEnviado"],
        message_id_origen=row["MessageIdOrigen"],
        ultimo_error=row["UltimoError"],
        enviado_en=_opt_int(row["EnviadoEn"]),
    )


def _is_lease_of(lease_key: str, key: str) -> bool:
    return lease_key == key or any(lease_key.endswith(sep + key) for sep in _LEASE_SEPARATORS)


def _read_state(tx: Tx, key: str, limit: int) -> ConversationState:
    s = tx.fetch_one("console_session", {"telefono": key})
    session = None
    if s is not None:
        session = SessionView(
            telefono=str(s["Telefono"]),
            estado=str(s["Estado"]),
            version=_int(s["Version"]),
            datos_temp=str(s["DatosTemp"] or "{}"),
            ultima_actividad=_int(s["UltimaActividad"]),
        )
    leases = tuple(
        LeaseView(
            clave=str(r["Clave"]),
            propietario=r["Propietario"],
            expira_en=_int(r["ExpiraEn"]),
            token=_int(r["Token"]),
            adquirido_en=_opt_int(r["AdquiridoEn"]),
        )
        for r in tx.fetch_all("console_leases", {"clave": key, "patron": f"%{key}"})
        if _is_lease_of(str(r["Clave"]), key)
    )
    inbox_open = tuple(_inbox(r) for r in tx.fetch_all("console_inbox_open", {"telefono": key}))
    inbox_recent = tuple(_inbox(r) for r in tx.fetch_all("console_inbox_recent", {"telefono": key, "limite": limit}))
    count_rows = tx.fetch_all("console_outbox_counts", {"destinatario": key})
    counts = {str(r["Estado"]): _int(r["Cantidad"]) for r in count_rows}
    outbox = tuple(_outbox(r) for r in tx.fetch_all("console_outbox_recent", {"destinatario": key, "limite": limit}))
    reports = tuple(
        ConsoleReportRow(
            numero=str(r["Numero"]),
            tipo_equipo=str(r["TipoEquipo"]),
            descripcion=str(r["Descripcion"]),
            creado_en=str(r["CreadoEn"]),
            estado=str(r["Estado"]),
            ultima_nota=r["UltimaNota"],
        )
        for r in tx.fetch_all("console_reports", {"telefono": key, "limite": limit})
    )
    return ConversationState(key, session, leases, inbox_open, inbox_recent, counts, outbox, reports)


async def read_conversation_state(db: Database, key: str, limit: int = RECENT_LIMIT) -> ConversationState:
    """Session, lease, open inbox rows, outbox by state and reports of one conversation key."""
    return await db.read(lambda tx: _read_state(tx, key, limit))


async def list_conversations(db: Database, limit: int = 50) -> tuple[ConversationSummary, ...]:
    """The most recently active sessions, for the console's phone picker."""
    rows = await db.read(lambda tx: tx.fetch_all("console_conversations", {"limite": limit}))
    return tuple(
        ConversationSummary(str(r["Telefono"]), str(r["Estado"]), _int(r["UltimaActividad"])) for r in rows
    )
