-- The health check writes one row here to prove the database accepts writes: a read-only, full or
-- replaced database answers reads and still loses every write, and the health check must say so.
CREATE TABLE IF NOT EXISTS SondaSalud (
    Id        INTEGER PRIMARY KEY CHECK (Id = 1),
    EscritoEn INTEGER NOT NULL
);
