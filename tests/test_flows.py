"""The flows are pure functions: exercised here without any database."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.conversation.flows import Estado, FlowInput, decide, needs
from bot.messages import InboundMessage, MessageKind
from core.ai.offline import OfflineProvider
from core.ai.types import FALLBACK_EXTRACTION, FALLBACK_INTENT, Intencion, TermKind
from core.storage.conversations import REPORT_NUMBER, Equipment, Session

FRIDGE = Equipment(7, "10004512", "REFRIGERADOR", "Refrigerador vertical 2 puertas", "Tienda Centro")
AI = OfflineProvider()


def run(state: str, text: str, data: dict | None = None, equipment: Equipment | None = None,
        kind: MessageKind = MessageKind.TEXT, choice: str | None = None):
    session = Session("521", state, data or {}, None, 4)
    msg = InboundMessage("wamid.X", "521", kind, 1, phone="521", text=text, choice_id=choice)
    need = needs(state, msg)
    intent = asyncio.run(AI.detect_intent(text))
    extraction = asyncio.run(AI.extract_structured_data(text)) if need.extraction else None
    term = asyncio.run(AI.interpret_term(choice or text, need.term)) if need.term else None
    return decide(FlowInput(session, msg, intent, extraction, term, equipment))


def test_problem_stated_up_front_is_kept_and_skips_the_description() -> None:
    t = run("INICIO", "Hola, el refrigerador no enfría")
    assert t.state is Estado.REFRI_ESPERA_SAP and t.data["problema"] == "el refrigerador no enfría"
    t = run("REFRI_CONFIRMA_EQUIPO", "sí", {**t.data, "codigo_sap": "10004512", "equipo": "Refri"})
    assert t.state is Estado.FINALIZADO and t.report is not None and REPORT_NUMBER in t.replies[0].body


def test_confirmation_without_problem_asks_for_description() -> None:
    t = run("REFRI_CONFIRMA_EQUIPO", "Sí", {"tipo": "REFRIGERADOR"}, choice="confirmar_si")
    assert t.state is Estado.REFRI_ESPERA_DESCRIPCION and t.report is None


def test_sap_lookup_needs_and_confirmation_buttons() -> None:
    msg = InboundMessage("w", "521", MessageKind.TEXT, 1, text="el código es 10004512")
    assert needs("REFRI_ESPERA_SAP", msg).sap_code == "10004512"
    t = run("REFRI_ESPERA_SAP", "10004512", {"tipo": "REFRIGERADOR"}, equipment=FRIDGE)
    assert t.state is Estado.REFRI_CONFIRMA_EQUIPO and t.equipment_id == 7
    assert [c.id for c in t.replies[0].buttons] == ["confirmar_si", "confirmar_no"]


def test_menu_by_button_reply_and_greeting_from_finalizado() -> None:
    t = run("FINALIZADO", "hola")
    assert t.state is Estado.ESPERA_TIPO_EQUIPO and t.replies[0].kind == "buttons"
    t = run("ESPERA_TIPO_EQUIPO", "Vehículo", choice="tipo_vehiculo", kind=MessageKind.BUTTON_REPLY)
    assert t.state is Estado.VEHICULO_ESPERA_EMPLEADO
    t = run("ESPERA_TIPO_EQUIPO", "no sé")
    assert t.state is Estado.ESPERA_TIPO_EQUIPO and "1" in t.replies[0].body


def test_cancel_and_questions() -> None:
    assert run("VEHICULO_ESPERA_PLACA", "cancelar").state is Estado.INICIO
    assert run("INICIO", "cancelar").replies[0].body.startswith("No tienes")
    t = run("INICIO", "¿Cómo funciona esto?")
    assert t.state is Estado.INICIO and "reportar fallas" in t.replies[0].body


def test_media_in_the_middle_of_a_flow_reprompts() -> None:
    t = run("REFRI_ESPERA_SAP", "", {"tipo": "REFRIGERADOR"}, kind=MessageKind.AUDIO)
    # One message: what was received, then the question the state is waiting on.
    (reply,) = t.replies
    assert t.state is Estado.REFRI_ESPERA_SAP and "audio" in reply.body and "código SAP" in reply.body


def test_fallback_ai_results_still_move_the_flow() -> None:
    """A timed-out AI answers its fallbacks; the conversation still advances to the menu."""
    session = Session("521")
    msg = InboundMessage("w", "521", MessageKind.TEXT, 1, text="xyz")
    t = decide(FlowInput(session, msg, FALLBACK_INTENT, FALLBACK_EXTRACTION, None, None))
    assert t.state is Estado.ESPERA_TIPO_EQUIPO
    t = decide(FlowInput(Session("521", "REFRI_CONFIRMA_EQUIPO", {}, None, 2), msg, FALLBACK_INTENT))
    assert t.state is Estado.REFRI_CONFIRMA_EQUIPO


@settings(max_examples=300, deadline=None)
@given(state=st.sampled_from([e.value for e in Estado]), text=st.text(max_size=80),
       kind=st.sampled_from(list(MessageKind)))
def test_decide_never_raises(state: str, text: str, kind: MessageKind) -> None:
    t = run(state, text, {"tipo": "VEHICULO"}, kind=kind)
    assert isinstance(t.state, Estado)
    assert kind is MessageKind.REACTION or t.replies  # every message but a reaction gets an answer


def test_term_kinds_of_the_offline_provider() -> None:
    assert asyncio.run(AI.interpret_term("confirmar_no", TermKind.SI_NO)) == "NO"
    assert asyncio.run(AI.interpret_term("Sí, es ese", TermKind.SI_NO)) == "SI"
    assert asyncio.run(AI.interpret_term("nevera", TermKind.TIPO_EQUIPO)) == "REFRIGERADOR"


@pytest.mark.parametrize("state", ["REFRI_ESPERA_SAP", "REFRI_CONFIRMA_EQUIPO", "REFRI_ESPERA_DESCRIPCION",
                                   "VEHICULO_ESPERA_EMPLEADO", "VEHICULO_ESPERA_PLACA",
                                   "VEHICULO_ESPERA_DESCRIPCION", "ESPERA_TIPO_EQUIPO"])
@pytest.mark.parametrize("text", ["¿cuál es el horario de servicio?", "hola"])
def test_a_question_or_greeting_mid_report_keeps_the_state_and_the_attempts(state: str, text: str) -> None:
    from core.ai.types import Intent

    kind = Intencion.PREGUNTA if text.startswith("¿") else Intencion.SALUDO
    data = {"tipo": "REFRIGERADOR", "fallos_sap": 1, "equipo": "Refri", "ubicacion": "Centro"}
    session = Session("521", state, data, None, 3)
    msg = InboundMessage("w", "521", MessageKind.TEXT, 1, text=text)
    t = decide(FlowInput(session, msg, Intent(kind, 0.9)))
    assert t.state.value == state and dict(t.data) == data and t.report is None
    assert "intento" not in t.replies[-1].body  # no failed attempt reported
    assert len(t.replies) == 1 and ("Seguimos" in t.replies[0].body or "Sigamos" in t.replies[0].body)
