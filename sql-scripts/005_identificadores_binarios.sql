-- Identifier columns compare byte for byte (Latin1_General_100_BIN2), as SQLite's BINARY does.
-- The database's default collation is case-insensitive: there two base64 wamids that differ only in
-- case are "equal", so the second message is taken for a redelivery and lost, and a mixed-case
-- username (BSUID) shares another's session. Binary also makes every seek on these keys cheaper.
--
-- A column's collation cannot change while an index, key or user statistics use it, so this script
-- drops them, changes the columns and builds them again, all in one transaction (XACT_ABORT: any
-- error rolls the whole script back and it can simply be run again). The tables are locked while it
-- runs and every index listed here is rebuilt: run it in a quiet window; with 30 days of retention it
-- takes seconds to a few minutes. Nothing happens when every column is already binary. Change tracking
-- or replication on these tables refuses the key drops: turn it off for the run.
-- sqlcmd -S <server> -d <db> -b -I -i sql-scripts/005_identificadores_binarios.sql
SET NOCOUNT ON;
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
SET XACT_ABORT ON;
GO
DECLARE @identificadores TABLE (TableName SYSNAME NOT NULL, ColumnName SYSNAME NOT NULL);
INSERT INTO @identificadores (TableName, ColumnName) VALUES
    (N'dbo.SesionesChat', N'Telefono'), (N'dbo.SesionesChat', N'ConversacionIA'),
    (N'dbo.MensajesProcesados', N'MessageId'), (N'dbo.MensajesProcesados', N'Telefono'),
    (N'dbo.MensajesChat', N'Telefono'), (N'dbo.MensajesChat', N'MessageId'),
    (N'dbo.Reportes', N'Telefono'), (N'dbo.Reportes', N'MensajeOrigen'),
    (N'dbo.HistorialSesiones', N'Telefono'), (N'dbo.HistorialSesiones', N'MessageId'),
    (N'dbo.ColaEnvios', N'Destinatario'), (N'dbo.ColaEnvios', N'TokenReclamo'),
    (N'dbo.ColaEnvios', N'WamidEnviado'), (N'dbo.ColaEnvios', N'Campana'),
    (N'dbo.ColaEnvios', N'MessageIdOrigen'),
    (N'dbo.BloqueosConversacion', N'Clave'), (N'dbo.BloqueosConversacion', N'Propietario'),
    (N'dbo.BloqueosConversacion', N'PropietarioAnterior'),
    (N'dbo.EjecucionesIA', N'Id'), (N'dbo.EjecucionesIA', N'Telefono'),
    (N'dbo.EjecucionesIA', N'ConversacionId'), (N'dbo.EjecucionesIA', N'MessageId');

