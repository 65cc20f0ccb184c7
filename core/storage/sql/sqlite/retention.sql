-- Retention, the same walk as the T-SQL twin (core/storage/retention.py): identity tables in Id order,
-- one window of :n Ids at a time, the settled old rows of that range deleted. Epoch-ms columns compare
-- with :antes_ms; CreadoEn (UTC text) with :antes_fecha.

-- name: retention_window_ledger
SELECT MAX(Id) AS hasta, MIN(CASE WHEN RecibidoEn < :antes_ms THEN 1 ELSE 0 END) AS todo_viejo
FROM (SELECT Id, RecibidoEn FROM MensajesProcesados WHERE Id > :desde_id ORDER BY Id LIMIT :n);

-- name: purge_ledger
DELETE FROM MensajesProcesados
WHERE Id > :desde_id AND Id <= :hasta_id AND Estado IN ('procesado', 'error') AND RecibidoEn < :antes_ms;

-- name: purge_statuses
DELETE FROM MensajesProcesados WHERE Id IN (
    SELECT Id FROM MensajesProcesados
    WHERE Tipo = 'status' AND RecibidoEn < :antes_ms
    ORDER BY RecibidoEn LIMIT :n
);

-- name: retention_window_outbox
SELECT MAX(Id) AS hasta, MIN(CASE WHEN CreadoEn < :antes_fecha THEN 1 ELSE 0 END) AS todo_viejo
FROM (SELECT Id, CreadoEn FROM ColaEnvios WHERE Id > :desde_id ORDER BY Id LIMIT :n);

-- name: purge_outbox
DELETE FROM ColaEnvios
WHERE Id > :desde_id AND Id <= :hasta_id AND Estado IN ('enviado', 'error', 'incierto') AND CreadoEn < :antes_fecha;

-- name: retention_window_chat
SELECT MAX(Id) AS hasta, MIN(CASE WHEN CreadoEn < :antes_fecha THEN 1 ELSE 0 END) AS todo_viejo
FROM (SELECT Id, CreadoEn FROM MensajesChat WHERE Id > :desde_id ORDER BY Id LIMIT :n);

-- name: purge_chat
DELETE FROM MensajesChat WHERE Id > :desde_id AND Id <= :hasta_id AND CreadoEn < :antes_fecha;

-- name: retention_window_transitions
SELECT MAX(Id) AS hasta, MIN(CASE WHEN CreadoEn < :antes_fecha THEN 1 ELSE 0 END) AS todo_viejo
FROM (SELECT Id, CreadoEn FROM HistorialSesiones WHERE Id > :desde_id ORDER BY Id LIMIT :n);

-- name: purge_transitions
DELETE FROM HistorialSesiones WHERE Id > :desde_id AND Id <= :hasta_id AND CreadoEn < :antes_fecha;

-- name: purge_ai_runs
DELETE FROM EjecucionesIA WHERE Id IN (
    SELECT Id FROM EjecucionesIA WHERE Estado NOT IN ('queued', 'in_progress') AND CreadoEn < :antes_ms LIMIT :n
);

-- name: purge_leases
DELETE FROM BloqueosConversacion WHERE Clave IN (
    SELECT Clave FROM BloqueosConversacion WHERE Propietario IS NULL AND AdquiridoEn < :antes_ms LIMIT :n
);
