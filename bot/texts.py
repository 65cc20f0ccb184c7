"""Everything people read on WhatsApp, in Spanish, in one place: the conversation's replies to field
workers, the words for their attachments, the text for an empty AI answer, and the notices about a report's life
(the reporter's status changes, maintenance's new-report and handover notices, as text inside WhatsApp's
24-hour window and as template parameters outside it). Flows read as logic; texts are reviewed together.

Storage never composes a sentence: `core.storage.reports` queues the `Notice` these functions build, in the
transaction of the change. The template bodies submitted to Meta (docs/reports.md) take the parameters in
the order built here. Log messages and the API's error JSON are not here: nobody reads them on WhatsApp.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from core.ai.assistant import AssistantWords
from core.ai.types import EquipmentType
from core.notify import Notice
from core.storage.reports import ReportView
from core.whatsapp.outgoing import (
    ELLIPSIS,
    MAX_ROW_DESCRIPTION,
    MAX_ROW_TITLE,
    MAX_TEMPLATE_PARAMETER,
    MAX_TEXT_BODY,
    Choice,
    OutgoingMessage,
    fit,
    one_line,
)

# How much of a user's or the catalog's own words a reply repeats: enough to recognise, never enough
# to push the reply past WhatsApp's limits.
ECHO_PROBLEM = 300
ECHO_EQUIPMENT = 150

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
# What a confirmation calls each kind of attachment: (one, several).
EVIDENCE_NAMES = {"image": ("foto", "fotos"), "audio": ("nota de voz", "notas de voz"), "video": ("video", "videos"),
                  "document": ("documento", "documentos"), "sticker": ("sticker", "stickers")}
ANSWER_EMPTY = "No encontré una respuesta a tu pregunta."  # the assistant finished with no text
# What the worker reads when no model answers a free-form question.
ASSISTANT_WORDS = AssistantWords(
    offline="No puedo responder esa pregunta por este medio; para otras dudas, consulta a tu supervisor.",
    offline_status=("Tu reporte queda registrado con su número (RPT-…) y el equipo de mantenimiento lo atiende. "
                    "Si necesitas reportar otra falla, escribe 'reportar falla'."),
    failed=("Lo siento, no pude responder tu pregunta en este momento. Intenta de nuevo más tarde, o escribe "
            "'reportar falla' si quieres reportar un equipo."),
    abandoned="Lo siento, tu pregunta tardó demasiado y la cancelé. ¿Puedes enviarla de nuevo?",
)
CONFIRM_QUESTION = "¿Lo registro?"
YOUR_LOCATION = "tu ubicación"
YOUR_FILE = "tu archivo"  # media of a kind EVIDENCE_NAMES does not name
THE_DETAIL = "el detalle"
# How "Anoté: ..." names each slot of the draft, in the order it lists them.
SLOT_LABELS = {"equipo": "equipo", "tienda": "tienda", "placa": "placa", "unidad": "unidad", "empleado": "empleado",
               "problema": "falla"}
KIND_HEADS = {"REFRIGERADOR": "Reporte de refrigerador. ", "VEHICULO": "Reporte de vehículo. "}
# What the conversation writes on a report: maintenance reads it, and the worker sees it as the last note.
NO_DESCRIPTION = "Sin descripción"
NO_DETAIL = "Sin detalle"
NOTE_EVIDENCE_ADDED = "Evidencia agregada"
NOTE_WORKS_AGAIN = "El usuario indica que el equipo ya funciona"
NOTE_WRONG_EQUIPMENT = "El usuario indicó que era otro equipo"
# A report's status in words: plain in notices and template parameters, with a mark in the conversation.
STATUS_LABELS: Mapping[str, str] = {
    "abierto": "abierto",
    "asignado": "asignado a un técnico",
    "en_proceso": "en proceso",
    "resuelto": "resuelto",
    "cancelado": "cancelado",
}
STATUS_NAMES = {**STATUS_LABELS, "resuelto": "resuelto ✅"}


def text(body: str) -> OutgoingMessage:
    """A plain text reply; a longer body (an AI answer) is cut to WhatsApp's limit."""
    return OutgoingMessage(body=fit(body, MAX_TEXT_BODY))


