-- EjecucionesIA: assistant background responses in flight, and the AI conversation id on the session.
-- Estado holds the provider's status: queued / in_progress while active; completed / failed /
-- cancelled / incomplete once settled. Settling is conditional on still being active, so the webhook
-- and the sweeper can race to finish one response and exactly one of them delivers its answer.

-- name: insert_ai_run
INSERT INTO dbo.EjecucionesIA (Id, Telefono, ConversacionId, Estado, MessageId, Resultado, CreadoEn, ActualizadoEn)
VALUES (:ejecucion_id, :telefono, :conversacion_id, :estado, :message_id, NULL, :ahora, :ahora);

-- name: get_ai_run
SELECT Id, Telefono, ConversacionId, Estado, MessageId, Resultado, CreadoEn, ActualizadoEn
FROM dbo.EjecucionesIA WHERE Id = :ejecucion_id;

-- name: has_active_ai_run
SELECT TOP (1) 1 AS Activa FROM dbo.EjecucionesIA
WHERE Telefono = :telefono AND Estado IN (N'queued', N'in_progress');

-- name: list_active_ai_runs
SELECT TOP (:limite) Id, Telefono, ConversacionId, Estado, MessageId, Resultado, CreadoEn, ActualizadoEn
FROM dbo.EjecucionesIA
WHERE Estado IN (N'queued', N'in_progress')
ORDER BY CreadoEn, Id;

-- name: list_active_ai_runs_for_phone
-- scan: a sort of one phone's active runs, found by IX_EjecucionesIA_Telefono (a handful of rows)
SELECT Id, Telefono, ConversacionId, Estado, MessageId, Resultado, CreadoEn, ActualizadoEn
FROM dbo.EjecucionesIA
WHERE Telefono = :telefono AND Estado IN (N'queued', N'in_progress')
ORDER BY CreadoEn, Id;

-- name: update_active_ai_run_status
UPDATE dbo.EjecucionesIA SET Estado = :estado, ActualizadoEn = :ahora
WHERE Id = :ejecucion_id AND Estado IN (N'queued', N'in_progress');

-- name: settle_ai_run
UPDATE dbo.EjecucionesIA SET Estado = :estado, Resultado = :resultado, ActualizadoEn = :ahora
WHERE Id = :ejecucion_id AND Estado IN (N'queued', N'in_progress');

-- name: get_ai_conversation
SELECT ConversacionIA FROM dbo.SesionesChat WHERE Telefono = :telefono;

-- name: set_ai_conversation
UPDATE dbo.SesionesChat SET ConversacionIA = :conversacion_id WHERE Telefono = :telefono;
