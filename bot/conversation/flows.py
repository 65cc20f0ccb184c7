"""The conversation as pure functions: (session, turn, facts, lookups) -> transition. No I/O here.

A report is a draft of slots kept in the session's data (equipment type, SAP code and the catalog's
equipment, store, employee, plate or unit, description, evidence, location). Every turn is read for every
slot at once, whatever the bot last asked, so nothing the worker already said is asked again; the state
names the one question the bot is waiting on. When the draft is complete the worker sees a summary and
answers yes, and the report is filed. After filing, the session keeps the report's number for courtesy,
follow-up information and corrections. `needs()` tells the engine which lookups a turn requires;
`decide()` computes the transition.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from bot import texts as r
from bot.conversation.model import REPORT_ID, REPORT_NUMBER, Equipment, ReportDraft, Session
from bot.messages import InboundMessage, MessageKind
from core.ai import rules
from core.ai.types import EquipmentType, Extraction, Intent
from core.whatsapp.outgoing import MAX_INTERACTIVE_BODY, MAX_TEXT_BODY, OutgoingMessage, fit


class FlowState(StrEnum):
    # Values are stored in SesionesChat.Estado (and the members are named after them): Spanish.
    INICIO = "INICIO"
    ESPERA_TIPO_EQUIPO = "ESPERA_TIPO_EQUIPO"
    REFRI_ESPERA_SAP = "REFRI_ESPERA_SAP"
    REFRI_ESPERA_TIENDA = "REFRI_ESPERA_TIENDA"
    REFRI_ELIGE_EQUIPO = "REFRI_ELIGE_EQUIPO"
    REFRI_CONFIRMA_EQUIPO = "REFRI_CONFIRMA_EQUIPO"  # kept so sessions saved by older versions still load
    REFRI_ESPERA_DESCRIPCION = "REFRI_ESPERA_DESCRIPCION"
    VEHICULO_ESPERA_EMPLEADO = "VEHICULO_ESPERA_EMPLEADO"
    VEHICULO_ESPERA_PLACA = "VEHICULO_ESPERA_PLACA"
    VEHICULO_ESPERA_DESCRIPCION = "VEHICULO_ESPERA_DESCRIPCION"
    ESPERA_DETALLE = "ESPERA_DETALLE"
    CONFIRMA_REPORTE = "CONFIRMA_REPORTE"
    CORRIGE_REPORTE = "CORRIGE_REPORTE"
    CONFIRMA_DUPLICADO = "CONFIRMA_DUPLICADO"
    ATENCION_HUMANA = "ATENCION_HUMANA"
    FINALIZADO = "FINALIZADO"


IDLE_STATES = (FlowState.INICIO, FlowState.FINALIZADO)
WAITING_STATES = frozenset(set(FlowState) - {FlowState.INICIO, FlowState.FINALIZADO, FlowState.ATENCION_HUMANA})
MAX_SAP_MISSES = 3
TEXTUAL = (MessageKind.TEXT, MessageKind.BUTTON_REPLY, MessageKind.LIST_REPLY)
# Stickers are courtesy, not evidence.
MEDIA = (MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.AUDIO, MessageKind.DOCUMENT)
# Slots of the draft that survive a filed report (the worker's own data, confirmed in every summary).
MEMORY = ("empleado",)
_WRONG_EQUIPMENT = re.compile(r"\b(me equivoque|equivocad[oa]|no era ese|no era el|era otro|wrong)\b")


@dataclass(frozen=True, slots=True)
class Rules:
    """Times the flows reason about (from settings)."""

    followup_ms: int = 2 * 3_600_000  # after filing, new details join the report for this long
    correction_ms: int = 30 * 60_000  # "me equivoqué de equipo" cancels the report for this long
    handover_ms: int = 4 * 3_600_000  # the bot stays quiet after handing over to a person
    draft_ttl_ms: int = 24 * 3_600_000  # an unfinished draft is kept this long
    notifies_maintenance: bool = False  # REPORT_NOTIFY_NUMBERS is set: replies may say maintenance was told


@dataclass(frozen=True, slots=True)
class ReportInfo:
    """A filed report as the conversation sees it."""

    id: int
    number: str
    status: str
    created: str
    last_note: str | None = None

    @property
    def open(self) -> bool:
        return self.status in ("abierto", "asignado", "en_proceso")


@dataclass(frozen=True, slots=True)
class Turn:
    """The messages a worker sent together, read as one turn (oldest first)."""

    messages: tuple[InboundMessage, ...]

    @property
    def text(self) -> str:
        """Text, captions and transcripts joined: what the facts are read from."""
        return "\n".join(m.text.strip() for m in self.messages
                         if m.text.strip() and m.kind not in (MessageKind.LOCATION, MessageKind.CONTACTS))

    @property
    def choice(self) -> str | None:
        ids = [m.choice_id for m in self.messages if m.choice_id]
        return ids[-1] if ids else None

    @property
    def media(self) -> tuple[InboundMessage, ...]:
        return tuple(m for m in self.messages if m.kind in MEDIA and m.media_id)

    @property
    def location(self) -> InboundMessage | None:
        found = [m for m in self.messages if m.kind is MessageKind.LOCATION and m.latitude is not None]
        return found[-1] if found else None

    @property
    def only_reactions(self) -> bool:
        return all(m.kind is MessageKind.REACTION for m in self.messages)

    @property
    def unreadable(self) -> bool:
        return all(m.kind in (MessageKind.UNKNOWN, MessageKind.UNSUPPORTED, MessageKind.CONTACTS, MessageKind.REACTION)
                   for m in self.messages)

    @property
    def last(self) -> InboundMessage:
        return self.messages[-1]


@dataclass(frozen=True, slots=True)
class Answer:
    """The assistant's outcome for a free-form question: completed / failed / pending / busy."""

    status: str
    text: str | None


