-- name: conversation_sweep_due
-- Whether the conversation sweep has anything to do: a dead holder's lease, a pending inbox row, a session
-- idle long enough to expire. An idle app's sweep costs this one read and nothing else.
SELECT CASE
    WHEN EXISTS (SELECT 1 FROM BloqueosConversacion WHERE Propietario IS NOT NULL AND ExpiraEn <= :ahora)
      OR EXISTS (SELECT 1 FROM MensajesProcesados WHERE Estado = 'pendiente')
      OR EXISTS (SELECT 1 FROM SesionesChat
                 WHERE Estado NOT IN ('INICIO', 'FINALIZADO') AND UltimaActividad < :limite)
    THEN 1 ELSE 0 END AS hay_trabajo;

-- name: outbox_sweep_due
-- Whether the outbox sweep has anything to do: a send open or claimed, or one sent recently enough that
-- its delivery statuses may still need catching up.
SELECT CASE
    WHEN EXISTS (SELECT 1 FROM ColaEnvios WHERE Estado IN ('pendiente', 'procesando'))
      OR EXISTS (SELECT 1 FROM ColaEnvios WHERE Estado = 'enviado' AND EnviadoEn >= :desde)
    THEN 1 ELSE 0 END AS hay_trabajo;
