-- Identifier columns compare byte for byte. SQLite's default collation (BINARY) already does, so this
-- version changes nothing here; it keeps the numbering equal to the T-SQL script of the same name,
-- which moves SQL Server's identifier columns to a binary collation.
SELECT 1;