@dataclass(frozen=True, slots=True)
class Needs:
    sap_code: str | None = None  # look the code up in the catalog
    store: str | None = None  # list the catalog's refrigerators at this store
    duplicate: bool = False  # look for an open report of the draft's equipment (the SAP code's, or these)
    equipment_id: int | None = None
    plate: str | None = None
    reports: bool = False  # the worker's recent reports (a status question)
    question: bool = False  # the assistant answers a free-form question
    history: bool = False  # the conversation so far (a handover)


@dataclass(frozen=True, slots=True)
class Lookups:
    equipment: Equipment | None = None
    store_equipment: tuple[Equipment, ...] = ()
    duplicate: ReportInfo | None = None
    reports: tuple[ReportInfo, ...] = ()
    answer: Answer | None = None


@dataclass(frozen=True, slots=True)
class FlowInput:
    session: Session
    turn: Turn
    facts: Extraction
    now_ms: int
    lookups: Lookups = field(default_factory=Lookups)
    rules: Rules = field(default_factory=Rules)


@dataclass(frozen=True, slots=True)
class Evidence:
    message_id: str
    media_id: str
    kind: str
    mime: str | None
    sha256: str | None
    filename: str | None


@dataclass(frozen=True, slots=True)
class Transition:
    state: FlowState
    data: Mapping[str, Any]
    equipment_id: int | None
    replies: tuple[OutgoingMessage, ...]
    description: str
    report: ReportDraft | None = None
    evidence: tuple[Evidence, ...] = ()  # media of this turn, recorded whatever the state
    attach: tuple[str, ...] = ()  # message ids of evidence that goes with `report` or `note_report`
    note_report: int | None = None  # the report id that `note` is added to
    note: str | None = None
    cancel_report: int | None = None  # a report the worker cancelled ("me equivoqué de equipo")
    handover: bool = False  # notify maintenance with the conversation so far


def _state(session: Session) -> FlowState:
    return FlowState(session.state) if session.state in FlowState.__members__ else FlowState.INICIO


def _memory(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in MEMORY if data.get(k)}


def _drafting(data: Mapping[str, Any], state: FlowState) -> bool:
    return state in WAITING_STATES