IF EXISTS (
    SELECT 1
    FROM sys.columns AS c
    JOIN @identificadores AS k ON c.object_id = OBJECT_ID(k.TableName) AND c.name = k.ColumnName
    WHERE c.collation_name <> N'Latin1_General_100_BIN2'
)
BEGIN
    -- An index this script does not know (added by a DBA or by automatic tuning) would block the
    -- column change half way: name it and stop before anything changes. Drop it, run this script,
    -- create it again.
    DECLARE @no_previstos TABLE (Tabla SYSNAME NOT NULL, IndiceNoPrevisto SYSNAME NOT NULL);
    INSERT INTO @no_previstos (Tabla, IndiceNoPrevisto)
    SELECT DISTINCT OBJECT_NAME(i.object_id), i.name
    FROM sys.indexes AS i
    JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
    JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
    JOIN @identificadores AS k ON c.object_id = OBJECT_ID(k.TableName) AND c.name = k.ColumnName
    WHERE i.name NOT IN (N'PK_SesionesChat', N'UX_MensajesProcesados_MessageId', N'IX_MensajesProcesados_Pendientes',
                         N'IX_MensajesChat_Telefono', N'IX_MensajesChat_MessageId', N'IX_Reportes_Telefono',
                         N'UX_Reportes_MensajeOrigen', N'IX_HistorialSesiones_Telefono',
                         N'IX_ColaEnvios_Destinatario', N'IX_ColaEnvios_Reclamables', N'UX_ColaEnvios_Campana',
                         N'UX_ColaEnvios_Wamid', N'PK_BloqueosConversacion', N'PK_EjecucionesIA',
                         N'IX_EjecucionesIA_Telefono');
    IF EXISTS (SELECT 1 FROM @no_previstos)
    BEGIN
        SELECT Tabla, IndiceNoPrevisto FROM @no_previstos;
        -- Severity 16 stops `sqlcmd -b` with an error; RETURN ends the batch before anything changes.
        RAISERROR(N'005: unknown indexes use identifier columns (listed above); drop them, run 005, recreate them.', 16, 1);
        RETURN;
    END;

    BEGIN TRANSACTION;

    -- Statistics a DBA created on these columns block the change (the optimizer's own are dropped by
    -- ALTER COLUMN itself). One DROP per statistic, even when it covers several of the columns.
    DECLARE @drop_stats NVARCHAR(MAX) = N'';
    SELECT @drop_stats = @drop_stats + N'DROP STATISTICS ' + QUOTENAME(OBJECT_SCHEMA_NAME(s.object_id)) + N'.'
                         + QUOTENAME(OBJECT_NAME(s.object_id)) + N'.' + QUOTENAME(s.name) + N';'
    FROM sys.stats AS s
    WHERE s.user_created = 1
      AND EXISTS (SELECT 1
                  FROM sys.stats_columns AS sc
                  JOIN sys.columns AS c ON c.object_id = sc.object_id AND c.column_id = sc.column_id
                  JOIN @identificadores AS k ON c.object_id = OBJECT_ID(k.TableName) AND c.name = k.ColumnName
                  WHERE sc.object_id = s.object_id AND sc.stats_id = s.stats_id);
    IF @drop_stats <> N''
        EXEC sys.sp_executesql @drop_stats;

    -- 1. Keys and indexes on the columns that change.
    ALTER TABLE dbo.SesionesChat DROP CONSTRAINT IF EXISTS PK_SesionesChat;
    ALTER TABLE dbo.MensajesProcesados DROP CONSTRAINT IF EXISTS UX_MensajesProcesados_MessageId;
    DROP INDEX IF EXISTS IX_MensajesProcesados_Pendientes ON dbo.MensajesProcesados;
    DROP INDEX IF EXISTS IX_MensajesChat_Telefono ON dbo.MensajesChat;
    DROP INDEX IF EXISTS IX_MensajesChat_MessageId ON dbo.MensajesChat;
    DROP INDEX IF EXISTS IX_Reportes_Telefono ON dbo.Reportes;
    ALTER TABLE dbo.Reportes DROP CONSTRAINT IF EXISTS UX_Reportes_MensajeOrigen;
    DROP INDEX IF EXISTS IX_HistorialSesiones_Telefono ON dbo.HistorialSesiones;
    DROP INDEX IF EXISTS IX_ColaEnvios_Destinatario ON dbo.ColaEnvios;
    DROP INDEX IF EXISTS IX_ColaEnvios_Reclamables ON dbo.ColaEnvios;
    DROP INDEX IF EXISTS UX_ColaEnvios_Campana ON dbo.ColaEnvios;
    DROP INDEX IF EXISTS UX_ColaEnvios_Wamid ON dbo.ColaEnvios;
    ALTER TABLE dbo.BloqueosConversacion DROP CONSTRAINT IF EXISTS PK_BloqueosConversacion;
    ALTER TABLE dbo.EjecucionesIA DROP CONSTRAINT IF EXISTS PK_EjecucionesIA;
    DROP INDEX IF EXISTS IX_EjecucionesIA_Telefono ON dbo.EjecucionesIA;

    -- 2. The columns, with their sizes and nullability unchanged.
    ALTER TABLE dbo.SesionesChat ALTER COLUMN Telefono NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL;
    ALTER TABLE dbo.SesionesChat ALTER COLUMN ConversacionIA NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NULL;
    ALTER TABLE dbo.MensajesProcesados ALTER COLUMN MessageId NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL;
    ALTER TABLE dbo.MensajesProcesados ALTER COLUMN Telefono NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NULL;
    ALTER TABLE dbo.MensajesChat ALTER COLUMN Telefono NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL;
    ALTER TABLE dbo.MensajesChat ALTER COLUMN MessageId NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NULL;
    ALTER TABLE dbo.Reportes ALTER COLUMN Telefono NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL;
    ALTER TABLE dbo.Reportes ALTER COLUMN MensajeOrigen NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL;
    ALTER TABLE dbo.HistorialSesiones ALTER COLUMN Telefono NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL;
    ALTER TABLE dbo.HistorialSesiones ALTER COLUMN MessageId NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NULL;
    ALTER TABLE dbo.ColaEnvios ALTER COLUMN Destinatario NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL;
    ALTER TABLE dbo.ColaEnvios ALTER COLUMN TokenReclamo NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NULL;
    ALTER TABLE dbo.ColaEnvios ALTER COLUMN WamidEnviado NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NULL;
    ALTER TABLE dbo.ColaEnvios ALTER COLUMN Campana NVARCHAR(100) COLLATE Latin1_General_100_BIN2 NULL;
    ALTER TABLE dbo.ColaEnvios ALTER COLUMN MessageIdOrigen NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NULL;
    ALTER TABLE dbo.BloqueosConversacion ALTER COLUMN Clave NVARCHAR(100) COLLATE Latin1_General_100_BIN2 NOT NULL;
    ALTER TABLE dbo.BloqueosConversacion ALTER COLUMN Propietario NVARCHAR(100) COLLATE Latin1_General_100_BIN2 NULL;
    ALTER TABLE dbo.BloqueosConversacion ALTER COLUMN PropietarioAnterior NVARCHAR(100) COLLATE Latin1_General_100_BIN2 NULL;
    ALTER TABLE dbo.EjecucionesIA ALTER COLUMN Id NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL;
    ALTER TABLE dbo.EjecucionesIA ALTER COLUMN Telefono NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL;
    ALTER TABLE dbo.EjecucionesIA ALTER COLUMN ConversacionId NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NULL;
    ALTER TABLE dbo.EjecucionesIA ALTER COLUMN MessageId NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NULL;

    -- 3. The same keys and indexes as before (definitions from 001, 002 and 004).
    ALTER TABLE dbo.SesionesChat ADD CONSTRAINT PK_SesionesChat PRIMARY KEY (Telefono);
    ALTER TABLE dbo.MensajesProcesados ADD CONSTRAINT UX_MensajesProcesados_MessageId UNIQUE (MessageId);
    CREATE INDEX IX_MensajesProcesados_Pendientes ON dbo.MensajesProcesados (Telefono, WaTimestamp, Id)
        WHERE Estado = N'pendiente';
    CREATE INDEX IX_MensajesChat_Telefono ON dbo.MensajesChat (Telefono, Id);
    CREATE INDEX IX_MensajesChat_MessageId ON dbo.MensajesChat (MessageId) WHERE Origen = N'USUARIO';
    CREATE INDEX IX_Reportes_Telefono ON dbo.Reportes (Telefono);
    ALTER TABLE dbo.Reportes ADD CONSTRAINT UX_Reportes_MensajeOrigen UNIQUE (MensajeOrigen);
    CREATE INDEX IX_HistorialSesiones_Telefono ON dbo.HistorialSesiones (Telefono, Id);
    CREATE INDEX IX_ColaEnvios_Destinatario ON dbo.ColaEnvios (Destinatario, Id) INCLUDE (Estado, ProximoIntento)
        WHERE Estado IN (N'pendiente', N'procesando');
    CREATE INDEX IX_ColaEnvios_Reclamables ON dbo.ColaEnvios (Id) INCLUDE (ProximoIntento, Destinatario)
        WHERE Estado = N'pendiente';
    CREATE UNIQUE INDEX UX_ColaEnvios_Campana ON dbo.ColaEnvios (Campana, Destinatario) WHERE Campana IS NOT NULL;
    CREATE UNIQUE INDEX UX_ColaEnvios_Wamid ON dbo.ColaEnvios (WamidEnviado) WHERE WamidEnviado IS NOT NULL;
    ALTER TABLE dbo.BloqueosConversacion ADD CONSTRAINT PK_BloqueosConversacion PRIMARY KEY (Clave);
    ALTER TABLE dbo.EjecucionesIA ADD CONSTRAINT PK_EjecucionesIA PRIMARY KEY (Id);
    CREATE INDEX IX_EjecucionesIA_Telefono ON dbo.EjecucionesIA (Telefono, Estado);

    COMMIT TRANSACTION;
END
GO
IF NOT EXISTS (SELECT 1 FROM dbo.SchemaVersion WHERE Version = 5)
    INSERT INTO dbo.SchemaVersion (Version, Nombre) VALUES (5, N'005_identificadores_binarios');
GO
