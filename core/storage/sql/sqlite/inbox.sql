-- MensajesProcesados: the dedup ledger and durable inbox of inbound webhook deliveries.

-- name: register_delivery
-- One atomic statement per delivery: a new MessageId is inserted with Reintentos = 0; a seen one bumps
-- Reintentos and UltimoReintento. Reintentos = 0 in the RETURNING row therefore means "inserted" (an
-- update always leaves it >= 1), which is what OUTPUT $action says directly in T-SQL.
INSERT INTO MensajesProcesados
    (MessageId, Telefono, Tipo, Payload, Estado, Reintentos, WaTimestamp, RecibidoEn, ProcesadoEn)
VALUES
    (:message_id, :telefono, :tipo, :payload, :estado, 0, :wa_timestamp, :ahora, :procesado_en)
ON CONFLICT (MessageId) DO UPDATE SET
    Reintentos = Reintentos + 1,
    UltimoReintento = :ahora
RETURNING
    CASE WHEN Reintentos = 0 THEN 'INSERT' ELSE 'UPDATE' END AS Accion,
    Reintentos,
    Estado;

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

-- name: inbox_get
SELECT MessageId, Telefono, Tipo, Payload, Estado, Reintentos, UltimoReintento, WaTimestamp, RecibidoEn,
       ProcesadoEn
FROM MensajesProcesados
WHERE MessageId = :message_id;

-- name: recorded_delivery_statuses
-- Statuses already registered for one outbound wamid (each keyed wamid + status), by the unique index.
SELECT MessageId, Payload
FROM MensajesProcesados
WHERE MessageId IN (:clave_sent, :clave_delivered, :clave_read, :clave_failed);
