-- Every table of the bot. Idempotent: every object is created only if missing.
-- sqlcmd -S <server> -d <db> -b -I -i sql-scripts/001_esquema_inicial.sql
-- Every script sets these itself: classic sqlcmd connects with QUOTED_IDENTIFIER OFF, and filtered
-- indexes refuse to be built without both (Msg 1934).
SET NOCOUNT ON;
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
IF OBJECT_ID(N'dbo.Equipos', N'U') IS NULL
    CREATE TABLE dbo.Equipos (
        Id          INT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_Equipos PRIMARY KEY,
        CodigoSAP   NVARCHAR(40)  NOT NULL CONSTRAINT UX_Equipos_CodigoSAP UNIQUE,
        TipoEquipo  NVARCHAR(20)  NOT NULL CONSTRAINT CK_Equipos_Tipo CHECK (TipoEquipo IN (N'REFRIGERADOR', N'VEHICULO')),
        Descripcion NVARCHAR(200) NOT NULL,
        Ubicacion   NVARCHAR(200) NOT NULL,
        Activo      BIT NOT NULL CONSTRAINT DF_Equipos_Activo DEFAULT 1
    );
GO
IF OBJECT_ID(N'dbo.SesionesChat', N'U') IS NULL
    CREATE TABLE dbo.SesionesChat (
        Telefono        NVARCHAR(64)  NOT NULL CONSTRAINT PK_SesionesChat PRIMARY KEY,
        Estado          NVARCHAR(40)  NOT NULL CONSTRAINT DF_SesionesChat_Estado DEFAULT N'INICIO',
        DatosTemp       NVARCHAR(MAX) NOT NULL CONSTRAINT DF_SesionesChat_DatosTemp DEFAULT N'{}',
        EquipoId        INT NULL CONSTRAINT FK_SesionesChat_Equipos REFERENCES dbo.Equipos (Id),
        Version         INT NOT NULL CONSTRAINT DF_SesionesChat_Version DEFAULT 0,
        UltimaActividad BIGINT NOT NULL CONSTRAINT DF_SesionesChat_UltimaActividad DEFAULT 0,
        ConversacionIA  NVARCHAR(128) NULL,
        CreadoEn        DATETIME2(3) NOT NULL CONSTRAINT DF_SesionesChat_CreadoEn DEFAULT SYSUTCDATETIME()
    );
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_SesionesChat_Estado_Actividad' AND object_id = OBJECT_ID(N'dbo.SesionesChat'))
    CREATE INDEX IX_SesionesChat_Estado_Actividad ON dbo.SesionesChat (Estado, UltimaActividad);
GO
IF OBJECT_ID(N'dbo.MensajesProcesados', N'U') IS NULL
    CREATE TABLE dbo.MensajesProcesados (
        Id              BIGINT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_MensajesProcesados PRIMARY KEY,
        MessageId       NVARCHAR(200) NOT NULL CONSTRAINT UX_MensajesProcesados_MessageId UNIQUE,
        Telefono        NVARCHAR(64)  NULL,
        Tipo            NVARCHAR(40)  NOT NULL,
        Payload         NVARCHAR(MAX) NULL,
        Estado          NVARCHAR(20)  NOT NULL CONSTRAINT DF_MensajesProcesados_Estado DEFAULT N'pendiente'
                        CONSTRAINT CK_MensajesProcesados_Estado CHECK (Estado IN (N'pendiente', N'procesado', N'error')),
        Reintentos      INT NOT NULL CONSTRAINT DF_MensajesProcesados_Reintentos DEFAULT 0,
        UltimoReintento BIGINT NULL,
        WaTimestamp     BIGINT NOT NULL CONSTRAINT DF_MensajesProcesados_WaTimestamp DEFAULT 0,
        Intentos        INT NOT NULL CONSTRAINT DF_MensajesProcesados_Intentos DEFAULT 0,
        UltimoError     NVARCHAR(1000) NULL,
        RecibidoEn      BIGINT NOT NULL,
        ProcesadoEn     BIGINT NULL
    );
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_MensajesProcesados_Pendientes' AND object_id = OBJECT_ID(N'dbo.MensajesProcesados'))
    CREATE INDEX IX_MensajesProcesados_Pendientes ON dbo.MensajesProcesados (Telefono, WaTimestamp, Id)
        WHERE Estado = N'pendiente';
