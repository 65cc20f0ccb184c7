-- Identifier columns compare byte for byte (Latin1_General_100_BIN2), as SQLite's BINARY does.
-- The database's default collation is case-insensitive: there two base64 wamids that differ only in
-- case are "equal", so the second message is taken for a redelivery and lost, and a mixed-case
-- username (BSUID) shares another's session. Binary also makes every seek on these keys cheaper.
--
-- A column's collation cannot change while an index, key or user statistics use it, so this script
-- drops them, changes the columns and builds them again, one transaction per table: a table is either
-- all done or untouched, the log holds one table's rebuild at a time, and a run that stops (an error, a
-- lock timeout, a cancelled session) is finished by running the script again, which skips the tables
-- already binary. Nonclustered indexes are dropped before a clustered key and built after it, so none
-- is rebuilt twice. Every table is locked (Sch-M) while its turn runs: stop the app first
-- (docs/operations.md, "Migration 005"). LOCK_TIMEOUT makes a table that is still in use stop the run
-- instead of queueing every other session behind its lock; DEADLOCK_PRIORITY LOW makes the script,
-- not a user's transaction, the victim of a deadlock.
-- Schema version 5 is recorded by the last batch only when every column is binary, so a run that
-- stopped half way is never recorded, with or without `sqlcmd -b`.
-- Catalog names (sys.*) carry the catalog's collation and this script's names the database's: every
-- comparison between them says COLLATE DATABASE_DEFAULT (Msg 468 otherwise).
-- Change tracking or replication on these tables refuses the key drops: turn it off for the run.
-- sqlcmd -S <server> -d <db> -b -I -i sql-scripts/005_identificadores_binarios.sql
SET NOCOUNT ON;
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
SET XACT_ABORT ON;
SET LOCK_TIMEOUT 30000;
SET DEADLOCK_PRIORITY LOW;
GO
DROP TABLE IF EXISTS #identificadores;
CREATE TABLE #identificadores (
    TableName SYSNAME COLLATE DATABASE_DEFAULT NOT NULL,
    ColumnName SYSNAME COLLATE DATABASE_DEFAULT NOT NULL
);
INSERT INTO #identificadores (TableName, ColumnName) VALUES
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

-- An index this script does not know (added by a DBA or by automatic tuning) would block the column
-- change half way: name it and stop before anything changes. Drop it, run this script, create it again.
DECLARE @no_previstos TABLE (Tabla SYSNAME NOT NULL, IndiceNoPrevisto SYSNAME NOT NULL);
INSERT INTO @no_previstos (Tabla, IndiceNoPrevisto)
SELECT DISTINCT OBJECT_NAME(i.object_id), i.name
FROM sys.indexes AS i
JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
JOIN #identificadores AS k ON c.object_id = OBJECT_ID(k.TableName) AND c.name COLLATE DATABASE_DEFAULT = k.ColumnName
WHERE c.collation_name <> N'Latin1_General_100_BIN2'
  AND i.name COLLATE DATABASE_DEFAULT NOT IN (N'PK_SesionesChat', N'IX_SesionesChat_Estado_Actividad', N'UX_MensajesProcesados_MessageId', N'IX_MensajesProcesados_Pendientes',
                         N'IX_MensajesChat_Telefono', N'IX_MensajesChat_MessageId', N'IX_Reportes_Telefono',
                         N'UX_Reportes_MensajeOrigen', N'IX_HistorialSesiones_Telefono',
                         N'IX_ColaEnvios_Destinatario', N'IX_ColaEnvios_Reclamables', N'UX_ColaEnvios_Campana',
                         N'UX_ColaEnvios_Wamid', N'PK_BloqueosConversacion', N'PK_EjecucionesIA', N'IX_EjecucionesIA_Estado',
                         N'IX_EjecucionesIA_Telefono');
IF EXISTS (SELECT 1 FROM @no_previstos)
BEGIN
    SELECT Tabla, IndiceNoPrevisto FROM @no_previstos;
    -- Severity 16 stops `sqlcmd -b` with an error; RETURN ends the batch before anything changes (and the
    -- last batch then records nothing).
    RAISERROR(N'005: unknown indexes use identifier columns (listed above); drop them, run 005, recreate them.', 16, 1);
    RETURN;
