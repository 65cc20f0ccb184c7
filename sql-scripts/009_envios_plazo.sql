-- A reply is worth sending only for so long (Meta's 24 h customer-service window): VenceEn (epoch ms) is
-- when the outbox gives it up; NULL means no deadline. Aplazamientos counts every retry-later (throttled,
-- no connection, 5xx) and is the exponent of the backoff, while Intentos counts only the attempts that
-- may have failed on Meta's side (the ones OUTBOX_MAX_ATTEMPTS bounds). Both are metadata-only column
-- additions (a NULL column, and a NOT NULL column with a constant default): no rewrite of existing rows.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
IF COL_LENGTH(N'dbo.ColaEnvios', N'VenceEn') IS NULL
    ALTER TABLE dbo.ColaEnvios ADD VenceEn BIGINT NULL;
GO
IF COL_LENGTH(N'dbo.ColaEnvios', N'Aplazamientos') IS NULL
    ALTER TABLE dbo.ColaEnvios ADD Aplazamientos INT NOT NULL CONSTRAINT DF_ColaEnvios_Aplazamientos DEFAULT 0;
GO
IF NOT EXISTS (SELECT 1 FROM dbo.SchemaVersion WHERE Version = 9)
    INSERT INTO dbo.SchemaVersion (Version, Nombre) VALUES (9, N'009_envios_plazo');
