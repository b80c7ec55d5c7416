"""Spans (1-based lines, code-point columns, end exclusive) to LSP positions (0-based lines,
columns in the client's code units: UTF-16 unless the client chose otherwise), and back."""

from __future__ import annotations

import os
from pathlib import Path

from lsprotocol import types

from resdsl.diagnostics import Source, Span

UTF16, UTF8, UTF32 = "utf-16", "utf-8", "utf-32"


def units(text: str, encoding: str) -> int:
    """`text`'s length in the encoding's code units."""
    if encoding == UTF32:
        return len(text)
    if encoding == UTF8:
        return len(text.encode("utf-8", "surrogatepass"))
    # A character outside the Basic Multilingual Plane is a surrogate pair: two units.
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def position(source: Source, line: int, column: int, encoding: str = UTF16) -> types.Position:
    """The LSP position of the 1-based `line` and code-point `column` of `source`."""
    text = source.line(line)
    return types.Position(line - 1, units(text[: column - 1], encoding))


def lsp_range(span: Span, encoding: str = UTF16) -> types.Range:
    return types.Range(position(span.source, span.line, span.column, encoding),
                       position(span.source, span.end_line, span.end_column, encoding))


def column_of(line_text: str, character: int, encoding: str = UTF16) -> int:
    """The 1-based code-point column of an LSP `character` (code units) on `line_text`; a
    position inside a surrogate pair or past the end is clamped."""
    if encoding == UTF32:
        return min(character, len(line_text)) + 1
    seen = 0
    for i, ch in enumerate(line_text):
        if seen >= character:
            return i + 1
        seen += units(ch, encoding)
    return len(line_text) + 1


def path_to_uri(path: str) -> str:
    """A `file:` URI for a path (relative ones from the working folder, as resdsl names the
    files a spec imports); not resolved through links, so that it names the file as the
    editor opened it."""
    return Path(os.path.abspath(path)).as_uri()
