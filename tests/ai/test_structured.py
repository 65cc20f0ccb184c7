"""The model's Spanish schema keys and the English `Extraction` attributes meet in one mapping."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from core.ai import rules
from core.ai.structured import EXTRACTION_SCHEMA, SCHEMA_FIELDS, extraction_json, parse_extraction
from core.ai.types import Extraction
from core.errors import AIProviderError


def test_every_schema_key_maps_to_one_extraction_attribute() -> None:
    assert set(SCHEMA_FIELDS) == set(EXTRACTION_SCHEMA["properties"])
    assert list(SCHEMA_FIELDS.values()) == [f.name for f in fields(Extraction)]


@pytest.mark.parametrize("text", [
    "el refri 1000 4512 de la tienda centro ya no enfría, sale humo",
    "mi empleado es 55123, la camioneta placas NXR-4521 no arranca",
    "ya funciona, gracias",
    "¿cómo va mi reporte RPT-000123?",
])
def test_an_extraction_survives_the_schema_json(text: str) -> None:
    extraction = rules.extract(text)
    raw = json.dumps(extraction_json(extraction), ensure_ascii=False)
    assert set(json.loads(raw)) == set(EXTRACTION_SCHEMA["properties"])
    assert parse_extraction("test", raw) == extraction


def test_an_english_key_is_not_read_as_a_slot() -> None:
    answer = extraction_json(rules.extract("el refri no enfría")) | {"plate": "ABC123"}
    assert parse_extraction("test", json.dumps(answer)).plate is None
    with pytest.raises(AIProviderError):
        parse_extraction("test", json.dumps({**answer, "intencion": "REPORT_FAILURE"}))
