"""What people read about a report's life: the reporter's status notices, maintenance's new-report and
handover notices, in text (inside WhatsApp's 24-hour window) and as template parameters (outside it).

The template bodies submitted to Meta (docs/reports.md) take the parameters in the order built here.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.whatsapp.outgoing import ELLIPSIS, MAX_TEMPLATE_PARAMETER, MAX_TEXT_BODY, fit, one_line

STATUS_LABELS: Mapping[str, str] = {
    "abierto": "abierto",
    "asignado": "asignado a un técnico",
    "en_proceso": "en proceso",
    "resuelto": "resuelto",
    "cancelado": "cancelado",
}
NO_NOTE = "sin nota"
HANDOVER_TRANSCRIPT_MAX = 3_000  # characters of the conversation a text notice carries


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


def status_change_text(number: str, status: str, note: str | None) -> str:
    """The reporter's notice of a status change, inside the window."""
    note_line = f"\nNota: {note}" if note else ""
    if status == "resuelto":
        body = (f"✅ ¡Buenas noticias! Tu reporte *{number}* quedó *resuelto*.{note_line}\n\n"
                "Gracias por avisarnos. Si el equipo vuelve a fallar, escríbenos y lo revisamos de nuevo.")
    elif status == "cancelado":
        body = f"Tu reporte *{number}* fue *cancelado*.{note_line}\n\nSi la falla sigue, escríbenos y abrimos otro."
    else:
        body = f"🔧 Tu reporte *{number}* ahora está: *{status_label(status)}*.{note_line}"
    return fit(body, MAX_TEXT_BODY)


def status_change_parameters(number: str, status: str, note: str | None) -> tuple[str, ...]:
    """{{1}} number, {{2}} status, {{3}} note."""
    return (number, status_label(status), note or NO_NOTE)


def new_report_text(*, number: str, equipment: str, location: str, description: str, attachments: int,
                    reporter: str) -> str:
    """Maintenance's notice of a new report, inside the window."""
    return fit(
        f"🆕 Nuevo reporte *{number}*\n"
        f"Equipo: {equipment}\n"
        f"Ubicación: {location}\n"
        f"Falla: {description}\n"
        f"Evidencias: {attachments}\n"
        f"Reportó: {reporter}",
        MAX_TEXT_BODY,
    )


def new_report_parameters(*, number: str, equipment: str, location: str, description: str, attachments: int,
                          reporter: str) -> tuple[str, ...]:
    """{{1}} number, {{2}} equipment, {{3}} location, {{4}} description, {{5}} attachments, {{6}} reporter."""
    return (number, equipment, location, description, str(attachments), reporter)


def handover_text(phone: str, transcript: str) -> str:
    """Maintenance's notice that a worker asked for a person, with the conversation so far."""
    recent = transcript[-HANDOVER_TRANSCRIPT_MAX:] if transcript else "(sin mensajes)"
    return fit(
        f"🙋 *{phone}* pidió hablar con una persona. El bot no le responderá hasta que se libere la "
        f"conversación.\n\nConversación:\n{recent}",
        MAX_TEXT_BODY,
    )


def handover_parameters(phone: str, transcript: str) -> tuple[str, ...]:
    """{{1}} phone, {{2}} the end of the conversation (what fits one template parameter; the newest part)."""
    flat, keep = one_line(transcript), MAX_TEMPLATE_PARAMETER - 1
    recent = flat if len(flat) <= keep + 1 else ELLIPSIS + flat[-keep:]
    return (phone, recent or "(sin mensajes)")


def handover_released_text() -> str:
    """The worker's notice that the person finished and the bot answers again."""
    return "La atención con mantenimiento terminó. Si necesitas algo más, escríbeme y con gusto te ayudo. 🙂"
