"""The flows and the offline rules are pure functions: exercised here without any database."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.conversation.flows import decide, facts_for, needs, on_idle
from bot.conversation.model import (
    REPORT_NUMBER,
    Equipment,
    FlowInput,
    FlowState,
    Lookups,
    ReportInfo,
    Rules,
    Session,
    Turn,
)
from bot.messages import InboundMessage, MessageKind
from core.ai import rules
from core.ai.offline import OfflineProvider
from core.ai.types import FALLBACK_EXTRACTION, EquipmentType, Intent, TermKind

FRIDGE = Equipment(7, "10004512", "REFRIGERADOR", "Refrigerador vertical 2 puertas", "Tienda Centro")
TRUCK = Equipment(9, "20007781", "VEHICULO", "Camión de reparto", "CEDIS Oriente")
AI = OfflineProvider()
NOW = 1_800_000_000_000


def msg(text: str = "", kind: MessageKind = MessageKind.TEXT, choice: str | None = None, n: int = 1,
        **kw: object) -> InboundMessage:
    return InboundMessage(f"wamid.{n}", "521", kind, n, phone="521", text=text, choice_id=choice, **kw)  # type: ignore[arg-type]


def run(state: str, *texts: str, data: dict | None = None, equipment: Equipment | None = None,
        lookups: Lookups | None = None, messages: tuple[InboundMessage, ...] | None = None, now: int = NOW):
    session = Session("521", state, data or {}, None, 4)
    turn = Turn(messages or tuple(msg(t, n=i) for i, t in enumerate(texts)))
    facts = facts_for(turn, None)
    need = needs(session, turn, facts)
    look = lookups or Lookups(equipment=equipment if need.sap_code else None)
    return decide(FlowInput(session, turn, facts, now, look, Rules()))


# -- the offline rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "code"), [
    ("10004512", "10004512"), ("1000 4512", "10004512"), ("10004-512", "10004512"), ("sap: 10004512", "10004512"),
    ("el código es 1000 45 12", "10004512"), ("tienda 45 refri 10004512", "10004512"),
    ("empleado 48213", None), ("RPT-000123", None), ("placa NXR-4521", None), ("la unidad 254", None),
])
def test_sap_codes_as_workers_type_them(text: str, code: str | None) -> None:
    assert rules.sap_code(text) == code


@pytest.mark.parametrize(("text", "plate"), [
    ("NXR-4521", "NXR4521"), ("placas abc 123 d", "ABC123D"), ("ABC123D", "ABC123D"), ("es la 254", None),
    ("placa es la 254", None), ("mi empleado es 4521", None), ("tienda centro", None), ("XYZ-98-7", "XYZ987"),
])
def test_plates_are_never_employee_numbers_or_words(text: str, plate: str | None) -> None:
    assert rules.plate(text) == plate
    if plate:
        assert rules.employee_number(text) is None


@pytest.mark.parametrize(("text", "answer"), [
    ("sí", "SI"), ("si", "SI"), ("sip", "SI"), ("simón", "SI"), ("claro", "SI"), ("correcto", "SI"),
    ("así es", "SI"), ("ok", "SI"), ("👍", "SI"), ("Sí, es ese", "SI"), ("no", "NO"), ("nel", "NO"),
    ("nop", "NO"), ("no, es otro", "NO"), ("no enfría", None), ("no sé", None),
])
def test_mexican_yes_and_no(text: str, answer: str | None) -> None:
    assert rules.yes_no(text) == answer


@pytest.mark.parametrize(("text", "intent"), [
    ("gracias", Intent.CORTESIA), ("👍", Intent.CORTESIA), ("¿cómo va mi reporte RPT-000001?",
                                                                     Intent.CONSULTA_ESTADO),
    ("mis reportes", Intent.CONSULTA_ESTADO), ("quiero hablar con una persona", Intent.HABLAR_PERSONA),
    ("cancelar", Intent.CANCELAR), ("hola", Intent.SALUDO), ("la troca no arranca", Intent.REPORTAR_FALLA),
    ("the fridge is not cooling", Intent.REPORTAR_FALLA),
])
def test_intentions(text: str, intent: Intent) -> None:
    assert rules.extract(text).intent is intent


@pytest.mark.parametrize("word", ["refri", "nevera", "congelador", "vitrina", "enfriador", "cuarto frío", "fridge"])
def test_refrigerator_synonyms(word: str) -> None:
    assert rules.equipment_type(f"el {word} no sirve") is EquipmentType.REFRIGERADOR


@pytest.mark.parametrize("word", ["camioneta", "camión", "troca", "unidad", "carro", "moto", "truck"])
def test_vehicle_synonyms(word: str) -> None:
    assert rules.equipment_type(f"la {word} no sirve") is EquipmentType.VEHICULO


def test_vague_descriptions() -> None:
    for text in ("falla", "no sirve", "😡", "tiene una falla", "el refri no funciona"):
        assert rules.is_vague(text), text
    for text in ("no enfría", "gotea agua por abajo", "hace mucho ruido"):
        assert not rules.is_vague(text), text


def test_term_kinds_of_the_offline_provider() -> None:
    assert asyncio.run(AI.interpret_term("confirmar_no", TermKind.SI_NO)) == "NO"
    assert asyncio.run(AI.interpret_term("Sí, es ese", TermKind.SI_NO)) == "SI"
    assert asyncio.run(AI.interpret_term("nevera", TermKind.TIPO_EQUIPO)) == "REFRIGERADOR"


# -- the flows ---------------------------------------------------------------------------------------


def test_everything_in_one_message_goes_straight_to_the_summary_and_yes_files_it() -> None:
    t = run("INICIO", "buenas, el refri 10004512 de la tienda centro no enfría", equipment=FRIDGE)
    assert t.state is FlowState.CONFIRMA_REPORTE and t.equipment_id == 7
    assert [c.id for c in t.replies[0].buttons] == ["confirmar_si", "confirmar_no"]
    t = run(t.state.value, "sip", data=dict(t.data))
    assert t.state is FlowState.FINALIZADO and t.report is not None and REPORT_NUMBER in t.replies[0].body
    assert t.report.description == "no enfría" and t.report.equipment_id == 7


def test_a_burst_is_one_turn_and_nothing_is_asked_twice() -> None:
    t = run("INICIO", "el refri", "no enfria", "tienda centro")
    assert t.state is FlowState.REFRI_ESPERA_SAP and len(t.replies) == 1
    assert t.data["problema"] == "no enfria" and t.data["tienda"] == "Tienda Centro"
    assert int(t.data.get("fallos_sap", 0)) == 0  # no SAP attempt spent on "no enfria" or "tienda centro"


def test_a_plate_in_a_burst_is_the_plate_and_the_next_number_the_employee() -> None:
    t = run("INICIO", "reporte de camioneta", "NXR-4521", "no frena")
    assert t.state is FlowState.VEHICULO_ESPERA_EMPLEADO and t.data["placa"] == "NXR4521" and "empleado" not in t.data
    t = run(t.state.value, "4521", data=dict(t.data))
    assert t.state is FlowState.CONFIRMA_REPORTE and t.data["empleado"] == "4521"


def test_a_unit_number_answers_the_plate_question() -> None:
    t = run("VEHICULO_ESPERA_PLACA", "es la 254", data={"tipo": "VEHICULO", "empleado": "4587", "problema": "x y z"})
    assert t.data.get("unidad") == "254" and "placa" not in t.data


def test_a_vehicle_code_is_not_a_refrigerator() -> None:
    t = run("REFRI_ESPERA_SAP", "20007781", data={"tipo": "REFRIGERADOR"}, equipment=TRUCK)
    assert t.state is FlowState.REFRI_ESPERA_SAP and t.data["fallos_sap"] == 1 and "equipo_id" not in t.data


def test_three_misses_offer_the_store_instead_of_cancelling() -> None:
    t = run("REFRI_ESPERA_SAP", "99999", data={"tipo": "REFRIGERADOR", "fallos_sap": 2, "problema": "no enfría"})
    assert t.state is FlowState.REFRI_ESPERA_TIENDA and t.report is None and "tienda" in t.replies[0].body
    look = Lookups(store_equipment=(FRIDGE,))
    t = run(t.state.value, "tienda centro", data=dict(t.data), lookups=look)
    assert t.state is FlowState.REFRI_ELIGE_EQUIPO and t.replies[0].kind == "list"
    t = run(t.state.value, "Refrigerador vertical", data=dict(t.data), lookups=look,
            messages=(msg("Refrigerador vertical", MessageKind.LIST_REPLY, choice="equipo_7"),))
    assert t.state is FlowState.CONFIRMA_REPORTE and t.data["equipo_id"] == 7


def test_no_label_in_an_unknown_store_files_without_code() -> None:
    t = run("INICIO", "la vitrina de la sucursal 12 no enfría, no tiene etiqueta")
    assert t.state is FlowState.CONFIRMA_REPORTE and t.data["sin_codigo"] is True
    t = run(t.state.value, "sí", data=dict(t.data))
    assert t.report is not None and t.report.data["sin_codigo"] is True and t.report.equipment_id is None


def test_a_vague_description_gets_one_follow_up() -> None:
    t = run("REFRI_ESPERA_DESCRIPCION", "no sirve", data={"tipo": "REFRIGERADOR", "equipo_id": 7, "equipo": "R"})
    assert t.state is FlowState.ESPERA_DETALLE
    t = run(t.state.value, "👎", data=dict(t.data))
    assert t.state is FlowState.CONFIRMA_REPORTE  # asked once: the second answer is taken as it is


def test_media_and_location_are_kept_with_the_draft() -> None:
    photo = msg("", MessageKind.IMAGE, n=1, media_id="m1", mime_type="image/jpeg")
    place = InboundMessage("wamid.2", "521", MessageKind.LOCATION, 2, phone="521", text="Km 45",
                           latitude=19.4, longitude=-99.1)
    t = run("VEHICULO_ESPERA_EMPLEADO", data={"tipo": "VEHICULO", "problema": "no arranca"}, messages=(photo, place))
    assert t.state is FlowState.VEHICULO_ESPERA_EMPLEADO
    assert t.data["evidencias"] == [{"mensaje": "wamid.1", "tipo": "image"}] and t.data["gps"]["lat"] == 19.4
    assert [e.media_id for e in t.evidence] == ["m1"]


def test_courtesy_after_a_report_never_shows_the_menu_or_cancels() -> None:
    data = {"ultimo_reporte": "RPT-000001", "ultimo_reporte_id": 1, "ultimo_reporte_en": NOW}
    open_ = Lookups(reports=(ReportInfo(1, "RPT-000001", "abierto", "03/12/2026"),))
    for text in ("gracias", "ok", "👍"):
        t = run("FINALIZADO", text, data=data, lookups=open_)
        assert t.state is FlowState.FINALIZADO and "RPT-000001" in t.replies[0].body
        assert "cancel" not in t.replies[0].body.lower() and not t.replies[0].buttons
    sticker = msg("", MessageKind.STICKER, media_id="s1")
    assert "RPT-000001" in run("FINALIZADO", data=data, messages=(sticker,), lookups=open_).replies[0].body
    solved = Lookups(reports=(ReportInfo(1, "RPT-000001", "resuelto", "03/12/2026"),))
    assert "seguimiento" not in run("FINALIZADO", "gracias", data=data, lookups=solved).replies[0].body


def test_details_after_filing_join_the_report() -> None:
    data = {"ultimo_reporte": "RPT-000001", "ultimo_reporte_id": 1, "ultimo_reporte_en": NOW}
    t = run("FINALIZADO", "también gotea", data=data)
    assert t.note_report == 1 and t.note and "RPT-000001" in t.replies[0].body
    late = run("FINALIZADO", "también gotea", data=data, now=NOW + 3 * 3_600_000)
    assert late.note_report is None


def test_status_question_answers_from_the_reports() -> None:
    info = ReportInfo(1, "RPT-000001", "en_proceso", "03/12/2026", "Técnico en camino")
    t = run("INICIO", "¿cómo va mi reporte RPT-000001?", lookups=Lookups(reports=(info,)))
    assert "en proceso" in t.replies[0].body and "Técnico en camino" in t.replies[0].body
    t = run("REFRI_ESPERA_SAP", "mis reportes", data={"tipo": "REFRIGERADOR"}, lookups=Lookups(reports=(info,)))
    assert t.state is FlowState.REFRI_ESPERA_SAP and "código SAP" in t.replies[0].body  # the draft goes on


def test_duplicate_asks_then_joins_or_files() -> None:
    dup = ReportInfo(3, "RPT-000003", "asignado", "03/12/2026")
    t = run("INICIO", "el refri 10004512 no enfría", equipment=FRIDGE, lookups=Lookups(equipment=FRIDGE,
                                                                                       duplicate=dup))
    assert t.state is FlowState.CONFIRMA_DUPLICADO and "RPT-000003" in t.replies[0].body
    same = run(t.state.value, data=dict(t.data), lookups=Lookups(duplicate=dup),
               messages=(msg("Es la misma", MessageKind.BUTTON_REPLY, choice="duplicado_misma"),))
    assert same.state is FlowState.FINALIZADO and same.note_report == 3 and same.report is None
    other = run(t.state.value, data=dict(t.data), lookups=Lookups(duplicate=dup),
                messages=(msg("Es otra falla", MessageKind.BUTTON_REPLY, choice="duplicado_otra"),))
    assert other.report is not None


def test_cancel_and_already_fixed() -> None:
    assert run("VEHICULO_ESPERA_PLACA", "cancelar", data={"tipo": "VEHICULO"}).state is FlowState.INICIO
    assert run("INICIO", "cancelar").replies[0].body.startswith("No tienes")
    t = run("REFRI_ESPERA_SAP", "ya no, ya prendió solo", data={"tipo": "REFRIGERADOR", "problema": "no enfría"})
    assert t.state is FlowState.INICIO and t.report is None and "ya funciona" in t.replies[0].body


def test_handover_is_quiet_until_it_ends() -> None:
    t = run("REFRI_ESPERA_SAP", "quiero hablar con una persona", data={"tipo": "REFRIGERADOR", "problema": "x"})
    assert t.state is FlowState.ATENCION_HUMANA and t.handover
    quiet = run(t.state.value, "¿hola?", data=dict(t.data))
    assert quiet.state is FlowState.ATENCION_HUMANA and not quiet.replies
    later = run(t.state.value, "hola", data=dict(t.data), now=NOW + 5 * 3_600_000)
    assert later.state is FlowState.REFRI_ESPERA_SAP and later.replies  # the draft comes back


def test_idle_reminds_once_then_drops_the_draft_silently() -> None:
    draft = Session("521", "REFRI_ESPERA_SAP", {"tipo": "REFRIGERADOR", "ultimo_mensaje_en": NOW}, None, 3, NOW)
    first = on_idle(draft, NOW + 31 * 60_000, Rules())
    assert first is not None and first.state is FlowState.REFRI_ESPERA_SAP and "Seguimos" in first.replies[0].body
    again = on_idle(Session("521", "REFRI_ESPERA_SAP", dict(first.data), None, 4), NOW + 62 * 60_000, Rules())
    assert again is not None and not again.replies
    gone = on_idle(Session("521", "REFRI_ESPERA_SAP", dict(first.data), None, 5), NOW + 25 * 3_600_000, Rules())
    assert gone is not None and gone.state is FlowState.INICIO and not gone.replies
    assert on_idle(Session("521", "FINALIZADO", {}, None, 2), NOW, Rules()) is None


def test_fallback_extraction_still_moves_the_flow() -> None:
    """A timed-out AI answers its fallback; the offline rules still read the turn."""
    turn = Turn((msg("el refri 10004512 no enfría"),))
    facts = facts_for(turn, FALLBACK_EXTRACTION)
    assert facts.sap_code == "10004512" and facts.equipment_type is EquipmentType.REFRIGERADOR


@settings(max_examples=300, deadline=None)
@given(state=st.sampled_from([e.value for e in FlowState]), text=st.text(max_size=80),
       kind=st.sampled_from(list(MessageKind)))
def test_decide_never_raises(state: str, text: str, kind: MessageKind) -> None:
    m = msg(text, kind, media_id="m1" if kind not in (MessageKind.TEXT, MessageKind.REACTION) else None)
    t = run(state, data={"tipo": "VEHICULO"}, messages=(m,))
    assert isinstance(t.state, FlowState)
    assert kind in (MessageKind.REACTION, MessageKind.STICKER) or t.replies or t.state is FlowState.ATENCION_HUMANA


@pytest.mark.parametrize("state", ["REFRI_ESPERA_SAP", "REFRI_ESPERA_DESCRIPCION", "VEHICULO_ESPERA_EMPLEADO",
                                   "VEHICULO_ESPERA_PLACA", "VEHICULO_ESPERA_DESCRIPCION", "CONFIRMA_REPORTE"])
@pytest.mark.parametrize("text", ["¿cuál es el horario de servicio?", "hola"])
def test_a_question_or_greeting_mid_report_keeps_the_state_and_the_attempts(state: str, text: str) -> None:
    data = {"tipo": "REFRIGERADOR", "fallos_sap": 1, "equipo": "Refri", "ubicacion": "Centro", "equipo_id": 7,
            "problema": "no enfría"}
    t = run(state, text, data=data)
    assert t.state.value == state and dict(t.data) == data and t.report is None
    assert "intento" not in t.replies[-1].body  # no failed attempt reported
    assert len(t.replies) == 1 and ("Seguimos" in t.replies[0].body or "Sigamos" in t.replies[0].body)


def test_the_confirmation_says_maintenance_was_told_only_when_it_was() -> None:
    data = {"tipo": "VEHICULO", "empleado": "4587", "placa": "NXR4521", "problema": "no arranca"}
    session = Session("521", "CONFIRMA_REPORTE", data, None, 4)
    turn = Turn((msg("sí"),))
    for told in (False, True):
        t = decide(FlowInput(session, turn, facts_for(turn, None), NOW, Lookups(), Rules(notifies_maintenance=told)))
        assert t.report is not None and ("Ya avisé" in t.replies[0].body) is told


@pytest.mark.parametrize("text", ["quiero hablar con una persona", "se está quemando, hay fuego"])
def test_the_handover_reply_says_maintenance_was_told_only_when_it_was(text: str) -> None:
    session = Session("521", "INICIO", {}, None, 4)
    turn = Turn((msg(text),))
    facts = facts_for(turn, None)
    urgent = facts.urgent
    for told in (False, True):
        t = decide(FlowInput(session, turn, facts, NOW, Lookups(), Rules(notifies_maintenance=told)))
        body = t.replies[0].body
        assert t.state is FlowState.ATENCION_HUMANA and t.handover and len(t.replies) == 1
        assert ("avisé al equipo de mantenimiento" in body) is told
        assert ("atienda una persona" in body) is not told
        assert "no te enviaré respuestas automáticas" in body
        assert ("911" in body) is urgent  # an emergency with no report to file gets the safety advice first


def test_an_emergency_with_no_report_to_file_is_urgent_and_one_asking_for_a_person_is_not() -> None:
    assert facts_for(Turn((msg("se está quemando, hay fuego"),)), None).urgent
    assert not facts_for(Turn((msg("quiero hablar con una persona"),)), None).urgent
