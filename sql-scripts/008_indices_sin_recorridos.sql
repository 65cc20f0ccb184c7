-- No scans on the hot path or in the timers: each index below serves one named query that otherwise
-- reads every row of a table that grows by millions a day (tests/test_tsql_static.py checks that every
-- named query is served by an index or says why it scans). Built ONLINE where the edition allows it
-- (Enterprise, Azure SQL Database, Managed Instance: EngineEdition 3, 5, 8); elsewhere the build blocks
-- writes to that table while it runs. Idempotent: each step runs only when it is missing.
-- sqlcmd -S <server> -d <db> -b -I -i sql-scripts/008_indices_sin_recorridos.sql
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
SET NOCOUNT ON;
SET XACT_ABORT ON;
GO
-- The outbox sweep's status reconcile (outbound_status_behind) reads the sends of the last minutes by
-- EnviadoEn; without this it walked every settled send from the oldest and timed out on a large table.
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_ColaEnvios_Enviados' AND object_id = OBJECT_ID(N'dbo.ColaEnvios'))
BEGIN
    IF CAST(SERVERPROPERTY('EngineEdition') AS INT) IN (3, 5, 8)
        CREATE INDEX IX_ColaEnvios_Enviados ON dbo.ColaEnvios (EnviadoEn) INCLUDE (WamidEnviado, EstadoEntrega)
            WHERE Estado = N'enviado' WITH (ONLINE = ON);
    ELSE
        CREATE INDEX IX_ColaEnvios_Enviados ON dbo.ColaEnvios (EnviadoEn) INCLUDE (WamidEnviado, EstadoEntrega)
            WHERE Estado = N'enviado';
END
GO
-- The backlog gauge (stats_outbox) counts every row that is not a finished send, by state, and the
-- oldest due time: a seek of the open and failed rows only, which stay few.
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_ColaEnvios_Abiertos' AND object_id = OBJECT_ID(N'dbo.ColaEnvios'))
BEGIN
    IF CAST(SERVERPROPERTY('EngineEdition') AS INT) IN (3, 5, 8)
        CREATE INDEX IX_ColaEnvios_Abiertos ON dbo.ColaEnvios (Estado, ProximoIntento)
            WHERE Estado <> N'enviado' WITH (ONLINE = ON);
    ELSE
        CREATE INDEX IX_ColaEnvios_Abiertos ON dbo.ColaEnvios (Estado, ProximoIntento)
            WHERE Estado <> N'enviado';
END
GO
-- The conversation sweep frees expired leases (leases_clear_expired) and the gauge counts held ones
-- (stats_leases): both read only the leases someone holds.
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_BloqueosConversacion_Vencimiento' AND object_id = OBJECT_ID(N'dbo.BloqueosConversacion'))
BEGIN
    IF CAST(SERVERPROPERTY('EngineEdition') AS INT) IN (3, 5, 8)
        CREATE INDEX IX_BloqueosConversacion_Vencimiento ON dbo.BloqueosConversacion (ExpiraEn)
            WHERE Propietario IS NOT NULL WITH (ONLINE = ON);
    ELSE
        CREATE INDEX IX_BloqueosConversacion_Vencimiento ON dbo.BloqueosConversacion (ExpiraEn)
            WHERE Propietario IS NOT NULL;
END
GO
-- Retention deletes delivery statuses (3 of every 4 ledger rows) after fewer days than messages
-- (purge_statuses): without this it would walk weeks of kept messages to reach them.
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_MensajesProcesados_Estados' AND object_id = OBJECT_ID(N'dbo.MensajesProcesados'))
BEGIN
    IF CAST(SERVERPROPERTY('EngineEdition') AS INT) IN (3, 5, 8)
        CREATE INDEX IX_MensajesProcesados_Estados ON dbo.MensajesProcesados (RecibidoEn)
            WHERE Tipo = N'status' WITH (ONLINE = ON);
    ELSE
        CREATE INDEX IX_MensajesProcesados_Estados ON dbo.MensajesProcesados (RecibidoEn)
            WHERE Tipo = N'status';
END
GO
-- Unused: the claim walks IX_ColaEnvios_Reclamables and the gauge IX_ColaEnvios_Abiertos. Each one
-- was rewritten on every state change of every send (three a message).
DROP INDEX IF EXISTS IX_ColaEnvios_Pendientes ON dbo.ColaEnvios;
DROP INDEX IF EXISTS IX_ColaEnvios_Estado ON dbo.ColaEnvios;
GO
-- Identity-clustered tables written by every message: all inserts land on the last page of the
-- clustered index. OPTIMIZE_FOR_SEQUENTIAL_KEY (SQL Server 2019, Azure SQL) paces the writers into that
-- page so its latch is not handed around among waiting threads; it changes metadata only, no rebuild.
-- Dynamic SQL, because older versions do not parse the option.
IF CAST(SERVERPROPERTY('EngineEdition') AS INT) IN (5, 8)
   OR CAST(SERVERPROPERTY('ProductMajorVersion') AS INT) >= 15
BEGIN
    EXEC sys.sp_executesql N'ALTER INDEX PK_MensajesProcesados ON dbo.MensajesProcesados SET (OPTIMIZE_FOR_SEQUENTIAL_KEY = ON);';
    EXEC sys.sp_executesql N'ALTER INDEX PK_ColaEnvios ON dbo.ColaEnvios SET (OPTIMIZE_FOR_SEQUENTIAL_KEY = ON);';
    EXEC sys.sp_executesql N'ALTER INDEX PK_MensajesChat ON dbo.MensajesChat SET (OPTIMIZE_FOR_SEQUENTIAL_KEY = ON);';
    EXEC sys.sp_executesql N'ALTER INDEX PK_HistorialSesiones ON dbo.HistorialSesiones SET (OPTIMIZE_FOR_SEQUENTIAL_KEY = ON);';
END
GO
IF NOT EXISTS (SELECT 1 FROM dbo.SchemaVersion WHERE Version = 8)
    INSERT INTO dbo.SchemaVersion (Version, Nombre) VALUES (8, N'008_indices_sin_recorridos');
GO
