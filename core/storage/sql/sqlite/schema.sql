-- name: ping
SELECT 1 AS ok;

-- name: schema_version
SELECT COALESCE(MAX(Version), 0) AS version FROM SchemaVersion;

-- name: health_probe_insert
INSERT INTO BloqueosConversacion (Clave, Propietario, ExpiraEn, Token) VALUES (:clave, NULL, :ahora, 0);

-- name: health_probe_get
SELECT Clave FROM BloqueosConversacion WHERE Clave = :clave;

-- name: read_committed_snapshot
-- Always 1: in WAL mode a reader sees the last committed snapshot and never waits for the writer.
SELECT 1 AS rcsi;
