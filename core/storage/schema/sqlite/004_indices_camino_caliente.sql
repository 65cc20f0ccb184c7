-- Indexes for the hot paths (the same ones as the T-SQL migration 004):
-- every handled message checks the history for its own wamid before saving it;
CREATE INDEX IF NOT EXISTS IX_MensajesChat_MessageId ON MensajesChat (MessageId) WHERE Origen = 'USUARIO';
-- the outbound claim walks pending rows in Id order and must never sort;
CREATE INDEX IF NOT EXISTS IX_ColaEnvios_Reclamables ON ColaEnvios (Id, ProximoIntento, Destinatario)
    WHERE Estado = 'pendiente';
-- the metrics read the open inbox rows (pending or failed) and the oldest of them.
CREATE INDEX IF NOT EXISTS IX_MensajesProcesados_Abiertos ON MensajesProcesados (Estado, RecibidoEn)
    WHERE Estado IN ('pendiente', 'error');
