-- Evidencias: media a user sent, recorded with the message's transition and downloaded afterwards.
-- A download claims its row first (compare-and-set on Estado, ProximoIntento and a token), so two
-- processes never fetch the same body at once; every later change is fenced by that token.

-- name: evidence_record
INSERT INTO Evidencias (Telefono, MensajeId, MediaId, Tipo, Mime, Sha256, Nombre, Estado, CreadoEn, ActualizadoEn)
VALUES (:telefono, :message_id, :media_id, :tipo_evidencia, :mime, :sha256, :nombre_archivo, 'pendiente', :ahora, :ahora)
ON CONFLICT (MensajeId) DO NOTHING;

-- name: evidence_attach
UPDATE Evidencias SET ReporteId = :reporte_id, ActualizadoEn = :ahora
WHERE MensajeId = :message_id AND Telefono = :telefono AND ReporteId IS NULL;

-- name: evidence_for_report
SELECT Id, Telefono, MensajeId, MediaId, Tipo, Mime, Sha256, Tamano, Nombre, Ruta, Estado, Intentos, UltimoError,
       ReporteId, Transcripcion, CreadoEn, ActualizadoEn
FROM Evidencias
WHERE ReporteId = :reporte_id
ORDER BY Id;

-- name: evidence_for_phone
SELECT Id, Telefono, MensajeId, MediaId, Tipo, Mime, Sha256, Tamano, Nombre, Ruta, Estado, Intentos, UltimoError,
       ReporteId, Transcripcion, CreadoEn, ActualizadoEn
FROM Evidencias
WHERE Telefono = :telefono
ORDER BY Id DESC
LIMIT :limite;

-- name: evidence_by_message
SELECT Id, Telefono, MensajeId, MediaId, Tipo, Mime, Sha256, Tamano, Nombre, Ruta, Estado, Intentos, UltimoError,
       ReporteId, Transcripcion, CreadoEn, ActualizadoEn
FROM Evidencias
WHERE MensajeId = :message_id;

-- name: evidence_due
SELECT Id FROM Evidencias
WHERE Estado = 'pendiente' AND ProximoIntento <= :ahora
ORDER BY ProximoIntento, Id
LIMIT :n;

-- name: evidence_due_for_phone
SELECT Id FROM Evidencias
WHERE Telefono = :telefono AND Estado = 'pendiente' AND ProximoIntento <= :ahora
ORDER BY ProximoIntento, Id
LIMIT :n;

-- name: evidence_claim
-- The claim holds the row until :expira; a worker that dies mid-download leaves it due again then.
UPDATE Evidencias
SET TokenReclamo = :token_reclamo, ProximoIntento = :expira, Intentos = Intentos + 1, ActualizadoEn = :ahora
WHERE Id = :id AND Estado = 'pendiente' AND ProximoIntento <= :ahora;

-- name: evidence_claimed
SELECT Id, Telefono, MensajeId, MediaId, Tipo, Mime, Sha256, Tamano, Nombre, Ruta, Estado, Intentos, UltimoError,
       ReporteId, Transcripcion, CreadoEn, ActualizadoEn
FROM Evidencias
WHERE Id = :id AND TokenReclamo = :token_reclamo AND Estado = 'pendiente';

-- name: evidence_mark_saved
UPDATE Evidencias
SET Estado = 'guardada', Ruta = :ruta, Tamano = :tamano, Mime = :mime, TokenReclamo = NULL, UltimoError = NULL,
    ActualizadoEn = :ahora
WHERE Id = :id AND TokenReclamo = :token_reclamo AND Estado = 'pendiente';

-- name: evidence_mark_failed
-- :max_intentos 0 makes the failure final at once (a body that can never be right: too big, wrong type).
UPDATE Evidencias
SET Estado = CASE WHEN Intentos >= :max_intentos THEN 'error' ELSE 'pendiente' END,
    ProximoIntento = :proximo_intento, UltimoError = :error, TokenReclamo = NULL, ActualizadoEn = :ahora
WHERE Id = :id AND TokenReclamo = :token_reclamo AND Estado = 'pendiente';

-- name: evidence_set_transcript
UPDATE Evidencias SET Transcripcion = :transcripcion, ActualizadoEn = :ahora
WHERE MensajeId = :message_id;
