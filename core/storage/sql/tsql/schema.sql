-- name: ping
SELECT 1 AS ok;

-- name: schema_version
SELECT COALESCE(MAX(Version), 0) AS version FROM dbo.SchemaVersion;

-- name: health_probe_insert
INSERT INTO dbo.BloqueosConversacion (Clave, Propietario, ExpiraEn, Token) VALUES (:clave, NULL, :ahora, 0);

-- name: health_probe_get
SELECT Clave FROM dbo.BloqueosConversacion WHERE Clave = :clave;

-- name: read_committed_snapshot
-- 1 when plain reads see the last committed version (READ_COMMITTED_SNAPSHOT ON, Azure SQL's default),
-- 0 when they take shared locks and wait for writers.
SELECT CAST(is_read_committed_snapshot_on AS INT) AS rcsi FROM sys.databases WHERE database_id = DB_ID();
