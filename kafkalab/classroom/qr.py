"""The join URL as a QR code, drawn on the server as inline SVG (no script, no image request)."""

from __future__ import annotations

import segno
from django.utils.safestring import SafeString, mark_safe


def qr_svg(url: str, *, scale: int = 8) -> SafeString:
    code = segno.make(url, error="m")
    # segno escapes the title itself; the SVG holds nothing else a user typed.
    svg = code.svg_inline(scale=scale, dark="#111", light="#fff", title=f"QR code: {url}", svgclass="qr", omitsize=True)
    return mark_safe(svg.replace("<svg ", '<svg role="img" aria-label="QR code of the join address" ', 1))
