-- The outbound claim only takes the head of each recipient's queue (replies to one user go out
-- in Id order), so it looks up "an earlier open row for this recipient" once per candidate row.
CREATE INDEX IF NOT EXISTS IX_ColaEnvios_Destinatario ON ColaEnvios (Destinatario, Id)
    WHERE Estado IN ('pendiente', 'procesando');
-- Operators list stuck and uncertain sends, and the settle pass scans 'procesando' by claim time.
CREATE INDEX IF NOT EXISTS IX_ColaEnvios_Reclamo ON ColaEnvios (ReclamadoEn) WHERE Estado = 'procesando';
