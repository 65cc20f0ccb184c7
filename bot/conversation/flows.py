"""The conversation as pure functions: (session, message, AI results, lookups) -> transition. No I/O here.

`needs()` tells the engine which AI calls and lookups a message requires in the session's state;
`decide()` computes the next state, its data, the replies and the report, if any.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from bot.conversation import replies as r
from bot.messages import InboundMessage, MessageKind
from core.ai.types import Extraction, Intencion, Intent, TermKind, TipoEquipo
from core.storage.conversations import REPORT_NUMBER, Equipment, ReportWrite, Session
from core.whatsapp.outgoing import MAX_INTERACTIVE_BODY, MAX_TEXT_BODY, OutgoingMessage, fit


class Estado(StrEnum):
    INICIO = "INICIO"
    ESPERA_TIPO_EQUIPO = "ESPERA_TIPO_EQUIPO"
    REFRI_ESPERA_SAP = "REFRI_ESPERA_SAP"
    REFRI_CONFIRMA_EQUIPO = "REFRI_CONFIRMA_EQUIPO"
    REFRI_ESPERA_DESCRIPCION = "REFRI_ESPERA_DESCRIPCION"
    VEHICULO_ESPERA_EMPLEADO = "VEHICULO_ESPERA_EMPLEADO"
    VEHICULO_ESPERA_PLACA = "VEHICULO_ESPERA_PLACA"
    VEHICULO_ESPERA_DESCRIPCION = "VEHICULO_ESPERA_DESCRIPCION"
    FINALIZADO = "FINALIZADO"


IDLE_STATES = (Estado.INICIO, Estado.FINALIZADO)
WAITING_STATES = frozenset(set(Estado) - set(IDLE_STATES))
MAX_SAP_MISSES = 3
_SAP = re.compile(r"(?<!\d)(\d{5,10})(?!\d)")
_EMPLOYEE = re.compile(r"^\D*?(\d{4,10})\D*$")
_PLATE = re.compile(r"^[A-Z0-9]{5,8}$")
_CANCEL = re.compile(r"^\s*(cancelar|cancela|cancelo)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Needs:
    extraction: bool = False
    term: TermKind | None = None
    sap_code: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    state: Estado
    data: Mapping[str, Any]
    equipment_id: int | None
    replies: tuple[OutgoingMessage, ...]
    description: str
    report: ReportWrite | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """The assistant's outcome for a free-form question: completed / failed / pending / busy."""

    status: str
    text: str | None


@dataclass(frozen=True, slots=True)
class FlowInput:
    session: Session
    message: InboundMessage
    intent: Intent
    extraction: Extraction | None = None
    term: str | None = None
    equipment: Equipment | None = None
    answer: Answer | None = None


def sap_candidate(text: str) -> str | None:
    match = _SAP.search(text)
    return match.group(1) if match else None


def is_question(extraction: Extraction | None) -> bool:
    """A question rather than a report: the assistant answers it."""
    return extraction is not None and extraction.intencion is Intencion.PREGUNTA and extraction.tipo_equipo is None


def is_cancel(message: InboundMessage) -> bool:
    return message.kind is MessageKind.TEXT and bool(_CANCEL.match(message.text))


def needs(state: str, message: InboundMessage) -> Needs:
    """Which AI calls and lookups `decide` will need for this message in this state."""
    if message.kind not in (MessageKind.TEXT, MessageKind.BUTTON_REPLY, MessageKind.LIST_REPLY) or is_cancel(message):
        return Needs()
    match Estado(state) if state in Estado.__members__ else Estado.INICIO:
        case Estado.INICIO | Estado.FINALIZADO:
            return Needs(extraction=True)
        case Estado.ESPERA_TIPO_EQUIPO:
            return Needs(term=TermKind.TIPO_EQUIPO)
        case Estado.REFRI_CONFIRMA_EQUIPO:
            return Needs(term=TermKind.SI_NO)
        case Estado.REFRI_ESPERA_SAP:
            return Needs(sap_code=sap_candidate(message.text))
        case _:
            return Needs()


def _stay(inp: FlowInput, *messages: OutgoingMessage, description: str) -> Transition:
    s = inp.session
    return Transition(Estado(s.state) if s.state in Estado.__members__ else Estado.INICIO, dict(s.data),
                      s.equipment_id, tuple(messages), description)


def _reset(*messages: OutgoingMessage, description: str) -> Transition:
    return Transition(Estado.INICIO, {}, None, tuple(messages), description)


