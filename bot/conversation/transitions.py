"""What every flow builds a transition from: the session's state, the draft's remembered slots, the
turn's evidence, the pending question asked again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from bot import texts as r
from bot.conversation.model import (
    WAITING_STATES,
    Evidence,
    FlowInput,
    FlowState,
    Session,
    Transition,
    Turn,
)
from core.ai.types import Extraction
from core.whatsapp.outgoing import MAX_INTERACTIVE_BODY, MAX_TEXT_BODY, OutgoingMessage, fit

MAX_SAP_MISSES = 3
# Slots of the draft that survive a filed report (the worker's own data, confirmed in every summary).
MEMORY = ("empleado",)


def state_of(session: Session) -> FlowState:
    return FlowState(session.state) if session.state in FlowState.__members__ else FlowState.INICIO


def memory_of(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in MEMORY if data.get(k)}


def is_drafting(data: Mapping[str, Any], state: FlowState) -> bool:
    return state in WAITING_STATES


def has_report_facts(f: Extraction) -> bool:
    return bool(f.equipment_type or f.problem or f.sap_code or f.plate or f.employee_number or f.store)


def evidence_of(turn: Turn) -> tuple[Evidence, ...]:
    return tuple(Evidence(m.wamid, m.media_id or "", m.kind.value, m.mime_type, m.sha256, m.filename)
                 for m in turn.media)


def transition(state: FlowState, data: Mapping[str, Any], inp: FlowInput, replies: Sequence[OutgoingMessage],
               description: str, **kw: Any) -> Transition:
    equipment_id = data.get("equipo_id") if state in WAITING_STATES else None
    return Transition(state, dict(data), equipment_id if isinstance(equipment_id, int) else None, tuple(replies),
                      description, evidence=evidence_of(inp.turn), **kw)


def with_prompt(lead: str, prompt: OutgoingMessage | None, *, resume: bool = False) -> tuple[OutgoingMessage, ...]:
    """`lead`, then the pending question: one message when it fits, else two."""
    if prompt is None:
        return (r.text(lead),)
    limit = MAX_INTERACTIVE_BODY if prompt.kind != "text" else MAX_TEXT_BODY
    question = f"{r.SEGUIMOS} {prompt.body}" if resume else prompt.body
    body = f"{lead}\n\n{question}"
    if len(body) <= limit:
        return (replace(prompt, body=body),)
    return r.text(lead), replace(prompt, body=fit(question, limit))


def prompt_for(state: FlowState, data: Mapping[str, Any]) -> OutgoingMessage | None:
    """The pending question of `state`, asked again."""
    if state is FlowState.CONFIRMA_REPORTE or state is FlowState.REFRI_CONFIRMA_EQUIPO:
        return r.summary(r.draft_lines(data))
    if state is FlowState.CONFIRMA_DUPLICADO and isinstance(data.get("duplicado"), Mapping):
        dup = data["duplicado"]
        return r.duplicate(str(dup.get("numero")), str(dup.get("estado")), None)
    return {
        FlowState.ESPERA_TIPO_EQUIPO: r.MENU_TIPO_CORTO,
        FlowState.REFRI_ESPERA_SAP: r.text(r.PIDE_SAP),
        FlowState.REFRI_ESPERA_TIENDA: r.text(r.PIDE_TIENDA),
        FlowState.REFRI_ELIGE_EQUIPO: r.text(r.PIDE_TIENDA),
        FlowState.REFRI_ESPERA_DESCRIPCION: r.text(r.PIDE_DESCRIPCION),
        FlowState.VEHICULO_ESPERA_EMPLEADO: r.text(r.PIDE_EMPLEADO),
        FlowState.VEHICULO_ESPERA_PLACA: r.text(r.PIDE_PLACA),
        FlowState.VEHICULO_ESPERA_DESCRIPCION: r.text(r.PIDE_DESCRIPCION_VEHICULO),
        FlowState.ESPERA_DETALLE: r.text(r.PIDE_DETALLE),
        FlowState.CORRIGE_REPORTE: r.text(r.CORRIGE),
    }.get(state)
