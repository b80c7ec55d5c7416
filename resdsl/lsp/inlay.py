"""Inlay hints: the output shape at the end of each statement line, from the last build."""

from __future__ import annotations

from dataclasses import dataclass

from resdsl.ir.ops import fmt_shape
from resdsl.lsp.analysis import Analysis
from resdsl.syntax import ast

# Distinct shapes shown for a statement that runs several times (a block's body); more
# are counted.
MAX_SHAPES = 3
# Statements that make a tensor; bindings and outputs do not.
_MAKES = (ast.InputStmt, ast.CallStmt, ast.ElementStmt, ast.SeqStmt, ast.RepeatStmt,
          ast.PrimitiveStmt, ast.PathStmt)


@dataclass(frozen=True)
class Hint:
    line: int  # 1-based
    column: int  # 1-based, code points: the hint goes before this character
    label: str


def hints(analysis: Analysis, graphs: Analysis | None, first: int, last: int) -> list[Hint]:
    """The hints of the statements ending on lines `first` to `last` (1-based): on each
    line, the shape of the statement that ends last there."""
    if analysis.file is None or graphs is None:
        return []
    ends: dict[int, tuple[int, ast.Stmt]] = {}
    for stmt, _ in analysis.index(analysis.file).statements:
        s = stmt.span
        if isinstance(stmt, _MAKES) and first <= s.end_line <= last and (
                s.end_line not in ends or s.end_column > ends[s.end_line][0]):
            ends[s.end_line] = (s.end_column, stmt)
    out = []
    for line, (column, stmt) in sorted(ends.items()):
        shapes = list(dict.fromkeys(i.shape for i in graphs.instances(stmt.span)))
        if not shapes:
            continue
        label = " | ".join(fmt_shape(s) for s in shapes[:MAX_SHAPES])
        if len(shapes) > MAX_SHAPES:
            label += f" | … {len(shapes) - MAX_SHAPES} more"
        out.append(Hint(line, column, f" → {label}"))
    return out
