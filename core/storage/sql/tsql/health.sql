-- name: health_probe
-- One tiny write: the health check's proof that the database accepts writes.
MERGE dbo.SondaSalud WITH (HOLDLOCK) AS t
USING (SELECT 1 AS Id) AS s
    ON t.Id = s.Id
WHEN MATCHED THEN
    UPDATE SET EscritoEn = :ahora
WHEN NOT MATCHED THEN
    INSERT (Id, EscritoEn) VALUES (1, :ahora);
