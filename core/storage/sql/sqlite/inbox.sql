-- MensajesProcesados: the dedup ledger and durable inbox of inbound webhook deliveries.

-- name: register_delivery
-- Insert first, as the T-SQL twin does: a new MessageId is inserted and answered 'INSERT'; a seen one
-- answers no row and the caller runs register_redelivery in the same transaction.
INSERT INTO MensajesProcesados
    (MessageId, Telefono, Tipo, Payload, Estado, Reintentos, WaTimestamp, RecibidoEn, ProcesadoEn)
VALUES
    (:message_id, :telefono, :tipo, :payload, :estado, 0, :wa_timestamp, :ahora, :procesado_en)
ON CONFLICT (MessageId) DO NOTHING
RETURNING 'INSERT' AS Accion, Reintentos, Estado;

-- name: register_redelivery
-- A delivery whose MessageId is already in the ledger: count it, answer the row as it is now.
UPDATE MensajesProcesados SET Reintentos = Reintentos + 1, UltimoReintento = :ahora
WHERE MessageId = :message_id
RETURNING 'UPDATE' AS Accion, Reintentos, Estado;

-- name: record_delivery_status
-- A status webhook moves the delivery state of the outbound row forward only (sent < delivered < read);
-- failed is always recorded, with its error, and nothing but another failure overwrites it.
UPDATE ColaEnvios
SET EstadoEntrega = :estado_entrega,
    UltimoError = COALESCE(:ultimo_error, UltimoError)
WHERE WamidEnviado = :wamid
  AND (:estado_entrega = 'failed'
       OR CASE EstadoEntrega
              WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 WHEN 'failed' THEN 4 ELSE 0
          END < :rango);

-- name: recorded_delivery_statuses
-- Statuses already registered for one outbound wamid (each keyed wamid + status), by the unique index.
SELECT MessageId, Payload
FROM MensajesProcesados
WHERE MessageId IN (:clave_sent, :clave_delivered, :clave_read, :clave_failed);
