-- LimiteEnvios: one token bucket per business number, shared by every instance. The dispatcher reads,
-- refills and takes in one write transaction (SQLite: BEGIN IMMEDIATE serializes them).

-- name: send_limit_ensure
INSERT INTO LimiteEnvios (NumeroNegocio, MiliTokens, ActualizadoEn, PausaHasta)
VALUES (:numero_negocio, :mili_tokens, :ahora, 0)
ON CONFLICT DO NOTHING;

-- name: send_limit_read
SELECT MiliTokens, ActualizadoEn, PausaHasta FROM LimiteEnvios WHERE NumeroNegocio = :numero_negocio;

-- name: send_limit_write
UPDATE LimiteEnvios
SET MiliTokens = :mili_tokens, ActualizadoEn = :ahora, PausaHasta = :pausa_hasta
WHERE NumeroNegocio = :numero_negocio;