def evidence_summary(kinds: Sequence[str]) -> str:
    """`["image", "image", "audio"]` -> "2 fotos y 1 nota de voz" (kinds in the order first seen); "" for none."""
    counts = Counter(k for k in kinds if k in EVIDENCE_NAMES)
    parts = [f"{n} {EVIDENCE_NAMES[k][0] if n == 1 else EVIDENCE_NAMES[k][1]}" for k, n in counts.items()]
    return ", ".join(parts[:-1]) + " y " + parts[-1] if len(parts) > 1 else "".join(parts)


def attachments_line(evidence: Sequence[Mapping[str, Any]]) -> str | None:
    """"2 fotos y 1 nota de voz" for what the worker sent (`evidencias` of a draft), or None."""
    return evidence_summary([str(item.get("tipo")) for item in evidence]) or None


def understood(changed: Sequence[tuple[str, str]], *, location: bool, evidence: Sequence[Mapping[str, Any]],
               kind: str | None) -> str | None:
    """"Anoté: ..." for the facts a turn added ((slot, value) in `SLOT_LABELS` order, a location, media), so
    the worker sees they were heard; `kind` (the draft's type, when this turn set it) heads the line."""
    parts = [f"{SLOT_LABELS[slot]} *{fit(value, ECHO_EQUIPMENT)}*" for slot, value in changed]
    if location:
        parts.append(YOUR_LOCATION)
    if evidence:
        parts.append(attachments_line(evidence) or YOUR_FILE)
    if not parts:
        return None
    return f"{KIND_HEADS.get(str(kind), '')}Anoté: " + ", ".join(parts) + "."


def added_to_report(number: str, *, evidence: Sequence[Mapping[str, Any]], location: bool, detail: bool) -> str:
    """What the worker sent after filing, added to the report."""
    what = [attachments_line(evidence) or YOUR_FILE] if evidence else []
    what += [YOUR_LOCATION] if location else []
    what += [THE_DETAIL] if detail else []
    return AGREGADO_A_REPORTE.format(que=" y ".join(what), numero=number)


def note_with_location(note: str | None, latitude: float | None, longitude: float | None) -> str:
    return ((note + " · ") if note else "") + f"Ubicación: {latitude},{longitude}"


def note_same_equipment(problem: object) -> str:
    """The note a duplicate report adds to the open one of the same equipment."""
    return f"Nuevo reporte del mismo equipo: {problem or 'El usuario reportó el mismo equipo de nuevo'}"


