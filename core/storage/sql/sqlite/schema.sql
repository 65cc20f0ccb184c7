-- name: ping
SELECT 1 AS ok;

-- name: schema_version
SELECT COALESCE(MAX(Version), 0) AS version FROM SchemaVersion;

-- name: health_probe_insert
INSERT INTO BloqueosConversacion (Clave, Propietario, ExpiraEn, Token) VALUES (:clave, NULL, :ahora, 0);

-- name: health_probe_get
SELECT Clave FROM BloqueosConversacion WHERE Clave = :clave;
