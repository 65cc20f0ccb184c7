-- Schema version ledger. Run first: sqlcmd -S <server> -d <db> -b -i sql-scripts/000_version_esquema.sql
SET NOCOUNT ON;
GO
IF OBJECT_ID(N'dbo.SchemaVersion', N'U') IS NULL
    CREATE TABLE dbo.SchemaVersion (
        Version    INT           NOT NULL CONSTRAINT PK_SchemaVersion PRIMARY KEY,
        Nombre     NVARCHAR(200) NOT NULL,
        AplicadoEn DATETIME2(3)  NOT NULL CONSTRAINT DF_SchemaVersion_AplicadoEn DEFAULT SYSUTCDATETIME()
    );
GO
