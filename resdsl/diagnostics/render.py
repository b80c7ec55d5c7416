"""The one renderer of diagnostics: rustc-style text, or JSON for editors and CI."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TextIO

from resdsl.diagnostics.diagnostic import Diagnostic, Label, Span


def _expand(line: str, column: int) -> tuple[str, int]:
    """Expand tabs so that the caret lines up; returns the line and the new 0-based column."""
    line = "".join(ch if ch >= " " or ch == "\t" else "\ufffd" for ch in line)
    prefix = line[: column - 1].expandtabs(4)
    return line.expandtabs(4), len(prefix)


# Longer source lines are shown as a window around the marked span.
MAX_SHOWN = 120


def _window(line: str, start: int, end: int) -> tuple[str, int, int]:
    """Cut a long line to MAX_SHOWN characters around [start, end); returns the cut line and
    the span's new columns. A cut is marked with `...`."""
    if len(line) <= MAX_SHOWN:
        return line, start, end
    end = min(end, start + MAX_SHOWN // 2)
    left = max(0, min(start - MAX_SHOWN // 3, len(line) - MAX_SHOWN))
    right = left + MAX_SHOWN
    head = "..." if left > 0 else ""
    tail = "..." if right < len(line) else ""
    return head + line[left:right] + tail, start - left + len(head), end - left + len(head)


def _snippet(label: Label, marker: str, gutter: int, header: str) -> list[str]:
    span = label.span
    text = span.source.line(span.line)
    shown, start = _expand(text, span.column)
    if span.end_line == span.line:
        _, end = _expand(text, span.end_column)
    else:
        end = len(shown)
    shown, start, end = _window(shown, start, end)
    width = max(1, end - start)
    pad = " " * gutter
    out = [
        f"{pad}{header} {span}",
        f"{pad} |",
        f"{span.line:>{gutter}} | {shown}".rstrip(),
        f"{pad} | {' ' * start}{marker * width} {label.message}".rstrip(),
    ]
    return out


def render_text(diagnostic: Diagnostic) -> str:
    d = diagnostic
    lines = [f"{d.severity.value}[{d.code}]: {d.message}"]
    labels = ([d.primary] if d.primary else []) + list(d.secondary)
    gutter = max((len(str(lb.span.line)) for lb in labels), default=1)
    pad = " " * gutter
    if d.primary is not None:
        lines += _snippet(d.primary, "^", gutter, "-->")
    for lb in d.secondary:
        lines += _snippet(lb, "-", gutter, ":::")
    if labels and (d.help or d.notes):
        lines.append(f"{pad} |")
    for note in d.notes:
        lines.append(f"{pad} = note: {note}")
    if d.help:
        lines.append(f"{pad} = help: {d.help}")
    return "\n".join(lines)


def render_all_text(diagnostics: Iterable[Diagnostic]) -> str:
    """All diagnostics, separated by blank lines, then a one-line summary."""
    ds = list(diagnostics)
    if not ds:
        return ""
    parts = [render_text(d) for d in ds]
    errors = sum(d.is_error for d in ds)
    warnings = len(ds) - errors
    summary = []
    if errors:
        summary.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        summary.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return "\n\n".join(parts) + "\n\n" + ", ".join(summary) + "\n"


def _span_json(span: Span) -> dict[str, object]:
    return {
        "file": span.source.path,
        "line": span.line,
        "column": span.column,
        "end_line": span.end_line,
        "end_column": span.end_column,
    }


def to_json(diagnostic: Diagnostic) -> dict[str, object]:
    d = diagnostic
    out: dict[str, object] = {
        "severity": d.severity.value,
        "code": d.code,
        "message": d.message,
    }
    if d.primary is not None:
        out.update(_span_json(d.primary.span))
        out["label"] = d.primary.message
    out["related"] = [{**_span_json(lb.span), "message": lb.message} for lb in d.secondary]
    out["help"] = d.help
    out["notes"] = list(d.notes)
    return out


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([to_json(d) for d in diagnostics], indent=2, ensure_ascii=False) + "\n"


def write_errors(diagnostics: Sequence[Diagnostic], fmt: str, out: TextIO, err: TextIO) -> None:
    """A command's failure: with `--format json` the diagnostics array on stdout (what tools
    read), else the text on stderr."""
    if fmt == "json":
        out.write(render_json(diagnostics))
    elif diagnostics:
        err.write(render_all_text(diagnostics))
