-- Operational counts read at scrape time (/api/metrics) and by the one-minute metrics timer. Each one
-- reads only indexed or small sets; machine times are epoch milliseconds passed in as :ahora.

-- name: stats_leases
SELECT
    COALESCE(SUM(CASE WHEN Propietario IS NOT NULL AND ExpiraEn > :ahora THEN 1 ELSE 0 END), 0) AS activos,
    COALESCE(SUM(CASE WHEN Propietario IS NOT NULL AND ExpiraEn <= :ahora THEN 1 ELSE 0 END), 0) AS vencidos
FROM BloqueosConversacion;

-- name: stats_inbox
SELECT Estado AS estado, COUNT(*) AS filas, MIN(RecibidoEn) AS mas_antiguo
FROM MensajesProcesados
WHERE Estado IN ('pendiente', 'error')
GROUP BY Estado;

-- name: stats_outbox
SELECT Estado AS estado, COUNT(*) AS filas, MIN(ProximoIntento) AS mas_antiguo
FROM ColaEnvios
GROUP BY Estado;

-- name: stats_ai_runs
SELECT Estado AS estado, COUNT(*) AS filas, MIN(CreadoEn) AS mas_antiguo
FROM EjecucionesIA
WHERE Estado IN ('queued', 'in_progress')
GROUP BY Estado;
