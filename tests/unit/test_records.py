"""Showing a record any client wrote: every function answers, bounded, whatever the bytes."""

from __future__ import annotations

import json

import pytest

from kafkalab.labs import records
from kafkalab.labs.events import decode_key, event_type_of

DEEP = b"[" * 5000 + b"]" * 5000
DEEP_OBJECT = b'{"a":' * 5000 + b"1" + b"}" * 5000
MEGABYTE_OF_FF = b"\xff" * 1_000_000
NOT_UTF8 = b"caf\xe9 \xc3\x28 \xed\xa0\x80"
SCRIPT = "<script>alert('x')</script>"


# --- parse_json ----------------------------------------------------------------------------


@pytest.mark.parametrize("deep", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_json_nested_thousands_deep_is_refused_not_raised(deep: bytes):
    assert records.parse_json(deep) == (None, "nested too deeply")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "no value"),
        (b"", "empty"),
        (b"hello from kcat\n", "not JSON"),
        (NOT_UTF8, "not JSON"),
        (MEGABYTE_OF_FF, "not JSON"),
        (b'{"orderId": ', "not JSON"),
        (b"1" * 5000, "not JSON"),  # more digits than Python converts to an int
    ],
)
def test_what_is_not_json_says_why(value: bytes | None, reason: str):
    assert records.parse_json(value) == (None, reason)


def test_a_value_above_the_bound_is_not_parsed():
    value = json.dumps({"pad": "x" * 100}).encode()

    assert records.parse_json(value, max_bytes=50) == (None, "too large to parse")
    assert records.parse_json(value, max_bytes=len(value)) == ({"pad": "x" * 100}, None)


@pytest.mark.parametrize("value", [b"42", b"null", b"[1, 2]", b'"text"', b'{"orderId": "o-1"}'])
def test_any_json_parses(value: bytes):
    assert records.parse_json(value) == (json.loads(value), None)


# --- display_text and display_key -----------------------------------------------------------


def test_display_text_shows_invalid_utf8_as_replacement_characters():
    assert records.display_text(NOT_UTF8, limit=100) == "caf\ufffd \ufffd( \ufffd\ufffd\ufffd"


def test_display_text_is_cut_with_a_visible_marker():
    assert records.display_text(b"abcdef", limit=4) == "abcd… (2 more bytes)"
    assert records.display_text(b"abcd", limit=4) == "abcd"
    assert records.display_text(b"", limit=4) == ""
    assert records.display_text(None, limit=4) == ""


def test_display_text_never_cuts_a_character_in_two():
    euro = "€".encode()  # three bytes

    assert records.display_text(b"ab" + euro, limit=4) == "ab… (3 more bytes)"
    assert records.display_text(b"ab" + euro, limit=5) == "ab€"


def test_a_megabyte_of_ff_is_shown_in_a_few_hundred_characters():
    shown = records.display_text(MEGABYTE_OF_FF, limit=200)

    assert shown == "\ufffd" * 200 + "… (999800 more bytes)"


def test_display_key_is_bounded_and_keeps_none():
    assert records.display_key(None) is None
    assert records.display_key(b"") == ""
    assert records.display_key(b"o-1") == "o-1"
    assert records.display_key(MEGABYTE_OF_FF) == "\ufffd" * records.KEY_DISPLAY_BYTES + "… (999800 more bytes)"
    assert decode_key(MEGABYTE_OF_FF) == records.display_key(MEGABYTE_OF_FF), "the lanes show the same key"


def test_html_stays_text_escaping_is_the_templates_job():
    assert records.display_key(SCRIPT.encode()) == SCRIPT
    assert records.display_text(SCRIPT.encode(), limit=1000) == SCRIPT


# --- display_headers ------------------------------------------------------------------------


def test_headers_are_shown_bounded_in_size_and_number():
    headers = [("h" * 300_000, MEGABYTE_OF_FF), ("event-type", None), *((f"n{i}", b"v") for i in range(100))]

    shown = records.display_headers(headers)

    assert shown[0] == ("h" * 200 + "… (299800 more bytes)", "\ufffd" * 1024 + "… (998976 more bytes)")
    assert shown[1] == ("event-type", "")
    assert len(shown) == records.HEADERS_SHOWN + 1
    assert shown[-1] == ("… (52 more headers)", "")


def test_no_headers_show_as_none():
    assert records.display_headers(()) == []
    assert records.display_headers(None) == []
    assert records.display_headers([(SCRIPT, SCRIPT.encode())]) == [(SCRIPT, SCRIPT)]


