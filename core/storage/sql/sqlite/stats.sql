-- Operational counts read at scrape time (/api/metrics) and by the one-minute metrics timer. Each one
-- reads only indexed or small sets; machine times are epoch milliseconds passed in as :ahora.

-- name: stats_leases
SELECT
    COALESCE(SUM(CASE WHEN ExpiraEn > :ahora THEN 1 ELSE 0 END), 0) AS activos,
    COALESCE(SUM(CASE WHEN ExpiraEn <= :ahora THEN 1 ELSE 0 END), 0) AS vencidos
FROM BloqueosConversacion
WHERE Propietario IS NOT NULL;

-- name: stats_inbox
SELECT Estado AS estado, COUNT(*) AS filas, MIN(RecibidoEn) AS mas_antiguo
FROM MensajesProcesados
WHERE Estado IN ('pendiente', 'error')
GROUP BY Estado;

-- name: stats_outbox
-- Every row but the finished sends (history, counted by the send counters): a seek of IX_ColaEnvios_Abiertos.
SELECT Estado AS estado, COUNT(*) AS filas, MIN(ProximoIntento) AS mas_antiguo
FROM ColaEnvios
WHERE Estado <> 'enviado'
GROUP BY Estado;

-- name: stats_ai_runs
SELECT Estado AS estado, COUNT(*) AS filas, MIN(CreadoEn) AS mas_antiguo
FROM EjecucionesIA
WHERE Estado IN ('queued', 'in_progress')
GROUP BY Estado;
