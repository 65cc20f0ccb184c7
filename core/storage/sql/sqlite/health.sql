-- name: health_probe
-- One tiny write: the health check's proof that the database accepts writes.
INSERT INTO SondaSalud (Id, EscritoEn) VALUES (1, :ahora)
ON CONFLICT (Id) DO UPDATE SET EscritoEn = :ahora;