END;

-- Statistics a DBA created on these columns block the change (the optimizer's own are dropped by
-- ALTER COLUMN itself). One DROP per statistic, even when it covers several of the columns.
DECLARE @estadisticas TABLE (TableName SYSNAME NOT NULL, Sentencia NVARCHAR(1000) NOT NULL);
INSERT INTO @estadisticas (TableName, Sentencia)
SELECT DISTINCT k.TableName, N'DROP STATISTICS ' + QUOTENAME(OBJECT_SCHEMA_NAME(s.object_id)) + N'.'
                + QUOTENAME(OBJECT_NAME(s.object_id)) + N'.' + QUOTENAME(s.name) + N';'
FROM sys.stats AS s
JOIN sys.stats_columns AS sc ON sc.object_id = s.object_id AND sc.stats_id = s.stats_id
JOIN sys.columns AS c ON c.object_id = sc.object_id AND c.column_id = sc.column_id
JOIN #identificadores AS k ON c.object_id = OBJECT_ID(k.TableName) AND c.name COLLATE DATABASE_DEFAULT = k.ColumnName
WHERE s.user_created = 1 AND c.collation_name <> N'Latin1_General_100_BIN2';
DECLARE @drop_stats NVARCHAR(MAX);

-- One table at a time: its keys and indexes on the changing columns (and the nonclustered indexes
-- that carry a clustered key being rebuilt), the columns with their sizes and nullability unchanged,
-- then the same keys and indexes as before (definitions from 001, 002 and 004). A failure rolls back
-- that table and THROW ends the batch: the tables before it stay done.
-- SesionesChat
IF EXISTS (SELECT 1 FROM sys.columns AS c
           JOIN #identificadores AS k ON c.object_id = OBJECT_ID(k.TableName) AND c.name COLLATE DATABASE_DEFAULT = k.ColumnName
           WHERE k.TableName = N'dbo.SesionesChat' AND c.collation_name <> N'Latin1_General_100_BIN2')
BEGIN
    BEGIN TRY
        BEGIN TRANSACTION;
            SET @drop_stats = N'';
            SELECT @drop_stats = @drop_stats + Sentencia FROM @estadisticas WHERE TableName = N'dbo.SesionesChat';
            IF @drop_stats <> N''
                EXEC sys.sp_executesql @drop_stats;
            DROP INDEX IF EXISTS IX_SesionesChat_Estado_Actividad ON dbo.SesionesChat;
            ALTER TABLE dbo.SesionesChat DROP CONSTRAINT IF EXISTS PK_SesionesChat;
            ALTER TABLE dbo.SesionesChat ALTER COLUMN Telefono NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL;
            ALTER TABLE dbo.SesionesChat ALTER COLUMN ConversacionIA NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NULL;
            ALTER TABLE dbo.SesionesChat ADD CONSTRAINT PK_SesionesChat PRIMARY KEY (Telefono);
            CREATE INDEX IX_SesionesChat_Estado_Actividad ON dbo.SesionesChat (Estado, UltimaActividad);
        COMMIT TRANSACTION;
        PRINT N'005: dbo.SesionesChat terminada';
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;

-- MensajesProcesados
IF EXISTS (SELECT 1 FROM sys.columns AS c
           JOIN #identificadores AS k ON c.object_id = OBJECT_ID(k.TableName) AND c.name COLLATE DATABASE_DEFAULT = k.ColumnName
           WHERE k.TableName = N'dbo.MensajesProcesados' AND c.collation_name <> N'Latin1_General_100_BIN2')
