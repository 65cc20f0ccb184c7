"""The conversation as pure functions: (session, turn, facts, lookups) -> transition. No I/O here.

A report is a draft of slots kept in the session's data (equipment type, SAP code and the catalog's
equipment, store, employee, plate or unit, description, evidence, location). Every turn is read for every
slot at once, whatever the bot last asked, so nothing the worker already said is asked again; the state
names the one question the bot is waiting on. When the draft is complete the worker sees a summary and
answers yes, and the report is filed. After filing, the session keeps the report's number for courtesy,
follow-up information and corrections. `needs()` tells the engine which lookups a turn requires;
`decide()` computes the transition: the turns that are not about the draft are answered here (a handover,
a status question, a courtesy, a correction after filing, silence), the draft itself in draft.py, and
both build their transitions with transitions.py. The types are in model.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bot import texts as r
from bot.conversation.draft import advance, merged_draft
from bot.conversation.model import (
    WAITING_STATES,
    FlowInput,
    FlowState,
    Needs,
    Rules,
    Session,
    Transition,
    Turn,
)
from bot.conversation.transitions import (
    MAX_SAP_MISSES,
    has_report_facts,
    memory_of,
    prompt_for,
    state_of,
    transition,
    with_prompt,
)
from bot.messages import MessageKind
from core.ai import rules
from core.ai.types import EquipmentType, Extraction, Intent
from core.whatsapp.outgoing import MAX_INTERACTIVE_BODY, fit

_WRONG_EQUIPMENT = re.compile(r"\b(me equivoque|equivocad[oa]|no era ese|no era el|era otro|wrong)\b")


def needs(session: Session, turn: Turn, facts: Extraction) -> Needs:
    """Which lookups `decide` will need for this turn."""
    state = state_of(session)
    draft = merged_draft(session, turn, facts)
    quiet = state is FlowState.ATENCION_HUMANA
    sap = draft.get("codigo_sap_nuevo")
    store = None
    if draft.get("tipo") != EquipmentType.VEHICULO.value and draft.get("tienda") and not draft.get("equipo_id") \
            and (draft.get("sin_etiqueta") or int(draft.get("fallos_sap", 0)) >= MAX_SAP_MISSES
                 or state is FlowState.REFRI_ESPERA_TIENDA):
        store = str(draft["tienda"])
    question = (facts.intent is Intent.PREGUNTA and not has_report_facts(facts) and not quiet)
    eid, plate = draft.get("equipo_id"), draft.get("placa") or draft.get("unidad")
    return Needs(
        equipment_id=eid if isinstance(eid, int) else None,
        plate=plate if isinstance(plate, str) else None,
        sap_code=None if quiet else sap,
        store=None if quiet else store,
        duplicate=not quiet and (bool(sap) or bool(draft.get("placa") or draft.get("unidad"))
                                 or bool(draft.get("equipo_id"))),
        reports=not quiet and (facts.intent in (Intent.CONSULTA_ESTADO, Intent.CORTESIA)
                               or bool(facts.report_number) or all(m.kind is MessageKind.STICKER
                                                                    for m in turn.messages)),
        question=question,
        history=not quiet and (facts.intent is Intent.HABLAR_PERSONA or facts.urgent),
    )


def decide(inp: FlowInput) -> Transition:
    """The next state after a turn: handover silence, reactions, cancel, handover requests, status
    questions, courtesy and questions first; then the draft is updated and the next question asked."""
    session, turn, f = inp.session, inp.turn, inp.facts
    state = state_of(session)
    data = dict(session.data)

    if state is FlowState.ATENCION_HUMANA:
        if inp.now_ms < int(data.get("atencion_hasta", 0)):
            return transition(state, data, inp, (), "Mensaje durante atención humana")
        state, data = _resume_after_handover(data)
        session = replace(session, state=state.value, data=data)
        inp = replace(inp, session=session)
    if turn.only_reactions:
        return transition(state, data, inp, (), "Reacción ignorada")
    drafting = state in WAITING_STATES
    last = _last_report(data, inp.now_ms)
    if all(m.kind in (MessageKind.STICKER, MessageKind.REACTION) for m in turn.messages) and not turn.text:
        f = replace(f, intent=Intent.CORTESIA)
        inp = replace(inp, facts=f)

    if f.intent is Intent.HABLAR_PERSONA or (f.urgent and not f.problem and not drafting):
        text = r.handover(notified=inp.rules.notifies_maintenance, urgent=f.urgent)
        return _handover(inp, state, data, text, "Atención humana solicitada")
    if f.intent is Intent.CANCELAR or (f.works_again and not has_report_facts(replace(f, problem=None))):
        return _cancel(inp, state, data, last)
    if f.intent is Intent.CONSULTA_ESTADO and not (f.equipment_type and f.problem):
        return _status(inp, state, data)
    if turn.unreadable and not turn.text:
        prompt = prompt_for(state, data)
        return transition(state, data, inp, with_prompt(r.NO_LEIBLE, prompt), "Mensaje no legible")

    wrong = last is not None and bool(_WRONG_EQUIPMENT.search(rules.fold(turn.text)))
    if not drafting and last is not None and (wrong or not _starts_new_report(f, turn)):
        followup = _after_report(inp, state, data, last)
        if followup is not None:
            return followup
    if not drafting and f.intent is Intent.CORTESIA and not has_report_facts(f) and not turn.media:
        return transition(state, data, inp, (r.text(r.CORTESIA),), "Cortesía")
    if f.intent is Intent.PREGUNTA and not has_report_facts(f) and not turn.media and not turn.location:
        return _question(inp, state, data, drafting)
    if drafting and f.intent is Intent.SALUDO and not has_report_facts(f) and not turn.media:
        return transition(state, data, inp, with_prompt(r.SALUDO_EN_CURSO, prompt_for(state, data)),
                          "Saludo durante el reporte")
    if not drafting and not has_report_facts(f) and not turn.media and not turn.location \
            and f.intent not in (Intent.REPORTAR_FALLA,) and turn.choice not in ("tipo_refrigerador",
                                                                                       "tipo_vehiculo"):
        if f.intent is Intent.SALUDO or not turn.text:
            return transition(FlowState.ESPERA_TIPO_EQUIPO, memory_of(data), inp, (r.MENU_TIPO,),
                              "Menú de tipo de equipo")
        return transition(state, data, inp, (r.text(r.COMO_EMPEZAR),), "Mensaje sin datos de reporte")
    return advance(inp, state)


def _starts_new_report(f: Extraction, turn: Turn) -> bool:
    return bool(f.equipment_type or f.sap_code or f.plate or f.unit_number) or turn.choice in (
        "tipo_refrigerador", "tipo_vehiculo")


def _last_report(data: Mapping[str, Any], now: int) -> tuple[str, int, int] | None:
    """(number, id, filed at) of the report this session filed, if any."""
    number, rid, at = data.get("ultimo_reporte"), data.get("ultimo_reporte_id"), data.get("ultimo_reporte_en")
    if isinstance(number, str) and isinstance(rid, int) and isinstance(at, int):
        return number, rid, at
    return None


def _after_report(inp: FlowInput, state: FlowState, data: dict[str, Any],
                  last: tuple[str, int, int]) -> Transition | None:
    """After filing: courtesy, more details for the report, or "me equivoqué de equipo"."""
    f, turn = inp.facts, inp.turn
    number, rid, at = last
    age = inp.now_ms - at
    if _WRONG_EQUIPMENT.search(rules.fold(turn.text)) and age <= inp.rules.correction_ms:
        before = data.get("ultimo_borrador")
        draft = {**(dict(before) if isinstance(before, Mapping) else {}), **memory_of(data),
                 "reporte_corregido": number}
        for k in ("ultimo_reporte", "ultimo_reporte_id", "ultimo_reporte_en"):
            draft.pop(k, None)
        session = replace(inp.session, state=FlowState.REFRI_ESPERA_SAP.value, data=draft)
        tr = advance(replace(inp, session=session), FlowState.REFRI_ESPERA_SAP)
        lead = r.EQUIVOCADO.format(numero=number)
        replies = with_prompt(lead, tr.replies[0]) + tr.replies[1:] if tr.replies else (r.text(lead),)
        return replace(tr, replies=replies, cancel_report=rid,
                       description=f"Reporte {number} cancelado: equipo equivocado")
    if f.intent is Intent.CORTESIA and not turn.media and not f.problem:
        still_open = any(x.number == number and x.open for x in inp.lookups.reports)
        text = r.CORTESIA_CON_REPORTE.format(numero=number) if still_open else r.CORTESIA
        return transition(state, data, inp, (r.text(text),), "Cortesía tras el reporte")
    if age > inp.rules.followup_ms:
        return None
    if turn.media or f.problem or turn.location:
        lead = r.added_to_report(number, evidence=[{"tipo": m.kind.value} for m in turn.media],
                                 location=turn.location is not None, detail=bool(f.problem))
        note = f.problem or turn.text or None
        if turn.location is not None:
            note = r.note_with_location(note, turn.location.latitude, turn.location.longitude)
        return transition(state, data, inp, (r.text(lead),), f"Información agregada a {number}", note_report=rid,
                          note=note or r.NOTE_EVIDENCE_ADDED, attach=tuple(m.wamid for m in turn.media))
    return None


def _cancel(inp: FlowInput, state: FlowState, data: dict[str, Any], last: tuple[str, int, int] | None) -> Transition:
    f = inp.facts
    if state in WAITING_STATES:
        text = r.YA_FUNCIONA if f.works_again else r.CANCELADO
        return transition(FlowState.INICIO, memory_of(data), inp, (r.text(text),), "Cancelado por el usuario")
    if f.works_again and last is not None and inp.now_ms - last[2] <= inp.rules.followup_ms:
        number, rid, _ = last
        return transition(state, data, inp, (r.text(r.NOTA_YA_FUNCIONA.format(numero=number)),),
                          f"El usuario indica que {number} ya funciona", note_report=rid,
                          note=r.NOTE_WORKS_AGAIN)
    if f.works_again:
        return transition(state, data, inp, (r.text(r.CORTESIA),), "Ya funciona, sin reporte en curso")
    return transition(state, data, inp, (r.text(r.NADA_QUE_CANCELAR),), "Cancelar sin reporte en curso")


def _status(inp: FlowInput, state: FlowState, data: dict[str, Any]) -> Transition:
    reports = inp.lookups.reports
    wanted = inp.facts.report_number
    if wanted:
        found = [x for x in reports if x.number == wanted]
        body = (r.reports_status([r.report_status(x.number, x.status, x.created, x.last_note) for x in found])
                if found else r.REPORTE_NO_ENCONTRADO.format(numero=wanted))
    elif reports:
        body = r.reports_status([r.report_status(x.number, x.status, x.created, x.last_note) for x in reports[:5]])
    else:
        body = r.SIN_REPORTES
    prompt = prompt_for(state, data) if state in WAITING_STATES else None
    return transition(state, data, inp, with_prompt(body, prompt, resume=True), "Consulta de estado de reportes")


def _question(inp: FlowInput, state: FlowState, data: dict[str, Any], drafting: bool) -> Transition:
    answer = inp.lookups.answer
    prompt = prompt_for(state, data) if drafting else r.text(r.COMO_EMPEZAR)
    if answer is not None and answer.text:
        return transition(state, data, inp, with_prompt(answer.text, prompt, resume=drafting),
                          f"Pregunta respondida ({answer.status})")
    if answer is not None and answer.status == "busy":
        return transition(state, data, inp, with_prompt(r.PREGUNTA_EN_CURSO, prompt if drafting else None, resume=True),
                          "Pregunta anterior en curso")
    if answer is not None:
        return transition(state, data, inp,
                          with_prompt(r.PREGUNTA_PENDIENTE, prompt if drafting else None, resume=True),
                          "Pregunta en proceso")
    if drafting:
        return transition(state, data, inp, with_prompt(r.SIN_RESPUESTA, prompt, resume=True), "Pregunta sin respuesta")
    return transition(state, data, inp, (r.text(r.RESPUESTA_PREGUNTA),), "Pregunta respondida")


def _handover(inp: FlowInput, state: FlowState, data: dict[str, Any], text: str, why: str) -> Transition:
    kept: dict[str, Any] = ({"borrador": {"estado": state.value, "datos": data}} if state in WAITING_STATES
                            else dict(data))
    kept["atencion_hasta"] = inp.now_ms + inp.rules.handover_ms
    return transition(FlowState.ATENCION_HUMANA, kept, inp, (r.text(text),), why, handover=True)


def _resume_after_handover(data: Mapping[str, Any]) -> tuple[FlowState, dict[str, Any]]:
    draft = data.get("borrador")
    if isinstance(draft, Mapping) and draft.get("estado") in FlowState.__members__:
        return FlowState(str(draft["estado"])), dict(draft.get("datos") or {})
    return FlowState.INICIO, {k: v for k, v in data.items() if k != "atencion_hasta"}


# -- silence ----------------------------------------------------------------------------------------


def on_idle(session: Session, now_ms: int, rules_: Rules) -> Transition | None:
    """The idle sweep's transition for a session silent for SESSION_IDLE_MINUTES: one reminder for a draft,
    the draft dropped silently after a day, a handover that ran out of time ended. None: nothing to do."""
    state = state_of(session)
    data = dict(session.data)
    empty = Turn(())
    facts = Extraction(Intent.OTRO, None, None, 0.0, "")
    inp = FlowInput(session, empty, facts, now_ms, rules=rules_)
    if state is FlowState.ATENCION_HUMANA:
        if now_ms < int(data.get("atencion_hasta", 0)):
            return transition(state, data, inp, (), "Atención humana en curso")
        resumed, kept = _resume_after_handover(data)
        return transition(resumed, kept, inp, (), "Fin de la atención humana")
    if state not in WAITING_STATES:
        return None
    if state is FlowState.ESPERA_TIPO_EQUIPO \
            and not any(data.get(k) for k in ("problema", "evidencias", "tienda", "gps")):
        return transition(FlowState.INICIO, memory_of(data), inp, (), "Menú sin respuesta")
    last_user = int(data.get("ultimo_mensaje_en", session.last_activity_ms) or 0)
    if now_ms - last_user >= rules_.draft_ttl_ms:
        return transition(FlowState.INICIO, memory_of(data), inp, (), "Borrador descartado tras un día sin respuesta")
    if data.get("recordatorio"):
        return transition(state, data, inp, (), "Borrador en espera")
    prompt = prompt_for(state, data)
    data["recordatorio"] = True
    question = prompt.body if prompt is not None else ""
    reminder = replace(prompt, body=fit(r.RECORDATORIO.format(pregunta=question), MAX_INTERACTIVE_BODY)) \
        if prompt is not None else r.text(r.RECORDATORIO.format(pregunta=""))
    return transition(state, data, inp, (reminder,), "Recordatorio de borrador")


def facts_for(turn: Turn, extraction: Extraction | None) -> Extraction:
    """The offline rules' reading of the turn, completed by a model's extraction when there is one: the
    model's intention and equipment type win, and a slot the model left empty keeps what the rules found."""
    base = rules.extract(turn.text)
    if extraction is None or extraction is base:
        return base
    merged = {name: getattr(extraction, name) for name in extraction.__dataclass_fields__}
    for name in base.__dataclass_fields__:
        if merged.get(name) in (None, False, "") and getattr(base, name) not in (None, False, ""):
            merged[name] = getattr(base, name)
    if extraction.intent is Intent.OTRO:
        merged["intent"] = base.intent
    return Extraction(**merged)
