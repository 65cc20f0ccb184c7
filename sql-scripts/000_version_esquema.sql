-- Schema version ledger. Run first: sqlcmd -S <server> -d <db> -b -I -i sql-scripts/000_version_esquema.sql
-- Every script sets these itself: classic sqlcmd connects with QUOTED_IDENTIFIER OFF, and filtered
-- indexes (and indexes on computed columns) refuse to be built without both (Msg 1934).
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
SET NOCOUNT ON;
GO
IF OBJECT_ID(N'dbo.SchemaVersion', N'U') IS NULL
    CREATE TABLE dbo.SchemaVersion (
        Version    INT           NOT NULL CONSTRAINT PK_SchemaVersion PRIMARY KEY,
        Nombre     NVARCHAR(200) NOT NULL,
        AplicadoEn DATETIME2(3)  NOT NULL CONSTRAINT DF_SchemaVersion_AplicadoEn DEFAULT SYSUTCDATETIME()
    );
GO
