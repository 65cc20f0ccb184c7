-- EjecucionesIA: assistant background responses in flight, and the AI conversation id on the session.
-- Estado holds the provider's status: queued / in_progress while active; completed / failed /
-- cancelled / incomplete once settled. Settling is conditional on still being active, so the webhook
-- and the sweeper can race to finish one response and exactly one of them delivers its answer.

-- name: insert_ai_run
INSERT INTO EjecucionesIA (Id, Telefono, ConversacionId, Estado, MessageId, Resultado, CreadoEn, ActualizadoEn)
VALUES (:ejecucion_id, :telefono, :conversacion_id, :estado, :message_id, NULL, :ahora, :ahora);

-- name: get_ai_run
SELECT Id, Telefono, ConversacionId, Estado, MessageId, Resultado, CreadoEn, ActualizadoEn
FROM EjecucionesIA WHERE Id = :ejecucion_id;

-- name: has_active_ai_run
SELECT 1 AS Activa FROM EjecucionesIA
WHERE Telefono = :telefono AND Estado IN ('queued', 'in_progress')
LIMIT 1;

-- name: list_active_ai_runs
SELECT Id, Telefono, ConversacionId, Estado, MessageId, Resultado, CreadoEn, ActualizadoEn
FROM EjecucionesIA
WHERE Estado IN ('queued', 'in_progress')
ORDER BY CreadoEn, Id
LIMIT :limite;

-- name: list_active_ai_runs_for_phone
SELECT Id, Telefono, ConversacionId, Estado, MessageId, Resultado, CreadoEn, ActualizadoEn
FROM EjecucionesIA
WHERE Telefono = :telefono AND Estado IN ('queued', 'in_progress')
ORDER BY CreadoEn, Id;

-- name: update_active_ai_run_status
UPDATE EjecucionesIA SET Estado = :estado, ActualizadoEn = :ahora
WHERE Id = :ejecucion_id AND Estado IN ('queued', 'in_progress');

-- name: settle_ai_run
UPDATE EjecucionesIA SET Estado = :estado, Resultado = :resultado, ActualizadoEn = :ahora
WHERE Id = :ejecucion_id AND Estado IN ('queued', 'in_progress');

-- name: get_ai_conversation
SELECT ConversacionIA FROM SesionesChat WHERE Telefono = :telefono;

-- name: set_ai_conversation
UPDATE SesionesChat SET ConversacionIA = :conversacion_id WHERE Telefono = :telefono;
