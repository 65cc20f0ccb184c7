-- Dev-only reads (kept out of the deployed package by .funcignore): the local chat console's state panel,
-- and what tests and benchmarks inspect.

-- name: console_session
SELECT Telefono, Estado, Version, DatosTemp, UltimaActividad
FROM dbo.SesionesChat
WHERE Telefono = :telefono;

-- name: console_leases
-- scan: local host console only: a suffix LIKE over the lease rows (one per conversation and prefix)
-- The lease key is the conversation key, possibly with a prefix ("conv:<key>"); Python keeps exact matches.
SELECT Clave, Propietario, ExpiraEn, Token, AdquiridoEn
FROM dbo.BloqueosConversacion
WHERE Clave = :clave OR Clave LIKE :patron;

-- name: console_inbox_open
SELECT MessageId, Tipo, Estado, Reintentos, Intentos, UltimoError, WaTimestamp, RecibidoEn, ProcesadoEn
FROM dbo.MensajesProcesados
WHERE Telefono = :telefono AND Estado IN (N'pendiente', N'error')
ORDER BY WaTimestamp, Id;

-- name: console_inbox_recent
-- scan: local host console only: one phone's ledger rows; an index on Telefono over the whole ledger would cost every delivery
SELECT TOP (:limite) MessageId, Tipo, Estado, Reintentos, Intentos, UltimoError, WaTimestamp, RecibidoEn, ProcesadoEn
FROM dbo.MensajesProcesados
WHERE Telefono = :telefono
ORDER BY Id DESC;

-- name: console_outbox_counts
-- scan: local host console only: one recipient's sends, history included; IX_ColaEnvios_Destinatario holds open rows only
SELECT Estado, COUNT(*) AS Cantidad
FROM dbo.ColaEnvios
WHERE Destinatario = :destinatario
GROUP BY Estado;

-- name: console_outbox_recent
-- scan: local host console only: one recipient's sends, history included; IX_ColaEnvios_Destinatario holds open rows only
SELECT TOP (:limite) Id, Tipo, Estado, Intentos, WamidEnviado, MessageIdOrigen, UltimoError, EnviadoEn
FROM dbo.ColaEnvios
WHERE Destinatario = :destinatario
ORDER BY Id DESC;

-- name: console_reports
SELECT TOP (:limite) Numero, TipoEquipo, Descripcion, Estado, UltimaNota,
       CONVERT(NVARCHAR(19), CreadoEn, 120) AS CreadoEn  -- as SQLite shows it: 2026-12-01 10:00:00
FROM dbo.Reportes
WHERE Telefono = :telefono
ORDER BY Id DESC;

-- name: console_conversations
-- scan: local host console only: one row per user, sorted by activity for the list
SELECT TOP (:limite) Telefono, Estado, UltimaActividad
FROM dbo.SesionesChat
ORDER BY UltimaActividad DESC;

-- Rows and counts the tests and benchmarks check.

-- name: inbox_get
SELECT MessageId, Telefono, Tipo, Payload, Estado, Reintentos, UltimoReintento, WaTimestamp, RecibidoEn,
       ProcesadoEn
FROM dbo.MensajesProcesados
WHERE MessageId = :message_id;

-- name: lease_get
SELECT Clave AS clave, Propietario AS propietario, ExpiraEn AS expira, Token AS token
FROM dbo.BloqueosConversacion WHERE Clave = :clave;

-- name: count_outbound
-- scan: tests and benchmarks only: every state of the whole queue
SELECT Estado AS estado, COUNT(*) AS total FROM dbo.ColaEnvios GROUP BY Estado;

-- name: list_outbound_recipient
-- scan: tests only: one recipient's sends, history included; IX_ColaEnvios_Destinatario holds open rows only
SELECT Id, Destinatario, Tipo, Contenido, Estado, Intentos, ProximoIntento, TokenReclamo, ReclamadoEn,
       WamidEnviado, EstadoEntrega, UltimoError, Campana, MessageIdOrigen, EnviadoEn, VenceEn, Aplazamientos,
       NumeroNegocio
FROM dbo.ColaEnvios WHERE Destinatario = :destinatario ORDER BY Id;