def merged_draft(session: Session, turn: Turn, facts: Extraction) -> dict[str, Any]:
    """The draft after reading this turn's facts (and bare answers to the pending question)."""
    state = _state(session)
    data = dict(session.data) if _drafting(session.data, state) else _memory(session.data)
    text = turn.text
    pending = state
    if facts.equipment_type is not None:
        data["tipo"] = facts.equipment_type.value
    choice = turn.choice
    if choice in ("tipo_refrigerador", "tipo_vehiculo"):
        data["tipo"] = EquipmentType.REFRIGERADOR.value if choice == "tipo_refrigerador" \
            else EquipmentType.VEHICULO.value
    elif pending is FlowState.ESPERA_TIPO_EQUIPO and rules.fold(text).strip(" .") in ("1", "uno", "2", "dos"):
        data["tipo"] = EquipmentType.REFRIGERADOR.value if rules.fold(text).strip(" .") in ("1", "uno") \
            else EquipmentType.VEHICULO.value
    number = rules.bare_number(text) if text else None
    if number and pending in (FlowState.VEHICULO_ESPERA_EMPLEADO, FlowState.VEHICULO_ESPERA_PLACA):
        facts = replace(facts, sap_code=None)  # a bare number answers the question, it is no SAP code
    new_code = facts.sap_code and facts.sap_code != data.get("codigo_sap")
    if new_code and data.get("tipo") != EquipmentType.VEHICULO.value:
        data["codigo_sap_nuevo"] = facts.sap_code
    if facts.store:
        data["tienda"] = facts.store
    if facts.employee_number:
        data["empleado"] = facts.employee_number
    if facts.plate:
        data["placa"] = facts.plate
    if facts.unit_number and not facts.plate:
        data["unidad"] = facts.unit_number
    if facts.no_label:
        data["sin_etiqueta"] = True
    # Bare answers mean what the pending question asked for.
    if number and not (facts.sap_code or facts.employee_number or facts.plate or facts.unit_number):
        if pending is FlowState.VEHICULO_ESPERA_EMPLEADO and 3 <= len(number) <= 10:
            data["empleado"] = number
        elif pending is FlowState.VEHICULO_ESPERA_PLACA and len(number) <= 6:
            data["unidad"] = number
    elif pending is FlowState.VEHICULO_ESPERA_PLACA and not facts.plate and not facts.unit_number:
        tail = re.search(r"(\d{1,6})\s*$", rules.fold(text))
        if tail and not facts.problem:
            data["unidad"] = tail.group(1)  # "es la 254"
    if pending is FlowState.REFRI_ESPERA_TIENDA and text and not facts.store and not number \
            and not rules.yes_no(text) and len(text) <= 80:
        data["tienda"] = text.strip().rstrip(".")
    loc = turn.location
    if loc is not None:
        data["gps"] = {"lat": loc.latitude, "lon": loc.longitude, "nombre": loc.text or None}
        if loc.text and not data.get("tienda") and data.get("tipo") != EquipmentType.VEHICULO.value:
            data["tienda"] = loc.text
    description = _description(pending, text, facts, turn.choice)
    if description:
        if pending is FlowState.ESPERA_DETALLE and data.get("problema"):
            data["problema"] = f"{data['problema']}: {description}"
        else:
            data["problema"] = description
    media = [{"mensaje": m.wamid, "tipo": m.kind.value} for m in turn.media]
    if media:
        known = {e["mensaje"] for e in data.get("evidencias", [])}
        data["evidencias"] = [*data.get("evidencias", []), *[m for m in media if m["mensaje"] not in known]]
    return data


def _description(pending: FlowState, text: str, facts: Extraction, choice: str | None) -> str | None:
    """The failure this turn describes: a failure phrase anywhere, or the whole text when it answers the
    description question (and is not just a code, a yes/no or a courtesy)."""
    if choice or pending not in (FlowState.REFRI_ESPERA_DESCRIPCION, FlowState.VEHICULO_ESPERA_DESCRIPCION,
                                 FlowState.ESPERA_DETALLE):
        return facts.problem
    cleaned = re.sub(r"^(hola|buenos dias|buenas tardes|buenas noches|buenas)[,.! ]*", "", text.strip(), flags=re.I)
    if not cleaned or rules.bare_number(cleaned) or rules.yes_no(cleaned) or rules.courtesy(cleaned):
        return facts.problem
    if facts.works_again or facts.intent in (Intent.CANCELAR, Intent.CONSULTA_ESTADO):
        return None
    if facts.sap_code or facts.plate or facts.employee_number or facts.store:
        return facts.problem  # a message of facts: its failure phrase, not the whole text
    return cleaned.strip(" .")


def needs(session: Session, turn: Turn, facts: Extraction) -> Needs:
    """Which lookups `decide` will need for this turn."""
    state = _state(session)
    draft = merged_draft(session, turn, facts)
    quiet = state is FlowState.ATENCION_HUMANA
    sap = draft.get("codigo_sap_nuevo")
    store = None
    if draft.get("tipo") != EquipmentType.VEHICULO.value and draft.get("tienda") and not draft.get("equipo_id") \
            and (draft.get("sin_etiqueta") or int(draft.get("fallos_sap", 0)) >= MAX_SAP_MISSES
                 or state is FlowState.REFRI_ESPERA_TIENDA):
        store = str(draft["tienda"])
    question = (facts.intent is Intent.PREGUNTA and not _has_report_facts(facts) and not quiet)
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


def _has_report_facts(f: Extraction) -> bool:
    return bool(f.equipment_type or f.problem or f.sap_code or f.plate or f.employee_number or f.store)


def _evidence(turn: Turn) -> tuple[Evidence, ...]:
    return tuple(Evidence(m.wamid, m.media_id or "", m.kind.value, m.mime_type, m.sha256, m.filename)
                 for m in turn.media)


def _t(state: FlowState, data: Mapping[str, Any], inp: FlowInput, replies: Sequence[OutgoingMessage],
       description: str, **kw: Any) -> Transition:
    equipment_id = data.get("equipo_id") if state in WAITING_STATES else None
    return Transition(state, dict(data), equipment_id if isinstance(equipment_id, int) else None, tuple(replies),
                      description, evidence=_evidence(inp.turn), **kw)


