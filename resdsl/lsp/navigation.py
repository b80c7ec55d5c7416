"""Go to definition, find references, document and workspace symbols.

Global names (blocks, functions, networks) are shared by every file of a program; local
ones (parameters, bindings, named levels and tensors, repeat variables) live in their
definition. References are looked for in the buffer's program and in the `.res` files of
the workspace (`Workspace`), so that a block's callers in other specs are found too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from resdsl.diagnostics import Span, SpecError
from resdsl.lsp.analysis import (
    GLOBAL,
    Analysis,
    FileIndex,
    Occurrence,
    index_file,
    name_span,
    plain,
)
from resdsl.lsp.hover import signature
from resdsl.syntax import ast
from resdsl.syntax.loader import read_limited
from resdsl.syntax.parser import decode, parse

# Files of a workspace searched for references and symbols, at most: a folder of data is
# not a folder of specs.
MAX_WORKSPACE_FILES = 2000
_SKIP = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", "build", "dist"}


@dataclass(frozen=True)
class Target:
    """Where a name is: a span, or a whole file (a `use`)."""

    span: Span | None
    path: str


def _at(span: Span) -> Target:
    return Target(span, os.path.abspath(span.source.path))


class Workspace:
    """The `.res` files under the workspace's folders, parsed and indexed on demand and kept
    until they change on disk."""

    def __init__(self) -> None:
        self.roots: list[Path] = []
        self._files: dict[str, tuple[float, FileIndex | None]] = {}

    def paths(self) -> Iterator[Path]:
        seen = 0
        for root in self.roots:
            for folder, dirs, files in os.walk(root):
                dirs[:] = sorted(d for d in dirs if d not in _SKIP and not d.startswith("."))
                for name in sorted(files):
                    if name.endswith(".res"):
                        seen += 1
                        if seen > MAX_WORKSPACE_FILES:
                            return
                        yield Path(folder) / name

    def indexes(self, skip: set[str]) -> Iterator[FileIndex]:
        """Every workspace file's index, but those at the paths in `skip` (open buffers)."""
        for path in self.paths():
            key = str(path.resolve())
            if key in skip:
                continue
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            cached = self._files.get(key)
            if cached is None or cached[0] != mtime:
                try:
                    file = parse(decode(key, read_limited(key)))
                    cached = (mtime, index_file(file))
                except SpecError:
                    cached = (mtime, None)
                self._files[key] = cached
            if cached[1] is not None:
                yield cached[1]


def _program_indexes(analysis: Analysis) -> list[FileIndex]:
    if analysis.program is None:
        return []
    return [analysis.index(f) for f in analysis.program.files]


def _definitions_of(indexes: Iterable[FileIndex], name: str) -> list[Occurrence]:
    return [o for idx in indexes for o in idx.names
            if o.is_def and o.kind in GLOBAL and o.name == name]


def _param(indexes: Iterable[FileIndex], target: str, name: str) -> Occurrence | None:
    """The parameter `name` of the block or function `target`: a keyword's definition."""
    for idx in indexes:
        for o in idx.names:
            if (o.is_def and o.kind == "param" and o.name == name and o.owner is not None
                    and o.owner.name == target and not (isinstance(o.owner, ast.Definition)
                                                        and o.owner.kind == "network")):
                return o
    return None


def _use_target(analysis: Analysis, idx: FileIndex, occ: Occurrence) -> str | None:
    if analysis.program is None:
        return None
    file = analysis.program.imports.get((idx.file.source.path, occ.name))
    return os.path.abspath(file.source.path) if file is not None else None


def definition(analysis: Analysis, line: int, column: int) -> list[Target]:
    if analysis.file is None:
        return []
    idx = analysis.index(analysis.file)
    occ = idx.at(line, column)
    if occ is None:
        return []
    program = _program_indexes(analysis)
    if occ.kind == "use":
        path = _use_target(analysis, idx, occ)
        return [Target(None, path)] if path else []
    if occ.kind in GLOBAL:
        return [_at(o.span) for o in _definitions_of(program, occ.name)]
    if occ.kind == "kwarg" and occ.target is not None:
        param = _param(program, occ.target, occ.name)
        return [_at(param.span)] if param else []
    target = idx.resolve(occ)
    return [_at(target.span)] if target is not None else []


