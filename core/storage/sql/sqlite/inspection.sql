-- Dev-only reads (kept out of the deployed package by .funcignore): the local chat console's state panel,
-- and what tests and benchmarks inspect.

-- name: console_session
SELECT Telefono, Estado, Version, DatosTemp, UltimaActividad
FROM SesionesChat
WHERE Telefono = :telefono;

-- name: console_leases
-- The lease key is the conversation key, possibly with a prefix ("conv:<key>"); Python keeps exact matches.
SELECT Clave, Propietario, ExpiraEn, Token, AdquiridoEn
FROM BloqueosConversacion
WHERE Clave = :clave OR Clave LIKE :patron;

-- name: console_inbox_open
SELECT MessageId, Tipo, Estado, Reintentos, Intentos, UltimoError, WaTimestamp, RecibidoEn, ProcesadoEn
FROM MensajesProcesados
WHERE Telefono = :telefono AND Estado IN ('pendiente', 'error')
ORDER BY WaTimestamp, Id;

-- name: console_inbox_recent
SELECT MessageId, Tipo, Estado, Reintentos, Intentos, UltimoError, WaTimestamp, RecibidoEn, ProcesadoEn
FROM MensajesProcesados
WHERE Telefono = :telefono
ORDER BY Id DESC
LIMIT :limite;

-- name: console_outbox_counts
SELECT Estado, COUNT(*) AS Cantidad
FROM ColaEnvios
WHERE Destinatario = :destinatario
GROUP BY Estado;

-- name: console_outbox_recent
SELECT Id, Tipo, Estado, Intentos, WamidEnviado, MessageIdOrigen, UltimoError, EnviadoEn
FROM ColaEnvios
WHERE Destinatario = :destinatario
ORDER BY Id DESC
LIMIT :limite;

-- name: console_reports
SELECT Numero, TipoEquipo, Descripcion, CreadoEn, Estado, UltimaNota
FROM Reportes
WHERE Telefono = :telefono
ORDER BY Id DESC
LIMIT :limite;

-- name: console_conversations
SELECT Telefono, Estado, UltimaActividad
FROM SesionesChat
ORDER BY UltimaActividad DESC
LIMIT :limite;

-- Rows and counts the tests and benchmarks check.

-- name: inbox_get
SELECT MessageId, Telefono, Tipo, Payload, Estado, Reintentos, UltimoReintento, WaTimestamp, RecibidoEn,
       ProcesadoEn
FROM MensajesProcesados
WHERE MessageId = :message_id;

-- name: lease_get
SELECT Clave AS clave, Propietario AS propietario, ExpiraEn AS expira, Token AS token
FROM BloqueosConversacion WHERE Clave = :clave;

-- name: count_outbound
SELECT Estado AS estado, COUNT(*) AS total FROM ColaEnvios GROUP BY Estado;

-- name: list_outbound_recipient
SELECT Id, Destinatario, Tipo, Contenido, Estado, Intentos, ProximoIntento, TokenReclamo, ReclamadoEn,
       WamidEnviado, EstadoEntrega, UltimoError, Campana, MessageIdOrigen, EnviadoEn, VenceEn, Aplazamientos,
       NumeroNegocio
FROM ColaEnvios WHERE Destinatario = :destinatario ORDER BY Id;