BEGIN
    BEGIN TRY
        BEGIN TRANSACTION;
            SET @drop_stats = N'';
            SELECT @drop_stats = @drop_stats + Sentencia FROM @estadisticas WHERE TableName = N'dbo.MensajesProcesados';
            IF @drop_stats <> N''
                EXEC sys.sp_executesql @drop_stats;
            ALTER TABLE dbo.MensajesProcesados DROP CONSTRAINT IF EXISTS UX_MensajesProcesados_MessageId;
            DROP INDEX IF EXISTS IX_MensajesProcesados_Pendientes ON dbo.MensajesProcesados;
            ALTER TABLE dbo.MensajesProcesados ALTER COLUMN MessageId NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL;
            ALTER TABLE dbo.MensajesProcesados ALTER COLUMN Telefono NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NULL;
            ALTER TABLE dbo.MensajesProcesados ADD CONSTRAINT UX_MensajesProcesados_MessageId UNIQUE (MessageId);
            CREATE INDEX IX_MensajesProcesados_Pendientes ON dbo.MensajesProcesados (Telefono, WaTimestamp, Id)
                WHERE Estado = N'pendiente';
        COMMIT TRANSACTION;
        PRINT N'005: dbo.MensajesProcesados terminada';
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;

-- MensajesChat
IF EXISTS (SELECT 1 FROM sys.columns AS c
           JOIN #identificadores AS k ON c.object_id = OBJECT_ID(k.TableName) AND c.name COLLATE DATABASE_DEFAULT = k.ColumnName
           WHERE k.TableName = N'dbo.MensajesChat' AND c.collation_name <> N'Latin1_General_100_BIN2')
BEGIN
    BEGIN TRY
        BEGIN TRANSACTION;
            SET @drop_stats = N'';
            SELECT @drop_stats = @drop_stats + Sentencia FROM @estadisticas WHERE TableName = N'dbo.MensajesChat';
            IF @drop_stats <> N''
                EXEC sys.sp_executesql @drop_stats;
            DROP INDEX IF EXISTS IX_MensajesChat_Telefono ON dbo.MensajesChat;
            DROP INDEX IF EXISTS IX_MensajesChat_MessageId ON dbo.MensajesChat;
            ALTER TABLE dbo.MensajesChat ALTER COLUMN Telefono NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL;
            ALTER TABLE dbo.MensajesChat ALTER COLUMN MessageId NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NULL;
            CREATE INDEX IX_MensajesChat_Telefono ON dbo.MensajesChat (Telefono, Id);
            CREATE INDEX IX_MensajesChat_MessageId ON dbo.MensajesChat (MessageId) WHERE Origen = N'USUARIO';
        COMMIT TRANSACTION;
        PRINT N'005: dbo.MensajesChat terminada';
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;

-- Reportes
IF EXISTS (SELECT 1 FROM sys.columns AS c
           JOIN #identificadores AS k ON c.object_id = OBJECT_ID(k.TableName) AND c.name COLLATE DATABASE_DEFAULT = k.ColumnName
           WHERE k.TableName = N'dbo.Reportes' AND c.collation_name <> N'Latin1_General_100_BIN2')
BEGIN
    BEGIN TRY
        BEGIN TRANSACTION;
            SET @drop_stats = N'';
            SELECT @drop_stats = @drop_stats + Sentencia FROM @estadisticas WHERE TableName = N'dbo.Reportes';
            IF @drop_stats <> N''
                EXEC sys.sp_executesql @drop_stats;
            DROP INDEX IF EXISTS IX_Reportes_Telefono ON dbo.Reportes;
            ALTER TABLE dbo.Reportes DROP CONSTRAINT IF EXISTS UX_Reportes_MensajeOrigen;
            ALTER TABLE dbo.Reportes ALTER COLUMN Telefono NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL;
            ALTER TABLE dbo.Reportes ALTER COLUMN MensajeOrigen NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL;
            CREATE INDEX IX_Reportes_Telefono ON dbo.Reportes (Telefono);
            ALTER TABLE dbo.Reportes ADD CONSTRAINT UX_Reportes_MensajeOrigen UNIQUE (MensajeOrigen);
        COMMIT TRANSACTION;
        PRINT N'005: dbo.Reportes terminada';
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;

-- HistorialSesiones
IF EXISTS (SELECT 1 FROM sys.columns AS c
           JOIN #identificadores AS k ON c.object_id = OBJECT_ID(k.TableName) AND c.name COLLATE DATABASE_DEFAULT = k.ColumnName
           WHERE k.TableName = N'dbo.HistorialSesiones' AND c.collation_name <> N'Latin1_General_100_BIN2')
