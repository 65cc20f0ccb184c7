-- ColaEnvios: the outbound queue.

-- name: enqueue_outbound
-- The reply goes out from the business number the user wrote to: the inbound message's
-- metadata.phone_number_id, kept in its inbox row's payload (NULL: the default number).
INSERT INTO dbo.ColaEnvios (Destinatario, Tipo, Contenido, Estado, ProximoIntento, MessageIdOrigen, Campana, VenceEn,
                        NumeroNegocio)
VALUES (:destinatario, :tipo_envio, :contenido, N'pendiente', :ahora, :message_id_origen, NULL, :vence_en,
        (SELECT JSON_VALUE(m.Payload, '$.business_number') FROM dbo.MensajesProcesados AS m WHERE m.MessageId = :message_id_origen));

-- Claims are head-of-line per recipient: a row is claimable only when no earlier row of the same
-- recipient is still open (N'pendiente' or N'procesando'). So one claim takes at most one row per
-- recipient, and a user's reply 2 cannot be claimed (by anyone) until reply 1 is settled. Under
-- read-committed snapshot the NOT EXISTS reads the last committed versions, in which an earlier
-- row being claimed right now is still 'pendiente': that only makes the claim more cautious.
-- `UPDATE TOP (n)` cannot take ORDER BY and sqlglot cannot read it, so the claim updates an
-- ordered TOP CTE instead, which SQL Server treats the same way.

-- name: claim_outbound
WITH next AS (
    SELECT TOP (:n) c.Id, c.Destinatario, c.Tipo, c.Contenido, c.Estado, c.Intentos, c.Campana,
           c.MessageIdOrigen, c.TokenReclamo, c.ReclamadoEn, c.Aplazamientos, c.NumeroNegocio
    FROM dbo.ColaEnvios AS c WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)
    WHERE c.Estado = N'pendiente' AND c.ProximoIntento <= :ahora
      AND (c.VenceEn IS NULL OR c.VenceEn > :ahora)
      AND (c.NumeroNegocio = :numero_negocio OR (c.NumeroNegocio IS NULL AND :numero_negocio = :numero_predeterminado))
      AND NOT EXISTS (
          -- A locking read: under read-committed snapshot an uncommitted earlier reply would be invisible
          -- and a later one could go first. READCOMMITTEDLOCK waits for it instead.
          SELECT 1 FROM dbo.ColaEnvios AS p WITH (READCOMMITTEDLOCK)
          WHERE p.Destinatario = c.Destinatario AND p.Id < c.Id AND p.Estado IN (N'pendiente', N'procesando')
      )
    ORDER BY c.Id
)
UPDATE next
SET Estado = N'procesando', TokenReclamo = :token_reclamo, ReclamadoEn = :ahora, Intentos = Intentos + 1
OUTPUT inserted.Id, inserted.Destinatario, inserted.Tipo, inserted.Contenido, inserted.Intentos,
       inserted.Aplazamientos, inserted.Campana, inserted.MessageIdOrigen, inserted.TokenReclamo,
       inserted.NumeroNegocio;

