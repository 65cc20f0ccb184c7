"""The principals script (sql-scripts/security/): the app's role holds data rights only, the migrator's DDL."""

from __future__ import annotations

import re

from core.storage.migrate import TSQL_SCRIPTS_DIR, migrations

SCRIPT = TSQL_SCRIPTS_DIR / "security" / "001_principales.sql"


def _code() -> str:
    return re.sub(r"--[^\n]*", "", SCRIPT.read_text(encoding="utf-8"))


def test_the_app_role_gets_data_rights_on_dbo_and_nothing_else() -> None:
    grants = re.findall(r"GRANT ([^;]*) TO rol_bot_app;", _code())
    assert grants == ["SELECT, INSERT, UPDATE, DELETE ON SCHEMA::dbo"]
    assert not re.search(r"ALTER ROLE db_\w+ ADD MEMBER rol_bot_app", _code())


def test_the_migrator_role_gets_ddl_and_the_app_loses_it() -> None:
    code = _code()
    assert "ALTER ROLE db_ddladmin ADD MEMBER rol_bot_migrador;" in code
    for role in ("db_ddladmin", "db_owner"):
        assert f"IS_ROLEMEMBER(N'{role}', @app) = 1" in code and f"ALTER ROLE {role} DROP MEMBER" in code


def test_principal_names_come_from_sqlcmd_variables_and_are_quoted() -> None:
    code = _code()
    assert "N'$(AppPrincipal)'" in code and "N'$(MigratorPrincipal)'" in code
    assert not re.search(r"\+ @(app|migrador) \+", code)  # every name goes through QUOTENAME


def test_it_is_not_a_numbered_migration() -> None:
    """The app's own migration runner never applies it: it needs an Entra admin, once."""
    assert SCRIPT not in [p for _, _, p in migrations(TSQL_SCRIPTS_DIR)]
