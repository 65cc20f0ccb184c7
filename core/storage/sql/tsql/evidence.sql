-- Evidencias: media a user sent, recorded with the message's transition and downloaded afterwards.
-- A download claims its row first (compare-and-set on Estado, ProximoIntento and a token), so two
-- processes never fetch the same body at once; every later change is fenced by that token.

-- name: evidence_record
-- UPDLOCK + HOLDLOCK: two transactions recording the same message serialize on the key range instead
-- of the second failing on the unique key.
INSERT INTO dbo.Evidencias (Telefono, MensajeId, MediaId, Tipo, Mime, Sha256, Nombre, Estado, CreadoEn, ActualizadoEn)
SELECT :telefono, :message_id, :media_id, :tipo_evidencia, :mime, :sha256, :nombre_archivo, N'pendiente', :ahora, :ahora
WHERE NOT EXISTS (SELECT 1 FROM dbo.Evidencias WITH (UPDLOCK, HOLDLOCK) WHERE MensajeId = :message_id);

-- name: evidence_attach
UPDATE dbo.Evidencias SET ReporteId = :reporte_id, ActualizadoEn = :ahora
WHERE MensajeId = :message_id AND Telefono = :telefono AND ReporteId IS NULL;

-- name: evidence_for_report
SELECT Id, Telefono, MensajeId, MediaId, Tipo, Mime, Sha256, Tamano, Nombre, Ruta, Estado, Intentos, UltimoError,
       ReporteId, Transcripcion, CreadoEn, ActualizadoEn
FROM dbo.Evidencias
WHERE ReporteId = :reporte_id
ORDER BY Id;

-- name: evidence_for_phone
SELECT TOP (:limite) Id, Telefono, MensajeId, MediaId, Tipo, Mime, Sha256, Tamano, Nombre, Ruta, Estado, Intentos,
       UltimoError, ReporteId, Transcripcion, CreadoEn, ActualizadoEn
FROM dbo.Evidencias
WHERE Telefono = :telefono
ORDER BY Id DESC;

-- name: evidence_by_message
SELECT Id, Telefono, MensajeId, MediaId, Tipo, Mime, Sha256, Tamano, Nombre, Ruta, Estado, Intentos, UltimoError,
       ReporteId, Transcripcion, CreadoEn, ActualizadoEn
FROM dbo.Evidencias
WHERE MensajeId = :message_id;

-- name: evidence_due
SELECT TOP (:n) Id FROM dbo.Evidencias
WHERE Estado = N'pendiente' AND ProximoIntento <= :ahora
ORDER BY ProximoIntento, Id;

-- name: evidence_due_for_phone
SELECT TOP (:n) Id FROM dbo.Evidencias
WHERE Telefono = :telefono AND Estado = N'pendiente' AND ProximoIntento <= :ahora
ORDER BY ProximoIntento, Id;

-- name: evidence_claim
-- The claim holds the row until :expira; a worker that dies mid-download leaves it due again then.
UPDATE dbo.Evidencias
SET TokenReclamo = :token_reclamo, ProximoIntento = :expira, Intentos = Intentos + 1, ActualizadoEn = :ahora
WHERE Id = :id AND Estado = N'pendiente' AND ProximoIntento <= :ahora;

-- name: evidence_claimed
SELECT Id, Telefono, MensajeId, MediaId, Tipo, Mime, Sha256, Tamano, Nombre, Ruta, Estado, Intentos, UltimoError,
       ReporteId, Transcripcion, CreadoEn, ActualizadoEn
FROM dbo.Evidencias
WHERE Id = :id AND TokenReclamo = :token_reclamo AND Estado = N'pendiente';

-- name: evidence_mark_saved
UPDATE dbo.Evidencias
SET Estado = N'guardada', Ruta = :ruta, Tamano = :tamano, Mime = :mime, TokenReclamo = NULL, UltimoError = NULL,
    ActualizadoEn = :ahora
WHERE Id = :id AND TokenReclamo = :token_reclamo AND Estado = N'pendiente';

-- name: evidence_mark_failed
-- :max_intentos 0 makes the failure final at once (a body that can never be right: too big, wrong type).
UPDATE dbo.Evidencias
SET Estado = CASE WHEN Intentos >= :max_intentos THEN N'error' ELSE N'pendiente' END,
    ProximoIntento = :proximo_intento, UltimoError = :error, TokenReclamo = NULL, ActualizadoEn = :ahora
WHERE Id = :id AND TokenReclamo = :token_reclamo AND Estado = N'pendiente';

-- name: evidence_set_transcript
UPDATE dbo.Evidencias SET Transcripcion = :transcripcion, ActualizadoEn = :ahora
WHERE MensajeId = :message_id;
