-- SQLite counterpart of sql-scripts/006_estado_reportes.sql: report status, last note, last change,
-- vehicle plate, and the history of every change. Existing reports become 'abierto' with one history row.
ALTER TABLE Reportes ADD COLUMN Estado TEXT NOT NULL DEFAULT 'abierto'
    CHECK (Estado IN ('abierto', 'asignado', 'en_proceso', 'resuelto', 'cancelado'));
ALTER TABLE Reportes ADD COLUMN ActualizadoEn TEXT NULL;
ALTER TABLE Reportes ADD COLUMN UltimaNota TEXT NULL;
ALTER TABLE Reportes ADD COLUMN Placa TEXT NULL;
-- A phone's reports newest first use IX_Reportes_Telefono (Telefono, with the rowid as its last key).
CREATE INDEX IF NOT EXISTS IX_Reportes_EquipoAbiertos ON Reportes (EquipoId, Id)
    WHERE Estado IN ('abierto', 'asignado', 'en_proceso');
CREATE INDEX IF NOT EXISTS IX_Reportes_PlacaAbiertos ON Reportes (Placa, Id)
    WHERE Estado IN ('abierto', 'asignado', 'en_proceso');

CREATE TABLE IF NOT EXISTS HistorialReportes (
    Id             INTEGER PRIMARY KEY AUTOINCREMENT,
    ReporteId      INTEGER NOT NULL REFERENCES Reportes(Id),
    EstadoAnterior TEXT NULL,
    EstadoNuevo    TEXT NOT NULL
                   CHECK (EstadoNuevo IN ('abierto', 'asignado', 'en_proceso', 'resuelto', 'cancelado')),
    Nota           TEXT NULL,
    Origen         TEXT NOT NULL CHECK (Origen IN ('MANTENIMIENTO', 'USUARIO', 'SISTEMA')),
    MessageId      TEXT NULL,
    CreadoEn       TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS IX_HistorialReportes_Reporte ON HistorialReportes (ReporteId, Id);

INSERT INTO HistorialReportes (ReporteId, EstadoAnterior, EstadoNuevo, Nota, Origen, MessageId, CreadoEn)
SELECT r.Id, NULL, 'abierto', NULL, 'SISTEMA', NULL, r.CreadoEn
FROM Reportes AS r
WHERE NOT EXISTS (SELECT 1 FROM HistorialReportes AS h WHERE h.ReporteId = r.Id);