-- name: claim_outbound_recipient
WITH next AS (
    SELECT TOP (:n) c.Id, c.Destinatario, c.Tipo, c.Contenido, c.Estado, c.Intentos, c.Campana,
           c.MessageIdOrigen, c.TokenReclamo, c.ReclamadoEn, c.Aplazamientos, c.NumeroNegocio
    FROM dbo.ColaEnvios AS c WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)
    WHERE c.Destinatario = :destinatario AND c.Estado = N'pendiente' AND c.ProximoIntento <= :ahora
      AND (c.VenceEn IS NULL OR c.VenceEn > :ahora)
      AND (c.NumeroNegocio = :numero_negocio OR (c.NumeroNegocio IS NULL AND :numero_negocio = :numero_predeterminado))
      AND NOT EXISTS (
          -- A locking read: under read-committed snapshot an uncommitted earlier reply would be invisible
          -- and a later one could go first. READCOMMITTEDLOCK waits for it instead.
          SELECT 1 FROM dbo.ColaEnvios AS p WITH (READCOMMITTEDLOCK)
          WHERE p.Destinatario = c.Destinatario AND p.Id < c.Id AND p.Estado IN (N'pendiente', N'procesando')
      )
    ORDER BY c.Id
)
UPDATE next
SET Estado = N'procesando', TokenReclamo = :token_reclamo, ReclamadoEn = :ahora, Intentos = Intentos + 1
OUTPUT inserted.Id, inserted.Destinatario, inserted.Tipo, inserted.Contenido, inserted.Intentos,
       inserted.Aplazamientos, inserted.Campana, inserted.MessageIdOrigen, inserted.TokenReclamo,
       inserted.NumeroNegocio;

-- name: mark_outbound_sent
UPDATE dbo.ColaEnvios
SET Estado = N'enviado', WamidEnviado = :wamid, EnviadoEn = :ahora, UltimoError = NULL
WHERE Id = :id AND TokenReclamo = :token_reclamo AND Estado = N'procesando';

-- name: mark_outbound_retry
-- :descontar is 1 for an attempt that provably never reached Meta or that Meta throttled: it gives back
-- the attempt the claim counted, so only real failures use up OUTBOX_MAX_ATTEMPTS. Every retry-later
-- adds to Aplazamientos, the exponent of the next backoff.
UPDATE dbo.ColaEnvios
SET Estado = CASE WHEN Intentos - :descontar >= :max_intentos THEN N'error' ELSE N'pendiente' END,
    Intentos = Intentos - :descontar, Aplazamientos = Aplazamientos + 1,
    ProximoIntento = :proximo_intento, UltimoError = :error
WHERE Id = :id AND TokenReclamo = :token_reclamo AND Estado = N'procesando';

-- name: mark_outbound_failed
UPDATE dbo.ColaEnvios
SET Estado = N'error', UltimoError = :error
WHERE Id = :id AND TokenReclamo = :token_reclamo AND Estado = N'procesando';

-- name: mark_outbound_uncertain
UPDATE dbo.ColaEnvios
SET Estado = N'incierto', UltimoError = :error
WHERE Id = :id AND TokenReclamo = :token_reclamo AND Estado = N'procesando';

-- name: release_outbound_claim
-- The send was cancelled before its request left: hand the row back as if it had never been claimed
-- (the attempt the claim counted is given back too).
UPDATE dbo.ColaEnvios
SET Estado = N'pendiente', Intentos = CASE WHEN Intentos > 0 THEN Intentos - 1 ELSE 0 END,
    TokenReclamo = NULL, ReclamadoEn = NULL
WHERE Id = :id AND TokenReclamo = :token_reclamo AND Estado = N'procesando';

-- name: settle_outbound_uncertain
UPDATE dbo.ColaEnvios
SET Estado = N'incierto', UltimoError = :error
WHERE Estado = N'procesando' AND ReclamadoEn < :limite;

-- name: settle_outbound_requeue
UPDATE dbo.ColaEnvios
SET Estado = CASE WHEN Intentos >= :max_intentos THEN N'incierto' ELSE N'pendiente' END,
    ProximoIntento = :ahora, UltimoError = :error
WHERE Estado = N'procesando' AND ReclamadoEn < :limite;

-- name: enqueue_campaign
MERGE dbo.ColaEnvios WITH (HOLDLOCK) AS t
USING (SELECT :campana AS Campana, :destinatario AS Destinatario) AS s
    ON t.Campana = s.Campana AND t.Destinatario = s.Destinatario
WHEN NOT MATCHED THEN
    INSERT (Destinatario, Tipo, Contenido, Estado, ProximoIntento, MessageIdOrigen, Campana, VenceEn)
    VALUES (s.Destinatario, :tipo_envio, :contenido, N'pendiente', :ahora, NULL, s.Campana, :vence_en);

