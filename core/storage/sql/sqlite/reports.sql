-- Report lifecycle: status, notes, history, the reporter's and maintenance's views, duplicate lookups.
-- Dates read "YYYY-MM-DD HH:MM" (UTC) in both dialects.

-- name: report_by_number
SELECT r.Id, r.Numero, r.Telefono, r.TipoEquipo, r.EquipoId, r.Descripcion, r.Datos, r.Estado,
       substr(r.CreadoEn, 1, 16) AS Creado, substr(r.ActualizadoEn, 1, 16) AS Actualizado, r.UltimaNota,
       e.CodigoSAP, e.Descripcion AS EquipoDescripcion, e.Ubicacion
FROM Reportes AS r LEFT JOIN Equipos AS e ON e.Id = r.EquipoId
WHERE r.Numero = :numero;

-- name: report_by_id
SELECT r.Id, r.Numero, r.Telefono, r.TipoEquipo, r.EquipoId, r.Descripcion, r.Datos, r.Estado,
       substr(r.CreadoEn, 1, 16) AS Creado, substr(r.ActualizadoEn, 1, 16) AS Actualizado, r.UltimaNota,
       e.CodigoSAP, e.Descripcion AS EquipoDescripcion, e.Ubicacion
FROM Reportes AS r LEFT JOIN Equipos AS e ON e.Id = r.EquipoId
WHERE r.Id = :reporte_id;

-- name: reports_for_phone
SELECT r.Id, r.Numero, r.Telefono, r.TipoEquipo, r.EquipoId, r.Descripcion, r.Datos, r.Estado,
       substr(r.CreadoEn, 1, 16) AS Creado, substr(r.ActualizadoEn, 1, 16) AS Actualizado, r.UltimaNota,
       e.CodigoSAP, e.Descripcion AS EquipoDescripcion, e.Ubicacion
FROM Reportes AS r LEFT JOIN Equipos AS e ON e.Id = r.EquipoId
WHERE r.Telefono = :telefono
ORDER BY r.Id DESC
LIMIT :n;

-- name: report_open_for_equipment
SELECT r.Id, r.Numero, r.Telefono, r.TipoEquipo, r.EquipoId, r.Descripcion, r.Datos, r.Estado,
       substr(r.CreadoEn, 1, 16) AS Creado, substr(r.ActualizadoEn, 1, 16) AS Actualizado, r.UltimaNota,
       e.CodigoSAP, e.Descripcion AS EquipoDescripcion, e.Ubicacion
FROM Reportes AS r LEFT JOIN Equipos AS e ON e.Id = r.EquipoId
WHERE r.EquipoId = :equipo_id AND r.Estado IN ('abierto', 'asignado', 'en_proceso')
ORDER BY r.Id DESC
LIMIT 1;

-- name: report_open_for_plate
SELECT r.Id, r.Numero, r.Telefono, r.TipoEquipo, r.EquipoId, r.Descripcion, r.Datos, r.Estado,
       substr(r.CreadoEn, 1, 16) AS Creado, substr(r.ActualizadoEn, 1, 16) AS Actualizado, r.UltimaNota,
       e.CodigoSAP, e.Descripcion AS EquipoDescripcion, e.Ubicacion
FROM Reportes AS r LEFT JOIN Equipos AS e ON e.Id = r.EquipoId
WHERE r.Placa = :placa AND r.Estado IN ('abierto', 'asignado', 'en_proceso')
ORDER BY r.Id DESC
LIMIT 1;

-- name: report_set_plate
UPDATE Reportes SET Placa = :placa WHERE Id = :reporte_id;

-- name: report_status_for_update
SELECT Estado FROM Reportes WHERE Id = :reporte_id;

-- name: report_set_status
UPDATE Reportes
SET Estado = :estado_reporte, UltimaNota = COALESCE(:nota, UltimaNota), ActualizadoEn = CURRENT_TIMESTAMP
WHERE Id = :reporte_id;

-- name: report_set_note
UPDATE Reportes SET UltimaNota = :nota, ActualizadoEn = CURRENT_TIMESTAMP WHERE Id = :reporte_id;

-- name: report_history_insert
INSERT INTO HistorialReportes (ReporteId, EstadoAnterior, EstadoNuevo, Nota, Origen, MessageId)
VALUES (:reporte_id, :estado_reporte_anterior, :estado_reporte, :nota, :origen_reporte, :message_id);

-- name: report_history
SELECT Id, EstadoAnterior, EstadoNuevo, Nota, Origen, MessageId, substr(CreadoEn, 1, 16) AS Creado
FROM HistorialReportes
WHERE ReporteId = :reporte_id
ORDER BY Id;

-- name: last_user_message_at
-- When this person last wrote to us (UTC, to the second): WhatsApp's 24-hour customer-service window
-- starts there.
SELECT CreadoEn AS Creado
FROM MensajesChat
WHERE Telefono = :telefono AND Origen = 'USUARIO'
ORDER BY Id DESC
LIMIT 1;