def _with_prompt(lead: str, prompt: OutgoingMessage | None, *, resume: bool = False) -> tuple[OutgoingMessage, ...]:
    """`lead`, then the pending question: one message when it fits, else two."""
    if prompt is None:
        return (r.text(lead),)
    limit = MAX_INTERACTIVE_BODY if prompt.kind != "text" else MAX_TEXT_BODY
    question = f"{r.SEGUIMOS} {prompt.body}" if resume else prompt.body
    body = f"{lead}\n\n{question}"
    if len(body) <= limit:
        return (replace(prompt, body=body),)
    return r.text(lead), replace(prompt, body=fit(question, limit))


def decide(inp: FlowInput) -> Transition:
    """The next state after a turn: handover silence, reactions, cancel, handover requests, status
    questions, courtesy and questions first; then the draft is updated and the next question asked."""
    session, turn, f = inp.session, inp.turn, inp.facts
    state = _state(session)
    data = dict(session.data)

    if state is FlowState.ATENCION_HUMANA:
        if inp.now_ms < int(data.get("atencion_hasta", 0)):
            return _t(state, data, inp, (), "Mensaje durante atención humana")
        state, data = _resume_after_handover(data)
        session = replace(session, state=state.value, data=data)
        inp = replace(inp, session=session)
    if turn.only_reactions:
        return _t(state, data, inp, (), "Reacción ignorada")
    drafting = state in WAITING_STATES
    last = _last_report(data, inp.now_ms)
    if all(m.kind in (MessageKind.STICKER, MessageKind.REACTION) for m in turn.messages) and not turn.text:
        f = replace(f, intent=Intent.CORTESIA)
        inp = replace(inp, facts=f)

    if f.intent is Intent.HABLAR_PERSONA or (f.urgent and not f.problem and not drafting):
        text = r.handover(notified=inp.rules.notifies_maintenance, urgent=f.urgent)
        return _handover(inp, state, data, text, "Atención humana solicitada")
    if f.intent is Intent.CANCELAR or (f.works_again and not _has_report_facts(replace(f, problem=None))):
        return _cancel(inp, state, data, last)
    if f.intent is Intent.CONSULTA_ESTADO and not (f.equipment_type and f.problem):
        return _status(inp, state, data)
    if turn.unreadable and not turn.text:
        prompt = _prompt(state, data)
        return _t(state, data, inp, _with_prompt(r.NO_LEIBLE, prompt), "Mensaje no legible")

    wrong = last is not None and bool(_WRONG_EQUIPMENT.search(rules.fold(turn.text)))
    if not drafting and last is not None and (wrong or not _starts_new_report(f, turn)):
        followup = _after_report(inp, state, data, last)
        if followup is not None:
            return followup
    if not drafting and f.intent is Intent.CORTESIA and not _has_report_facts(f) and not turn.media:
        return _t(state, data, inp, (r.text(r.CORTESIA),), "Cortesía")
    if f.intent is Intent.PREGUNTA and not _has_report_facts(f) and not turn.media and not turn.location:
        return _question(inp, state, data, drafting)
    if drafting and f.intent is Intent.SALUDO and not _has_report_facts(f) and not turn.media:
        return _t(state, data, inp, _with_prompt(r.SALUDO_EN_CURSO, _prompt(state, data)), "Saludo durante el reporte")
    if not drafting and not _has_report_facts(f) and not turn.media and not turn.location \
            and f.intent not in (Intent.REPORTAR_FALLA,) and turn.choice not in ("tipo_refrigerador",
                                                                                       "tipo_vehiculo"):
        if f.intent is Intent.SALUDO or not turn.text:
            return _t(FlowState.ESPERA_TIPO_EQUIPO, _memory(data), inp, (r.MENU_TIPO,), "Menú de tipo de equipo")
        return _t(state, data, inp, (r.text(r.COMO_EMPEZAR),), "Mensaje sin datos de reporte")
    return _advance(inp, state)


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
        draft = {**(dict(before) if isinstance(before, Mapping) else {}), **_memory(data), "reporte_corregido": number}
        for k in ("ultimo_reporte", "ultimo_reporte_id", "ultimo_reporte_en"):
            draft.pop(k, None)
        session = replace(inp.session, state=FlowState.REFRI_ESPERA_SAP.value, data=draft)
        tr = _advance(replace(inp, session=session), FlowState.REFRI_ESPERA_SAP)
        lead = r.EQUIVOCADO.format(numero=number)
        replies = _with_prompt(lead, tr.replies[0]) + tr.replies[1:] if tr.replies else (r.text(lead),)
        return replace(tr, replies=replies, cancel_report=rid,
                       description=f"Reporte {number} cancelado: equipo equivocado")
    if f.intent is Intent.CORTESIA and not turn.media and not f.problem:
        still_open = any(x.number == number and x.open for x in inp.lookups.reports)
        text = r.CORTESIA_CON_REPORTE.format(numero=number) if still_open else r.CORTESIA
        return _t(state, data, inp, (r.text(text),), "Cortesía tras el reporte")
    if age > inp.rules.followup_ms:
        return None
    if turn.media or f.problem or turn.location:
        lead = r.added_to_report(number, evidence=[{"tipo": m.kind.value} for m in turn.media],
                                 location=turn.location is not None, detail=bool(f.problem))
        note = f.problem or turn.text or None
        if turn.location is not None:
            note = r.note_with_location(note, turn.location.latitude, turn.location.longitude)
        return _t(state, data, inp, (r.text(lead),), f"Información agregada a {number}", note_report=rid,
                  note=note or r.NOTE_EVIDENCE_ADDED, attach=tuple(m.wamid for m in turn.media))
    return None


