-- Reports get a lifecycle: a status (abierto -> asignado -> en_proceso -> resuelto, or cancelado), the
-- last note, when it last changed, and a history of every change (HistorialReportes). Existing reports
-- become 'abierto' with one history row each. `Placa` holds a vehicle report's plate (upper case, no
-- spaces), so "is this vehicle already reported?" is one seek.
-- sqlcmd -S <server> -d <db> -b -I -i sql-scripts/006_estado_reportes.sql
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
IF COL_LENGTH(N'dbo.Reportes', N'Estado') IS NULL
    ALTER TABLE dbo.Reportes ADD Estado NVARCHAR(20) NOT NULL CONSTRAINT DF_Reportes_Estado DEFAULT N'abierto'
        CONSTRAINT CK_Reportes_Estado CHECK (Estado IN (N'abierto', N'asignado', N'en_proceso', N'resuelto', N'cancelado'));
GO
IF COL_LENGTH(N'dbo.Reportes', N'ActualizadoEn') IS NULL
    ALTER TABLE dbo.Reportes ADD ActualizadoEn DATETIME2(3) NULL;
GO
IF COL_LENGTH(N'dbo.Reportes', N'UltimaNota') IS NULL
    ALTER TABLE dbo.Reportes ADD UltimaNota NVARCHAR(500) NULL;
GO
IF COL_LENGTH(N'dbo.Reportes', N'Placa') IS NULL
    ALTER TABLE dbo.Reportes ADD Placa NVARCHAR(20) NULL;
GO
-- A phone's reports newest first need no new index: IX_Reportes_Telefono (Telefono) carries the
-- clustered key Id, so "WHERE Telefono = @t ORDER BY Id DESC" is a backward range seek.
-- The open report of a refrigerator, and of a vehicle plate (duplicate detection):
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_Reportes_EquipoAbiertos' AND object_id = OBJECT_ID(N'dbo.Reportes'))
    CREATE INDEX IX_Reportes_EquipoAbiertos ON dbo.Reportes (EquipoId, Id) INCLUDE (Estado)
        WHERE Estado IN (N'abierto', N'asignado', N'en_proceso');
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_Reportes_PlacaAbiertos' AND object_id = OBJECT_ID(N'dbo.Reportes'))
    CREATE INDEX IX_Reportes_PlacaAbiertos ON dbo.Reportes (Placa, Id) INCLUDE (Estado)
        WHERE Estado IN (N'abierto', N'asignado', N'en_proceso');
GO
IF OBJECT_ID(N'dbo.HistorialReportes', N'U') IS NULL
    CREATE TABLE dbo.HistorialReportes (
        Id             BIGINT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_HistorialReportes PRIMARY KEY,
        ReporteId      INT NOT NULL CONSTRAINT FK_HistorialReportes_Reportes REFERENCES dbo.Reportes (Id),
        EstadoAnterior NVARCHAR(20) NULL,
        EstadoNuevo    NVARCHAR(20) NOT NULL CONSTRAINT CK_HistorialReportes_EstadoNuevo
                       CHECK (EstadoNuevo IN (N'abierto', N'asignado', N'en_proceso', N'resuelto', N'cancelado')),
        Nota           NVARCHAR(500) NULL,
        Origen         NVARCHAR(20) NOT NULL CONSTRAINT CK_HistorialReportes_Origen
                       CHECK (Origen IN (N'MANTENIMIENTO', N'USUARIO', N'SISTEMA')),
        MessageId      NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NULL,
        CreadoEn       DATETIME2(3)  NOT NULL CONSTRAINT DF_HistorialReportes_CreadoEn DEFAULT SYSUTCDATETIME()
    );
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_HistorialReportes_Reporte' AND object_id = OBJECT_ID(N'dbo.HistorialReportes'))
    CREATE INDEX IX_HistorialReportes_Reporte ON dbo.HistorialReportes (ReporteId, Id);
GO
-- Every report starts its history with 'abierto'; reports filed before this version get that row now.
INSERT INTO dbo.HistorialReportes (ReporteId, EstadoAnterior, EstadoNuevo, Nota, Origen, MessageId, CreadoEn)
SELECT r.Id, NULL, N'abierto', NULL, N'SISTEMA', NULL, r.CreadoEn
FROM dbo.Reportes AS r
WHERE NOT EXISTS (SELECT 1 FROM dbo.HistorialReportes AS h WHERE h.ReporteId = r.Id);
GO
IF NOT EXISTS (SELECT 1 FROM dbo.SchemaVersion WHERE Version = 6)
    INSERT INTO dbo.SchemaVersion (Version, Nombre) VALUES (6, N'006_estado_reportes');
GO
