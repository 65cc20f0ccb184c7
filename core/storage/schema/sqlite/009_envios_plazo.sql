-- A reply is worth sending only for so long (Meta's 24 h customer-service window): VenceEn (epoch ms) is
-- when the outbox gives it up; NULL means no deadline. Aplazamientos counts every retry-later (throttled,
-- no connection, 5xx) and is the exponent of the backoff, while Intentos counts only the attempts that
-- may have failed on Meta's side (the ones OUTBOX_MAX_ATTEMPTS bounds).
ALTER TABLE ColaEnvios ADD COLUMN VenceEn INTEGER NULL;
ALTER TABLE ColaEnvios ADD COLUMN Aplazamientos INTEGER NOT NULL DEFAULT 0;
-- The business number (Meta's phone_number_id) the user wrote to; the reply goes out from it. NULL: the
-- default number (WHATSAPP_PHONE_NUMBER_ID).
ALTER TABLE ColaEnvios ADD COLUMN NumeroNegocio TEXT NULL;
-- One send limit per business number, shared by every instance: a token bucket row, in thousandths of a
-- token, refilled from ActualizadoEn at the number's rate and taken in small batches before each claim.
CREATE TABLE IF NOT EXISTS LimiteEnvios (
    NumeroNegocio TEXT PRIMARY KEY,
    MiliTokens    INTEGER NOT NULL,
    ActualizadoEn INTEGER NOT NULL,
    PausaHasta    INTEGER NOT NULL DEFAULT 0
);
