-- ColaEnvios: the outbound queue.

-- name: enqueue_outbound
-- The reply goes out from the business number the user wrote to: the inbound message's
-- metadata.phone_number_id, kept in its inbox row's payload (NULL: the default number).
INSERT INTO ColaEnvios (Destinatario, Tipo, Contenido, Estado, ProximoIntento, MessageIdOrigen, Campana, VenceEn,
                        NumeroNegocio)
VALUES (:destinatario, :tipo_envio, :contenido, 'pendiente', :ahora, :message_id_origen, NULL, :vence_en,
        (SELECT json_extract(m.Payload, '$.business_number') FROM MensajesProcesados AS m WHERE m.MessageId = :message_id_origen));

-- Claims are head-of-line per recipient: a row is claimable only when no earlier row of the same
-- recipient is still open ('pendiente' or 'procesando'). So one claim takes at most one row per
-- recipient, and a user's reply 2 cannot be claimed (by anyone) until reply 1 is settled: sent,
-- failed for good, or 'incierto'. The subquery sees only committed rows, which can only make it
-- more cautious, never less.

-- name: claim_outbound
UPDATE ColaEnvios
SET Estado = 'procesando', TokenReclamo = :token_reclamo, ReclamadoEn = :ahora, Intentos = Intentos + 1
WHERE Id IN (
    SELECT c.Id FROM ColaEnvios AS c
    WHERE c.Estado = 'pendiente' AND c.ProximoIntento <= :ahora
      AND (c.VenceEn IS NULL OR c.VenceEn > :ahora)
      AND (c.NumeroNegocio = :numero_negocio OR (c.NumeroNegocio IS NULL AND :numero_negocio = :numero_predeterminado))
      AND NOT EXISTS (
          SELECT 1 FROM ColaEnvios AS p
          WHERE p.Destinatario = c.Destinatario AND p.Id < c.Id AND p.Estado IN ('pendiente', 'procesando')
      )
    ORDER BY c.Id
    LIMIT :n
)
RETURNING Id, Destinatario, Tipo, Contenido, Intentos, Aplazamientos, Campana, MessageIdOrigen, TokenReclamo,
          NumeroNegocio;

-- name: claim_outbound_recipient
UPDATE ColaEnvios
SET Estado = 'procesando', TokenReclamo = :token_reclamo, ReclamadoEn = :ahora, Intentos = Intentos + 1
WHERE Id IN (
    SELECT c.Id FROM ColaEnvios AS c
    WHERE c.Destinatario = :destinatario AND c.Estado = 'pendiente' AND c.ProximoIntento <= :ahora
      AND (c.VenceEn IS NULL OR c.VenceEn > :ahora)
      AND (c.NumeroNegocio = :numero_negocio OR (c.NumeroNegocio IS NULL AND :numero_negocio = :numero_predeterminado))
      AND NOT EXISTS (
          SELECT 1 FROM ColaEnvios AS p
          WHERE p.Destinatario = c.Destinatario AND p.Id < c.Id AND p.Estado IN ('pendiente', 'procesando')
      )
    ORDER BY c.Id
    LIMIT :n
)
RETURNING Id, Destinatario, Tipo, Contenido, Intentos, Aplazamientos, Campana, MessageIdOrigen, TokenReclamo,
          NumeroNegocio;

-- name: mark_outbound_sent
UPDATE ColaEnvios
SET Estado = 'enviado', WamidEnviado = :wamid, EnviadoEn = :ahora, UltimoError = NULL
WHERE Id = :id AND TokenReclamo = :token_reclamo AND Estado = 'procesando';

-- name: mark_outbound_retry
-- :descontar is 1 for an attempt that provably never reached Meta or that Meta throttled: it gives back
-- the attempt the claim counted, so only real failures use up OUTBOX_MAX_ATTEMPTS. Every retry-later
-- adds to Aplazamientos, the exponent of the next backoff.
UPDATE ColaEnvios
SET Estado = CASE WHEN Intentos - :descontar >= :max_intentos THEN 'error' ELSE 'pendiente' END,
    Intentos = Intentos - :descontar, Aplazamientos = Aplazamientos + 1,
    ProximoIntento = :proximo_intento, UltimoError = :error
WHERE Id = :id AND TokenReclamo = :token_reclamo AND Estado = 'procesando';

-- name: mark_outbound_failed
UPDATE ColaEnvios
SET Estado = 'error', UltimoError = :error
WHERE Id = :id AND TokenReclamo = :token_reclamo AND Estado = 'procesando';

-- name: mark_outbound_uncertain
UPDATE ColaEnvios
SET Estado = 'incierto', UltimoError = :error
WHERE Id = :id AND TokenReclamo = :token_reclamo AND Estado = 'procesando';

