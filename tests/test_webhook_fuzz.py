"""Property-based fuzzing of the webhook handler over a real SQLite runtime: random bytes, random JSON,
and WhatsApp-shaped payloads with random leaves. It never raises and never answers 5xx; every row it
writes names a message or status of the payload; a redelivery writes no new row."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.runtime import Runtime, build_runtime
from core.settings import Settings
from tests.webhook_helpers import ledger, signed_headers

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Any code point, with lone surrogates made common (JSON carries them as \ud800 escapes; UTF-8 cannot).
_text = st.text(st.characters(exclude_categories=()), max_size=30)
any_text = _text | st.tuples(_text, st.integers(0xD800, 0xDFFF).map(chr), _text).map("".join)
finite = st.floats(allow_nan=False, allow_infinity=False)
huge = st.sampled_from([10**400, -(10**400), 2**63, -(2**63) - 1, 2**64])  # beyond float, BIGINT, uint64
leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | huge | finite | any_text
json_values = st.recursive(
    leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4), max_leaves=20)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes any JSON value in its place (wrong types crash parsers)."""
    return st.integers(0, 7).flatmap(lambda n: json_values if n == 0 else strategy)


digits = st.text("0123456789", min_size=1, max_size=15)
message_type = st.sampled_from(["text", "text", "text", "interactive", "interactive", "button", "image", "audio",
                                "video", "document", "sticker", "location", "reaction", "contacts", "unsupported",
                                "order", "system"]) | any_text
message = st.fixed_dictionaries({
    "id": maybe(st.builds("wamid.{}".format, digits) | any_text),
    "timestamp": maybe(digits | st.integers()),
    "type": maybe(message_type),
    # None: a username-only user (a BSUID alone, or no sender at all)
    "from": st.one_of(maybe(digits), maybe(digits), st.none()),
    "text": maybe(st.fixed_dictionaries({"body": maybe(any_text)})),
}, optional={
    "from_user_id": maybe(st.builds("MX.{}".format, digits)),
    "interactive": maybe(st.fixed_dictionaries({
        "type": maybe(st.sampled_from(["button_reply", "list_reply", "nfm_reply"])),
        "button_reply": maybe(st.fixed_dictionaries({"id": maybe(any_text), "title": maybe(any_text)})),
        "list_reply": maybe(st.fixed_dictionaries({"id": maybe(any_text), "title": maybe(any_text)})),
    })),
    "image": maybe(st.fixed_dictionaries({"id": maybe(digits), "caption": maybe(any_text)})),
    "location": maybe(st.fixed_dictionaries({"latitude": maybe(finite | huge),
                                             "longitude": maybe(finite | huge)})),
    "reaction": maybe(st.fixed_dictionaries({"emoji": maybe(any_text)})),
    "errors": maybe(st.lists(st.fixed_dictionaries({"code": maybe(st.integers()), "title": maybe(any_text)}))),
})
status = st.fixed_dictionaries({
    "id": maybe(st.builds("wamid.OUT{}".format, digits)),
    "status": maybe(st.sampled_from(["sent", "delivered", "read", "failed", "deleted"]) | any_text),
}, optional={
    "timestamp": maybe(digits),
    "recipient_id": maybe(digits),
    "errors": maybe(st.lists(st.fixed_dictionaries({"code": maybe(st.integers()), "title": maybe(any_text)}))),
})
contact = st.fixed_dictionaries({}, optional={
    "wa_id": maybe(digits), "user_id": maybe(st.builds("MX.{}".format, digits)),
    "profile": maybe(st.fixed_dictionaries({"name": maybe(any_text)})),
})
value = st.fixed_dictionaries({"messages": maybe(st.lists(maybe(message), min_size=1, max_size=4))}, optional={
    "statuses": maybe(st.lists(maybe(status), max_size=4)),
    "contacts": maybe(st.lists(maybe(contact), max_size=3)),
    "errors": maybe(st.lists(json_values, max_size=2)),
})
change = st.fixed_dictionaries({"field": maybe(st.sampled_from(["messages", "messages", "account_update"])),
                                "value": maybe(value)})
entry = st.fixed_dictionaries({"changes": maybe(st.lists(maybe(change), max_size=3))}, optional={"id": maybe(digits)})
payloads = st.fixed_dictionaries({
    "object": maybe(st.just("whatsapp_business_account")),
    "entry": maybe(st.lists(maybe(entry), max_size=3)),
})


@pytest.fixture
def runner(settings: Settings) -> Iterator[tuple[Runtime, asyncio.AbstractEventLoop]]:
    rt = build_runtime(settings)
    loop = asyncio.new_event_loop()
    yield rt, loop
    loop.run_until_complete(rt.aclose())
    loop.close()


def _post(runner: tuple[Runtime, asyncio.AbstractEventLoop], headers: dict[str, str], body: bytes) -> int:
    rt, loop = runner
    status, text = loop.run_until_complete(rt.webhook.post(headers, body))
    assert isinstance(text, str)
    assert status < 500, (status, text)
    return status


def _ids(payload: object) -> set[str]:
    """Every string anywhere in the payload, with the `:status` suffixes statuses are keyed by."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("id"), str) and isinstance(node.get("status"), str):
                found.add(f"{node['id']}:{node['status']}")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str):
            found.add(node)

    walk(payload)
    return found


@FUZZ
@given(body=st.binary(max_size=2048))
def test_random_signed_bytes(runner: tuple[Runtime, asyncio.AbstractEventLoop], body: bytes) -> None:
    assert _post(runner, signed_headers(body), body) in (200, 400)


@FUZZ
@given(body=st.binary(max_size=512), headers=st.dictionaries(st.sampled_from(
    ["X-Hub-Signature-256", "x-hub-signature-256", "Content-Length", "content-type"]),
    any_text | st.sampled_from(["²", "١٢", "99999999999", "sha256=", " 12 "]), max_size=3))
def test_random_headers_without_a_valid_signature(runner: tuple[Runtime, asyncio.AbstractEventLoop],
                                                  db_path: Path, body: bytes, headers: dict[str, str]) -> None:
    assert _post(runner, headers, body) in (401, 413)
    assert ledger(db_path) == []


@FUZZ
@given(payload=json_values)
def test_random_json(runner: tuple[Runtime, asyncio.AbstractEventLoop], payload: object) -> None:
    body = json.dumps(payload).encode("ascii")
    assert _post(runner, signed_headers(body), body) == 200


@FUZZ
@given(payload=payloads)
def test_whatsapp_shaped_payloads(runner: tuple[Runtime, asyncio.AbstractEventLoop], db_path: Path,
                                  payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode("ascii")  # ascii: lone surrogates travel as \ud800 escapes
    before = {r["MessageId"] for r in ledger(db_path)}
    assert _post(runner, signed_headers(body), body) == 200
    after = ledger(db_path)
    new = {r["MessageId"] for r in after} - before
    strings = _ids(payload)
    # Every new row is named by the payload (lone surrogates come back as U+FFFD, hence the fallback).
    assert all(m in strings or "\ufffd" in m for m in new), new - strings
    assert all(r["Estado"] in ("pendiente", "procesado") for r in after)
    # The same delivery again: no new row.
    assert _post(runner, signed_headers(body), body) == 200
    assert len(ledger(db_path)) == len(after)