def _prompt_for(state: str, data: Mapping[str, Any] | None = None) -> OutgoingMessage | None:
    """What to ask again when a message could not be used in `state`."""
    data = data or {}
    return {
        Estado.ESPERA_TIPO_EQUIPO: r.MENU_TIPO_CORTO,
        Estado.REFRI_ESPERA_SAP: r.text(r.PIDE_SAP_OTRA_VEZ),
        Estado.REFRI_CONFIRMA_EQUIPO: r.confirm_equipment(str(data.get("equipo", "equipo")),
                                                          str(data.get("ubicacion", "tu tienda"))),
        Estado.REFRI_ESPERA_DESCRIPCION: r.text(r.PIDE_DESCRIPCION),
        Estado.VEHICULO_ESPERA_EMPLEADO: r.text(r.PIDE_EMPLEADO_OTRA_VEZ),
        Estado.VEHICULO_ESPERA_PLACA: r.text(r.PIDE_PLACA_OTRA_VEZ),
        Estado.VEHICULO_ESPERA_DESCRIPCION: r.text(r.PIDE_DESCRIPCION_VEHICULO),
    }.get(Estado(state) if state in Estado.__members__ else Estado.INICIO)


def _looks_like_answer(state: str, text: str, term: str | None) -> bool:
    """Whether `text` answers what `state` waits for (then it is not an aside, whatever its tone)."""
    if state in (Estado.ESPERA_TIPO_EQUIPO, Estado.REFRI_CONFIRMA_EQUIPO):
        return term is not None
    if state == Estado.REFRI_ESPERA_SAP:
        return sap_candidate(text) is not None
    if state == Estado.VEHICULO_ESPERA_EMPLEADO:
        return bool(_EMPLOYEE.match(text.strip()))
    if state == Estado.VEHICULO_ESPERA_PLACA:
        return _plate(text) is not None
    return False  # a description: anything that is not a question or a greeting


def aside(state: str, message: InboundMessage, intent: Intent, term: str | None) -> Intencion | None:
    """A question or a greeting in the middle of a report (not an answer to what the state waits for):
    answered without moving the state or spending an attempt. None when the message is an answer."""
    if state not in WAITING_STATES or message.kind is not MessageKind.TEXT:
        return None
    if intent.intencion not in (Intencion.PREGUNTA, Intencion.SALUDO):
        return None
    return None if _looks_like_answer(state, message.text, term) else intent.intencion


def _plate(text: str) -> str | None:
    plate = re.sub(r"[\s\-.]", "", text.upper())
    if _PLATE.match(plate) and re.search(r"[A-Z]", plate) and re.search(r"\d", plate):
        return plate
    return None


def _with_prompt(lead: str, prompt: OutgoingMessage | None, *, resume: bool = False) -> tuple[OutgoingMessage, ...]:
    """`lead`, then the question the state is waiting on: one message when it fits, else two (one user
    gets about one message every few seconds before WhatsApp throttles, so fewer is better).
    `resume` says we are going back to the report ("Sigamos con tu reporte.")."""
    if prompt is None:
        return (r.text(lead),)
    limit = MAX_INTERACTIVE_BODY if prompt.kind != "text" else MAX_TEXT_BODY
    question = f"{r.SEGUIMOS} {prompt.body}" if resume else prompt.body
    body = f"{lead}\n\n{question}"
    if len(body) <= limit:
        return (replace(prompt, body=body),)
    return r.text(lead), replace(prompt, body=fit(question, limit))


def _answer_aside(inp: FlowInput, state: str, kind: Intencion) -> Transition:
    prompt = _prompt_for(state, inp.session.data)
    if kind is Intencion.SALUDO:
        return _stay(inp, *_with_prompt(r.SALUDO_EN_CURSO, prompt), description="Saludo durante el reporte")
    answer = inp.answer
    if answer is not None and answer.text:
        lead, why = answer.text, f"Pregunta respondida durante el reporte ({answer.status})"
    elif answer is not None and answer.status == "busy":
        lead, why = r.PREGUNTA_EN_CURSO, "Pregunta anterior en curso"
    elif answer is not None:
        lead, why = r.PREGUNTA_PENDIENTE, "Pregunta en proceso durante el reporte"
    else:
        lead, why = r.SIN_RESPUESTA, "Pregunta sin respuesta durante el reporte"
    return _stay(inp, *_with_prompt(lead, prompt, resume=True), description=why)