def references(analysis: Analysis, workspace: Workspace, line: int, column: int,
               include_declaration: bool = True) -> list[Target]:
    if analysis.file is None:
        return []
    idx = analysis.index(analysis.file)
    occ = idx.at(line, column)
    if occ is None:
        return []
    program = _program_indexes(analysis)
    mine = {os.path.abspath(i.file.source.path) for i in program}
    everywhere = [*program, *workspace.indexes(mine)]
    found: list[Occurrence] = []
    if occ.kind == "use":
        path = _use_target(analysis, idx, occ)
        return [_at(o.span) for i in program for o in i.names
                if o.kind == "use" and path and _use_target(analysis, i, o) == path]
    if occ.kind in GLOBAL or (occ.kind == "param" and _is_block_param(occ)) or (
            occ.kind == "kwarg"):
        if occ.kind in GLOBAL:
            found = [o for i in everywhere for o in i.names
                     if o.name == occ.name and o.kind in GLOBAL]
        else:
            block = occ.target if occ.kind == "kwarg" else (occ.owner.name if occ.owner
                                                               else None)
            param = _param(program, block, occ.name) if block else None
            found = [o for i in everywhere for o in i.names
                     if o.kind == "kwarg" and o.target == block and o.name == occ.name]
            if param is not None:
                home = next(i for i in program if any(o is param for o in i.names))
                found += [o for o in home.names
                          if o.name == occ.name and home.resolve(o) is param]
    else:
        target = idx.resolve(occ)
        if target is None:
            return []
        found = [o for o in idx.names if o.name == occ.name and idx.resolve(o) is target]
    if not include_declaration:
        found = [o for o in found if not o.is_def]
    unique = {(o.span.source.path, o.span.line, o.span.column): o for o in found}
    return [_at(o.span) for o in unique.values()]


def _is_block_param(occ: Occurrence) -> bool:
    return isinstance(occ.owner, (ast.Definition, ast.Function)) and not (
        isinstance(occ.owner, ast.Definition) and occ.owner.kind == "network")


@dataclass(frozen=True)
class Symbol:
    name: str
    kind: str  # "network", "block", "function", "param", "level"
    span: Span
    selection: Span
    children: tuple[Symbol, ...] = ()
    detail: str = ""


def document_symbols(file: ast.File) -> list[Symbol]:
    """The file's networks, blocks and functions, each with its parameters and top-level
    named statements."""
    out: list[Symbol] = []
    items: list[ast.Definition | ast.Function] = [*_items(file)]
    for item in sorted(items, key=lambda i: (i.span.line, i.span.column)):
        children = [Symbol(p.name, "param", p.span, name_span(p.span, p.name))
                    for p in item.params]
        if isinstance(item, ast.Definition):
            for stmt in item.body:
                label = getattr(stmt, "label", None)
                name = plain(label) if isinstance(label, ast.Name) else None
                if name is not None and label is not None:
                    children.append(Symbol(name, "level", stmt.span, label.span))
        kind = "function" if isinstance(item, ast.Function) else item.kind
        out.append(Symbol(item.name, kind, item.span, item.name_span, tuple(children),
                          signature(item)))
    return out


def _items(file: ast.File) -> Iterator[ast.Definition | ast.Function]:
    yield from file.networks
    yield from file.blocks
    yield from file.functions


def workspace_symbols(query: str, open_files: Iterable[ast.File],
                      workspace: Workspace) -> list[Symbol]:
    """Every network, block and function whose name contains `query` (case-insensitively),
    in the open buffers' programs and the workspace's files."""
    q = query.lower()
    seen: set[tuple[str, str]] = set()
    out: list[Symbol] = []
    files = list(open_files)
    skip = {os.path.abspath(f.source.path) for f in files}
    for file in [*files, *(i.file for i in workspace.indexes(skip))]:
        for sym in document_symbols(file):
            where = (os.path.abspath(sym.span.source.path), sym.name)
            if q in sym.name.lower() and where not in seen:
                seen.add(where)
                out.append(sym)
    return out