-- name: count_outbound_campaign
SELECT Estado AS estado, COUNT(*) AS total FROM dbo.ColaEnvios WHERE Campana = :campana GROUP BY Estado;

-- name: get_outbound
SELECT Id, Destinatario, Tipo, Contenido, Estado, Intentos, ProximoIntento, TokenReclamo, ReclamadoEn,
       WamidEnviado, EstadoEntrega, UltimoError, Campana, MessageIdOrigen, EnviadoEn, VenceEn, Aplazamientos,
       NumeroNegocio
FROM dbo.ColaEnvios WHERE Id = :id;

-- name: claimed_with_token
-- The rows a claim token already holds: a claim retried after a commit whose answer was lost gets
-- these back instead of claiming more (and stranding the first batch until it turns incierto).
SELECT Id, Destinatario, Tipo, Contenido, Intentos, Aplazamientos, Campana, MessageIdOrigen, TokenReclamo,
       NumeroNegocio
FROM dbo.ColaEnvios
WHERE Estado = N'procesando' AND TokenReclamo = :token_reclamo;

-- name: outbound_status_behind
-- Sent rows whose recorded delivery statuses (in the ledger, keyed wamid:status) are ahead of the row:
-- a status registered while the send's wamid was not yet visible to it (possible under read-committed
-- snapshot), which neither side applied. The outbox sweep catches them up. In EnviadoEn order, the order of
-- IX_ColaEnvios_Enviados: in Id order the engine walked the clustered index from the oldest send instead.
SELECT TOP (:n) c.WamidEnviado AS wamid
FROM dbo.ColaEnvios AS c
WHERE c.Estado = N'enviado' AND c.WamidEnviado IS NOT NULL AND c.EnviadoEn >= :desde
  AND (c.EstadoEntrega IS NULL OR c.EstadoEntrega <> N'failed')
  AND (EXISTS (SELECT 1 FROM dbo.MensajesProcesados AS m WHERE m.MessageId = c.WamidEnviado + N':failed')
       OR (COALESCE(c.EstadoEntrega, N'') NOT IN (N'read')
           AND EXISTS (SELECT 1 FROM dbo.MensajesProcesados AS m WHERE m.MessageId = c.WamidEnviado + N':read'))
       OR (COALESCE(c.EstadoEntrega, N'') NOT IN (N'read', N'delivered')
           AND EXISTS (SELECT 1 FROM dbo.MensajesProcesados AS m WHERE m.MessageId = c.WamidEnviado + N':delivered'))
       OR (c.EstadoEntrega IS NULL
           AND EXISTS (SELECT 1 FROM dbo.MensajesProcesados AS m WHERE m.MessageId = c.WamidEnviado + N':sent')))
ORDER BY c.EnviadoEn
;

-- name: abandon_outbound_expired
-- Rows still waiting past their deadline (VenceEn) can no longer be useful: 'error', reason kept. Bounded
-- per call; the sweep calls it every run. READPAST: a row being claimed right now is not expired yet.
WITH expired AS (
    SELECT TOP (:n) c.Id, c.Destinatario, c.Estado, c.UltimoError
    FROM dbo.ColaEnvios AS c WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)
    WHERE c.Estado = N'pendiente' AND c.VenceEn <= :ahora
    ORDER BY c.Id
)
UPDATE expired
SET Estado = N'error', UltimoError = :error
OUTPUT inserted.Id, inserted.Destinatario;

-- name: outbound_head_numbers
-- The business numbers the recipient's open rows go out from, so the eager path takes the right
-- number's send-limit tokens before it claims.
SELECT DISTINCT c.NumeroNegocio AS numero
FROM dbo.ColaEnvios AS c
WHERE c.Destinatario = :destinatario AND c.Estado = N'pendiente';