# --- pretty_value ---------------------------------------------------------------------------


def test_json_is_indented_for_the_inspector():
    assert records.pretty_value(b'{"orderId":"o-1","items":[1]}') == (
        '{\n  "orderId": "o-1",\n  "items": [\n    1\n  ]\n}',
        True,
    )


def test_non_ascii_json_reads_as_written():
    assert records.pretty_value('{"city":"Zürich"}'.encode()) == ('{\n  "city": "Zürich"\n}', True)


def test_a_lone_surrogate_in_json_becomes_replacement_characters():
    text, is_json = records.pretty_value(b'{"orderId":"\\ud800"}')

    assert is_json
    text.encode()  # a page can send it: no surrogate left
    assert "\ufffd" in text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, ""),
        (b"", ""),
        (b"hello from kcat\n", "hello from kcat\n"),
        (NOT_UTF8, "caf\ufffd \ufffd( \ufffd\ufffd\ufffd"),
    ],
)
def test_what_is_not_json_is_shown_as_text(value: bytes | None, shown: str):
    assert records.pretty_value(value) == (shown, False)


def test_deep_json_is_shown_as_its_raw_text():
    assert records.pretty_value(DEEP) == (DEEP.decode(), False)


def test_json_the_decoder_takes_but_the_encoder_cannot_is_shown_raw(monkeypatch):
    # The (recursive, pure-Python) indenting encoder goes deeper than the C decoder: a depth
    # both accept in one stack may fail to encode in a deeper one.
    def too_deep(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(records.json, "dumps", too_deep)

    assert records.pretty_value(b"[[[1]]]") == ("[[[1]]]", False)


def test_the_inspector_shows_at_most_64_kib_of_a_value():
    big_json = json.dumps(["x" * 100] * 2000).encode()

    for value in (MEGABYTE_OF_FF, big_json):
        text, _ = records.pretty_value(value)
        shown, marker = text.split("… (")
        assert len(shown) <= records.INSPECTOR_VALUE_BYTES, "one character at most per byte shown"
        assert marker.endswith(" more bytes)")


def test_the_inspector_keeps_html_as_text():
    assert records.pretty_value(SCRIPT.encode()) == (SCRIPT, False)
    assert records.pretty_value(json.dumps({"note": SCRIPT}).encode()) == (f'{{\n  "note": "{SCRIPT}"\n}}', True)


# --- text_or_none ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [42, 4.2, True, None, [1, 2], {"id": "o-1"}], ids=repr)
def test_an_order_id_that_is_not_a_string_is_none(value: object):
    assert records.text_or_none(value) is None


def test_an_order_id_string_is_kept_and_cut_to_64():
    assert records.text_or_none("o-1") == "o-1"
    assert records.text_or_none("") == ""
    assert records.text_or_none("x" * 10_000) == "x" * 64
    assert records.text_or_none(SCRIPT) == SCRIPT


def test_an_order_id_with_lone_surrogates_can_be_stored():
    order_id = records.text_or_none(json.loads(b'"' + b"\\ud800" * 100 + b'"'))

    assert order_id == "\ufffd" * 64
    order_id.encode()


# --- event_type_of --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "event_type"),
    [
        (DEEP, "nested too deeply"),
        (MEGABYTE_OF_FF, "not JSON"),
        (NOT_UTF8, "not JSON"),
        (b"", "empty"),
        (None, "no value"),
        (b'{"orderId": 42, "items": []}', "OrderCreated"),
        (b"[1, 2]", "unknown"),
    ],
)
def test_the_event_type_is_guessed_safely_from_any_value(value: bytes | None, event_type: str):
    assert event_type_of((), value) == event_type


def test_the_event_type_header_wins_and_is_cut_to_40_characters():
    assert event_type_of([("event-type", b"OrderPaid")], DEEP) == "OrderPaid"
    assert event_type_of([("event-type", MEGABYTE_OF_FF)], None) == "\ufffd" * 40
    assert event_type_of([("event-type", SCRIPT.encode())], None) == SCRIPT[:40]


def test_an_empty_or_missing_event_type_header_falls_back_to_the_body():
    body = b'{"orderId": "o-1", "items": []}'

    assert event_type_of([("event-type", None), ("<header names not UTF-8>", b"")], body) == "OrderCreated"
    assert event_type_of([("event-type", b"")], body) == "OrderCreated"