GO
IF OBJECT_ID(N'dbo.MensajesChat', N'U') IS NULL
    CREATE TABLE dbo.MensajesChat (
        Id        BIGINT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_MensajesChat PRIMARY KEY,
        Telefono  NVARCHAR(64)  NOT NULL,
        Origen    NVARCHAR(10)  NOT NULL CONSTRAINT CK_MensajesChat_Origen CHECK (Origen IN (N'USUARIO', N'BOT')),
        Contenido NVARCHAR(MAX) NOT NULL,
        MessageId NVARCHAR(200) NULL,
        CreadoEn  DATETIME2(3)  NOT NULL CONSTRAINT DF_MensajesChat_CreadoEn DEFAULT SYSUTCDATETIME()
    );
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_MensajesChat_Telefono' AND object_id = OBJECT_ID(N'dbo.MensajesChat'))
    CREATE INDEX IX_MensajesChat_Telefono ON dbo.MensajesChat (Telefono, Id);
GO
IF OBJECT_ID(N'dbo.Reportes', N'U') IS NULL
    CREATE TABLE dbo.Reportes (
        Id            INT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_Reportes PRIMARY KEY,
        Numero        NVARCHAR(20)  NOT NULL CONSTRAINT UX_Reportes_Numero UNIQUE,
        Telefono      NVARCHAR(64)  NOT NULL,
        TipoEquipo    NVARCHAR(20)  NOT NULL,
        EquipoId      INT NULL CONSTRAINT FK_Reportes_Equipos REFERENCES dbo.Equipos (Id),
        Descripcion   NVARCHAR(2000) NOT NULL,
        Datos         NVARCHAR(MAX) NOT NULL CONSTRAINT DF_Reportes_Datos DEFAULT N'{}',
        MensajeOrigen NVARCHAR(200) NOT NULL CONSTRAINT UX_Reportes_MensajeOrigen UNIQUE,
        CreadoEn      DATETIME2(3)  NOT NULL CONSTRAINT DF_Reportes_CreadoEn DEFAULT SYSUTCDATETIME()
    );
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_Reportes_Telefono' AND object_id = OBJECT_ID(N'dbo.Reportes'))
    CREATE INDEX IX_Reportes_Telefono ON dbo.Reportes (Telefono);
GO
IF OBJECT_ID(N'dbo.HistorialSesiones', N'U') IS NULL
    CREATE TABLE dbo.HistorialSesiones (
        Id             BIGINT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_HistorialSesiones PRIMARY KEY,
        Telefono       NVARCHAR(64)  NOT NULL,
        EstadoAnterior NVARCHAR(40)  NOT NULL,
        EstadoNuevo    NVARCHAR(40)  NOT NULL,
        Origen         NVARCHAR(10)  NOT NULL CONSTRAINT CK_HistorialSesiones_Origen CHECK (Origen IN (N'BOT', N'USUARIO', N'SISTEMA')),
        Descripcion    NVARCHAR(500) NOT NULL CONSTRAINT DF_HistorialSesiones_Descripcion DEFAULT N'',
        ReporteId      INT NULL CONSTRAINT FK_HistorialSesiones_Reportes REFERENCES dbo.Reportes (Id),
        MessageId      NVARCHAR(200) NULL,
        CreadoEn       DATETIME2(3)  NOT NULL CONSTRAINT DF_HistorialSesiones_CreadoEn DEFAULT SYSUTCDATETIME()
    );
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_HistorialSesiones_Telefono' AND object_id = OBJECT_ID(N'dbo.HistorialSesiones'))
    CREATE INDEX IX_HistorialSesiones_Telefono ON dbo.HistorialSesiones (Telefono, Id);