-- name: release_outbound_claim
-- The send was cancelled before its request left: hand the row back as if it had never been claimed
-- (the attempt the claim counted is given back too).
UPDATE ColaEnvios
SET Estado = 'pendiente', Intentos = CASE WHEN Intentos > 0 THEN Intentos - 1 ELSE 0 END,
    TokenReclamo = NULL, ReclamadoEn = NULL
WHERE Id = :id AND TokenReclamo = :token_reclamo AND Estado = 'procesando';

-- name: settle_outbound_uncertain
UPDATE ColaEnvios
SET Estado = 'incierto', UltimoError = :error
WHERE Estado = 'procesando' AND ReclamadoEn < :limite;

-- name: settle_outbound_requeue
UPDATE ColaEnvios
SET Estado = CASE WHEN Intentos >= :max_intentos THEN 'incierto' ELSE 'pendiente' END,
    ProximoIntento = :ahora, UltimoError = :error
WHERE Estado = 'procesando' AND ReclamadoEn < :limite;

-- name: enqueue_campaign
INSERT INTO ColaEnvios (Destinatario, Tipo, Contenido, Estado, ProximoIntento, MessageIdOrigen, Campana, VenceEn)
VALUES (:destinatario, :tipo_envio, :contenido, 'pendiente', :ahora, NULL, :campana, :vence_en)
ON CONFLICT DO NOTHING;

-- name: count_outbound_campaign
SELECT Estado AS estado, COUNT(*) AS total FROM ColaEnvios WHERE Campana = :campana GROUP BY Estado;

-- name: get_outbound
SELECT Id, Destinatario, Tipo, Contenido, Estado, Intentos, ProximoIntento, TokenReclamo, ReclamadoEn,
       WamidEnviado, EstadoEntrega, UltimoError, Campana, MessageIdOrigen, EnviadoEn, VenceEn, Aplazamientos,
       NumeroNegocio
FROM ColaEnvios WHERE Id = :id;

-- name: claimed_with_token
-- The rows a claim token already holds: a claim retried after a commit whose answer was lost gets
-- these back instead of claiming more (and stranding the first batch until it turns incierto).
SELECT Id, Destinatario, Tipo, Contenido, Intentos, Aplazamientos, Campana, MessageIdOrigen, TokenReclamo,
       NumeroNegocio
FROM ColaEnvios
WHERE Estado = 'procesando' AND TokenReclamo = :token_reclamo;

-- name: outbound_status_behind
-- Sent rows whose recorded delivery statuses (in the ledger, keyed wamid:status) are ahead of the row:
-- a status registered while the send's wamid was not yet visible to it (possible under read-committed
-- snapshot), which neither side applied. The outbox sweep catches them up. In EnviadoEn order, the order of
-- IX_ColaEnvios_Enviados: in Id order the engine walked the clustered index from the oldest send instead.
SELECT c.WamidEnviado AS wamid
FROM ColaEnvios AS c
WHERE c.Estado = 'enviado' AND c.WamidEnviado IS NOT NULL AND c.EnviadoEn >= :desde
  AND (c.EstadoEntrega IS NULL OR c.EstadoEntrega <> 'failed')
  AND (EXISTS (SELECT 1 FROM MensajesProcesados AS m WHERE m.MessageId = c.WamidEnviado || ':failed')
       OR (COALESCE(c.EstadoEntrega, '') NOT IN ('read')
           AND EXISTS (SELECT 1 FROM MensajesProcesados AS m WHERE m.MessageId = c.WamidEnviado || ':read'))
       OR (COALESCE(c.EstadoEntrega, '') NOT IN ('read', 'delivered')
           AND EXISTS (SELECT 1 FROM MensajesProcesados AS m WHERE m.MessageId = c.WamidEnviado || ':delivered'))
       OR (c.EstadoEntrega IS NULL
           AND EXISTS (SELECT 1 FROM MensajesProcesados AS m WHERE m.MessageId = c.WamidEnviado || ':sent')))
ORDER BY c.EnviadoEn
LIMIT :n;

-- name: abandon_outbound_expired
-- Rows still waiting past their deadline (VenceEn) can no longer be useful: 'error', reason kept. Bounded
-- per call; the sweep calls it every run.
UPDATE ColaEnvios
SET Estado = 'error', UltimoError = :error
WHERE Id IN (SELECT Id FROM ColaEnvios WHERE Estado = 'pendiente' AND VenceEn <= :ahora ORDER BY Id LIMIT :n)
RETURNING Id, Destinatario;

-- name: outbound_head_numbers
-- The business numbers the recipient's open rows go out from, so the eager path takes the right
-- number's send-limit tokens before it claims.
SELECT DISTINCT c.NumeroNegocio AS numero
FROM ColaEnvios AS c
WHERE c.Destinatario = :destinatario AND c.Estado = 'pendiente';
