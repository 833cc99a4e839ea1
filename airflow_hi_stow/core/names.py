"""File names as messages and log lines show them: control and format characters escaped (``\\n`` as ``\\\\n``, a
right-to-left override as ``\\\\u202e``), so that a hostile name cannot forge a log line or disguise its end. Records
(manifests, reports, file lists) keep names exactly, JSON-encoded."""

from __future__ import annotations

import unicodedata


def printable(name: str) -> str:
    """``name`` with every control, format, surrogate or unassigned character escaped."""
    if name.isprintable():
        return name
    return "".join(
        character if character == " " or unicodedata.category(character)[0] != "C" else _escaped(character)
        for character in name
    )


def _escaped(character: str) -> str:
    code = ord(character)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(character)
    if named:
        return named
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
