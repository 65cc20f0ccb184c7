"""What the bot says, in Spanish. One place, so flows read as logic and texts can be reviewed together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.evidence import evidence_summary
from core.whatsapp.outgoing import MAX_ROW_DESCRIPTION, MAX_ROW_TITLE, MAX_TEXT_BODY, Choice, OutgoingMessage, fit

# How much of a user's or the catalog's own words a reply repeats: enough to recognise, never enough
# to push the reply past WhatsApp's limits.
ECHO_PROBLEM = 300
ECHO_EQUIPMENT = 150

YES_NO = (Choice("confirmar_si", "Sí"), Choice("confirmar_no", "No"))
MENU_TIPO = OutgoingMessage(
    body=(
        "¡Hola! Soy el asistente de reportes de fallas. ¿Qué equipo quieres reportar?\n"
        "1. Refrigerador\n2. Vehículo\n\nTambién puedes contarme todo en un mensaje, por ejemplo: "
        "*el refri 10004512 de la tienda centro no enfría*."
    ),
    buttons=(Choice("tipo_refrigerador", "Refrigerador"), Choice("tipo_vehiculo", "Vehículo")),
)
MENU_TIPO_CORTO = OutgoingMessage(body="¿Qué equipo quieres reportar?\n1. Refrigerador\n2. Vehículo",
                                  buttons=MENU_TIPO.buttons)
MENU_TIPO_OTRA_VEZ = OutgoingMessage(
    body="No entendí el tipo de equipo. Responde *1* para refrigerador o *2* para vehículo.", buttons=MENU_TIPO.buttons,
)
PIDE_SAP = (
    "Envíame el *código SAP* del refrigerador (está en la etiqueta). Si no tiene etiqueta, dime *sin etiqueta*."
)
SAP_NO_ENCONTRADO = "No encontré el código SAP {codigo}. Revisa la etiqueta y envíalo de nuevo (intento {n} de 3)."
SAP_SIN_CODIGO = ("No vi un código SAP en tu mensaje. Envíame los números de la etiqueta (intento {n} de 3), "
                  "o dime *sin etiqueta*.")
SAP_AGOTADO = "No encontré ese código después de 3 intentos. No te preocupes, lo buscamos de otra forma."
PIDE_TIENDA = "¿En qué *tienda* está el refrigerador? (por ejemplo: *tienda centro*)"
PIDE_TIENDA_SIN_ETIQUETA = "Sin problema. ¿En qué *tienda* está el refrigerador? (por ejemplo: *tienda centro*)"
ELIGE_EQUIPO = "Estos son los refrigeradores registrados en *{tienda}*. ¿Cuál es?"
NO_ESTA_EN_LISTA = "no_esta"
PIDE_DESCRIPCION = "¿Qué falla tiene? (por ejemplo: *no enfría*, *hace ruido*, *gotea agua*)"
PIDE_DESCRIPCION_VEHICULO = (
    "¿Qué falla tiene el vehículo? (por ejemplo: *no arranca*, *se calienta*, *ruido al frenar*)"
)
PIDE_DETALLE = (
    "¿Qué le pasa exactamente? Un detalle ayuda a mantenimiento a llevar lo necesario "
    "(por ejemplo: *no enfría*, *no arranca*)."
)
PIDE_EMPLEADO = "¿Cuál es tu *número de empleado*?"
EMPLEADO_INVALIDO = "El número de empleado es de 4 a 10 dígitos. ¿Cuál es el tuyo?"
PIDE_PLACA = "¿Cuál es la *placa* o el *número de unidad* del vehículo?"
PLACA_INVALIDA = "No reconocí la placa. Escríbela como aparece, por ejemplo *NXR-452-A*, o el número de unidad."
SI_NO_OTRA_VEZ = "Responde *sí* o *no*, por favor."
CORRIGE = "¿Qué dato corrijo? Escríbeme el dato correcto (código, tienda, placa, empleado o la falla)."
CANCELADO = "Listo, descarté el reporte que estábamos llenando. Si necesitas algo más, escríbeme."
YA_FUNCIONA = "¡Qué bueno que ya funciona! Descarté el reporte que estábamos llenando."
NADA_QUE_CANCELAR = "No tienes ningún reporte en curso. Si algo falla, cuéntame qué equipo y qué le pasa."
CORTESIA = "¡Con gusto! Si necesitas algo más, aquí estoy."
CORTESIA_CON_REPORTE = "¡Con gusto! Tu reporte *{numero}* sigue en seguimiento; te aviso cuando cambie."
NO_LEIBLE = "No pude leer ese tipo de mensaje. Escríbeme con texto, por favor."
RESPUESTA_PREGUNTA = (
    "Puedo ayudarte a reportar fallas de refrigeradores y vehículos y a consultar tus reportes. Cuéntame qué "
    "equipo falla y qué le pasa (por ejemplo: *el refrigerador de la tienda centro no enfría*), o escribe "
    "*mis reportes*."
)
PREGUNTA_PENDIENTE = "Estoy revisando tu pregunta; te respondo en un momento."
PREGUNTA_EN_CURSO = "Todavía estoy respondiendo tu pregunta anterior; dame un momento."
SIN_RESPUESTA = "No tengo una respuesta para eso por este medio."
SALUDO_EN_CURSO = "¡Hola! Seguimos con tu reporte."
SEGUIMOS = "Sigamos con tu reporte."
COMO_EMPEZAR = (
    "Si quieres reportar una falla, cuéntame qué equipo falla y qué le pasa "
    "(por ejemplo: *el refrigerador de la tienda centro no enfría*)."
)
RECORDATORIO = "¿Seguimos con tu reporte? Lo guardo hasta mañana. {pregunta}"
SEGURIDAD = "⚠️ Si hay humo, fuego o alguien lastimado, aléjate del equipo y llama al 911."
AVISO_URGENTE = f"{SEGURIDAD} Marco el reporte como urgente."
AGREGADO_A_REPORTE = "Agregué {que} a tu reporte *{numero}*."
AGREGADO_A_DUPLICADO = "Agregué tu información al reporte *{numero}* ({estado}). Te aviso cuando cambie."
NOTA_YA_FUNCIONA = "¡Qué bueno! Le avisé a mantenimiento en tu reporte *{numero}* que ya funciona."
EQUIVOCADO = "Cancelé el reporte *{numero}*. Vamos a corregirlo."
SIN_REPORTES = "No tienes reportes registrados con este número. Si algo falla, cuéntame qué equipo y qué le pasa."
REPORTE_NO_ENCONTRADO = "No encontré el reporte *{numero}* entre los tuyos. Escribe *mis reportes* para ver tu lista."
UBICACION_RECIBIDA = "Recibí tu ubicación."
STATUS_NAMES = {
    "abierto": "abierto", "asignado": "asignado a un técnico", "en_proceso": "en proceso",
    "resuelto": "resuelto ✅", "cancelado": "cancelado",
}


def text(body: str) -> OutgoingMessage:
    """A plain text reply; a longer body (an AI answer) is cut to WhatsApp's limit."""
    return OutgoingMessage(body=fit(body, MAX_TEXT_BODY))


