"""One declared type per query parameter name, whatever query or dialect it appears in.

SQL Server builds a plan per distinct parameter signature. Left to itself pyodbc describes a value by
its Python type and length (`nvarchar(7)` for one phone, `nvarchar(13)` for the next; `int` or `bigint`
by magnitude) and asks the server for the type of every NULL (a `SQLDescribeParam` round trip). The
SQL Server adapter declares these types with `setinputsizes`, so a query has one plan and NULLs cost
nothing. Both dialects check every bound value against its declaration, so a value SQL Server would
refuse (text where a number goes, text longer than its column) fails the same way on SQLite, in tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.storage.text import utf16_units

# Text sizes are those of the columns the parameter is written to or compared with: a name that met
# columns of two sizes is split in two (`estado` / `estado_sesion`, `tipo` / `tipo_envio`), so a value
# SQL Server would refuse is refused on SQLite too. Timestamps are epoch milliseconds.
PARAMETER_TYPES: dict[str, str] = {
    # ids and keys from Meta, the AI provider and the bot
    "wamid": "NVARCHAR(200)", "message_id": "NVARCHAR(200)", "message_id_origen": "NVARCHAR(200)",
    "mensaje_origen": "NVARCHAR(200)", "clave_sent": "NVARCHAR(200)", "clave_delivered": "NVARCHAR(200)",
    "clave_read": "NVARCHAR(200)", "clave_failed": "NVARCHAR(200)", "telefono": "NVARCHAR(64)",
    "destinatario": "NVARCHAR(64)", "clave": "NVARCHAR(100)", "propietario": "NVARCHAR(100)",
    "patron": "NVARCHAR(101)", "token_reclamo": "NVARCHAR(64)", "ejecucion_id": "NVARCHAR(128)",
    "conversacion_id": "NVARCHAR(128)", "campana": "NVARCHAR(100)", "numero": "NVARCHAR(20)",
    "codigo": "NVARCHAR(40)", "placa": "NVARCHAR(20)",
    # states and kinds
    "estado": "NVARCHAR(20)", "estado_sesion": "NVARCHAR(40)", "estado_anterior": "NVARCHAR(40)",
    "estado_nuevo": "NVARCHAR(40)", "estado_entrega": "NVARCHAR(20)", "origen": "NVARCHAR(10)",
    "tipo": "NVARCHAR(40)", "tipo_envio": "NVARCHAR(20)", "tipo_equipo": "NVARCHAR(20)",
    "estado_reporte": "NVARCHAR(20)", "estado_reporte_anterior": "NVARCHAR(20)", "origen_reporte": "NVARCHAR(20)",
    # free text and documents
    "descripcion": "NVARCHAR(2000)", "descripcion_historial": "NVARCHAR(500)", "error": "NVARCHAR(1000)",
    "ultimo_error": "NVARCHAR(1000)", "nota": "NVARCHAR(500)",
    "contenido": "NVARCHAR(MAX)", "datos": "NVARCHAR(MAX)", "payload": "NVARCHAR(MAX)",
    "resultado": "NVARCHAR(MAX)", "antes_fecha": "NVARCHAR(30)",
    # numbers
    "id": "BIGINT", "equipo_id": "INT", "reporte_id": "INT", "version_esperada": "INT", "token": "BIGINT",
    "ahora": "BIGINT", "antes_ms": "BIGINT", "desde": "BIGINT", "expira": "BIGINT", "limite": "BIGINT",
    "desde_id": "BIGINT", "hasta_id": "BIGINT",
    "procesado_en": "BIGINT", "proximo_intento": "BIGINT", "recibido_antes": "BIGINT",
    "wa_timestamp": "BIGINT", "max_intentos": "INT", "n": "INT", "rango": "INT",
    # evidence (Evidencias)
    "media_id": "NVARCHAR(200)", "tipo_evidencia": "NVARCHAR(20)", "mime": "NVARCHAR(100)",
    "sha256": "NVARCHAR(100)", "nombre_archivo": "NVARCHAR(240)", "ruta": "NVARCHAR(400)", "tamano": "BIGINT",
    "transcripcion": "NVARCHAR(MAX)",
    "vence_en": "BIGINT", "descontar": "INT", "mili_tokens": "BIGINT", "pausa_hasta": "BIGINT",
    "numero_negocio": "NVARCHAR(64)", "numero_predeterminado": "NVARCHAR(64)",
}

_TEXT = re.compile(r"^NVARCHAR\((\d+|MAX)\)$")
_INT_RANGE = {"INT": 2**31, "BIGINT": 2**63}


@dataclass(frozen=True, slots=True)
class ParameterType:
    sql: str  # as T-SQL writes it: NVARCHAR(64), NVARCHAR(MAX), INT, BIGINT
    units: int | None  # NVARCHAR(n): n UTF-16 code units; None for MAX and for numbers

    @property
    def is_text(self) -> bool:
        return self.sql.startswith("NVARCHAR")

    def problem(self, value: object) -> str | None:
        """Why SQL Server would refuse `value` for this parameter, or None. NULL fits every type."""
        if value is None:
            return None
        if self.is_text:
            if type(value) is not str:
                return f"{self.sql} needs text, got {type(value).__name__}"
            if self.units is not None and len(value) > self.units // 2 and utf16_units(value) > self.units:
                return f"{self.sql} holds {self.units} UTF-16 units, got {utf16_units(value)}"
            return None
        if type(value) is not int:  # bool is refused too: it would bind as BIT
            return f"{self.sql} needs an integer, got {type(value).__name__}"
        if not -_INT_RANGE[self.sql] <= value < _INT_RANGE[self.sql]:
            return f"{value} is out of range for {self.sql}"
        return None


def parameter_type(name: str) -> ParameterType | None:
    declared = PARAMETER_TYPES.get(name)
    if declared is None:
        return None
    text = _TEXT.match(declared)
    if text:
        return ParameterType(declared, None if text.group(1) == "MAX" else int(text.group(1)))
    if declared not in _INT_RANGE:
        raise ValueError(f"parameter {name}: unsupported type {declared}")
    return ParameterType(declared, None)
