-- A reply is worth sending only for so long (Meta's 24 h customer-service window): VenceEn (epoch ms) is
-- when the outbox gives it up; NULL means no deadline. Aplazamientos counts every retry-later (throttled,
-- no connection, 5xx) and is the exponent of the backoff, while Intentos counts only the attempts that
-- may have failed on Meta's side (the ones OUTBOX_MAX_ATTEMPTS bounds).
ALTER TABLE ColaEnvios ADD COLUMN VenceEn INTEGER NULL;
ALTER TABLE ColaEnvios ADD COLUMN Aplazamientos INTEGER NOT NULL DEFAULT 0;
