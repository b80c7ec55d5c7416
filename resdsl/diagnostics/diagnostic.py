"""Diagnostic data: what went wrong, where, and how to fix it.

Every stage of the compiler reports mistakes in a spec as `Diagnostic` values that point
into the spec's text with `Span`s. Nothing here formats text; `render.py` does that.
"""

from __future__ import annotations

import enum
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True, eq=False)
class Source:
    """One spec file's text, as read. Compared by identity: two reads are two sources."""

    path: str
    text: str

    @cached_property
    def _line_starts(self) -> list[int]:
        """The offset of each line's first character. Built once, on the first span: the
        parser asks for a span per token it reports and elaboration per node, so counting
        newlines from the start of the file each time made a long file cost quadratic time."""
        return [0, *(m.end() for m in _NEWLINE.finditer(self.text))]

    def line(self, number: int) -> str:
        """Line `number` (1-based) without its newline; empty past the end."""
        starts = self._line_starts
        if not 1 <= number <= len(starts):
            return ""
        end = starts[number] - 1 if number < len(starts) else len(self.text)
        return self.text[starts[number - 1] : end].rstrip("\r")

    def position(self, offset: int) -> tuple[int, int]:
        """The 1-based line and column of character `offset`, in O(log lines)."""
        starts = self._line_starts
        line = max(1, bisect_right(starts, offset))
        return line, offset - starts[line - 1] + 1

    def offset(self, line: int, column: int) -> int:
        """The offset of the 1-based `line` and `column`; the inverse of `position`."""
        return self._line_starts[line - 1] + column - 1

    def span(self, start: int, end: int) -> Span:
        """The span of characters `start:end`, with its line and column computed."""
        line, col = self.position(start)
        end_line, end_col = self.position(end)
        return Span(self, line, col, end_line, end_col)


_NEWLINE = re.compile("\n")


@dataclass(frozen=True)
class Span:
    """A region of a source: 1-based line and column of its first character, and of the
    character just after its end (Lark's convention)."""

    source: Source
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.source.path}:{self.line}:{self.column}"

    @property
    def text(self) -> str:
        """The spec's text under the span (`t[0]`, `stride != 1`), for messages."""
        start = self.source.offset(self.line, self.column)
        return self.source.text[start : self.source.offset(self.end_line, self.end_column)]

    def to(self, other: Span) -> Span:
        """The span from the start of this one to the end of `other`."""
        return Span(self.source, self.line, self.column, other.end_line, other.end_column)


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Label:
    """A marked span with a short message. The primary label carries the caret."""

    span: Span
    message: str = ""


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    primary: Label | None
    secondary: tuple[Label, ...] = ()
    help: str | None = None
    notes: tuple[str, ...] = ()
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


@dataclass
class SpecError(Exception):
    """Raised to stop a stage that cannot go on; carries every diagnostic found so far."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{d.code}: {d.message}" for d in self.diagnostics)


def error(
    code: str,
    message: str,
    span: Span | None,
    label: str = "",
    *,
    help: str | None = None,
    notes: tuple[str, ...] = (),
    secondary: tuple[Label, ...] = (),
) -> Diagnostic:
    """Shorthand for an error diagnostic with one primary label."""
    primary = Label(span, label) if span is not None else None
    return Diagnostic(code, message, primary, secondary, help, notes)


def warning(
    code: str, message: str, span: Span, label: str = "", *, help: str | None = None
) -> Diagnostic:
    return Diagnostic(code, message, Label(span, label), (), help, (), Severity.WARNING)


def fail(
    code: str,
    message: str,
    span: Span | None,
    label: str = "",
    *,
    help: str | None = None,
    notes: tuple[str, ...] = (),
    secondary: tuple[Label, ...] = (),
) -> SpecError:
    """An exception carrying one error; `raise fail(...)`."""
    return SpecError(
        [error(code, message, span, label, help=help, notes=notes, secondary=secondary)]
    )


class InternalError(Exception):
    """A broken invariant inside resdsl: a bug in resdsl, never a mistake in the spec."""
