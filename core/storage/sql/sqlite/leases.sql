-- BloqueosConversacion: per-conversation leases with an owner, an expiry and a fencing token that only grows.
-- A released lease keeps its row (Propietario NULL) so the token never goes back. Retention deletes rows
-- idle for days (purge_leases); a new row's token starts at the clock (epoch ms), which is then above
-- any token the deleted row reached (one per acquisition, far fewer than the milliseconds it lived).

-- name: lease_acquire
INSERT INTO BloqueosConversacion (Clave, Propietario, ExpiraEn, Token, AdquiridoEn, PropietarioAnterior)
VALUES (:clave, :propietario, :expira, :ahora, :ahora, NULL)
ON CONFLICT (Clave) DO UPDATE SET
    -- Owner ids are unique per attempt, so finding our own owner means a retry after a commit whose
    -- answer was lost: the same lease again, same token.
    PropietarioAnterior = CASE WHEN BloqueosConversacion.Propietario = excluded.Propietario
                               THEN BloqueosConversacion.PropietarioAnterior ELSE BloqueosConversacion.Propietario END,
    Propietario = excluded.Propietario,
    ExpiraEn = excluded.ExpiraEn,
    Token = CASE WHEN BloqueosConversacion.Propietario = excluded.Propietario
                 THEN BloqueosConversacion.Token ELSE BloqueosConversacion.Token + 1 END,
    AdquiridoEn = excluded.AdquiridoEn
WHERE BloqueosConversacion.Propietario IS NULL OR BloqueosConversacion.ExpiraEn <= :ahora
   OR BloqueosConversacion.Propietario = excluded.Propietario
RETURNING Token AS token, PropietarioAnterior AS anterior;

-- name: lease_extend
UPDATE BloqueosConversacion SET ExpiraEn = :expira
WHERE Clave = :clave AND Propietario = :propietario AND Token = :token AND ExpiraEn > :ahora;

-- name: lease_release
UPDATE BloqueosConversacion SET Propietario = NULL, ExpiraEn = 0, PropietarioAnterior = NULL
WHERE Clave = :clave AND Propietario = :propietario AND Token = :token;

-- name: lease_check
UPDATE BloqueosConversacion SET ExpiraEn = ExpiraEn
WHERE Clave = :clave AND Propietario = :propietario AND Token = :token AND ExpiraEn > :ahora;

-- name: leases_clear_expired
-- Leases whose holder died (an expired lease still naming an owner): free them, keeping the row and
-- its token, so the gauge of expired leases reads 0 again and the fencing token never goes back.
UPDATE BloqueosConversacion SET Propietario = NULL, ExpiraEn = 0, PropietarioAnterior = NULL
WHERE Propietario IS NOT NULL AND ExpiraEn <= :ahora
RETURNING Clave AS clave, Token AS token;
