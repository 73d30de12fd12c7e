"""From a file on disk to a tree of :class:`Node`, each knowing its line.

ElementTree forgets where an element was; a config message without a line
number sends the operator hunting. So the defused expat parser feeds our own
target, which asks expat for the current line at every start tag.

Typographic quotes get a pass of their own before parsing: the assignment's
example is written with them (``ip=’127.0.0.1’``), expat stops at the first one
with "not well-formed", and the operator would fix them one run at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defusedxml.common import DefusedXmlException, DTDForbidden, EntitiesForbidden
from defusedxml.ElementTree import DefusedXMLParser, ParseError

from fleetstat.errors import ConfigIssue

TYPOGRAPHIC_QUOTES = "‘’‚‛“”„‟′″«»"  # what word processors and chat apps substitute
_ATTRIBUTE_BEFORE = re.compile(r"([\w.:-]+)\s*=\s*\Z")
STRAIGHT_QUOTES_FIX = "use straight quotes ' or \""


@dataclass
class Node:
    """One XML element: tag, attributes, children and where it was written."""

    tag: str
    attrib: dict[str, str]
    line: int
    attr_lines: dict[str, int] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)
    text: str = ""  # non-whitespace character data directly inside, if any

    def attr_line(self, name: str) -> int:
        """The line an attribute is written on (tags may span several lines)."""
        return self.attr_lines.get(name, self.line)


class SourceError(Exception):
    """The file cannot be read or parsed at all; ``issues`` says why."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


def read_text(path: Path, shown: str) -> str:
    """The file's text, or a :class:`SourceError` naming what stops us reading it."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(
            [ConfigIssue(shown, None, "config file not found", "check the path given with -c")]
        ) from None
    except IsADirectoryError:
        raise SourceError(
            [ConfigIssue(shown, None, "is a directory, not a config file", "name the XML file")]
        ) from None
    except OSError as exc:
        raise SourceError(
            [
                ConfigIssue(
                    shown,
                    None,
                    f"cannot read the config file: {exc.strerror or exc}",
                    "make it readable by the user running fleetstat",
                )
            ]
        ) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SourceError(
            [
                ConfigIssue(
                    shown,
                    line,
                    f"not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                    "save the file as UTF-8",
                )
            ]
        ) from None


def scan_typographic_quotes(text: str, shown: str) -> tuple[list[ConfigIssue], str]:
    """Find typographic quotes used as attribute quotes; return issues and a repaired text.

    A small lexer walks the text so that a ’ inside a straight-quoted value, in
    character data or in a comment is left alone: only quotes where XML expects
    ``"`` or ``'`` are reported, one issue per line. The repaired text swaps each
    of them for ``"`` (same length, so lines and columns stay put), letting the
    caller go on and report the file's other problems in the same run.
    """
    if not any(quote in text for quote in TYPOGRAPHIC_QUOTES):
        # The usual file: nothing to find, and the lexer's walk, a Python step per
        # character, was a third of loading a 500-client config (~25 ms).
        return [], text
    out = list(text)
    found: dict[int, tuple[dict[str, None], dict[str, None]]] = {}  # line -> (quotes, names)

    def report(line: int, char: str, name: str | None = None) -> None:
        quotes, names = found.setdefault(line, ({}, {}))
        quotes[char] = None
        if name:
            names[name] = None

    line = 1
    state = "text"  # text | tag | quoted | typo | comment | cdata
    closing = ""
    i = 0
    while i < len(text):
        char = text[i]
        if state == "text":
            if text.startswith("<!--", i):
                state, i = "comment", i + 4
                continue
            if text.startswith("<![CDATA[", i):
                state, i = "cdata", i + 9
                continue
            if char == "<":
                state = "tag"
        elif state == "comment":
            if text.startswith("-->", i):
                state, i = "text", i + 3
                continue
        elif state == "cdata":
            if text.startswith("]]>", i):
                state, i = "text", i + 3
                continue
        elif state == "tag":
            if char in "\"'":
                state, closing = "quoted", char
            elif char in TYPOGRAPHIC_QUOTES:
                state = "typo"
                attribute = _ATTRIBUTE_BEFORE.search(text, max(0, i - 200), i)
                report(line, char, attribute.group(1) if attribute else None)
                out[i] = '"'
            elif char == ">":
                state = "text"
        elif state == "quoted":
            if char == closing:
                state = "tag"
        elif state == "typo" and (char in TYPOGRAPHIC_QUOTES or char in "\"'"):
            # Operators mix them (ip=’10.0.0.1'): any quote closes the value.
            if char in TYPOGRAPHIC_QUOTES:
                report(line, char)
            out[i] = '"'
            state = "tag"
        if char == "\n":
            line += 1
        i += 1
    issues = []
    for number, (quotes, names) in sorted(found.items()):
        around = f"the value of {', '.join(names)}" if names else "an attribute value"
        message = f"typographic quotes {' '.join(quotes)} around {around}"
        issues.append(ConfigIssue(shown, number, message, STRAIGHT_QUOTES_FIX))
    return issues, "".join(out)


class _NodeBuilder:
    """Target for the expat-driven parser: builds :class:`Node` s with line numbers."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._stack: list[Node] = []
        self._root: Node | None = None
        self.expat: Any = None  # set once the parser exists

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        line = int(self.expat.CurrentLineNumber)
        column = int(self.expat.CurrentColumnNumber)  # characters, 0-based
        node = Node(tag, dict(attrib), line, self._attribute_lines(line, column, attrib))
        if self._stack:
            self._stack[-1].children.append(node)
        else:
            self._root = node
        self._stack.append(node)

    def end(self, tag: str) -> None:
        self._stack.pop()

    def data(self, data: str) -> None:
        if self._stack and data.strip():
            self._stack[-1].text += data.strip()

    def close(self) -> Node | None:
        return self._root

    def _attribute_lines(self, line: int, column: int, attrib: dict[str, str]) -> dict[str, int]:
        if not attrib:
            return {}
        start = self._line_starts[line - 1] + column
        end = _tag_end(self._text, start)
        if "\n" not in self._text[start:end]:  # the usual tag, on one line
            return dict.fromkeys(attrib, line)
        lines: dict[str, int] = {}
        for name in attrib:
            match = re.compile(rf"(?<![\w.:-]){re.escape(name)}\s*=").search(self._text, start, end)
            if match:
                lines[name] = line + self._text.count("\n", start, match.start())
        return lines


