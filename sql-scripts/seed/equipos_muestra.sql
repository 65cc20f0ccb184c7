-- Sample equipment catalog for development and test databases. Not a migration: never run it in
-- production. sqlcmd -S <server> -d <db> -b -I -i sql-scripts/seed/equipos_muestra.sql
SET NOCOUNT ON;
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
MERGE dbo.Equipos WITH (HOLDLOCK) AS destino
USING (VALUES
    (N'10004512', N'REFRIGERADOR', N'Refrigerador vertical 2 puertas', N'Tienda Centro'),
    (N'10004513', N'REFRIGERADOR', N'Congelador horizontal 500 L', N'Tienda Norte'),
    (N'10004514', N'REFRIGERADOR', N'Enfriador de bebidas 1 puerta', N'Tienda Sur'),
    (N'20007781', N'VEHICULO', N'Camión de reparto 3.5 t', N'Centro de distribución Oriente'),
    (N'20007782', N'VEHICULO', N'Camioneta pick-up', N'Centro de distribución Poniente')
) AS origen (CodigoSAP, TipoEquipo, Descripcion, Ubicacion)
ON destino.CodigoSAP = origen.CodigoSAP
WHEN NOT MATCHED THEN
    INSERT (CodigoSAP, TipoEquipo, Descripcion, Ubicacion)
    VALUES (origen.CodigoSAP, origen.TipoEquipo, origen.Descripcion, origen.Ubicacion);
