-- SQLite counterpart of sql-scripts/001_esquema_inicial.sql. Times the app compares are INTEGER
-- epoch milliseconds (same in both dialects); human timestamps default to the database clock.

CREATE TABLE IF NOT EXISTS Equipos (
    Id          INTEGER PRIMARY KEY AUTOINCREMENT,
    CodigoSAP   TEXT NOT NULL UNIQUE,
    TipoEquipo  TEXT NOT NULL CHECK (TipoEquipo IN ('REFRIGERADOR', 'VEHICULO')),
    Descripcion TEXT NOT NULL,
    Ubicacion   TEXT NOT NULL,
    Activo      INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE IF NOT EXISTS SesionesChat (
    Telefono        TEXT PRIMARY KEY,
    Estado          TEXT NOT NULL DEFAULT 'INICIO',
    DatosTemp       TEXT NOT NULL DEFAULT '{}',
    EquipoId        INTEGER NULL REFERENCES Equipos(Id),
    Version         INTEGER NOT NULL DEFAULT 0,
    UltimaActividad INTEGER NOT NULL DEFAULT 0,
    ConversacionIA  TEXT NULL,
    CreadoEn        TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS IX_SesionesChat_Estado_Actividad ON SesionesChat (Estado, UltimaActividad);

CREATE TABLE IF NOT EXISTS MensajesProcesados (
    Id              INTEGER PRIMARY KEY AUTOINCREMENT,
    MessageId       TEXT NOT NULL UNIQUE,
    Telefono        TEXT NULL,
    Tipo            TEXT NOT NULL,
    Payload         TEXT NULL,
    Estado          TEXT NOT NULL DEFAULT 'pendiente' CHECK (Estado IN ('pendiente', 'procesado', 'error')),
    Reintentos      INTEGER NOT NULL DEFAULT 0,
    UltimoReintento INTEGER NULL,
    WaTimestamp     INTEGER NOT NULL DEFAULT 0,
    Intentos        INTEGER NOT NULL DEFAULT 0,
    UltimoError     TEXT NULL,
    RecibidoEn      INTEGER NOT NULL,
    ProcesadoEn     INTEGER NULL
);
CREATE INDEX IF NOT EXISTS IX_MensajesProcesados_Pendientes
    ON MensajesProcesados (Telefono, WaTimestamp, Id) WHERE Estado = 'pendiente';

CREATE TABLE IF NOT EXISTS MensajesChat (
    Id        INTEGER PRIMARY KEY AUTOINCREMENT,
    Telefono  TEXT NOT NULL,
    Origen    TEXT NOT NULL CHECK (Origen IN ('USUARIO', 'BOT')),
    Contenido TEXT NOT NULL,
    MessageId TEXT NULL,
    CreadoEn  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS IX_MensajesChat_Telefono ON MensajesChat (Telefono, Id);

CREATE TABLE IF NOT EXISTS Reportes (
    Id            INTEGER PRIMARY KEY AUTOINCREMENT,
    Numero        TEXT NOT NULL UNIQUE,
    Telefono      TEXT NOT NULL,
    TipoEquipo    TEXT NOT NULL,
    EquipoId      INTEGER NULL REFERENCES Equipos(Id),
    Descripcion   TEXT NOT NULL,
    Datos         TEXT NOT NULL DEFAULT '{}',
    MensajeOrigen TEXT NOT NULL UNIQUE,
    CreadoEn      TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS IX_Reportes_Telefono ON Reportes (Telefono);

CREATE TABLE IF NOT EXISTS HistorialSesiones (
    Id             INTEGER PRIMARY KEY AUTOINCREMENT,
    Telefono       TEXT NOT NULL,
    EstadoAnterior TEXT NOT NULL,
    EstadoNuevo    TEXT NOT NULL,
    Origen         TEXT NOT NULL CHECK (Origen IN ('BOT', 'USUARIO', 'SISTEMA')),
    Descripcion    TEXT NOT NULL DEFAULT '',
    ReporteId      INTEGER NULL REFERENCES Reportes(Id),
    MessageId      TEXT NULL,
    CreadoEn       TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS IX_HistorialSesiones_Telefono ON HistorialSesiones (Telefono, Id);

CREATE TABLE IF NOT EXISTS ColaEnvios (
    Id             INTEGER PRIMARY KEY AUTOINCREMENT,
    Destinatario   TEXT NOT NULL,
    Tipo           TEXT NOT NULL DEFAULT 'text',
    Contenido      TEXT NOT NULL,
    Estado         TEXT NOT NULL DEFAULT 'pendiente'
                   CHECK (Estado IN ('pendiente', 'procesando', 'enviado', 'error', 'incierto')),
    Intentos       INTEGER NOT NULL DEFAULT 0,
    ProximoIntento INTEGER NOT NULL DEFAULT 0,
    TokenReclamo   TEXT NULL,
    ReclamadoEn    INTEGER NULL,
    WamidEnviado   TEXT NULL,
    EstadoEntrega  TEXT NULL,
    UltimoError    TEXT NULL,
    Campana        TEXT NULL,
    MessageIdOrigen TEXT NULL,
    CreadoEn       TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    EnviadoEn      INTEGER NULL
);
CREATE INDEX IF NOT EXISTS IX_ColaEnvios_Pendientes ON ColaEnvios (ProximoIntento, Id) WHERE Estado = 'pendiente';
CREATE INDEX IF NOT EXISTS IX_ColaEnvios_Estado ON ColaEnvios (Estado);
CREATE UNIQUE INDEX IF NOT EXISTS UX_ColaEnvios_Campana ON ColaEnvios (Campana, Destinatario) WHERE Campana IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS UX_ColaEnvios_Wamid ON ColaEnvios (WamidEnviado) WHERE WamidEnviado IS NOT NULL;

CREATE TABLE IF NOT EXISTS BloqueosConversacion (
    Clave       TEXT PRIMARY KEY,
    Propietario TEXT NULL,
    ExpiraEn    INTEGER NOT NULL DEFAULT 0,
    Token       INTEGER NOT NULL DEFAULT 0,
    AdquiridoEn INTEGER NULL,
    PropietarioAnterior TEXT NULL
);

CREATE TABLE IF NOT EXISTS EjecucionesIA (
    Id             TEXT PRIMARY KEY,
    Telefono       TEXT NOT NULL,
    ConversacionId TEXT NULL,
    Estado         TEXT NOT NULL,
    MessageId      TEXT NULL,
    Resultado      TEXT NULL,
    CreadoEn       INTEGER NOT NULL,
    ActualizadoEn  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS IX_EjecucionesIA_Estado ON EjecucionesIA (Estado, CreadoEn);
CREATE INDEX IF NOT EXISTS IX_EjecucionesIA_Telefono ON EjecucionesIA (Telefono, Estado);