def _tag_end(text: str, start: int) -> int:
    """Index of the ``>`` closing the tag that opens at ``start`` (quotes respected)."""
    quote = ""
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == ">":
            return index
    return len(text)


_EXPAT_HINTS = {
    "mismatched tag": "close each element with the matching </tag>, or end it with />",
    "junk after document element": "put every element inside one <fleetstat> ... </fleetstat>",
    "no element found": "the file is empty or ends early: write <fleetstat> ... </fleetstat>",
    "unclosed token": "close the tag with > or />",
    "not well-formed (invalid token)": "check quotes and < > around this position",
    "undefined entity": "write &amp; for a literal & in a value",
    "duplicate attribute": "keep only one of the repeated attribute",
}


def parse_xml(text: str, shown: str) -> Node:
    """Parse ``text`` with defusedxml into a :class:`Node` tree, or raise :class:`SourceError`."""
    builder = _NodeBuilder(text)
    parser = DefusedXMLParser(target=builder, forbid_dtd=True)
    builder.expat = parser.parser
    try:
        parser.feed(text)
        root = parser.close()
    except DefusedXmlException as exc:
        # DTDs and entities are how XML bombs and external-file reads get in.
        line = int(parser.parser.CurrentLineNumber)
        kind = (
            "a DTD (<!DOCTYPE ...>)"
            if isinstance(exc, DTDForbidden)
            else "an entity declaration"
            if isinstance(exc, EntitiesForbidden)
            else "an external entity reference"
        )
        raise SourceError(
            [
                ConfigIssue(
                    shown,
                    line,
                    f"{kind} is not allowed in a fleetstat config",
                    "remove the <!DOCTYPE ...> block and write values literally",
                )
            ]
        ) from None
    except ParseError as exc:
        line, column = exc.position
        reason = re.sub(r": line \d+, column \d+$", "", str(exc))
        hint = next(
            (fix for prefix, fix in _EXPAT_HINTS.items() if reason.startswith(prefix)),
            "fix the XML syntax at this position",
        )
        raise SourceError(
            [ConfigIssue(shown, line, f"malformed XML: {reason} at column {column + 1}", hint)]
        ) from None
    if not isinstance(root, Node):  # pragma: no cover - expat raises "no element found" first
        raise SourceError([ConfigIssue(shown, None, "no XML element found", "write <fleetstat>")])
    return root
