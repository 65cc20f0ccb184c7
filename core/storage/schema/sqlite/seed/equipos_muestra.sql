-- Sample equipment catalog for local runs and tests (SQLite twin of sql-scripts/seed/equipos_muestra.sql).
INSERT INTO Equipos (CodigoSAP, TipoEquipo, Descripcion, Ubicacion) VALUES
    ('10004512', 'REFRIGERADOR', 'Refrigerador vertical 2 puertas', 'Tienda Centro'),
    ('10004513', 'REFRIGERADOR', 'Congelador horizontal 500 L', 'Tienda Norte'),
    ('10004514', 'REFRIGERADOR', 'Enfriador de bebidas 1 puerta', 'Tienda Sur'),
    ('20007781', 'VEHICULO', 'Camión de reparto 3.5 t', 'Centro de distribución Oriente'),
    ('20007782', 'VEHICULO', 'Camioneta pick-up', 'Centro de distribución Poniente')
ON CONFLICT (CodigoSAP) DO NOTHING;