def _cancel(inp: FlowInput, state: FlowState, data: dict[str, Any], last: tuple[str, int, int] | None) -> Transition:
    f = inp.facts
    if state in WAITING_STATES:
        text = r.YA_FUNCIONA if f.works_again else r.CANCELADO
        return _t(FlowState.INICIO, _memory(data), inp, (r.text(text),), "Cancelado por el usuario")
    if f.works_again and last is not None and inp.now_ms - last[2] <= inp.rules.followup_ms:
        number, rid, _ = last
        return _t(state, data, inp, (r.text(r.NOTA_YA_FUNCIONA.format(numero=number)),),
                  f"El usuario indica que {number} ya funciona", note_report=rid,
                  note=r.NOTE_WORKS_AGAIN)
    if f.works_again:
        return _t(state, data, inp, (r.text(r.CORTESIA),), "Ya funciona, sin reporte en curso")
    return _t(state, data, inp, (r.text(r.NADA_QUE_CANCELAR),), "Cancelar sin reporte en curso")


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
    prompt = _prompt(state, data) if state in WAITING_STATES else None
    return _t(state, data, inp, _with_prompt(body, prompt, resume=True), "Consulta de estado de reportes")


def _question(inp: FlowInput, state: FlowState, data: dict[str, Any], drafting: bool) -> Transition:
    answer = inp.lookups.answer
    prompt = _prompt(state, data) if drafting else r.text(r.COMO_EMPEZAR)
    if answer is not None and answer.text:
        return _t(state, data, inp, _with_prompt(answer.text, prompt, resume=drafting),
                  f"Pregunta respondida ({answer.status})")
    if answer is not None and answer.status == "busy":
        return _t(state, data, inp, _with_prompt(r.PREGUNTA_EN_CURSO, prompt if drafting else None, resume=True),
                  "Pregunta anterior en curso")
    if answer is not None:
        return _t(state, data, inp, _with_prompt(r.PREGUNTA_PENDIENTE, prompt if drafting else None, resume=True),
                  "Pregunta en proceso")
    if drafting:
        return _t(state, data, inp, _with_prompt(r.SIN_RESPUESTA, prompt, resume=True), "Pregunta sin respuesta")
    return _t(state, data, inp, (r.text(r.RESPUESTA_PREGUNTA),), "Pregunta respondida")


def _handover(inp: FlowInput, state: FlowState, data: dict[str, Any], text: str, why: str) -> Transition:
    kept: dict[str, Any] = ({"borrador": {"estado": state.value, "datos": data}} if state in WAITING_STATES
                            else dict(data))
    kept["atencion_hasta"] = inp.now_ms + inp.rules.handover_ms
    return _t(FlowState.ATENCION_HUMANA, kept, inp, (r.text(text),), why, handover=True)


def _resume_after_handover(data: Mapping[str, Any]) -> tuple[FlowState, dict[str, Any]]:
    draft = data.get("borrador")
    if isinstance(draft, Mapping) and draft.get("estado") in FlowState.__members__:
        return FlowState(str(draft["estado"])), dict(draft.get("datos") or {})
    return FlowState.INICIO, {k: v for k, v in data.items() if k != "atencion_hasta"}


# -- the draft --------------------------------------------------------------------------------------


