-- SQLite counterpart of sql-scripts/007_evidencias.sql: one row per photo, voice note, video, document
-- or sticker a user sent. The row is written with the message's transition; the body is downloaded
-- afterwards (Estado 'pendiente' -> 'guardada', or 'error' after the last attempt).
CREATE TABLE IF NOT EXISTS Evidencias (
    Id             INTEGER PRIMARY KEY AUTOINCREMENT,
    Telefono       TEXT NOT NULL,
    MensajeId      TEXT NOT NULL UNIQUE,
    MediaId        TEXT NOT NULL,
    Tipo           TEXT NOT NULL CHECK (Tipo IN ('image', 'audio', 'video', 'document', 'sticker')),
    Mime           TEXT NULL,
    Sha256         TEXT NULL,
    Tamano         INTEGER NULL,
    Nombre         TEXT NULL,
    Ruta           TEXT NULL,
    Estado         TEXT NOT NULL DEFAULT 'pendiente' CHECK (Estado IN ('pendiente', 'guardada', 'error')),
    Intentos       INTEGER NOT NULL DEFAULT 0,
    -- a claimed row is not due again until its claim expires; a failed one until its backoff ends
    ProximoIntento INTEGER NOT NULL DEFAULT 0,
    TokenReclamo   TEXT NULL,
    UltimoError    TEXT NULL,
    ReporteId      INTEGER NULL REFERENCES Reportes(Id),
    Transcripcion  TEXT NULL,
    CreadoEn       INTEGER NOT NULL,
    ActualizadoEn  INTEGER NOT NULL
);
-- the download sweep walks the pending rows that are due
CREATE INDEX IF NOT EXISTS IX_Evidencias_Pendientes ON Evidencias (ProximoIntento, Id) WHERE Estado = 'pendiente';
-- a report's evidence, and a phone's latest (the console, attaching a conversation's media)
CREATE INDEX IF NOT EXISTS IX_Evidencias_Reporte ON Evidencias (ReporteId, Id) WHERE ReporteId IS NOT NULL;
CREATE INDEX IF NOT EXISTS IX_Evidencias_Telefono ON Evidencias (Telefono, Id);
