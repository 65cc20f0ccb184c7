-- LimiteEnvios: one token bucket per business number, shared by every instance. The dispatcher reads,
-- refills and takes in one write transaction; UPDLOCK on the read makes two instances take turns on the
-- row instead of both reading the same tokens.

-- name: send_limit_ensure
INSERT INTO dbo.LimiteEnvios (NumeroNegocio, MiliTokens, ActualizadoEn, PausaHasta)
SELECT :numero_negocio, :mili_tokens, :ahora, 0
WHERE NOT EXISTS (SELECT 1 FROM dbo.LimiteEnvios AS l WITH (UPDLOCK, HOLDLOCK) WHERE l.NumeroNegocio = :numero_negocio);

-- name: send_limit_read
SELECT l.MiliTokens, l.ActualizadoEn, l.PausaHasta
FROM dbo.LimiteEnvios AS l WITH (UPDLOCK, ROWLOCK)
WHERE l.NumeroNegocio = :numero_negocio;

-- name: send_limit_write
UPDATE dbo.LimiteEnvios
SET MiliTokens = :mili_tokens, ActualizadoEn = :ahora, PausaHasta = :pausa_hasta
WHERE NumeroNegocio = :numero_negocio;
