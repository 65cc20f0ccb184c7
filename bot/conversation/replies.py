"""What the bot says, in Spanish. One place, so flows read as logic and texts can be reviewed together."""

from __future__ import annotations

from core.whatsapp.outgoing import MAX_TEXT_BODY, Choice, OutgoingMessage, fit

# How much of a user's or the catalog's own words a reply repeats: enough to recognise, never enough
# to push the reply past WhatsApp's limits.
ECHO_PROBLEM = 300
ECHO_EQUIPMENT = 150

MENU_TIPO = OutgoingMessage(
    body=(
        "¡Hola! Soy el asistente de reportes de fallas. ¿Qué equipo quieres reportar?\n"
        "1. Refrigerador\n2. Vehículo\n\nEscribe *cancelar* en cualquier momento para salir."
    ),
    buttons=(Choice("tipo_refrigerador", "Refrigerador"), Choice("tipo_vehiculo", "Vehículo")),
)
MENU_TIPO_CORTO = OutgoingMessage(
    body="¿Qué equipo quieres reportar?\n1. Refrigerador\n2. Vehículo",
    buttons=MENU_TIPO.buttons,
)
MENU_TIPO_OTRA_VEZ = OutgoingMessage(
    body="No entendí el tipo de equipo. Responde *1* para refrigerador o *2* para vehículo.",
    buttons=MENU_TIPO.buttons,
)
PIDE_SAP = "Entendido, reporte de refrigerador. Envíame el *código SAP* del equipo (está en la etiqueta)."
PIDE_SAP_OTRA_VEZ = "Envíame de nuevo el *código SAP* del refrigerador."
SAP_NO_ENCONTRADO = "No encontré el código SAP {codigo}. Revisa la etiqueta y envíalo de nuevo (intento {n} de 3)."
SAP_SIN_CODIGO = "No vi un código SAP en tu mensaje. Envíame solo los números de la etiqueta (intento {n} de 3)."
SAP_AGOTADO = (
    "No pude encontrar el equipo después de 3 intentos, así que cancelé este reporte. "
    "Escribe *hola* para empezar de nuevo o contacta a tu supervisor."
)
PIDE_DESCRIPCION = "Describe brevemente la falla (por ejemplo: *no enfría*, *hace ruido*, *gotea agua*)."
PIDE_DESCRIPCION_VEHICULO = (
    "Describe brevemente la falla del vehículo (por ejemplo: *no arranca*, *se calienta*, *ruido al frenar*)."
)
PIDE_EMPLEADO = "Entendido, reporte de vehículo. ¿Cuál es tu *número de empleado*?"
PIDE_EMPLEADO_OTRA_VEZ = "¿Cuál es tu *número de empleado*? Son de 4 a 10 dígitos."
EMPLEADO_INVALIDO = "El número de empleado debe tener de 4 a 10 dígitos. Inténtalo de nuevo."
PIDE_PLACA = "Gracias. ¿Cuál es la *placa* del vehículo?"
PIDE_PLACA_OTRA_VEZ = "¿Cuál es la *placa* del vehículo? Por ejemplo: *ABC-123-D*."
PLACA_INVALIDA = "No reconocí la placa. Escríbela con letras y números, por ejemplo *ABC-123-D*."
SI_NO_OTRA_VEZ = "Responde *sí* o *no*, por favor."
CANCELADO = "Reporte cancelado. Escribe *hola* cuando quieras empezar de nuevo."
NADA_QUE_CANCELAR = "No tienes ningún reporte en curso. Escribe *hola* para empezar uno."
EXPIRADO = (
    "Tu reporte se canceló por 30 minutos de inactividad. Escribe *hola* para empezar de nuevo."
)
SOLO_TEXTO = "Recibí tu {que}, pero por ahora solo puedo leer mensajes de texto."
NO_LEIBLE = "No pude leer ese tipo de mensaje. Escríbeme con texto, por favor."
RESPUESTA_PREGUNTA = (
    "Puedo ayudarte a reportar fallas de refrigeradores y vehículos. Escribe *hola* para empezar un reporte, "
    "o describe la falla directamente (por ejemplo: *el refrigerador no enfría*)."
)
PREGUNTA_PENDIENTE = "Estoy revisando tu pregunta; te respondo en un momento."
PREGUNTA_EN_CURSO = "Todavía estoy respondiendo tu pregunta anterior; dame un momento."
SIN_RESPUESTA = "No tengo una respuesta para eso por este medio."
SALUDO_EN_CURSO = "¡Hola! Seguimos con tu reporte."
SEGUIMOS = "Sigamos con tu reporte."
COMO_EMPEZAR = (
    "Si quieres reportar una falla, cuéntame qué equipo falla y qué le pasa "
    "(por ejemplo: *el refrigerador de la tienda no enfría*)."
)
EQUIPO_RECHAZADO = "Entendido, no es ese equipo. Envíame de nuevo el *código SAP* del refrigerador."
MEDIA_NAMES = {
    "image": "imagen",
    "audio": "audio",
    "video": "video",
    "document": "documento",
    "sticker": "sticker",
    "location": "ubicación",
    "contacts": "contacto",
}


def confirm_equipment(description: str, location: str) -> OutgoingMessage:
    return OutgoingMessage(
        body=f"¿Es el *{fit(description, ECHO_EQUIPMENT)}* en *{fit(location, ECHO_EQUIPMENT)}*?",
        buttons=(Choice("confirmar_si", "Sí"), Choice("confirmar_no", "No")),
    )


def report_filed(number: str, equipment: str, problem: str) -> str:
    return (
        f"✅ Reporte *{number}* registrado.\nEquipo: {fit(equipment, ECHO_EQUIPMENT)}\n"
        f"Falla: {fit(problem, ECHO_PROBLEM)}\n"
        "El equipo de mantenimiento dará seguimiento. Guarda este número para cualquier consulta."
    )


def text(body: str) -> OutgoingMessage:
    """A plain text reply; a longer body (an AI answer) is cut to WhatsApp's limit."""
    return OutgoingMessage(body=fit(body, MAX_TEXT_BODY))
