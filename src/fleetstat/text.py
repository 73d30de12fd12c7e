"""Text that came from a monitored host, made inert: one set of rules for every use.

A host's strings reach a database (which may refuse a NUL or an unpaired
surrogate), a terminal (where ESC, CSI and OSC sequences are commands), a mail
header (where CR/LF starts a new header) and a person's eyes (where a bidi
override reorders what they read). :func:`clean` is applied once, at the document
boundary (``fleetstat.document``) and to the probe's stderr, so that no such
character goes anywhere; :func:`visible` applies the same replacement where text
is shown, as a second line of defence for text from older rows.

Replacements are visible, never silent deletions: a C0 control becomes its
Unicode "control picture" (ESC -> U+241B, LF -> U+240A), so an operator sees that
the host sent one; C1 controls, unpaired surrogates, bidi controls and the line
and paragraph separators become U+FFFD. Tab is kept (it is ordinary text in
process names and log lines).
"""

from __future__ import annotations

import re

__all__ = ["REPLACEMENT", "clean", "is_clean", "visible"]

REPLACEMENT = "\ufffd"
ELLIPSIS = "\u2026"

# C0 except tab, DEL, C1; the Arabic letter mark, LRM/RLM, the line and paragraph
# separators and the embedding/override/isolate controls (Unicode TR9: the
# "Trojan Source" characters); every UTF-16 surrogate (alone, it encodes to
# nothing: PostgreSQL, SQLite and the email package refuse it).
_UNSAFE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # U+2400 SYMBOL FOR NULL ... U+241F
    if code == 0x7F:
        return "\u2421"  # SYMBOL FOR DELETE
    return REPLACEMENT


def is_clean(value: str) -> bool:
    """No character that :func:`clean` would replace."""
    return value.isprintable() or _UNSAFE.search(value) is None


def visible(value: str, *, newlines: bool = False) -> str:
    """``value`` with every unsafe character replaced by a visible, inert one.

    ``newlines``: keep LF (multi-line text such as a stderr excerpt or a mail body).
    """
    if value.isprintable():  # the common case: no control, format or odd character
        return value
    if newlines:
        return "\n".join(_UNSAFE.sub(_picture, line) for line in value.split("\n"))
    return _UNSAFE.sub(_picture, value)


def clean(value: str, limit: int, *, newlines: bool = False) -> tuple[str, list[str]]:
    """``(text, what was changed)``: :func:`visible`, then at most ``limit`` characters.

    The reasons are short phrases for the document's notes ("control or invalid
    characters replaced", "cut from 5000 to 255 characters"); empty when nothing
    changed.
    """
    reasons: list[str] = []
    if not value.isprintable():
        replaced = visible(value, newlines=newlines)
        if replaced != value:
            reasons.append("control or invalid characters replaced")
            value = replaced
    if len(value) > limit:
        reasons.append(f"cut from {len(value)} to {limit} characters")
        value = value[: max(0, limit - 1)] + ELLIPSIS if limit > 0 else ""
    return value, reasons
