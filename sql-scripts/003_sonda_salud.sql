-- The health check writes one row here to prove the database accepts writes: a read-only, full or
-- failed-over database answers reads and still loses every write, and the health check must say so.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
IF OBJECT_ID(N'dbo.SondaSalud', N'U') IS NULL
    CREATE TABLE dbo.SondaSalud (
        Id        INT    NOT NULL CONSTRAINT PK_SondaSalud PRIMARY KEY CONSTRAINT CK_SondaSalud_Id CHECK (Id = 1),
        EscritoEn BIGINT NOT NULL
    );
GO
IF NOT EXISTS (SELECT 1 FROM dbo.SchemaVersion WHERE Version = 3)
    INSERT INTO dbo.SchemaVersion (Version, Nombre) VALUES (3, N'003_sonda_salud');
