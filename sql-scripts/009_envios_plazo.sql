-- A reply is worth sending only for so long (Meta's 24 h customer-service window): VenceEn (epoch ms) is
-- when the outbox gives it up; NULL means no deadline. Aplazamientos counts every retry-later (throttled,
-- no connection, 5xx) and is the exponent of the backoff, while Intentos counts only the attempts that
-- may have failed on Meta's side (the ones OUTBOX_MAX_ATTEMPTS bounds). The column additions are
-- metadata-only (NULL columns, and a NOT NULL column with a constant default): no rewrite of existing rows.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
IF COL_LENGTH(N'dbo.ColaEnvios', N'VenceEn') IS NULL
    ALTER TABLE dbo.ColaEnvios ADD VenceEn BIGINT NULL;
GO
IF COL_LENGTH(N'dbo.ColaEnvios', N'Aplazamientos') IS NULL
    ALTER TABLE dbo.ColaEnvios ADD Aplazamientos INT NOT NULL CONSTRAINT DF_ColaEnvios_Aplazamientos DEFAULT 0;
GO
-- The business number (Meta's phone_number_id) the user wrote to; the reply goes out from it. NULL: the
-- default number (WHATSAPP_PHONE_NUMBER_ID).
IF COL_LENGTH(N'dbo.ColaEnvios', N'NumeroNegocio') IS NULL
    ALTER TABLE dbo.ColaEnvios ADD NumeroNegocio NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NULL;
GO
-- One send limit per business number, shared by every instance: a token bucket row, in thousandths of a
-- token, refilled from ActualizadoEn at the number's rate and taken in small batches before each claim.
IF OBJECT_ID(N'dbo.LimiteEnvios', N'U') IS NULL
    CREATE TABLE dbo.LimiteEnvios (
        NumeroNegocio NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL CONSTRAINT PK_LimiteEnvios PRIMARY KEY,
        MiliTokens    BIGINT NOT NULL,
        ActualizadoEn BIGINT NOT NULL,
        PausaHasta    BIGINT NOT NULL CONSTRAINT DF_LimiteEnvios_PausaHasta DEFAULT 0
    );
GO
IF NOT EXISTS (SELECT 1 FROM dbo.SchemaVersion WHERE Version = 9)
    INSERT INTO dbo.SchemaVersion (Version, Nombre) VALUES (9, N'009_envios_plazo');
