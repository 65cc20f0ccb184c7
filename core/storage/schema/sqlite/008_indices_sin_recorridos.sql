-- The same indexes as the T-SQL migration 008 (SQLite has no INCLUDE: the covered columns are keys):
-- the outbox sweep's status reconcile reads recent sends by EnviadoEn;
CREATE INDEX IF NOT EXISTS IX_ColaEnvios_Enviados ON ColaEnvios (EnviadoEn, WamidEnviado, EstadoEntrega)
    WHERE Estado = 'enviado';
-- the backlog gauge counts the rows that are not finished sends, by state, and the oldest due time;
CREATE INDEX IF NOT EXISTS IX_ColaEnvios_Abiertos ON ColaEnvios (Estado, ProximoIntento) WHERE Estado <> 'enviado';
-- expired leases are freed, and held ones counted, from the leases someone holds;
CREATE INDEX IF NOT EXISTS IX_BloqueosConversacion_Vencimiento ON BloqueosConversacion (ExpiraEn)
    WHERE Propietario IS NOT NULL;
-- retention deletes delivery statuses after fewer days than messages;
CREATE INDEX IF NOT EXISTS IX_MensajesProcesados_Estados ON MensajesProcesados (RecibidoEn) WHERE Tipo = 'status';
-- unused: the claim reads IX_ColaEnvios_Reclamables and the gauge IX_ColaEnvios_Abiertos.
DROP INDEX IF EXISTS IX_ColaEnvios_Pendientes;
DROP INDEX IF EXISTS IX_ColaEnvios_Estado;
