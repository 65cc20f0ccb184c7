-- Sessions, the inbox read side, history and reports: what one conversation transition touches.

-- name: session_get
SELECT Telefono AS telefono, Estado AS estado, DatosTemp AS datos, EquipoId AS equipo_id, Version AS version,
       UltimaActividad AS ultima_actividad, ConversacionIA AS conversacion_ia
FROM dbo.SesionesChat WHERE Telefono = :telefono;

-- name: session_insert
INSERT INTO dbo.SesionesChat (Telefono, Estado, DatosTemp, EquipoId, Version, UltimaActividad)
SELECT :telefono, :estado_sesion, :datos, :equipo_id, 1, :ahora
WHERE NOT EXISTS (SELECT 1 FROM dbo.SesionesChat WITH (UPDLOCK, HOLDLOCK) WHERE Telefono = :telefono);

-- name: session_update_versioned
UPDATE dbo.SesionesChat
SET Estado = :estado_sesion, DatosTemp = :datos, EquipoId = :equipo_id, Version = Version + 1, UltimaActividad = :ahora
WHERE Telefono = :telefono AND Version = :version_esperada;

-- name: session_touch
UPDATE dbo.SesionesChat SET UltimaActividad = :ahora WHERE Telefono = :telefono AND UltimaActividad < :ahora;

-- name: sessions_idle
SELECT TOP (:n) Telefono AS telefono FROM dbo.SesionesChat
WHERE Estado NOT IN (N'INICIO', N'FINALIZADO') AND UltimaActividad < :limite
ORDER BY UltimaActividad;

-- name: chat_save_user
INSERT INTO dbo.MensajesChat (Telefono, Origen, Contenido, MessageId)
SELECT :telefono, N'USUARIO', :contenido, :message_id
WHERE NOT EXISTS (SELECT 1 FROM dbo.MensajesChat WHERE MessageId = :message_id AND Origen = N'USUARIO');

-- name: chat_save_bot
INSERT INTO dbo.MensajesChat (Telefono, Origen, Contenido, MessageId) VALUES (:telefono, N'BOT', :contenido, :message_id);

-- name: inbox_pending
SELECT TOP (:n) Id AS id, MessageId AS message_id, Payload AS payload, WaTimestamp AS wa_timestamp,
       Intentos AS intentos, RecibidoEn AS recibido_en
FROM dbo.MensajesProcesados
WHERE Telefono = :telefono AND Estado = N'pendiente'
ORDER BY WaTimestamp, Id;

-- name: inbox_mark_processed
UPDATE dbo.MensajesProcesados SET Estado = N'procesado', ProcesadoEn = :ahora
WHERE Id = :id AND Estado = N'pendiente';

-- name: inbox_record_failure
UPDATE dbo.MensajesProcesados
SET Intentos = Intentos + 1, UltimoError = :error,
    Estado = CASE WHEN Intentos + 1 >= :max_intentos THEN N'error' ELSE Estado END
OUTPUT inserted.Estado AS estado, inserted.Intentos AS intentos
WHERE Id = :id AND Estado = N'pendiente';

-- name: inbox_stalled_keys
SELECT TOP (:n) m.Telefono AS telefono, MIN(m.Id) AS primero
FROM dbo.MensajesProcesados m
LEFT JOIN dbo.BloqueosConversacion b ON b.Clave = m.Telefono AND b.Propietario IS NOT NULL AND b.ExpiraEn > :ahora
WHERE m.Estado = N'pendiente' AND m.RecibidoEn <= :recibido_antes AND b.Clave IS NULL
GROUP BY m.Telefono ORDER BY primero;

-- name: equipo_by_sap
SELECT Id AS id, CodigoSAP AS codigo_sap, TipoEquipo AS tipo_equipo, Descripcion AS descripcion, Ubicacion AS ubicacion
FROM dbo.Equipos WHERE CodigoSAP = :codigo AND Activo = 1;

-- name: report_set_number
-- The human number comes from the row's own identity, in the transaction that inserted it:
-- RPT-000001 is the first report of a database. (SQL Server's IDENTITY cache may leave gaps.)
UPDATE dbo.Reportes SET Numero = :numero WHERE Id = :id;

-- name: report_insert
INSERT INTO dbo.Reportes (Numero, Telefono, TipoEquipo, EquipoId, Descripcion, Datos, MensajeOrigen)
OUTPUT inserted.Id AS id
VALUES (:numero, :telefono, :tipo_equipo, :equipo_id, :descripcion, :datos, :mensaje_origen);

-- name: history_insert
INSERT INTO dbo.HistorialSesiones (Telefono, EstadoAnterior, EstadoNuevo, Origen, Descripcion, ReporteId, MessageId)
VALUES (:telefono, :estado_anterior, :estado_nuevo, :origen, :descripcion_historial, :reporte_id, :message_id);

-- name: equipos_by_location
-- The catalog's active equipment at a store the worker named (a worker without a readable label).
-- scan: Equipos is a small catalog (hundreds to a few thousand rows), read only for a worker without a label
SELECT TOP (:n) Id AS id, CodigoSAP AS codigo_sap, TipoEquipo AS tipo_equipo, Descripcion AS descripcion,
       Ubicacion AS ubicacion
FROM dbo.Equipos WHERE Ubicacion LIKE :patron AND Activo = 1 ORDER BY Descripcion;

-- name: chat_recent
-- The conversation so far, newest first (a handover to a person sends it to maintenance).
SELECT TOP (:n) Origen AS origen, Contenido AS contenido FROM dbo.MensajesChat WHERE Telefono = :telefono ORDER BY Id DESC;
