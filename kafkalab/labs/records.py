"""Showing a record that any client may have written: bounded in size, and never raising.

A lab's topic takes whatever bytes kcat or a Java producer sends: keys of a megabyte, values
that are not UTF-8 or not JSON, JSON nested thousands deep, an orderId that is a number. These
functions turn such bytes into text a page can show. They only bound and decode; escaping for
HTML is the template's job, so "<script>" stays "<script>" here.
"""

from __future__ import annotations

import codecs
import json

# Bigger than any record the brokers accept by default (message.max.bytes is about 1 MiB).
MAX_JSON_BYTES = 1 << 20
KEY_DISPLAY_BYTES = 200
HEADER_NAME_DISPLAY_BYTES = 200
HEADER_VALUE_DISPLAY_BYTES = 1024
HEADERS_SHOWN = 50
ORDER_ID_CHARS = 64
INSPECTOR_VALUE_BYTES = 64 * 1024

NO_VALUE = "no value"
EMPTY = "empty"
NOT_JSON = "not JSON"
TOO_DEEP = "nested too deeply"
TOO_LARGE = "too large to parse"


def parse_json(value: bytes | None, *, max_bytes: int = MAX_JSON_BYTES) -> tuple[object | None, str | None]:
    """(body, None) when `value` is JSON; else (None, the reason it is not shown as JSON)."""
    if value is None:
        return None, NO_VALUE
    if not value:
        return None, EMPTY
    if len(value) > max_bytes:
        return None, TOO_LARGE
    try:
        return json.loads(value), None
    except RecursionError:  # the C decoder recurses once per nesting level
        return None, TOO_DEEP
    except ValueError:  # UnicodeDecodeError is a ValueError
        return None, NOT_JSON


def display_text(raw: bytes | None, *, limit: int) -> str:
    """At most `limit` bytes of `raw` as UTF-8 (invalid bytes become U+FFFD), and a visible
    "… (N more bytes)" when there was more."""
    if raw is None:
        return ""
    if len(raw) <= limit:  # the usual case, and the observer's hot path
        return raw.decode("utf-8", errors="replace")
    # Not final: a character cut in two at the limit is left out rather than shown as U+FFFD.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    head = raw[:limit]
    text = decoder.decode(head, final=len(raw) <= limit)
    shown = len(head) - len(decoder.getstate()[0])
    if shown < len(raw):
        text += f"… ({len(raw) - shown} more bytes)"
    return text


def display_key(key: bytes | None) -> str | None:
    """A record's key as the lanes, the event boxes' data-key and the inspector show it."""
    return None if key is None else display_text(key, limit=KEY_DISPLAY_BYTES)


def display_headers(headers) -> list[tuple[str, str]]:
    """(name, value) pairs for the inspector: each bounded, and at most HEADERS_SHOWN of them."""
    shown = [
        (
            display_text(name.encode(), limit=HEADER_NAME_DISPLAY_BYTES),
            display_text(raw, limit=HEADER_VALUE_DISPLAY_BYTES),
        )
        for name, raw in list(headers or ())[:HEADERS_SHOWN]
    ]
    if len(headers or ()) > HEADERS_SHOWN:
        shown.append((f"… ({len(headers) - HEADERS_SHOWN} more headers)", ""))
    return shown


def pretty_value(value: bytes | None) -> tuple[str, bool]:
    """(text, is_json) for the inspector: JSON indented, anything else as text; at most
    INSPECTOR_VALUE_BYTES shown either way."""
    body, reason = parse_json(value)
    if reason is None:
        try:
            pretty = json.dumps(body, indent=2, ensure_ascii=False)
        except RecursionError:  # parsed, but the (recursive) encoder goes deeper than the decoder
            pretty = None
        if pretty is not None:
            return display_text(_utf8(pretty), limit=INSPECTOR_VALUE_BYTES), True
    return display_text(value, limit=INSPECTOR_VALUE_BYTES), False


def text_or_none(value: object, *, limit: int = ORDER_ID_CHARS) -> str | None:
    """A string field of a foreign record (its orderId, say), cut to `limit` characters.

    Only a JSON string counts: a number, list, object, boolean or null gives None, so the order
    id 42 is never confused with "42"; the outbox shows such an email without an order id.
    """
    if not isinstance(value, str):
        return None
    return _utf8(value[:limit]).decode()[:limit]


def _utf8(text: str) -> bytes:
    # JSON may spell lone surrogates ("\ud800"), which UTF-8 cannot encode: show them as U+FFFD.
    return text.encode("utf-8", errors="surrogatepass").decode("utf-8", errors="replace").encode()