def _advance(inp: FlowInput, state: FlowState) -> Transition:
    """Merge the turn into the draft, then ask for what is missing, confirm, or file."""
    f, turn, look = inp.facts, inp.turn, inp.lookups
    data = merged_draft(inp.session, turn, f)
    data["ultimo_mensaje_en"] = inp.now_ms
    data.pop("recordatorio", None)
    notes: list[str] = []
    if f.urgent and not data.get("urgente"):
        data["urgente"] = True
        notes.append(r.AVISO_URGENTE)

    if state in (FlowState.CONFIRMA_REPORTE, FlowState.REFRI_CONFIRMA_EQUIPO) and not _corrects(f, turn):
        answer = _yes_no(turn, f)
        if answer == "SI":
            return _file(inp, data)
        if answer == "NO":
            return _t(FlowState.CORRIGE_REPORTE, data, inp, (r.text(r.CORRIGE),), "El usuario corrige el reporte")
    if state is FlowState.CONFIRMA_DUPLICADO:
        choice = turn.choice or ""
        answer = _yes_no(turn, f)
        same = choice == "duplicado_misma" or (answer == "SI" and choice != "duplicado_otra")
        other = choice == "duplicado_otra" or answer == "NO" or "otra" in rules.fold(turn.text)
        dup = data.get("duplicado")
        if same and isinstance(dup, Mapping):
            return _join_duplicate(inp, data, dup)
        if other:
            data["duplicado_revisado"] = True
            data.pop("duplicado", None)
            if _missing(data, look) is None:
                return _file(inp, data)

    # The catalog: a new SAP code found or not.
    sap = data.pop("codigo_sap_nuevo", None)
    if sap:
        eq = look.equipment
        if eq is not None and data.get("tipo") not in (None, eq.kind):
            eq = None  # a vehicle's code while reporting a refrigerator (or the reverse): not this equipment
        if eq is not None:
            data.update(codigo_sap=eq.sap_code, equipo=eq.description, ubicacion=eq.location, equipo_id=eq.id,
                        fallos_sap=0, tipo=eq.kind)
            data.pop("sin_codigo", None)
            data.pop("duplicado_revisado", None)
        elif data.get("tipo") != EquipmentType.VEHICULO.value:
            misses = int(data.get("fallos_sap", 0)) + 1
            data["fallos_sap"] = misses
            data.setdefault("tipo", EquipmentType.REFRIGERADOR.value)
            for k in ("codigo_sap", "equipo", "ubicacion", "equipo_id"):
                data.pop(k, None)
            if misses < MAX_SAP_MISSES:
                notes.append(r.SAP_NO_ENCONTRADO.format(codigo=sap, n=misses))
            else:
                notes.append(r.SAP_AGOTADO)
    # Choosing from the store's list.
    choice = turn.choice or ""
    if state is FlowState.REFRI_ELIGE_EQUIPO and choice.startswith("equipo_"):
        picked = [e for e in look.store_equipment if f"equipo_{e.id}" == choice]
        if not picked and choice[7:].isdigit():
            picked = [Equipment(int(choice[7:]), "", EquipmentType.REFRIGERADOR.value, turn.last.text, "")]
        if picked:
            e = picked[0]
            data.update(equipo_id=e.id, equipo=e.description or turn.last.text, tipo=EquipmentType.REFRIGERADOR.value)
            if e.sap_code:
                data["codigo_sap"] = e.sap_code
            if e.location:
                data["ubicacion"] = e.location
    elif state is FlowState.REFRI_ELIGE_EQUIPO and (choice == r.NO_ESTA_EN_LISTA or rules.yes_no(turn.text) == "NO"
                                                 or "no esta" in rules.fold(turn.text)):
        data["sin_codigo"] = True

    if data.get("tipo") == EquipmentType.VEHICULO.value and data.get("codigo_sap") and not data.get("placa"):
        data.setdefault("unidad", data.get("codigo_sap"))

    # Vague description: one follow-up question.
    if state is not FlowState.ESPERA_DETALLE and data.get("problema") and rules.is_vague(str(data["problema"])) \
            and not data.get("detalle_pedido"):
        data["detalle_pedido"] = True
        data.pop("problema")
        data["problema_vago"] = str(inp.turn.text).strip()
        return _ask(inp, FlowState.ESPERA_DETALLE, data, notes, r.text(r.PIDE_DETALLE), "Descripción vaga")
    if state is FlowState.ESPERA_DETALLE and not data.get("problema"):
        data["problema"] = data.pop("problema_vago", None) or turn.text.strip() or r.NO_DETAIL

    unlabelled = data.get("sin_etiqueta") or int(data.get("fallos_sap", 0)) >= MAX_SAP_MISSES
    if data.get("tipo") == EquipmentType.REFRIGERADOR.value and unlabelled and data.get("tienda") \
            and not data.get("equipo_id") and not any(e.kind == EquipmentType.REFRIGERADOR.value
                                                      for e in look.store_equipment):
        data["sin_codigo"] = True  # no catalogued refrigerator there: maintenance identifies it
    dup = look.duplicate
    if dup is not None and dup.open and not data.get("duplicado_revisado") \
            and dup.number != data.get("reporte_corregido"):
        data["duplicado"] = {"numero": dup.number, "id": dup.id, "estado": dup.status}
        return _ask(inp, FlowState.CONFIRMA_DUPLICADO, data, notes, r.duplicate(dup.number, dup.status, dup.created),
                    f"Reporte abierto {dup.number} para el mismo equipo")
    missing = _missing(data, look)
    if missing is not None:
        next_state, prompt = missing
        if next_state is state is FlowState.VEHICULO_ESPERA_EMPLEADO and re.search(r"\d", turn.text):
            prompt = r.text(r.EMPLEADO_INVALIDO)
        if next_state is state is FlowState.VEHICULO_ESPERA_PLACA and turn.text and not turn.media:
            prompt = r.text(r.PLACA_INVALIDA)
        if next_state is FlowState.REFRI_ESPERA_SAP and state is FlowState.REFRI_ESPERA_SAP and not sap and turn.text \
                and not _has_report_facts(f) and not turn.media and not turn.location:
            misses = int(data.get("fallos_sap", 0)) + 1
            data["fallos_sap"] = misses
            if misses >= MAX_SAP_MISSES:
                return _ask(inp, FlowState.REFRI_ESPERA_TIENDA, data, [r.SAP_AGOTADO], r.text(r.PIDE_TIENDA),
                            "Código SAP no recibido 3 veces")
            prompt = r.text(r.SAP_SIN_CODIGO.format(n=misses))
        if next_state is FlowState.REFRI_ESPERA_SAP and (data.get("sin_etiqueta") or
                                                      int(data.get("fallos_sap", 0)) >= MAX_SAP_MISSES):
            next_state, prompt = FlowState.REFRI_ESPERA_TIENDA, r.text(
                r.PIDE_TIENDA_SIN_ETIQUETA if data.get("sin_etiqueta") and not notes else r.PIDE_TIENDA)
        return _ask(inp, next_state, data, notes, prompt, f"Falta: {next_state.value}")

    return _ask(inp, FlowState.CONFIRMA_REPORTE, data, notes,
                r.summary(r.draft_lines(data)), "Resumen para confirmar")