def yes_no(body: str) -> OutgoingMessage:
    return OutgoingMessage(body=fit(body, 1_024), buttons=YES_NO)


def attachments_line(evidence: Sequence[Mapping[str, Any]]) -> str | None:
    """"2 fotos y 1 nota de voz" for what the worker sent (`evidencias` of a draft), or None."""
    return evidence_summary([str(item.get("tipo")) for item in evidence]) or None


def summary(lines: Sequence[tuple[str, str]], *, question: str) -> OutgoingMessage:
    body = "Revisa tu reporte:\n" + "\n".join(f"• {k}: {fit(v, ECHO_PROBLEM)}" for k, v in lines)
    return OutgoingMessage(body=fit(f"{body}\n\n{question}", 1_024),
                           buttons=(Choice("confirmar_si", "Sí, registrar"), Choice("confirmar_no", "Corregir")))


def report_filed(number: str, lines: Sequence[tuple[str, str]], *, notified: bool) -> str:
    body = "\n".join(f"{k}: {fit(v, ECHO_PROBLEM)}" for k, v in lines)
    who = "Ya avisé al equipo de mantenimiento" if notified else "El equipo de mantenimiento dará seguimiento"
    return (f"✅ Reporte *{number}* registrado.\n{body}\n{who}; te escribo aquí cuando cambie su estado. "
            "Si quieres saber cómo va, escribe *mis reportes*.")


def handover(*, notified: bool, urgent: bool) -> str:
    """The reply to "quiero hablar con una persona" (or to an emergency with no report to file). It says
    maintenance was told only when REPORT_NOTIFY_NUMBERS names someone; else the conversation only waits
    for a person in the console."""
    who = ("avisé al equipo de mantenimiento; una persona te escribirá por aquí" if notified else
           "dejé tu conversación para que la atienda una persona de mantenimiento; te escribirá por aquí en "
           "cuanto la revise")
    lead = f"{SEGURIDAD} Ya" if urgent else "Listo,"
    return f"{lead} {who}. Mientras tanto no te enviaré respuestas automáticas."


def duplicate(number: str, status: str, created: str) -> OutgoingMessage:
    return OutgoingMessage(
        body=(f"Ese equipo ya tiene el reporte *{number}* ({STATUS_NAMES.get(status, status)}, desde {created}). "
              "¿Es la misma falla? Si es la misma, agrego tus datos a ese reporte."),
        buttons=(Choice("duplicado_misma", "Es la misma"), Choice("duplicado_otra", "Es otra falla")),
    )


def store_choices(store: str, equipment: Sequence[tuple[int, str, str]]) -> OutgoingMessage:
    rows = tuple(Choice(f"equipo_{eid}", fit(desc, MAX_ROW_TITLE), fit(f"SAP {sap}", MAX_ROW_DESCRIPTION))
                 for eid, desc, sap in equipment[:9])
    rows += (Choice(NO_ESTA_EN_LISTA, "No está en la lista", "Lo reporto sin código"),)
    return OutgoingMessage(body=ELIGE_EQUIPO.format(tienda=fit(store, ECHO_EQUIPMENT)), list_button="Ver equipos",
                           rows=rows)


def report_status(number: str, status: str, created: str, note: str | None) -> str:
    line = f"• *{number}*: {STATUS_NAMES.get(status, status)} (desde {created})"
    return f"{line}\n  Última nota: {fit(note, ECHO_PROBLEM)}" if note else line


def reports_status(items: Sequence[str]) -> str:
    if len(items) == 1:
        return "Así va tu reporte:\n" + items[0]
    return "Así van tus reportes más recientes:\n" + "\n".join(items)
