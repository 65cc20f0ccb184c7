-- MensajesProcesados: the dedup ledger and durable inbox of inbound webhook deliveries.

-- name: register_delivery
-- One atomic statement per delivery. HOLDLOCK (serializable range lock on the key) is what stops two
-- concurrent MERGEs of a new MessageId from both taking the INSERT branch. The statement keeps its
-- terminating semicolon: SQL Server rejects a MERGE without one (error 10713).
MERGE dbo.MensajesProcesados WITH (HOLDLOCK) AS t
USING (SELECT CAST(:message_id AS NVARCHAR(200)) AS MessageId) AS s
    ON t.MessageId = s.MessageId
WHEN MATCHED THEN
    UPDATE SET Reintentos = t.Reintentos + 1, UltimoReintento = :ahora
WHEN NOT MATCHED THEN
    INSERT (MessageId, Telefono, Tipo, Payload, Estado, Reintentos, WaTimestamp, RecibidoEn, ProcesadoEn)
    VALUES (s.MessageId, :telefono, :tipo, :payload, :estado, 0, :wa_timestamp, :ahora, :procesado_en)
OUTPUT $action AS Accion, inserted.Reintentos AS Reintentos, inserted.Estado AS Estado;

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

-- name: inbox_get
SELECT MessageId, Telefono, Tipo, Payload, Estado, Reintentos, UltimoReintento, WaTimestamp, RecibidoEn,
       ProcesadoEn
FROM dbo.MensajesProcesados
WHERE MessageId = :message_id;

-- name: recorded_delivery_statuses
-- Statuses already registered for one outbound wamid (each keyed wamid + status), by the unique index.
SELECT MessageId, Payload
FROM dbo.MensajesProcesados
WHERE MessageId IN (:clave_sent, :clave_delivered, :clave_read, :clave_failed);