def _corrects(f: Extraction, turn: Turn) -> bool:
    """At the summary, a message with new data corrects the draft instead of answering yes/no."""
    return bool(f.sap_code or f.plate or f.unit_number or f.employee_number or f.store or f.problem) \
        and rules.yes_no(turn.text) is None


def _yes_no(turn: Turn, f: Extraction) -> str | None:
    if turn.choice in ("confirmar_si", "duplicado_misma"):
        return "SI"
    if turn.choice in ("confirmar_no", "duplicado_otra"):
        return "NO"
    return f.yes_no or rules.yes_no(turn.text)


def _ask(inp: FlowInput, state: FlowState, data: dict[str, Any], notes: list[str], prompt: OutgoingMessage,
         why: str) -> Transition:
    understood = _understood(inp, data) if state is not FlowState.CONFIRMA_REPORTE else None
    lead = "\n".join(x for x in (understood, *notes) if x)
    replies = _with_prompt(lead, prompt) if lead else (prompt,)
    return _t(state, data, inp, replies, why)


def _understood(inp: FlowInput, data: Mapping[str, Any]) -> str | None:
    """"Anoté: ..." for the facts this turn added, so the worker sees they were heard."""
    before = inp.session.data if inp.session.state not in ("INICIO", "FINALIZADO") else {}
    changed = [(key, str(data[key])) for key in r.SLOT_LABELS if data.get(key) and data.get(key) != before.get(key)]
    new_media = len(data.get("evidencias", [])) - len(before.get("evidencias", []))
    return r.understood(changed, location=bool(data.get("gps") and not before.get("gps")),
                        evidence=data.get("evidencias", [])[-new_media:] if new_media > 0 else (),
                        kind=None if before.get("tipo") else data.get("tipo"))


def _missing(data: Mapping[str, Any], look: Lookups) -> tuple[FlowState, OutgoingMessage] | None:
    kind = data.get("tipo")
    if kind is None:
        return FlowState.ESPERA_TIPO_EQUIPO, r.MENU_TIPO_CORTO
    if kind == EquipmentType.VEHICULO.value:
        if not data.get("empleado"):
            return FlowState.VEHICULO_ESPERA_EMPLEADO, r.text(r.PIDE_EMPLEADO)
        if not (data.get("placa") or data.get("unidad")):
            return FlowState.VEHICULO_ESPERA_PLACA, r.text(r.PIDE_PLACA)
        if not data.get("problema"):
            return FlowState.VEHICULO_ESPERA_DESCRIPCION, r.text(r.PIDE_DESCRIPCION_VEHICULO)
        return None
    if not data.get("equipo_id") and not data.get("sin_codigo"):
        unlabelled = data.get("sin_etiqueta") or int(data.get("fallos_sap", 0)) >= MAX_SAP_MISSES
        if unlabelled and data.get("tienda"):
            fridges = [e for e in look.store_equipment if e.kind == EquipmentType.REFRIGERADOR.value]
            if fridges:
                return FlowState.REFRI_ELIGE_EQUIPO, r.store_choices(
                    str(data["tienda"]), [(e.id, e.description, e.sap_code) for e in fridges])
            return None  # no catalogued refrigerator there: _advance files it "sin código"
        if unlabelled:
            return FlowState.REFRI_ESPERA_TIENDA, r.text(r.PIDE_TIENDA)
        return FlowState.REFRI_ESPERA_SAP, r.text(r.PIDE_SAP)
    if not data.get("problema"):
        return FlowState.REFRI_ESPERA_DESCRIPCION, r.text(r.PIDE_DESCRIPCION)
    return None


