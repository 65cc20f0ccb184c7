-- BloqueosConversacion: per-conversation leases with an owner, an expiry and a fencing token that only grows.
-- A released lease keeps its row (Propietario NULL) so the token never goes back. Retention deletes rows
-- idle for days (purge_leases); a new row's token starts at the clock (epoch ms), which is then above
-- any token the deleted row reached (one per acquisition, far fewer than the milliseconds it lived).

-- name: lease_acquire
MERGE dbo.BloqueosConversacion WITH (HOLDLOCK) AS b
USING (SELECT :clave AS Clave) AS s ON b.Clave = s.Clave
-- Owner ids are unique per attempt, so finding our own owner means a retry after a commit whose
-- answer was lost: the same lease again, same token.
WHEN MATCHED AND (b.Propietario IS NULL OR b.ExpiraEn <= :ahora OR b.Propietario = :propietario) THEN
    UPDATE SET PropietarioAnterior = CASE WHEN b.Propietario = :propietario THEN b.PropietarioAnterior
                                          ELSE b.Propietario END,
               Propietario = :propietario, ExpiraEn = :expira,
               Token = CASE WHEN b.Propietario = :propietario THEN b.Token ELSE b.Token + 1 END,
               AdquiridoEn = :ahora
WHEN NOT MATCHED THEN
    INSERT (Clave, Propietario, ExpiraEn, Token, AdquiridoEn, PropietarioAnterior)
    VALUES (:clave, :propietario, :expira, :ahora, :ahora, NULL)
OUTPUT inserted.Token AS token, inserted.PropietarioAnterior AS anterior;

-- name: lease_extend
UPDATE dbo.BloqueosConversacion SET ExpiraEn = :expira
WHERE Clave = :clave AND Propietario = :propietario AND Token = :token AND ExpiraEn > :ahora;

-- name: lease_release
UPDATE dbo.BloqueosConversacion SET Propietario = NULL, ExpiraEn = 0, PropietarioAnterior = NULL
WHERE Clave = :clave AND Propietario = :propietario AND Token = :token;

-- name: lease_check
UPDATE dbo.BloqueosConversacion SET ExpiraEn = ExpiraEn
WHERE Clave = :clave AND Propietario = :propietario AND Token = :token AND ExpiraEn > :ahora;

-- name: leases_clear_expired
-- Leases whose holder died (an expired lease still naming an owner): free them, keeping the row and
-- its token, so the gauge of expired leases reads 0 again and the fencing token never goes back.
UPDATE dbo.BloqueosConversacion SET Propietario = NULL, ExpiraEn = 0, PropietarioAnterior = NULL
OUTPUT inserted.Clave AS clave, inserted.Token AS token
WHERE Propietario IS NOT NULL AND ExpiraEn <= :ahora;
