"""Cutting text to a column's size the same way in both dialects.

SQL Server's NVARCHAR(n) counts UTF-16 code units, and an emoji takes two; Python's slices count
characters. Cut by characters, an emoji-heavy description would overflow NVARCHAR(2000) (Msg 2628) on
every retry, leaving the message in `error` with no report filed. Every value stored into a bounded
column goes through `fit_units`, so SQLite stores exactly what SQL Server would.
"""

from __future__ import annotations


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def fit_units(text: str, units: int) -> str:
    """`text` cut to at most `units` UTF-16 code units, never splitting a surrogate pair."""
    if len(text) * 2 <= units or utf16_units(text) <= units:  # fast path: no astral characters fit anyway
        return text
    cut = text.encode("utf-16-le")[: units * 2]
    if 0xD800 <= int.from_bytes(cut[-2:], "little") <= 0xDBFF:  # a high surrogate without its pair
        cut = cut[:-2]
    return cut.decode("utf-16-le")
