-- Retention (core/storage/retention.py, docs/sqlserver.md "Retention"): old rows deleted in short
-- batches that never block the webhook. Identity tables are walked in Id order, which is arrival order:
-- a window query finds the next :n Ids after :desde_id (a clustered seek) and says whether all of them
-- are past the cutoff; the purge deletes the settled, old rows of that Id range (a clustered range,
-- never more than :n row locks, far below the 5,000 that escalate to a table lock). The walk stops at
-- the first window that reaches recent rows: caught up. Epoch-ms columns compare with :antes_ms,
-- CreadoEn (DATETIME2, UTC) with :antes_fecha.

-- name: retention_window_ledger
SELECT MAX(Id) AS hasta, MIN(CASE WHEN RecibidoEn < :antes_ms THEN 1 ELSE 0 END) AS todo_viejo
FROM (SELECT TOP (:n) Id, RecibidoEn FROM dbo.MensajesProcesados WHERE Id > :desde_id ORDER BY Id) AS lote;

-- name: purge_ledger
DELETE FROM dbo.MensajesProcesados
WHERE Id > :desde_id AND Id <= :hasta_id AND Estado IN (N'procesado', N'error') AND RecibidoEn < :antes_ms;

-- name: purge_statuses
-- Delivery statuses (3 of every 4 ledger rows) live a shorter time than messages, so they have their own
-- filtered index: the Id walk would step over weeks of kept messages to reach them.
WITH viejos AS (
    SELECT TOP (:n) Id FROM dbo.MensajesProcesados
    WHERE Tipo = N'status' AND RecibidoEn < :antes_ms
    ORDER BY RecibidoEn
)
DELETE FROM viejos;

-- name: retention_window_outbox
SELECT MAX(Id) AS hasta,
       MIN(CASE WHEN CreadoEn < CAST(:antes_fecha AS DATETIME2(3)) THEN 1 ELSE 0 END) AS todo_viejo
FROM (SELECT TOP (:n) Id, CreadoEn FROM dbo.ColaEnvios WHERE Id > :desde_id ORDER BY Id) AS lote;

-- name: purge_outbox
DELETE FROM dbo.ColaEnvios
WHERE Id > :desde_id AND Id <= :hasta_id AND Estado IN (N'enviado', N'error', N'incierto')
  AND CreadoEn < CAST(:antes_fecha AS DATETIME2(3));

-- name: retention_window_chat
SELECT MAX(Id) AS hasta,
       MIN(CASE WHEN CreadoEn < CAST(:antes_fecha AS DATETIME2(3)) THEN 1 ELSE 0 END) AS todo_viejo
FROM (SELECT TOP (:n) Id, CreadoEn FROM dbo.MensajesChat WHERE Id > :desde_id ORDER BY Id) AS lote;

-- name: purge_chat
DELETE FROM dbo.MensajesChat
WHERE Id > :desde_id AND Id <= :hasta_id AND CreadoEn < CAST(:antes_fecha AS DATETIME2(3));

-- name: retention_window_transitions
SELECT MAX(Id) AS hasta,
       MIN(CASE WHEN CreadoEn < CAST(:antes_fecha AS DATETIME2(3)) THEN 1 ELSE 0 END) AS todo_viejo
FROM (SELECT TOP (:n) Id, CreadoEn FROM dbo.HistorialSesiones WHERE Id > :desde_id ORDER BY Id) AS lote;

-- name: purge_transitions
DELETE FROM dbo.HistorialSesiones
WHERE Id > :desde_id AND Id <= :hasta_id AND CreadoEn < CAST(:antes_fecha AS DATETIME2(3));

-- name: purge_ai_runs
-- Settled AI runs (their answer was delivered or given up); IX_EjecucionesIA_Estado finds them.
WITH viejos AS (
    SELECT TOP (:n) Id FROM dbo.EjecucionesIA
    WHERE Estado NOT IN (N'queued', N'in_progress') AND CreadoEn < :antes_ms
)
DELETE FROM viejos;

-- name: purge_leases
-- scan: one row per conversation; most rows are idle, so the walk finds :n of them at once and stops
-- Lease rows nobody has taken for a long time. A conversation that comes back inserts a new row whose
-- fencing token starts at the clock (lease_acquire), above any token the deleted row ever had.
WITH viejos AS (
    SELECT TOP (:n) Clave FROM dbo.BloqueosConversacion
    WHERE Propietario IS NULL AND AdquiridoEn < :antes_ms
)
DELETE FROM viejos;