BEGIN
    BEGIN TRY
        BEGIN TRANSACTION;
            SET @drop_stats = N'';
            SELECT @drop_stats = @drop_stats + Sentencia FROM @estadisticas WHERE TableName = N'dbo.HistorialSesiones';
            IF @drop_stats <> N''
                EXEC sys.sp_executesql @drop_stats;
            DROP INDEX IF EXISTS IX_HistorialSesiones_Telefono ON dbo.HistorialSesiones;
            ALTER TABLE dbo.HistorialSesiones ALTER COLUMN Telefono NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL;
            ALTER TABLE dbo.HistorialSesiones ALTER COLUMN MessageId NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NULL;
            CREATE INDEX IX_HistorialSesiones_Telefono ON dbo.HistorialSesiones (Telefono, Id);
        COMMIT TRANSACTION;
        PRINT N'005: dbo.HistorialSesiones terminada';
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;

-- ColaEnvios
IF EXISTS (SELECT 1 FROM sys.columns AS c
           JOIN #identificadores AS k ON c.object_id = OBJECT_ID(k.TableName) AND c.name COLLATE DATABASE_DEFAULT = k.ColumnName
           WHERE k.TableName = N'dbo.ColaEnvios' AND c.collation_name <> N'Latin1_General_100_BIN2')
BEGIN
    BEGIN TRY
        BEGIN TRANSACTION;
            SET @drop_stats = N'';
            SELECT @drop_stats = @drop_stats + Sentencia FROM @estadisticas WHERE TableName = N'dbo.ColaEnvios';
            IF @drop_stats <> N''
                EXEC sys.sp_executesql @drop_stats;
            DROP INDEX IF EXISTS IX_ColaEnvios_Destinatario ON dbo.ColaEnvios;
            DROP INDEX IF EXISTS IX_ColaEnvios_Reclamables ON dbo.ColaEnvios;
            DROP INDEX IF EXISTS UX_ColaEnvios_Campana ON dbo.ColaEnvios;
            DROP INDEX IF EXISTS UX_ColaEnvios_Wamid ON dbo.ColaEnvios;
            ALTER TABLE dbo.ColaEnvios ALTER COLUMN Destinatario NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL;
            ALTER TABLE dbo.ColaEnvios ALTER COLUMN TokenReclamo NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NULL;
            ALTER TABLE dbo.ColaEnvios ALTER COLUMN WamidEnviado NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NULL;
            ALTER TABLE dbo.ColaEnvios ALTER COLUMN Campana NVARCHAR(100) COLLATE Latin1_General_100_BIN2 NULL;
            ALTER TABLE dbo.ColaEnvios ALTER COLUMN MessageIdOrigen NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NULL;
            CREATE INDEX IX_ColaEnvios_Destinatario ON dbo.ColaEnvios (Destinatario, Id) INCLUDE (Estado, ProximoIntento)
                WHERE Estado IN (N'pendiente', N'procesando');
            CREATE INDEX IX_ColaEnvios_Reclamables ON dbo.ColaEnvios (Id) INCLUDE (ProximoIntento, Destinatario)
                WHERE Estado = N'pendiente';
            CREATE UNIQUE INDEX UX_ColaEnvios_Campana ON dbo.ColaEnvios (Campana, Destinatario) WHERE Campana IS NOT NULL;
            CREATE UNIQUE INDEX UX_ColaEnvios_Wamid ON dbo.ColaEnvios (WamidEnviado) WHERE WamidEnviado IS NOT NULL;
        COMMIT TRANSACTION;
        PRINT N'005: dbo.ColaEnvios terminada';
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;

-- BloqueosConversacion
IF EXISTS (SELECT 1 FROM sys.columns AS c
           JOIN #identificadores AS k ON c.object_id = OBJECT_ID(k.TableName) AND c.name COLLATE DATABASE_DEFAULT = k.ColumnName
           WHERE k.TableName = N'dbo.BloqueosConversacion' AND c.collation_name <> N'Latin1_General_100_BIN2')
