-- Retention: old rows deleted in bounded batches (:n rows a statement), never a pending inbox row or an
-- open send. Epoch-ms columns compare with :antes_ms; CreadoEn (UTC text) with :antes_fecha.

-- name: purge_ledger
DELETE FROM MensajesProcesados WHERE Id IN (
    SELECT Id FROM MensajesProcesados
    WHERE Estado IN ('procesado', 'error') AND RecibidoEn < :antes_ms
    ORDER BY Id LIMIT :n
);

-- name: purge_outbox
DELETE FROM ColaEnvios WHERE Id IN (
    SELECT Id FROM ColaEnvios
    WHERE Estado IN ('enviado', 'error', 'incierto') AND CreadoEn < :antes_fecha
    ORDER BY Id LIMIT :n
);

-- name: purge_chat
DELETE FROM MensajesChat WHERE Id IN (
    SELECT Id FROM MensajesChat WHERE CreadoEn < :antes_fecha ORDER BY Id LIMIT :n
);

-- name: purge_transitions
DELETE FROM HistorialSesiones WHERE Id IN (
    SELECT Id FROM HistorialSesiones WHERE CreadoEn < :antes_fecha ORDER BY Id LIMIT :n
);