GO
IF OBJECT_ID(N'dbo.ColaEnvios', N'U') IS NULL
    CREATE TABLE dbo.ColaEnvios (
        Id              BIGINT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_ColaEnvios PRIMARY KEY,
        Destinatario    NVARCHAR(64)  NOT NULL,
        Tipo            NVARCHAR(20)  NOT NULL CONSTRAINT DF_ColaEnvios_Tipo DEFAULT N'text',
        Contenido       NVARCHAR(MAX) NOT NULL,
        Estado          NVARCHAR(20)  NOT NULL CONSTRAINT DF_ColaEnvios_Estado DEFAULT N'pendiente'
                        CONSTRAINT CK_ColaEnvios_Estado CHECK (Estado IN (N'pendiente', N'procesando', N'enviado', N'error', N'incierto')),
        Intentos        INT NOT NULL CONSTRAINT DF_ColaEnvios_Intentos DEFAULT 0,
        ProximoIntento  BIGINT NOT NULL CONSTRAINT DF_ColaEnvios_ProximoIntento DEFAULT 0,
        TokenReclamo    NVARCHAR(64)  NULL,
        ReclamadoEn     BIGINT NULL,
        WamidEnviado    NVARCHAR(200) NULL,
        EstadoEntrega   NVARCHAR(20)  NULL,
        UltimoError     NVARCHAR(1000) NULL,
        Campana         NVARCHAR(100) NULL,
        MessageIdOrigen NVARCHAR(200) NULL,
        CreadoEn        DATETIME2(3)  NOT NULL CONSTRAINT DF_ColaEnvios_CreadoEn DEFAULT SYSUTCDATETIME(),
        EnviadoEn       BIGINT NULL
    );
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_ColaEnvios_Pendientes' AND object_id = OBJECT_ID(N'dbo.ColaEnvios'))
    CREATE INDEX IX_ColaEnvios_Pendientes ON dbo.ColaEnvios (ProximoIntento, Id) WHERE Estado = N'pendiente';
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_ColaEnvios_Estado' AND object_id = OBJECT_ID(N'dbo.ColaEnvios'))
    CREATE INDEX IX_ColaEnvios_Estado ON dbo.ColaEnvios (Estado);
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'UX_ColaEnvios_Campana' AND object_id = OBJECT_ID(N'dbo.ColaEnvios'))
    CREATE UNIQUE INDEX UX_ColaEnvios_Campana ON dbo.ColaEnvios (Campana, Destinatario) WHERE Campana IS NOT NULL;
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'UX_ColaEnvios_Wamid' AND object_id = OBJECT_ID(N'dbo.ColaEnvios'))
    CREATE UNIQUE INDEX UX_ColaEnvios_Wamid ON dbo.ColaEnvios (WamidEnviado) WHERE WamidEnviado IS NOT NULL;
GO
IF OBJECT_ID(N'dbo.BloqueosConversacion', N'U') IS NULL
    CREATE TABLE dbo.BloqueosConversacion (
        Clave       NVARCHAR(100) NOT NULL CONSTRAINT PK_BloqueosConversacion PRIMARY KEY,
        Propietario NVARCHAR(100) NULL,
        ExpiraEn    BIGINT NOT NULL CONSTRAINT DF_BloqueosConversacion_ExpiraEn DEFAULT 0,
        Token       BIGINT NOT NULL CONSTRAINT DF_BloqueosConversacion_Token DEFAULT 0,
        AdquiridoEn BIGINT NULL,
        PropietarioAnterior NVARCHAR(100) NULL
    );
GO
IF OBJECT_ID(N'dbo.EjecucionesIA', N'U') IS NULL
    CREATE TABLE dbo.EjecucionesIA (
        Id             NVARCHAR(128) NOT NULL CONSTRAINT PK_EjecucionesIA PRIMARY KEY,
        Telefono       NVARCHAR(64)  NOT NULL,
        ConversacionId NVARCHAR(128) NULL,
        Estado         NVARCHAR(20)  NOT NULL,
        MessageId      NVARCHAR(200) NULL,
        Resultado      NVARCHAR(MAX) NULL,
        CreadoEn       BIGINT NOT NULL,
        ActualizadoEn  BIGINT NOT NULL
    );
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_EjecucionesIA_Estado' AND object_id = OBJECT_ID(N'dbo.EjecucionesIA'))
    CREATE INDEX IX_EjecucionesIA_Estado ON dbo.EjecucionesIA (Estado, CreadoEn);
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_EjecucionesIA_Telefono' AND object_id = OBJECT_ID(N'dbo.EjecucionesIA'))
    CREATE INDEX IX_EjecucionesIA_Telefono ON dbo.EjecucionesIA (Telefono, Estado);
GO
IF NOT EXISTS (SELECT 1 FROM dbo.SchemaVersion WHERE Version = 1)
    INSERT INTO dbo.SchemaVersion (Version, Nombre) VALUES (1, N'001_esquema_inicial');
GO
