"""The persisted states of the inbox and outbox rows (`Estado`), in one place both the storage modules and
the metrics read, with no imports of their own (so nothing can form a cycle through them)."""

from __future__ import annotations

from enum import StrEnum


class InboxState(StrEnum):
    """`MensajesProcesados.Estado`: the inbox row's life."""

    PENDIENTE = "pendiente"  # registered, not handled yet (the inbox itself)
    PROCESADO = "procesado"  # handled, or a status recorded as it arrived
    ERROR = "error"  # gave up after the attempts allowed


class OutboxState(StrEnum):
    """`ColaEnvios.Estado`: a reply's life on its way to Meta."""

    PENDIENTE = "pendiente"
    PROCESANDO = "procesando"
    ENVIADO = "enviado"
    ERROR = "error"
    INCIERTO = "incierto"


class EvidenceState(StrEnum):
    """`Evidencias.Estado`: a media body's life from the webhook to storage."""

    PENDIENTE = "pendiente"  # recorded with its message, not stored yet (or waiting for a retry)
    GUARDADA = "guardada"  # downloaded, checked and stored (`Ruta`)
    ERROR = "error"  # gave up: attempts spent, or a body that can never be right
