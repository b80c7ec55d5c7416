"""Diagnostic data: what went wrong, where, and how to fix it.

Every stage of the compiler reports mistakes in a spec as `Diagnostic` values that point
into the spec's text with `Span`s. Nothing here formats text; `render.py` does that.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True, eq=False)
class Source:
    """One spec file's text, as read. Compared by identity: two reads are two sources."""

    path: str
    text: str

    def line(self, number: int) -> str:
        """Line `number` (1-based) without its newline; empty past the end."""
        lines = self.text.split("\n")
        return lines[number - 1].rstrip("\r") if 1 <= number <= len(lines) else ""

    def span(self, start: int, end: int) -> Span:
        """The span of characters `start:end`, with its line and column computed."""
        line = self.text.count("\n", 0, start) + 1
        col = start - (self.text.rfind("\n", 0, start) + 1) + 1
        end_line = self.text.count("\n", 0, end) + 1
        end_col = end - (self.text.rfind("\n", 0, end) + 1) + 1
        return Span(self, line, col, end_line, end_col)


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
