"""Parsing edge cases that random generation reaches too rarely to rely on."""

from __future__ import annotations

from typing import Any

import pytest

from bot.messages import MessageKind
from bot.webhook.parse import MAX_WAMID, parse_payload


def batch_of(*messages: dict[str, Any], contacts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"messages": list(messages)}
    if contacts is not None:
        value["contacts"] = contacts
    return {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": value}]}]}


def test_coordinates_beyond_float_are_dropped() -> None:
    msg = {"id": "wamid.L", "from": "5215500000521", "type": "location",
           "location": {"latitude": 10**400, "longitude": 1}}
    (parsed,) = parse_payload(batch_of(msg)).messages
    assert parsed.kind == MessageKind.LOCATION and parsed.latitude is None and parsed.longitude == 1.0


def test_lone_surrogates_become_replacement_characters() -> None:
    msg = {"id": "wamid.S", "from": "5215500000521", "type": "text", "text": {"body": "a\ud800b 😀"}}
    (parsed,) = parse_payload(batch_of(msg)).messages
    assert parsed.text == "a\ufffdb 😀"
    parsed.to_json().encode("utf-8")


@pytest.mark.parametrize(("raw", "expected"), [
    ("1763880000", 1763880000), (1763880000, 1763880000), (" 17 ", 17), ("-5", 0), ("1e9", 0), (True, 0),
    ("²", 0), ("9" * 30, 0), (None, 0), (2**41, 0),
])
def test_timestamps(raw: object, expected: int) -> None:
    msg = {"id": "wamid.T", "from": "5215500000521", "timestamp": raw, "type": "text"}
    (parsed,) = parse_payload(batch_of(msg)).messages
    assert parsed.timestamp == expected


def test_sender_from_the_only_contact_and_bsuid_key() -> None:
    msg = {"id": "wamid.C", "type": "text", "text": {"body": "hola"}}
    (parsed,) = parse_payload(batch_of(msg, contacts=[{"user_id": "MX.77", "profile": {"name": "Marta"}}])).messages
    assert (parsed.conversation_key, parsed.phone, parsed.bsuid, parsed.contact_name) == ("MX.77", None, "MX.77",
                                                                                         "Marta")


def test_contact_is_matched_by_phone_in_a_batch_of_two() -> None:
    contacts = [{"wa_id": "5215500000111", "profile": {"name": "Uno"}}, {"wa_id": "5215500000222", "user_id": "MX.2",
                                                                "profile": {"name": "Dos"}}]
    msgs = parse_payload(batch_of({"id": "wamid.1", "from": "5215500000222", "type": "text"},
                                  {"id": "wamid.2", "from": "5215500000111", "type": "text"},
                                  contacts=contacts)).messages
    assert [(m.contact_name, m.bsuid) for m in msgs] == [("Dos", "MX.2"), ("Uno", None)]


def test_unusable_messages_are_skipped_not_fatal() -> None:
    batch = parse_payload(batch_of(
        {"id": "x" * (MAX_WAMID + 1), "from": "5215500000521", "type": "text"},
        {"from": "5215500000521", "type": "text"},
        {"id": "wamid.NOSENDER", "type": "text"},
        {"id": "wamid.KEYTOOLONG", "from": "5" * 65, "type": "text"},
        "not a dict",
        {"id": "wamid.OK", "from": "5215500000521", "type": "text", "text": {"body": "ok"}},
    ))
    assert [m.wamid for m in batch.messages] == ["wamid.OK"] and batch.skipped == 5


@pytest.mark.parametrize(("msg", "kind", "text", "choice"), [
    ({"type": "button", "button": {"text": "Sí", "payload": "SI"}}, MessageKind.BUTTON_REPLY, "Sí", "SI"),
    ({"type": "interactive", "interactive": {"type": "nfm_reply", "nfm_reply": {}}}, MessageKind.UNKNOWN, "", None),
    ({"type": "video", "video": {"id": "v1", "caption": "mira"}}, MessageKind.VIDEO, "mira", None),
    ({"type": "document", "document": {"id": "d1"}}, MessageKind.DOCUMENT, "", None),
    ({"type": "sticker", "sticker": {"id": "s1"}}, MessageKind.STICKER, "", None),
    ({"type": "contacts", "contacts": [{"name": {"formatted_name": "Luis"}}]}, MessageKind.CONTACTS, "Luis", None),
    ({"type": "order", "order": {}}, MessageKind.UNKNOWN, "", None),
    ({"type": 7}, MessageKind.UNKNOWN, "", None),
    ({"type": "text", "text": {"body": 42}}, MessageKind.TEXT, "", None),
])
def test_kinds(msg: dict[str, Any], kind: MessageKind, text: str, choice: str | None) -> None:
    (parsed,) = parse_payload(batch_of({"id": "wamid.K", "from": "5215500000521", **msg})).messages
    assert (parsed.kind, parsed.text, parsed.choice_id) == (kind, text, choice)


def test_statuses_keep_error_and_unknown_status() -> None:
    value = {"statuses": [
        {"id": "wamid.O", "status": "failed", "errors": [{"code": 131026, "title": "Undeliverable"}]},
        {"id": "wamid.O", "status": "deleted"},
        {"id": "wamid.O"},
        {"id": "wamid.O", "status": "x" * 31},
    ]}
    batch = parse_payload({"object": "whatsapp_business_account", "entry": [{"changes": [
        {"field": "messages", "value": value}]}]})
    failed, deleted = batch.statuses
    assert (failed.error_code, failed.error_title, failed.rank, failed.dedup_key) == (
        131026, "Undeliverable", 4, "wamid.O:failed")
    assert deleted.rank is None and batch.skipped == 2


@pytest.mark.parametrize(("sender", "reason"), [
    ("15550783881", "own"),  # the business's display number (metadata.display_phone_number)
    ("106540352242922", "own"),  # the business's phone_number_id
    ("5215500009999", None),
    ("521", "implausible"), ("52155000099991234", "implausible"), ("+5215500009999", "implausible"),
    ("hola", "implausible"),
])
def test_odd_senders_are_left_out_and_counted(sender: str, reason: str | None) -> None:
    payload = batch_of({"id": "wamid.ODD", "from": sender, "type": "text", "text": {"body": "x"}})
    payload["entry"][0]["changes"][0]["value"]["metadata"] = {
        "display_phone_number": "+1 555-078-3881", "phone_number_id": "106540352242922"}
    batch = parse_payload(payload, served=("106540352242922",))
    assert (len(batch.messages), batch.own_sender, batch.implausible_sender) == (
        (1, 0, 0) if reason is None else (0, reason == "own", reason == "implausible"))
    if reason is None:
        assert batch.messages[0].business_number == "106540352242922"


def test_a_bsuid_sender_must_look_like_one() -> None:
    ok = parse_payload(batch_of({"id": "wamid.B1", "from_user_id": "MX.8812093347712650", "type": "text"}))
    bad = parse_payload(batch_of({"id": "wamid.B2", "from_user_id": "not a bsuid", "type": "text"}))
    assert len(ok.messages) == 1 and (len(bad.messages), bad.implausible_sender) == (0, 1)
