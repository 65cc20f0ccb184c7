-- Evidence a user sent (photos, voice notes, videos, documents, stickers): one row per message, written
-- with the message's transition; the body is downloaded afterwards from Meta's media API and stored in
-- Blob Storage (Estado 'pendiente' -> 'guardada', or 'error' after the last attempt). Identifier columns
-- are binary (Latin1_General_100_BIN2), like every identifier since 005.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
IF OBJECT_ID(N'dbo.Evidencias', N'U') IS NULL
    CREATE TABLE dbo.Evidencias (
        Id             BIGINT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_Evidencias PRIMARY KEY,
        Telefono       NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL,
        MensajeId      NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL CONSTRAINT UX_Evidencias_MensajeId UNIQUE,
        MediaId        NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
        Tipo           NVARCHAR(20) NOT NULL
                       CONSTRAINT CK_Evidencias_Tipo CHECK (Tipo IN (N'image', N'audio', N'video', N'document', N'sticker')),
        Mime           NVARCHAR(100) NULL,
        Sha256         NVARCHAR(100) COLLATE Latin1_General_100_BIN2 NULL,
        Tamano         BIGINT NULL,
        Nombre         NVARCHAR(240) NULL,
        Ruta           NVARCHAR(400) COLLATE Latin1_General_100_BIN2 NULL,
        Estado         NVARCHAR(20) NOT NULL CONSTRAINT DF_Evidencias_Estado DEFAULT N'pendiente'
                       CONSTRAINT CK_Evidencias_Estado CHECK (Estado IN (N'pendiente', N'guardada', N'error')),
        Intentos       INT NOT NULL CONSTRAINT DF_Evidencias_Intentos DEFAULT 0,
        ProximoIntento BIGINT NOT NULL CONSTRAINT DF_Evidencias_ProximoIntento DEFAULT 0,
        TokenReclamo   NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NULL,
        UltimoError    NVARCHAR(1000) NULL,
        ReporteId      INT NULL CONSTRAINT FK_Evidencias_Reportes REFERENCES dbo.Reportes (Id),
        Transcripcion  NVARCHAR(MAX) NULL,
        CreadoEn       BIGINT NOT NULL,
        ActualizadoEn  BIGINT NOT NULL
    );
GO
-- The download sweep walks the pending rows that are due.
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_Evidencias_Pendientes' AND object_id = OBJECT_ID(N'dbo.Evidencias'))
    CREATE INDEX IX_Evidencias_Pendientes ON dbo.Evidencias (ProximoIntento, Id) WHERE Estado = N'pendiente';
GO
-- A report's evidence.
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_Evidencias_Reporte' AND object_id = OBJECT_ID(N'dbo.Evidencias'))
    CREATE INDEX IX_Evidencias_Reporte ON dbo.Evidencias (ReporteId, Id) WHERE ReporteId IS NOT NULL;
GO
-- A phone's latest evidence (attaching a conversation's media to its report, the console).
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_Evidencias_Telefono' AND object_id = OBJECT_ID(N'dbo.Evidencias'))
    CREATE INDEX IX_Evidencias_Telefono ON dbo.Evidencias (Telefono, Id);
GO
IF NOT EXISTS (SELECT 1 FROM dbo.SchemaVersion WHERE Version = 7)
    INSERT INTO dbo.SchemaVersion (Version, Nombre) VALUES (7, N'007_evidencias');
