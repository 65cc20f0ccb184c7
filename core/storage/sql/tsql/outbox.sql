-- ColaEnvios: the outbound queue.

-- name: enqueue_outbound
INSERT INTO dbo.ColaEnvios (Destinatario, Tipo, Contenido, Estado, ProximoIntento, MessageIdOrigen, Campana)
VALUES (:destinatario, :tipo, :contenido, N'pendiente', :ahora, :message_id_origen, NULL);
