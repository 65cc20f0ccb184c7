"""What an Azure SQL connection string says about authentication, checked before the driver sees it.

On Azure the app signs in with its managed identity: `Authentication=ActiveDirectoryMsi` (ODBC Driver 17.3+
/ 18), plus `UID=<client id>` when the identity is user-assigned (without it the driver asks for the
system-assigned identity, which a user-assigned-only app does not have). No password travels. A string
that mixes an identity sign-in with a password, or names a user-assigned identity by anything but its
client id, is refused with the setting's name instead of failing later as a login error.
"""

from __future__ import annotations

import re

from core.errors import SettingsError
from core.telemetry import connection_string_parts

SETTING = "SQL_CONNECTION_STRING"
# The ODBC driver's `Authentication` values that take no password from the string.
IDENTITY_MODES = {"activedirectorymsi", "activedirectorymanagedidentity", "activedirectorydefault",
                  "activedirectoryintegrated", "activedirectoryinteractive"}
PASSWORD_MODES = {"sqlpassword", "activedirectorypassword", "activedirectoryserviceprincipal"}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def sql_authentication(connection_string: str) -> str:
    """How this string signs in, for logs: `sql`, `ActiveDirectoryMsi`, `ActiveDirectoryMsi <client id>`...
    Raises SettingsError for a combination the driver would refuse or misread."""
    parts = {name.lower(): value for name, value in connection_string_parts(connection_string)}
    mode = parts.get("authentication", "").strip()
    uid = (parts.get("uid") or parts.get("user id") or "").strip()
    has_password = bool((parts.get("pwd") or parts.get("password") or "").strip())
    if not mode:
        return "sql" if has_password else "sin contraseña ni Authentication"
    lowered = mode.lower()
    if lowered not in IDENTITY_MODES | PASSWORD_MODES:
        raise SettingsError(SETTING, f"Authentication={mode} no es un modo del controlador ODBC de SQL Server")
    if lowered in ("activedirectorymsi", "activedirectorymanagedidentity"):
        if has_password:
            raise SettingsError(SETTING, f"Authentication={mode} usa la identidad administrada: quita PWD")
        if uid and not _GUID.match(uid):
            raise SettingsError(SETTING, f"con Authentication={mode}, UID es el client id (GUID) de la identidad "
                                         "asignada por el usuario")
        return f"{mode} {uid}" if uid else f"{mode} (identidad asignada por el sistema)"
    if lowered in PASSWORD_MODES and not has_password:
        raise SettingsError(SETTING, f"Authentication={mode} necesita PWD")
    return mode
