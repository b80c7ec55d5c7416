"""Code actions for the diagnostics whose help is a mechanical fix: a did-you-mean rename
(the help says "did you mean `x`?") and the projection shortcut that E0301 and E0302
propose for a `skip` that has none (the help quotes it, `shortcut downsample: { ... }`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from resdsl.lsp.analysis import Analysis
from resdsl.syntax import ast

_DID_YOU_MEAN = re.compile(r"did you mean `([^`]+)`\?")
_SHORTCUT = re.compile(r"`(shortcut [^`]+)`")
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9.]*")


@dataclass(frozen=True)
class Edit:
    """Replace the text from (line, column) to (end_line, end_column), 1-based code points."""

    title: str
    line: int
    column: int
    end_line: int
    end_column: int
    text: str


def rename(message: str, help: str, line_text: str, line: int, column: int,
           end_column: int) -> Edit | None:
    """The did-you-mean fix: replace the misspelled name in the diagnostic's range (on its
    first line) with the suggestion. The misspelling is the word there that the message
    quotes, or else the range's first word."""
    m = _DID_YOU_MEAN.search(help)
    if m is None:
        return None
    fix = m.group(1)
    quoted = set(re.findall(r"`([^`]+)`", message))
    words = list(_WORD.finditer(line_text, column - 1, max(end_column - 1, column)))
    chosen = next((w for w in words if w.group(0) in quoted), words[0] if words else None)
    if chosen is None or chosen.group(0) == fix:
        return None
    # `in.channels` → `in.c`: the suggestion may name the whole attribute.
    start, end = chosen.start() + 1, chosen.end() + 1
    return Edit(f"Change to `{fix}`", line, start, line, end, fix)


def _skip_at(file: ast.File, line: int, column: int) -> ast.PrimitiveStmt | None:
    """The primitive statement whose keyword is at `line`:`column`."""
    stack: list[ast.Stmt] = [s for d in (*file.blocks, *file.networks) for s in d.body]
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, ast.PrimitiveStmt):
            if (stmt.kind_span.line, stmt.kind_span.column) == (line, column):
                return stmt
            for clause in (stmt.shortcut, stmt.transform):
                if clause is not None and clause.body is not None:
                    stack.extend(clause.body)
        if isinstance(stmt, (ast.SeqStmt, ast.RepeatStmt, ast.PrimitiveStmt)):
            stack.extend(stmt.body)
    return None


def add_shortcut(analysis: Analysis, help: str, line: int, column: int) -> Edit | None:
    """E0301/E0302 on a `skip` without a shortcut: append the one its help proposes."""
    m = _SHORTCUT.search(help)
    if m is None or analysis.file is None:
        return None
    stmt = _skip_at(analysis.file, line, column)
    if stmt is None or stmt.shortcut is not None or stmt.guard is not None:
        return None
    end = stmt.span
    return Edit(f"Add `{m.group(1)}`", end.end_line, end.end_column, end.end_line,
                end.end_column, f" {m.group(1)}")
