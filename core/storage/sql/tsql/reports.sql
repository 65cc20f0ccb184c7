-- Report lifecycle: status, notes, history, the reporter's and maintenance's views, duplicate lookups.
-- Dates read "YYYY-MM-DD HH:MM" (UTC) in both dialects.

-- name: report_by_number
SELECT r.Id, r.Numero, r.Telefono, r.TipoEquipo, r.EquipoId, r.Descripcion, r.Datos, r.Estado,
       CONVERT(NVARCHAR(16), r.CreadoEn, 120) AS Creado, CONVERT(NVARCHAR(16), r.ActualizadoEn, 120) AS Actualizado, r.UltimaNota,
       e.CodigoSAP, e.Descripcion AS EquipoDescripcion, e.Ubicacion
FROM dbo.Reportes AS r LEFT JOIN dbo.Equipos AS e ON e.Id = r.EquipoId
WHERE r.Numero = :numero;

-- name: report_by_id
SELECT r.Id, r.Numero, r.Telefono, r.TipoEquipo, r.EquipoId, r.Descripcion, r.Datos, r.Estado,
       CONVERT(NVARCHAR(16), r.CreadoEn, 120) AS Creado, CONVERT(NVARCHAR(16), r.ActualizadoEn, 120) AS Actualizado, r.UltimaNota,
       e.CodigoSAP, e.Descripcion AS EquipoDescripcion, e.Ubicacion
FROM dbo.Reportes AS r LEFT JOIN dbo.Equipos AS e ON e.Id = r.EquipoId
WHERE r.Id = :reporte_id;

-- name: reports_for_phone
SELECT TOP (:n) r.Id, r.Numero, r.Telefono, r.TipoEquipo, r.EquipoId, r.Descripcion, r.Datos, r.Estado,
       CONVERT(NVARCHAR(16), r.CreadoEn, 120) AS Creado, CONVERT(NVARCHAR(16), r.ActualizadoEn, 120) AS Actualizado, r.UltimaNota,
       e.CodigoSAP, e.Descripcion AS EquipoDescripcion, e.Ubicacion
FROM dbo.Reportes AS r LEFT JOIN dbo.Equipos AS e ON e.Id = r.EquipoId
WHERE r.Telefono = :telefono
ORDER BY r.Id DESC;

-- name: report_open_for_equipment
SELECT TOP (1) r.Id, r.Numero, r.Telefono, r.TipoEquipo, r.EquipoId, r.Descripcion, r.Datos, r.Estado,
       CONVERT(NVARCHAR(16), r.CreadoEn, 120) AS Creado, CONVERT(NVARCHAR(16), r.ActualizadoEn, 120) AS Actualizado, r.UltimaNota,
       e.CodigoSAP, e.Descripcion AS EquipoDescripcion, e.Ubicacion
FROM dbo.Reportes AS r LEFT JOIN dbo.Equipos AS e ON e.Id = r.EquipoId
WHERE r.EquipoId = :equipo_id AND r.Estado IN (N'abierto', N'asignado', N'en_proceso')
ORDER BY r.Id DESC;

-- name: report_open_for_plate
SELECT TOP (1) r.Id, r.Numero, r.Telefono, r.TipoEquipo, r.EquipoId, r.Descripcion, r.Datos, r.Estado,
       CONVERT(NVARCHAR(16), r.CreadoEn, 120) AS Creado, CONVERT(NVARCHAR(16), r.ActualizadoEn, 120) AS Actualizado, r.UltimaNota,
       e.CodigoSAP, e.Descripcion AS EquipoDescripcion, e.Ubicacion
FROM dbo.Reportes AS r LEFT JOIN dbo.Equipos AS e ON e.Id = r.EquipoId
WHERE r.Placa = :placa AND r.Estado IN (N'abierto', N'asignado', N'en_proceso')
ORDER BY r.Id DESC;

-- name: report_set_plate
UPDATE dbo.Reportes SET Placa = :placa WHERE Id = :reporte_id;

-- name: report_status_for_update
SELECT Estado FROM dbo.Reportes WITH (UPDLOCK, ROWLOCK) WHERE Id = :reporte_id;

-- name: report_set_status
UPDATE dbo.Reportes
SET Estado = :estado_reporte, UltimaNota = COALESCE(:nota, UltimaNota), ActualizadoEn = SYSUTCDATETIME()
WHERE Id = :reporte_id;

-- name: report_set_note
UPDATE dbo.Reportes SET UltimaNota = :nota, ActualizadoEn = SYSUTCDATETIME() WHERE Id = :reporte_id;

-- name: report_history_insert
INSERT INTO dbo.HistorialReportes (ReporteId, EstadoAnterior, EstadoNuevo, Nota, Origen, MessageId)
VALUES (:reporte_id, :estado_reporte_anterior, :estado_reporte, :nota, :origen_reporte, :message_id);

-- name: report_history
SELECT Id, EstadoAnterior, EstadoNuevo, Nota, Origen, MessageId, CONVERT(NVARCHAR(16), CreadoEn, 120) AS Creado
FROM dbo.HistorialReportes
WHERE ReporteId = :reporte_id
ORDER BY Id;

-- name: last_user_message_at
-- When this person last wrote to us (UTC, to the second): WhatsApp's 24-hour customer-service window
-- starts there.
SELECT TOP (1) CONVERT(NVARCHAR(19), CreadoEn, 120) AS Creado
FROM dbo.MensajesChat
WHERE Telefono = :telefono AND Origen = N'USUARIO'
ORDER BY Id DESC;
