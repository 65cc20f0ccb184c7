-- The outbound claim only takes the head of each recipient's queue (replies to one user go out
-- in Id order), so it looks up "an earlier open row for this recipient" once per candidate row.
-- Every script sets these itself: classic sqlcmd connects with QUOTED_IDENTIFIER OFF, and filtered
-- indexes (and indexes on computed columns) refuse to be built without both (Msg 1934).
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_ColaEnvios_Destinatario' AND object_id = OBJECT_ID(N'dbo.ColaEnvios'))
    CREATE INDEX IX_ColaEnvios_Destinatario ON dbo.ColaEnvios (Destinatario, Id)
        WHERE Estado IN (N'pendiente', N'procesando');
GO
-- Operators list stuck and uncertain sends, and the settle pass scans 'procesando' by claim time.
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_ColaEnvios_Reclamo' AND object_id = OBJECT_ID(N'dbo.ColaEnvios'))
    CREATE INDEX IX_ColaEnvios_Reclamo ON dbo.ColaEnvios (ReclamadoEn) WHERE Estado = N'procesando';
GO
IF NOT EXISTS (SELECT 1 FROM dbo.SchemaVersion WHERE Version = 2)
    INSERT INTO dbo.SchemaVersion (Version, Nombre) VALUES (2, N'002_outbox_destinatario');
