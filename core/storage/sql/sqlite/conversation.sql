-- Sessions, the inbox read side, history and reports: what one conversation transition touches.

-- name: session_get
SELECT Telefono AS telefono, Estado AS estado, DatosTemp AS datos, EquipoId AS equipo_id, Version AS version,
       UltimaActividad AS ultima_actividad, ConversacionIA AS conversacion_ia
FROM SesionesChat WHERE Telefono = :telefono;

-- name: session_insert
INSERT INTO SesionesChat (Telefono, Estado, DatosTemp, EquipoId, Version, UltimaActividad)
VALUES (:telefono, :estado_sesion, :datos, :equipo_id, 1, :ahora)
ON CONFLICT (Telefono) DO NOTHING;

-- name: session_update_versioned
UPDATE SesionesChat
SET Estado = :estado_sesion, DatosTemp = :datos, EquipoId = :equipo_id, Version = Version + 1, UltimaActividad = :ahora
WHERE Telefono = :telefono AND Version = :version_esperada;

-- name: session_touch
UPDATE SesionesChat SET UltimaActividad = :ahora WHERE Telefono = :telefono AND UltimaActividad < :ahora;

-- name: sessions_idle
SELECT Telefono AS telefono FROM SesionesChat
WHERE Estado NOT IN ('INICIO', 'FINALIZADO') AND UltimaActividad < :limite
ORDER BY UltimaActividad LIMIT :n;

-- name: chat_save_user
INSERT INTO MensajesChat (Telefono, Origen, Contenido, MessageId)
SELECT :telefono, 'USUARIO', :contenido, :message_id
WHERE NOT EXISTS (SELECT 1 FROM MensajesChat WHERE MessageId = :message_id AND Origen = 'USUARIO');

-- name: chat_save_bot
INSERT INTO MensajesChat (Telefono, Origen, Contenido, MessageId) VALUES (:telefono, 'BOT', :contenido, :message_id);

-- name: inbox_pending
SELECT Id AS id, MessageId AS message_id, Payload AS payload, WaTimestamp AS wa_timestamp, Intentos AS intentos,
       RecibidoEn AS recibido_en
FROM MensajesProcesados
WHERE Telefono = :telefono AND Estado = 'pendiente'
ORDER BY WaTimestamp, Id LIMIT :n;

-- name: inbox_mark_processed
UPDATE MensajesProcesados SET Estado = 'procesado', ProcesadoEn = :ahora WHERE Id = :id AND Estado = 'pendiente';

-- name: inbox_record_failure
UPDATE MensajesProcesados
SET Intentos = Intentos + 1, UltimoError = :error,
    Estado = CASE WHEN Intentos + 1 >= :max_intentos THEN 'error' ELSE Estado END
WHERE Id = :id AND Estado = 'pendiente'
RETURNING Estado AS estado, Intentos AS intentos;

-- name: inbox_stalled_keys
SELECT m.Telefono AS telefono, MIN(m.Id) AS primero
FROM MensajesProcesados m
LEFT JOIN BloqueosConversacion b ON b.Clave = m.Telefono AND b.Propietario IS NOT NULL AND b.ExpiraEn > :ahora
WHERE m.Estado = 'pendiente' AND m.RecibidoEn <= :recibido_antes AND b.Clave IS NULL
GROUP BY m.Telefono ORDER BY primero LIMIT :n;

-- name: equipo_by_sap
SELECT Id AS id, CodigoSAP AS codigo_sap, TipoEquipo AS tipo_equipo, Descripcion AS descripcion, Ubicacion AS ubicacion
FROM Equipos WHERE CodigoSAP = :codigo AND Activo = 1;

-- name: report_set_number
-- The human number comes from the row's own identity, in the transaction that inserted it:
-- RPT-000001 is the first report of a database. (SQL Server's IDENTITY cache may leave gaps.)
UPDATE Reportes SET Numero = :numero WHERE Id = :id;

-- name: report_insert
INSERT INTO Reportes (Numero, Telefono, TipoEquipo, EquipoId, Descripcion, Datos, MensajeOrigen)
VALUES (:numero, :telefono, :tipo_equipo, :equipo_id, :descripcion, :datos, :mensaje_origen)
RETURNING Id AS id;

-- name: history_insert
INSERT INTO HistorialSesiones (Telefono, EstadoAnterior, EstadoNuevo, Origen, Descripcion, ReporteId, MessageId)
VALUES (:telefono, :estado_anterior, :estado_nuevo, :origen, :descripcion_historial, :reporte_id, :message_id);

-- name: equipos_by_location
-- The catalog's active equipment at a store the worker named (a worker without a readable label).
-- scan: Equipos is a small catalog (hundreds to a few thousand rows), read only for a worker without a label
SELECT Id AS id, CodigoSAP AS codigo_sap, TipoEquipo AS tipo_equipo, Descripcion AS descripcion, Ubicacion AS ubicacion
FROM Equipos WHERE Ubicacion LIKE :patron AND Activo = 1 ORDER BY Descripcion LIMIT :n;

-- name: chat_recent
-- The conversation so far, newest first (a handover to a person sends it to maintenance).
SELECT Origen AS origen, Contenido AS contenido FROM MensajesChat WHERE Telefono = :telefono ORDER BY Id DESC LIMIT :n;