def _start(tipo: TipoEquipo | None, problem: str | None) -> Transition:
    data: dict[str, Any] = {"problema": problem} if problem else {}
    if tipo is TipoEquipo.REFRIGERADOR:
        return Transition(Estado.REFRI_ESPERA_SAP, {**data, "tipo": tipo.value}, None, (r.text(r.PIDE_SAP),),
                          "Inicio de reporte de refrigerador")
    if tipo is TipoEquipo.VEHICULO:
        return Transition(Estado.VEHICULO_ESPERA_EMPLEADO, {**data, "tipo": tipo.value}, None,
                          (r.text(r.PIDE_EMPLEADO),), "Inicio de reporte de vehículo")
    return Transition(Estado.ESPERA_TIPO_EQUIPO, data, None, (r.MENU_TIPO,), "Menú de tipo de equipo")


def _file_report(inp: FlowInput, data: Mapping[str, Any], problem: str) -> Transition:
    kind = data.get("tipo", TipoEquipo.REFRIGERADOR.value)
    if kind == TipoEquipo.REFRIGERADOR.value:
        label = f"{data.get('equipo', 'Refrigerador')} ({data.get('codigo_sap', '')})"
        details = {"codigo_sap": data.get("codigo_sap")}
        equipment_id = inp.session.equipment_id
    else:
        label = f"Vehículo placa {data.get('placa', '')}"
        details = {"empleado": data.get("empleado"), "placa": data.get("placa")}
        equipment_id = None
    report = ReportWrite(kind, equipment_id, problem, details)
    # REPORT_NUMBER is replaced by the real number (from the report row's Id) in the commit.
    reply = r.text(r.report_filed(REPORT_NUMBER, label, problem))
    return Transition(Estado.FINALIZADO, {"ultimo_reporte": REPORT_NUMBER}, None, (reply,),
                      f"Reporte {REPORT_NUMBER} creado", report)


def decide(inp: FlowInput) -> Transition:
    """The next state of the conversation after `inp.message`: what every state shares (reactions,
    non-text, cancel, a question or greeting mid-report), then the handler of the session's state."""
    msg, session = inp.message, inp.session
    state = session.state if session.state in Estado.__members__ else Estado.INICIO.value
    data = dict(session.data)

    if msg.kind is MessageKind.REACTION:
        return _stay(inp, description="Reacción ignorada")
    if msg.kind not in (MessageKind.TEXT, MessageKind.BUTTON_REPLY, MessageKind.LIST_REPLY):
        what = r.MEDIA_NAMES.get(msg.kind.value)
        first = r.SOLO_TEXTO.format(que=what) if what else r.NO_LEIBLE
        prompt = _prompt_for(state, data) or r.text(r.COMO_EMPEZAR)
        return _stay(inp, *_with_prompt(first, prompt), description=f"Mensaje no textual: {msg.kind.value}")

    if is_cancel(msg) or (inp.intent.intencion is Intencion.CANCELAR and state not in IDLE_STATES):
        if state in IDLE_STATES:
            return _reset(r.text(r.NADA_QUE_CANCELAR), description="Cancelar sin reporte en curso")
        return _reset(r.text(r.CANCELADO), description="Cancelado por el usuario")

    kind = aside(state, msg, inp.intent, inp.term)
    if kind is not None:
        return _answer_aside(inp, state, kind)
    return _HANDLERS[Estado(state)](inp, data, msg.text.strip())


def _on_idle(inp: FlowInput, data: dict[str, Any], text: str) -> Transition:
    """INICIO / FINALIZADO: a question is answered; a report (with or without its type) starts one."""
    ex = inp.extraction
    if is_question(ex):
        answer = inp.answer
        if answer is not None and answer.text:
            return _stay(inp, *_with_prompt(answer.text, r.text(r.COMO_EMPEZAR)),
                         description=f"Pregunta respondida ({answer.status})")
        if answer is not None and answer.status == "busy":
            return _stay(inp, r.text(r.PREGUNTA_EN_CURSO), description="Pregunta anterior en curso")
        if answer is not None:
            return _stay(inp, r.text(r.PREGUNTA_PENDIENTE), description="Pregunta en proceso")
        return _stay(inp, r.text(r.RESPUESTA_PREGUNTA), description="Pregunta respondida")
    if ex is not None and ex.intencion is Intencion.CANCELAR:
        return _reset(r.text(r.NADA_QUE_CANCELAR), description="Cancelar sin reporte en curso")
    return _start(ex.tipo_equipo if ex else None, ex.problema if ex else None)


def _on_equipment_type(inp: FlowInput, data: dict[str, Any], text: str) -> Transition:
    if inp.term in (TipoEquipo.REFRIGERADOR.value, TipoEquipo.VEHICULO.value):
        return _start(TipoEquipo(inp.term), data.get("problema"))
    return _stay(inp, r.MENU_TIPO_OTRA_VEZ, description="Tipo de equipo no reconocido")


