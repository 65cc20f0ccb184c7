-- MensajesProcesados: the dedup ledger and durable inbox of inbound webhook deliveries.

-- name: register_delivery
-- Insert first, without range locks: a new MessageId is inserted and answered 'INSERT'; one already
-- committed is skipped by NOT EXISTS (no row: the caller then runs register_redelivery). Two copies
-- racing past NOT EXISTS meet at the unique key: the second waits for the first and gets 2627 or 2601,
-- which the caller also treats as a redelivery, in the same transaction (a duplicate key ends only
-- its statement). The MERGE with HOLDLOCK this replaces took key-range locks that formed deadlock
-- cycles between webhook groups.
INSERT INTO dbo.MensajesProcesados (MessageId, Telefono, Tipo, Payload, Estado, Reintentos, WaTimestamp, RecibidoEn,
                                    ProcesadoEn)
OUTPUT N'INSERT' AS Accion, inserted.Reintentos AS Reintentos, inserted.Estado AS Estado
SELECT :message_id, :telefono, :tipo, :payload, :estado, 0, :wa_timestamp, :ahora, :procesado_en
WHERE NOT EXISTS (SELECT 1 FROM dbo.MensajesProcesados WHERE MessageId = :message_id);

-- name: register_redelivery
-- A delivery whose MessageId is already in the ledger: count it, answer the row as it is now.
UPDATE dbo.MensajesProcesados SET Reintentos = Reintentos + 1, UltimoReintento = :ahora
OUTPUT N'UPDATE' AS Accion, inserted.Reintentos AS Reintentos, inserted.Estado AS Estado
WHERE MessageId = :message_id;

-- name: record_delivery_status
-- A status webhook moves the delivery state of the outbound row forward only (sent < delivered < read);
-- failed is always recorded, with its error, and nothing but another failure overwrites it.
UPDATE dbo.ColaEnvios
SET EstadoEntrega = :estado_entrega,
    UltimoError = COALESCE(:ultimo_error, UltimoError)
WHERE WamidEnviado = :wamid
  AND (:estado_entrega = N'failed'
       OR CASE EstadoEntrega
              WHEN N'sent' THEN 1 WHEN N'delivered' THEN 2 WHEN N'read' THEN 3 WHEN N'failed' THEN 4 ELSE 0
          END < :rango);

-- name: recorded_delivery_statuses
-- Statuses already registered for one outbound wamid (each keyed wamid + status), by the unique index.
SELECT MessageId, Payload
FROM dbo.MensajesProcesados
WHERE MessageId IN (:clave_sent, :clave_delivered, :clave_read, :clave_failed);
