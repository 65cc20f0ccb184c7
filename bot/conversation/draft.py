"""The draft of a report: every turn's facts merged into its slots, the one question still missing asked,
the summary confirmed, the report filed (or joined to an open one about the same equipment)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bot import texts as r
from bot.conversation.model import (
    REPORT_ID,
    REPORT_NUMBER,
    Equipment,
    FlowInput,
    FlowState,
    Lookups,
    ReportDraft,
    Session,
    Transition,
    Turn,
)
from bot.conversation.transitions import (
    MAX_SAP_MISSES,
    evidence_of,
    has_report_facts,
    is_drafting,
    memory_of,
    state_of,
    transition,
    with_prompt,
)
from core.ai import rules
from core.ai.types import EquipmentType, Extraction, Intent
from core.whatsapp.outgoing import OutgoingMessage


def merged_draft(session: Session, turn: Turn, facts: Extraction) -> dict[str, Any]:
    """The draft after reading this turn's facts (and bare answers to the pending question)."""
    state = state_of(session)
    data = dict(session.data) if is_drafting(session.data, state) else memory_of(session.data)
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


def advance(inp: FlowInput, state: FlowState) -> Transition:
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
            return transition(FlowState.CORRIGE_REPORTE, data, inp, (r.text(r.CORRIGE),),
                              "El usuario corrige el reporte")
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
                and not has_report_facts(f) and not turn.media and not turn.location:
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
    replies = with_prompt(lead, prompt) if lead else (prompt,)
    return transition(state, data, inp, replies, why)


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
    kept = {**memory_of(data), "ultimo_reporte": REPORT_NUMBER, "ultimo_reporte_id": REPORT_ID,
            "ultimo_reporte_en": inp.now_ms,
            # what "me equivoqué de equipo" carries into the corrected report
            "ultimo_borrador": {k: data[k] for k in ("tipo", "problema", "evidencias", "gps", "tienda") if data.get(k)}}
    attach = tuple(str(e["mensaje"]) for e in data.get("evidencias", []))
    return Transition(FlowState.FINALIZADO, kept, None, (reply,), f"Reporte {REPORT_NUMBER} creado", report,
                      evidence=evidence_of(inp.turn), attach=attach)


def _join_duplicate(inp: FlowInput, data: dict[str, Any], dup: Mapping[str, Any]) -> Transition:
    number, rid = str(dup.get("numero")), int(dup.get("id", 0))
    kept = {**memory_of(data), "ultimo_reporte": number, "ultimo_reporte_id": rid, "ultimo_reporte_en": inp.now_ms}
    reply = r.text(r.AGREGADO_A_DUPLICADO.format(numero=number, estado=r.STATUS_NAMES.get(str(dup.get("estado")),
                                                                                          str(dup.get("estado")))))
    return transition(FlowState.FINALIZADO, kept, inp, (reply,), f"Información agregada a {number} (mismo equipo)",
                      note_report=rid, note=r.note_same_equipment(data.get("problema")),
                      attach=tuple(str(e["mensaje"]) for e in data.get("evidencias", [])))
