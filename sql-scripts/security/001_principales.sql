-- Least privilege: two database roles and the Microsoft Entra principals that hold them.
--   rol_bot_migrador: DDL (db_ddladmin) plus data access, for whoever runs sql-scripts/NNN_*.sql
--                     (a deployment pipeline's identity or a DBA group). Never the app.
--   rol_bot_app:      SELECT, INSERT, UPDATE, DELETE on schema dbo, nothing else: the Function App's
--                     managed identity. It cannot create, alter or drop anything.
-- Run once per database, by an Entra admin of the server, after 000-NNN; safe to run again (each step
-- checks first). The two names are sqlcmd variables: the display name of the Function App's managed
-- identity (by default the app's name) and of the migrating principal.
-- sqlcmd -S <server>.database.windows.net -d <db> -G -b -I -v AppPrincipal="<function app name>" MigratorPrincipal="<pipeline identity or group>" -i sql-scripts/security/001_principales.sql
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
SET NOCOUNT ON;
SET XACT_ABORT ON;
DECLARE @app SYSNAME = N'$(AppPrincipal)', @migrador SYSNAME = N'$(MigratorPrincipal)', @sql NVARCHAR(MAX);

IF DATABASE_PRINCIPAL_ID(N'rol_bot_app') IS NULL
    CREATE ROLE rol_bot_app;
IF DATABASE_PRINCIPAL_ID(N'rol_bot_migrador') IS NULL
    CREATE ROLE rol_bot_migrador;

-- The app: data in dbo, nothing more. DELETE is for retention.
GRANT SELECT, INSERT, UPDATE, DELETE ON SCHEMA::dbo TO rol_bot_app;
-- The migrator: the scripts create and alter tables and indexes, read the catalog, write SchemaVersion
-- and the sample catalog, and set OPTIMIZE_FOR_SEQUENTIAL_KEY.
ALTER ROLE db_ddladmin ADD MEMBER rol_bot_migrador;
GRANT SELECT, INSERT, UPDATE, DELETE ON SCHEMA::dbo TO rol_bot_migrador;

IF DATABASE_PRINCIPAL_ID(@app) IS NULL
BEGIN
    SET @sql = N'CREATE USER ' + QUOTENAME(@app) + N' FROM EXTERNAL PROVIDER;';
    EXEC sys.sp_executesql @sql;
END;
IF DATABASE_PRINCIPAL_ID(@migrador) IS NULL
BEGIN
    SET @sql = N'CREATE USER ' + QUOTENAME(@migrador) + N' FROM EXTERNAL PROVIDER;';
    EXEC sys.sp_executesql @sql;
END;
SET @sql = N'ALTER ROLE rol_bot_app ADD MEMBER ' + QUOTENAME(@app) + N';';
EXEC sys.sp_executesql @sql;
SET @sql = N'ALTER ROLE rol_bot_migrador ADD MEMBER ' + QUOTENAME(@migrador) + N';';
EXEC sys.sp_executesql @sql;

-- The app must not keep rights it had before this script (it used to run the migrations): out of the
-- DDL and owner roles. A member of db_owner can do anything, whatever else is granted.
IF IS_ROLEMEMBER(N'db_ddladmin', @app) = 1
BEGIN
    SET @sql = N'ALTER ROLE db_ddladmin DROP MEMBER ' + QUOTENAME(@app) + N';';
    EXEC sys.sp_executesql @sql;
END;
IF IS_ROLEMEMBER(N'db_owner', @app) = 1
BEGIN
    SET @sql = N'ALTER ROLE db_owner DROP MEMBER ' + QUOTENAME(@app) + N';';
    EXEC sys.sp_executesql @sql;
END;

-- What each principal holds now, for the deployment log.
SELECT r.name AS Rol, m.name AS Miembro
FROM sys.database_role_members AS rm
JOIN sys.database_principals AS r ON r.principal_id = rm.role_principal_id
JOIN sys.database_principals AS m ON m.principal_id = rm.member_principal_id
WHERE m.name COLLATE DATABASE_DEFAULT IN (@app, @migrador)
ORDER BY Miembro, Rol;
GO