def _on_sap_code(inp: FlowInput, data: dict[str, Any], text: str) -> Transition:
    eq = inp.equipment
    if eq is not None and eq.kind == TipoEquipo.REFRIGERADOR.value:
        data.update(codigo_sap=eq.sap_code, equipo=eq.description, ubicacion=eq.location, fallos_sap=0)
        return Transition(Estado.REFRI_CONFIRMA_EQUIPO, data, eq.id,
                          (r.confirm_equipment(eq.description, eq.location),), "Equipo encontrado")
    misses = int(data.get("fallos_sap", 0)) + 1
    if misses >= MAX_SAP_MISSES:
        return _reset(r.text(r.SAP_AGOTADO), description="Código SAP no encontrado 3 veces")
    data["fallos_sap"] = misses
    code = sap_candidate(text)
    body = r.SAP_NO_ENCONTRADO.format(codigo=code, n=misses) if code else r.SAP_SIN_CODIGO.format(n=misses)
    return Transition(Estado.REFRI_ESPERA_SAP, data, None, (r.text(body),), "Código SAP no encontrado")


def _on_equipment_confirmation(inp: FlowInput, data: dict[str, Any], text: str) -> Transition:
    if inp.term == "SI":
        if data.get("problema"):
            return _file_report(inp, data, str(data["problema"]))
        return Transition(Estado.REFRI_ESPERA_DESCRIPCION, data, inp.session.equipment_id,
                          (r.text(r.PIDE_DESCRIPCION),), "Equipo confirmado")
    if inp.term == "NO":
        for k in ("codigo_sap", "equipo", "ubicacion"):
            data.pop(k, None)
        return Transition(Estado.REFRI_ESPERA_SAP, data, None, (r.text(r.EQUIPO_RECHAZADO),), "Equipo rechazado")
    return _stay(inp, r.text(r.SI_NO_OTRA_VEZ), description="Confirmación no reconocida")


def _on_description(inp: FlowInput, data: dict[str, Any], text: str) -> Transition:
    if not text:
        prompt = _prompt_for(inp.session.state, data) or r.text(r.PIDE_DESCRIPCION)
        return _stay(inp, prompt, description="Descripción vacía")
    return _file_report(inp, data, text)


def _on_employee(inp: FlowInput, data: dict[str, Any], text: str) -> Transition:
    match_employee = _EMPLOYEE.match(text)
    if not match_employee:
        return _stay(inp, r.text(r.EMPLEADO_INVALIDO), description="Número de empleado inválido")
    data["empleado"] = match_employee.group(1)
    return Transition(Estado.VEHICULO_ESPERA_PLACA, data, None, (r.text(r.PIDE_PLACA),), "Empleado registrado")


def _on_plate(inp: FlowInput, data: dict[str, Any], text: str) -> Transition:
    plate = _plate(text)
    if plate is None:
        return _stay(inp, r.text(r.PLACA_INVALIDA), description="Placa inválida")
    data["placa"] = plate
    if data.get("problema"):
        return _file_report(inp, data, str(data["problema"]))
    return Transition(Estado.VEHICULO_ESPERA_DESCRIPCION, data, None,
                      (r.text(r.PIDE_DESCRIPCION_VEHICULO),), "Placa registrada")


# One handler per state; a state without one fails at import, not on a user's message.
_HANDLERS: dict[Estado, Callable[[FlowInput, dict[str, Any], str], Transition]] = {
    Estado.INICIO: _on_idle,
    Estado.FINALIZADO: _on_idle,
    Estado.ESPERA_TIPO_EQUIPO: _on_equipment_type,
    Estado.REFRI_ESPERA_SAP: _on_sap_code,
    Estado.REFRI_CONFIRMA_EQUIPO: _on_equipment_confirmation,
    Estado.REFRI_ESPERA_DESCRIPCION: _on_description,
    Estado.VEHICULO_ESPERA_EMPLEADO: _on_employee,
    Estado.VEHICULO_ESPERA_PLACA: _on_plate,
    Estado.VEHICULO_ESPERA_DESCRIPCION: _on_description,
}
assert set(_HANDLERS) == set(Estado), "every state needs a handler"


def expire(session: Session) -> Transition:
    """The idle sweeper's transition: back to INICIO, telling the user why."""
    return _reset(r.text(r.EXPIRADO), description="Sesión expirada por inactividad")
