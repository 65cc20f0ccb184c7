-- Operational counts read at scrape time (/api/metrics) and by the one-minute metrics timer. Each one
-- reads only indexed or small sets; machine times are epoch milliseconds passed in as :ahora.
-- Plain reads: under Azure SQL's read-committed snapshot they neither block nor wait on writers.

-- name: stats_leases
SELECT
    COALESCE(SUM(CASE WHEN ExpiraEn > :ahora THEN 1 ELSE 0 END), 0) AS activos,
    COALESCE(SUM(CASE WHEN ExpiraEn <= :ahora THEN 1 ELSE 0 END), 0) AS vencidos
FROM dbo.BloqueosConversacion
WHERE Propietario IS NOT NULL;

-- name: stats_inbox
SELECT Estado AS estado, COUNT_BIG(*) AS filas, MIN(RecibidoEn) AS mas_antiguo
FROM dbo.MensajesProcesados
WHERE Estado IN (N'pendiente', N'error')
GROUP BY Estado;

-- name: stats_outbox
-- Every row but the finished sends (history, counted by the send counters): a seek of IX_ColaEnvios_Abiertos.
SELECT Estado AS estado, COUNT_BIG(*) AS filas, MIN(ProximoIntento) AS mas_antiguo
FROM dbo.ColaEnvios
WHERE Estado <> N'enviado'
GROUP BY Estado;

-- name: stats_ai_runs
SELECT Estado AS estado, COUNT_BIG(*) AS filas, MIN(CreadoEn) AS mas_antiguo
FROM dbo.EjecucionesIA
WHERE Estado IN (N'queued', N'in_progress')
GROUP BY Estado;