def draft_lines(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The draft as (label, value) lines, for the summary and the filed-report confirmation."""
    lines: list[tuple[str, str]] = []
    if data.get("tipo") == EquipmentType.VEHICULO.value:
        vehicle = f"placa {data['placa']}" if data.get("placa") else f"unidad {data.get('unidad')}"
        lines.append(("Vehículo", vehicle))
        lines.append(("Empleado", str(data.get("empleado"))))
        if data.get("gps"):
            gps = data["gps"]
            lines.append(("Ubicación", gps.get("nombre") or f"{gps.get('lat')}, {gps.get('lon')}"))
    else:
        if data.get("equipo_id"):
            lines.append(("Equipo", f"{data.get('equipo')} ({data.get('codigo_sap') or 'sin código'})"))
            lines.append(("Ubicación", str(data.get("ubicacion") or data.get("tienda") or "")))
        else:
            lines.append(("Equipo", "Refrigerador sin código (mantenimiento lo identificará)"))
            lines.append(("Ubicación", str(data.get("tienda") or "sin tienda")))
    lines.append(("Falla", str(data.get("problema"))))
    attached = attachments_line(data.get("evidencias", []))
    if attached:
        lines.append(("Adjuntos", attached))
    return lines


def summary(lines: Sequence[tuple[str, str]]) -> OutgoingMessage:
    body = "Revisa tu reporte:\n" + "\n".join(f"• {k}: {fit(v, ECHO_PROBLEM)}" for k, v in lines)
    return OutgoingMessage(body=fit(f"{body}\n\n{CONFIRM_QUESTION}", 1_024),
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


def duplicate(number: str, status: str, created: str | None) -> OutgoingMessage:
    """`created` None: asked again, when the date is no longer at hand."""
    return OutgoingMessage(
        body=(f"Ese equipo ya tiene el reporte *{number}* ({STATUS_NAMES.get(status, status)}, "
              f"desde {created or 'antes'}). "
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


def chat_transcript(lines: Sequence[tuple[str, str]]) -> str:
    """The conversation so far as maintenance reads it in a handover notice: (origin, text) oldest first."""
    return "\n".join(f"{'Usuario' if who == 'USUARIO' else 'Bot'}: {said}" for who, said in lines)


# -- notices about a report's life (text inside the 24-hour window, template parameters outside it) ----

NO_NOTE = "sin nota"
NO_MESSAGES = "(sin mensajes)"
HANDOVER_TRANSCRIPT_MAX = 3_000  # characters of the conversation a text notice carries
HANDOVER_RELEASED = "La atención con mantenimiento terminó. Si necesitas algo más, escríbeme y con gusto te ayudo. 🙂"


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


def status_notice(report: ReportView) -> Notice:
    """The reporter's notice of the report's current status and last note.
    Template: {{1}} number, {{2}} status, {{3}} note."""
    number, status, note = report.number, report.status, report.last_note
    note_line = f"\nNota: {note}" if note else ""
    if status == "resuelto":
        body = (f"✅ ¡Buenas noticias! Tu reporte *{number}* quedó *resuelto*.{note_line}\n\n"
                "Gracias por avisarnos. Si el equipo vuelve a fallar, escríbenos y lo revisamos de nuevo.")
    elif status == "cancelado":
        body = f"Tu reporte *{number}* fue *cancelado*.{note_line}\n\nSi la falla sigue, escríbenos y abrimos otro."
    else:
        body = f"🔧 Tu reporte *{number}* ahora está: *{status_label(status)}*.{note_line}"
    return Notice(fit(body, MAX_TEXT_BODY), (number, status_label(status), note or NO_NOTE))


def new_report_notice(report: ReportView) -> Notice:
    """Maintenance's notice of a report just filed. Template: {{1}} number, {{2}} equipment, {{3}} location,
    {{4}} description, {{5}} attachments, {{6}} reporter."""
    equipment, location = report.equipment_text, report.location or "-"
    text = fit(
        f"🆕 Nuevo reporte *{report.number}*\n"
        f"Equipo: {equipment}\n"
        f"Ubicación: {location}\n"
        f"Falla: {report.description}\n"
        f"Evidencias: {report.attachments}\n"
        f"Reportó: {report.phone}",
        MAX_TEXT_BODY,
    )
    return Notice(text, (report.number, equipment, location, report.description, str(report.attachments),
                         report.phone))


def handover_notice(phone: str, transcript: str) -> Notice:
    """Maintenance's notice that a worker asked for a person, with the conversation so far.
    Template: {{1}} phone, {{2}} the end of the conversation (the newest part that fits one parameter)."""
    recent = transcript[-HANDOVER_TRANSCRIPT_MAX:] if transcript else NO_MESSAGES
    text = fit(
        f"🙋 *{phone}* pidió hablar con una persona. El bot no le responderá hasta que se libere la "
        f"conversación.\n\nConversación:\n{recent}",
        MAX_TEXT_BODY,
    )
    flat, keep = one_line(transcript), MAX_TEMPLATE_PARAMETER - 1
    tail = flat if len(flat) <= keep + 1 else ELLIPSIS + flat[-keep:]
    return Notice(text, (phone, tail or NO_MESSAGES))