BEGIN
    BEGIN TRY
        BEGIN TRANSACTION;
            SET @drop_stats = N'';
            SELECT @drop_stats = @drop_stats + Sentencia FROM @estadisticas WHERE TableName = N'dbo.BloqueosConversacion';
            IF @drop_stats <> N''
                EXEC sys.sp_executesql @drop_stats;
            ALTER TABLE dbo.BloqueosConversacion DROP CONSTRAINT IF EXISTS PK_BloqueosConversacion;
            ALTER TABLE dbo.BloqueosConversacion ALTER COLUMN Clave NVARCHAR(100) COLLATE Latin1_General_100_BIN2 NOT NULL;
            ALTER TABLE dbo.BloqueosConversacion ALTER COLUMN Propietario NVARCHAR(100) COLLATE Latin1_General_100_BIN2 NULL;
            ALTER TABLE dbo.BloqueosConversacion ALTER COLUMN PropietarioAnterior NVARCHAR(100) COLLATE Latin1_General_100_BIN2 NULL;
            ALTER TABLE dbo.BloqueosConversacion ADD CONSTRAINT PK_BloqueosConversacion PRIMARY KEY (Clave);
        COMMIT TRANSACTION;
        PRINT N'005: dbo.BloqueosConversacion terminada';
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;

-- EjecucionesIA
IF EXISTS (SELECT 1 FROM sys.columns AS c
           JOIN #identificadores AS k ON c.object_id = OBJECT_ID(k.TableName) AND c.name COLLATE DATABASE_DEFAULT = k.ColumnName
           WHERE k.TableName = N'dbo.EjecucionesIA' AND c.collation_name <> N'Latin1_General_100_BIN2')
BEGIN
    BEGIN TRY
        BEGIN TRANSACTION;
            SET @drop_stats = N'';
            SELECT @drop_stats = @drop_stats + Sentencia FROM @estadisticas WHERE TableName = N'dbo.EjecucionesIA';
            IF @drop_stats <> N''
                EXEC sys.sp_executesql @drop_stats;
            DROP INDEX IF EXISTS IX_EjecucionesIA_Estado ON dbo.EjecucionesIA;
            DROP INDEX IF EXISTS IX_EjecucionesIA_Telefono ON dbo.EjecucionesIA;
            ALTER TABLE dbo.EjecucionesIA DROP CONSTRAINT IF EXISTS PK_EjecucionesIA;
            ALTER TABLE dbo.EjecucionesIA ALTER COLUMN Id NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL;
            ALTER TABLE dbo.EjecucionesIA ALTER COLUMN Telefono NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL;
            ALTER TABLE dbo.EjecucionesIA ALTER COLUMN ConversacionId NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NULL;
            ALTER TABLE dbo.EjecucionesIA ALTER COLUMN MessageId NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NULL;
            ALTER TABLE dbo.EjecucionesIA ADD CONSTRAINT PK_EjecucionesIA PRIMARY KEY (Id);
            CREATE INDEX IX_EjecucionesIA_Telefono ON dbo.EjecucionesIA (Telefono, Estado);
            CREATE INDEX IX_EjecucionesIA_Estado ON dbo.EjecucionesIA (Estado, CreadoEn);
        COMMIT TRANSACTION;
        PRINT N'005: dbo.EjecucionesIA terminada';
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;
GO
-- Version 5 only when every listed column is binary: a run that stopped records nothing.
IF EXISTS (SELECT 1 FROM sys.columns AS c
           JOIN #identificadores AS k ON c.object_id = OBJECT_ID(k.TableName) AND c.name COLLATE DATABASE_DEFAULT = k.ColumnName
           WHERE c.collation_name <> N'Latin1_General_100_BIN2')
    RAISERROR(N'005: no terminó (quedan columnas sin intercalación binaria); la versión 5 no se registra. Corrige la causa y vuelve a ejecutarlo.', 16, 1);
ELSE IF NOT EXISTS (SELECT 1 FROM dbo.SchemaVersion WHERE Version = 5)
    INSERT INTO dbo.SchemaVersion (Version, Nombre) VALUES (5, N'005_identificadores_binarios');
GO
DROP TABLE IF EXISTS #identificadores;
GO
