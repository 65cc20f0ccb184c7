-- ColaEnvios: the outbound queue.

-- name: enqueue_outbound
INSERT INTO ColaEnvios (Destinatario, Tipo, Contenido, Estado, ProximoIntento, MessageIdOrigen, Campana)
VALUES (:destinatario, :tipo, :contenido, 'pendiente', :ahora, :message_id_origen, NULL);