def _file(inp: FlowInput, data: dict[str, Any]) -> Transition:
    kind = str(data.get("tipo", EquipmentType.REFRIGERADOR.value))
    problem = str(data.get("problema") or r.NO_DESCRIPTION)
    details: dict[str, Any] = {k: data[k] for k in ("codigo_sap", "equipo", "ubicacion", "tienda", "empleado", "placa",
                                                     "unidad", "gps", "sin_codigo", "urgente") if data.get(k)}
    details["adjuntos"] = len(data.get("evidencias", []))
    equipment_id = data.get("equipo_id") if kind == EquipmentType.REFRIGERADOR.value else None
    report = ReportDraft(kind, equipment_id if isinstance(equipment_id, int) else None, problem, details)
    lines = r.draft_lines(data)
    # REPORT_NUMBER is replaced by the real number (from the report row's Id) in the commit.
    reply = r.text(r.report_filed(REPORT_NUMBER, lines, notified=inp.rules.notifies_maintenance))
    kept = {**_memory(data), "ultimo_reporte": REPORT_NUMBER, "ultimo_reporte_id": REPORT_ID,
            "ultimo_reporte_en": inp.now_ms,
            # what "me equivoqué de equipo" carries into the corrected report
            "ultimo_borrador": {k: data[k] for k in ("tipo", "problema", "evidencias", "gps", "tienda") if data.get(k)}}
    attach = tuple(str(e["mensaje"]) for e in data.get("evidencias", []))
    return Transition(FlowState.FINALIZADO, kept, None, (reply,), f"Reporte {REPORT_NUMBER} creado", report,
                      evidence=_evidence(inp.turn), attach=attach)


def _join_duplicate(inp: FlowInput, data: dict[str, Any], dup: Mapping[str, Any]) -> Transition:
    number, rid = str(dup.get("numero")), int(dup.get("id", 0))
    kept = {**_memory(data), "ultimo_reporte": number, "ultimo_reporte_id": rid, "ultimo_reporte_en": inp.now_ms}
    reply = r.text(r.AGREGADO_A_DUPLICADO.format(numero=number, estado=r.STATUS_NAMES.get(str(dup.get("estado")),
                                                                                          str(dup.get("estado")))))
    return _t(FlowState.FINALIZADO, kept, inp, (reply,), f"Información agregada a {number} (mismo equipo)",
              note_report=rid, note=r.note_same_equipment(data.get("problema")),
              attach=tuple(str(e["mensaje"]) for e in data.get("evidencias", [])))


def _prompt(state: FlowState, data: Mapping[str, Any]) -> OutgoingMessage | None:
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


# -- silence ----------------------------------------------------------------------------------------


def on_idle(session: Session, now_ms: int, rules_: Rules) -> Transition | None:
    """The idle sweep's transition for a session silent for SESSION_IDLE_MINUTES: one reminder for a draft,
    the draft dropped silently after a day, a handover that ran out of time ended. None: nothing to do."""
    state = _state(session)
    data = dict(session.data)
    empty = Turn(())
    facts = Extraction(Intent.OTRO, None, None, 0.0, "")
    inp = FlowInput(session, empty, facts, now_ms, rules=rules_)
    if state is FlowState.ATENCION_HUMANA:
        if now_ms < int(data.get("atencion_hasta", 0)):
            return _t(state, data, inp, (), "Atención humana en curso")
        resumed, kept = _resume_after_handover(data)
        return _t(resumed, kept, inp, (), "Fin de la atención humana")
    if state not in WAITING_STATES:
        return None
    if state is FlowState.ESPERA_TIPO_EQUIPO \
            and not any(data.get(k) for k in ("problema", "evidencias", "tienda", "gps")):
        return _t(FlowState.INICIO, _memory(data), inp, (), "Menú sin respuesta")
    last_user = int(data.get("ultimo_mensaje_en", session.last_activity_ms) or 0)
    if now_ms - last_user >= rules_.draft_ttl_ms:
        return _t(FlowState.INICIO, _memory(data), inp, (), "Borrador descartado tras un día sin respuesta")
    if data.get("recordatorio"):
        return _t(state, data, inp, (), "Borrador en espera")
    prompt = _prompt(state, data)
    data["recordatorio"] = True
    question = prompt.body if prompt is not None else ""
    reminder = replace(prompt, body=fit(r.RECORDATORIO.format(pregunta=question), MAX_INTERACTIVE_BODY)) \
        if prompt is not None else r.text(r.RECORDATORIO.format(pregunta=""))
    return _t(state, data, inp, (reminder,), "Recordatorio de borrador")


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


def messages_of(rows: Sequence[InboundMessage]) -> Turn:
    return Turn(tuple(rows))
