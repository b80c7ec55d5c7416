"""Completion: in a call's parentheses, its keyword arguments with their defaults; after
`in.`, the tensor's sizes; elsewhere ops, primitives, blocks and functions in scope,
keywords and the names of the enclosing definition (its parameters, bindings, named
tensors; a network's parameters are the `-D`-able ones).

The context is read from the buffer's text, not its AST: while a call is being typed the
buffer does not parse, and its names come from the last parse that worked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from resdsl.ir.evaluate import FUNCTIONS, IN_ATTRIBUTES
from resdsl.ir.ops import USER_OPS, fmt_value
from resdsl.ir.ops.base import REQUIRED, ArgSpec
from resdsl.ir.primitives import PRIMITIVES
from resdsl.lsp._opdocs import DOCS
from resdsl.lsp.analysis import LOCAL, Analysis
from resdsl.lsp.hover import definitions, doc_comment, op_signature, signature
from resdsl.syntax import ast

KEYWORDS = ("use", "block", "network", "def", "return", "input", "output", "repeat", "as",
            "if", "else", "shortcut", "transform", "branch", "in", "true", "false", "and",
            "or", "not")
# How far back the enclosing call is looked for.
MAX_LOOKBACK = 4000
_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*$")


@dataclass(frozen=True)
class Item:
    label: str
    kind: str  # "op", "primitive", "block", "function", "keyword", "argument", "variable", ...
    detail: str = ""
    insert: str | None = None
    doc: str | None = None


def _callee(before: str) -> str | None:
    """The name of the call whose parentheses the text `before` the cursor ends in, when the
    cursor is where an argument starts (after `(` or `,`, or in a name there)."""
    depth = 0
    start = max(0, len(before) - MAX_LOOKBACK)
    i = len(before) - 1
    stripped = _IDENT.sub("", before).rstrip()
    if not stripped.endswith(("(", ",")):
        return None
    while i >= start:
        ch = before[i]
        if ch in ")]}":
            depth += 1
        elif ch in "[{":
            if depth == 0:
                return None  # in a list or a body, not in a call's arguments
            depth -= 1
        elif ch == "(":
            if depth == 0:
                m = _IDENT.search(before[:i].rstrip())
                return m.group(0) if m else None
            depth -= 1
        i -= 1
    return None


def _arg_items(specs: tuple[ArgSpec, ...], owner: str) -> list[Item]:
    out = []
    for a in specs:
        default = "" if a.default is REQUIRED else f" = {fmt_value(a.default)}"  # type: ignore[arg-type]
        out.append(Item(a.name, "argument", f"{a.name}{default} ({a.type.value})",
                        f"{a.name} = ", f"argument of `{owner}`"))
    return out


def keyword_arguments(analysis: Analysis | None, callee: str) -> list[Item]:
    if callee in USER_OPS:
        return _arg_items(USER_OPS[callee].args, callee)
    if callee in PRIMITIVES:
        return _arg_items(PRIMITIVES[callee].args, callee)
    items: list[Item] = []
    for item in definitions(analysis, callee) if analysis is not None else []:
        for p in item.params:
            items.append(Item(p.name, "argument", p.span.text, f"{p.name} = ",
                              f"parameter of `{signature(item)}`"))
    return items


def _enclosing(analysis: Analysis, line: int) -> ast.Definition | ast.Function | None:
    file = analysis.file
    if file is None:
        return None
    items: list[ast.Definition | ast.Function] = [*file.networks, *file.blocks,
                                                  *file.functions]
    for item in items:
        if item.span.line <= line <= item.span.end_line:
            return item
    return None


def _locals(analysis: Analysis, line: int) -> list[Item]:
    owner = _enclosing(analysis, line)
    if owner is None or analysis.file is None:
        return []
    network = isinstance(owner, ast.Definition) and owner.kind == "network"
    seen: dict[str, Item] = {}
    for occ in analysis.index(analysis.file).names:
        if occ.owner is owner and occ.is_def and occ.kind in LOCAL and occ.name not in seen:
            if occ.kind == "param" and network:
                detail = f"network parameter (-D {occ.name}=VALUE)"
            else:
                detail = {"param": "parameter", "binding": "binding", "level": "named level",
                          "var": "repeat index"}[occ.kind]
            seen[occ.name] = Item(occ.name, "variable", detail)
    return list(seen.values())


def _globals(analysis: Analysis | None) -> list[Item]:
    items = [Item(name, "op", op_signature(name), None, DOCS.get(name)) for name in USER_OPS]
    items += [Item(name, "primitive", p.summary, None, DOCS.get(name))
              for name, p in PRIMITIVES.items()]
    items += [Item(name, "function", "built-in function") for name in FUNCTIONS]
    items += [Item(k, "keyword") for k in KEYWORDS]
    if analysis is not None and analysis.program is not None:
        for f in analysis.program.files:
            for block in f.blocks:
                items.append(Item(block.name, "block", signature(block), None,
                                  doc_comment(block) or None))
            for fn in f.functions:
                items.append(Item(fn.name, "function", signature(fn), None,
                                  doc_comment(fn) or None))
    return items


def complete(analysis: Analysis | None, text: str, line: int, column: int) -> list[Item]:
    """The completions at 1-based `line`:`column` of `text`."""
    lines = text.split("\n")
    current = lines[line - 1][: column - 1] if line - 1 < len(lines) else ""
    if "#" in current.split('"')[-1] and current.count('"') % 2 == 0:
        return []  # in a comment
    if re.search(r"\bin\.[A-Za-z_]*$", current):
        return [Item(a, "property", f"in.{a}: the incoming tensor's size")
                for a in IN_ATTRIBUTES]
    before = "\n".join([*lines[: line - 1], current])
    callee = _callee(before)
    locals_ = _locals(analysis, line) if analysis is not None else []
    if callee is not None:
        return keyword_arguments(analysis, callee) + locals_ + [
            Item(name, "function", "built-in function") for name in FUNCTIONS]
    return _globals(analysis) + locals_
