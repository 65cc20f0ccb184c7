"""Who hears about reports and how: the maintenance numbers and the approved templates to use outside
WhatsApp's 24-hour customer-service window, taken from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings

WINDOW_HOURS = 24  # Meta delivers free-form messages only this long after the person last wrote


@dataclass(frozen=True, slots=True)
class Notice:
    """What one notice says, worded by the bot: `text` inside the window, else the template's `parameters`
    (in the order of the approved template's body)."""

    text: str
    parameters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    numbers: tuple[str, ...] = ()  # maintenance: new reports and handovers go to each
    template_new_report: str = "reporte_nuevo"
    template_status_change: str = "reporte_estado"
    template_handover: str = "atencion_humana"
    language: str = "es_MX"
    window_hours: int = WINDOW_HOURS

    @property
    def window_ms(self) -> int:
        return self.window_hours * 3_600_000

    @classmethod
    def from_settings(cls, settings: Settings) -> NotifyConfig:
        return cls(
            numbers=settings.report_notify_numbers,
            template_new_report=settings.template_new_report,
            template_status_change=settings.template_status_change,
            template_handover=settings.template_handover,
            language=settings.template_language,
        )
