-- Indexes for the hot paths. Built with ONLINE = ON where the edition allows it (Enterprise, Azure SQL
-- Database, Managed Instance: EngineEdition 3, 5, 8), so the tables stay writable while they build;
-- elsewhere the build is offline and blocks writes to the table for its (short) duration.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
-- Every handled message checks the history for its own wamid before saving it (chat_save_user).
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_MensajesChat_MessageId' AND object_id = OBJECT_ID(N'dbo.MensajesChat'))
BEGIN
    IF CAST(SERVERPROPERTY('EngineEdition') AS INT) IN (3, 5, 8)
        CREATE INDEX IX_MensajesChat_MessageId ON dbo.MensajesChat (MessageId) WHERE Origen = N'USUARIO'
            WITH (ONLINE = ON);
    ELSE
        CREATE INDEX IX_MensajesChat_MessageId ON dbo.MensajesChat (MessageId) WHERE Origen = N'USUARIO';
END
GO
-- The outbound claim walks pending rows in Id order: with this index it never sorts, and its UPDLOCKs
-- stay row locks instead of escalating to the table.
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_ColaEnvios_Reclamables' AND object_id = OBJECT_ID(N'dbo.ColaEnvios'))
BEGIN
    IF CAST(SERVERPROPERTY('EngineEdition') AS INT) IN (3, 5, 8)
        CREATE INDEX IX_ColaEnvios_Reclamables ON dbo.ColaEnvios (Id) INCLUDE (ProximoIntento, Destinatario)
            WHERE Estado = N'pendiente' WITH (ONLINE = ON);
    ELSE
        CREATE INDEX IX_ColaEnvios_Reclamables ON dbo.ColaEnvios (Id) INCLUDE (ProximoIntento, Destinatario)
            WHERE Estado = N'pendiente';
END
GO
-- The head-of-queue check per recipient reads Estado and ProximoIntento: covered, no lookups.
IF NOT EXISTS (SELECT 1 FROM sys.index_columns AS ic JOIN sys.indexes AS i
               ON i.object_id = ic.object_id AND i.index_id = ic.index_id
               WHERE i.name = N'IX_ColaEnvios_Destinatario' AND i.object_id = OBJECT_ID(N'dbo.ColaEnvios')
                 AND ic.is_included_column = 1)
BEGIN
    IF CAST(SERVERPROPERTY('EngineEdition') AS INT) IN (3, 5, 8)
        CREATE INDEX IX_ColaEnvios_Destinatario ON dbo.ColaEnvios (Destinatario, Id) INCLUDE (Estado, ProximoIntento)
            WHERE Estado IN (N'pendiente', N'procesando') WITH (DROP_EXISTING = ON, ONLINE = ON);
    ELSE
        CREATE INDEX IX_ColaEnvios_Destinatario ON dbo.ColaEnvios (Destinatario, Id) INCLUDE (Estado, ProximoIntento)
            WHERE Estado IN (N'pendiente', N'procesando') WITH (DROP_EXISTING = ON);
END
GO
-- The metrics read the open inbox rows (pending or failed) and the oldest of them.
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_MensajesProcesados_Abiertos' AND object_id = OBJECT_ID(N'dbo.MensajesProcesados'))
BEGIN
    IF CAST(SERVERPROPERTY('EngineEdition') AS INT) IN (3, 5, 8)
        CREATE INDEX IX_MensajesProcesados_Abiertos ON dbo.MensajesProcesados (Estado, RecibidoEn)
            WHERE Estado IN (N'pendiente', N'error') WITH (ONLINE = ON);
    ELSE
        CREATE INDEX IX_MensajesProcesados_Abiertos ON dbo.MensajesProcesados (Estado, RecibidoEn)
            WHERE Estado IN (N'pendiente', N'error');
END
GO
IF NOT EXISTS (SELECT 1 FROM dbo.SchemaVersion WHERE Version = 4)
    INSERT INTO dbo.SchemaVersion (Version, Nombre) VALUES (4, N'004_indices_camino_caliente');
