-- Retention: old rows deleted in bounded batches (:n rows a statement), never a pending inbox row or an
-- open send. Epoch-ms columns compare with :antes_ms; CreadoEn (DATETIME2, UTC) with :antes_fecha.
-- Deleting through a TOP (n) CTE in Id order keeps each statement's locks small and short.

-- name: purge_ledger
-- scan: walks the clustered index from the oldest row and stops after :n matches; the oldest rows are the deletable ones (Id order is arrival order)
WITH viejos AS (
    SELECT TOP (:n) Id FROM dbo.MensajesProcesados
    WHERE Estado IN (N'procesado', N'error') AND RecibidoEn < :antes_ms
    ORDER BY Id
)
DELETE FROM viejos;

-- name: purge_outbox
-- scan: walks the clustered index from the oldest row and stops after :n matches; the oldest rows are the deletable ones (Id order is arrival order)
WITH viejos AS (
    SELECT TOP (:n) Id FROM dbo.ColaEnvios
    WHERE Estado IN (N'enviado', N'error', N'incierto') AND CreadoEn < CAST(:antes_fecha AS DATETIME2(3))
    ORDER BY Id
)
DELETE FROM viejos;

-- name: purge_chat
-- scan: walks the clustered index from the oldest row and stops after :n matches; the oldest rows are the deletable ones (Id order is arrival order)
WITH viejos AS (
    SELECT TOP (:n) Id FROM dbo.MensajesChat WHERE CreadoEn < CAST(:antes_fecha AS DATETIME2(3)) ORDER BY Id
)
DELETE FROM viejos;

-- name: purge_transitions
-- scan: walks the clustered index from the oldest row and stops after :n matches; the oldest rows are the deletable ones (Id order is arrival order)
WITH viejos AS (
    SELECT TOP (:n) Id FROM dbo.HistorialSesiones WHERE CreadoEn < CAST(:antes_fecha AS DATETIME2(3)) ORDER BY Id
)
DELETE FROM viejos;
