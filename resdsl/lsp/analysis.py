"""What the language server knows about one buffer: its diagnostics, its program, the graph
of each of its networks, and an index of the names in every file it loaded.

Everything here is plain resdsl (no pygls, no torch), so the features can be tested without
a client. A buffer is checked with the compiler's own stages (`load_program`,
`check_program`, `build_network`): the same diagnostics as `resdsl check`, except that a file
of blocks alone is not an error here (E0211 is about what to compile, and a library is worth
editing), and every network of a file is built, with its defaults.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

from resdsl.diagnostics import Diagnostic, Source, Span, SpecError, error
from resdsl.ir.graph import Frame, Graph
from resdsl.ir.ops import USER_OPS, Shape
from resdsl.ir.resolve import Blocks, check_program
from resdsl.passes.counts import node_counts
from resdsl.pipeline import Options, Result, build_network, collector_paused
from resdsl.syntax import ast
from resdsl.syntax.loader import Program, load_program

# ---------------------------------------------------------------- names


@dataclass(frozen=True)
class Occurrence:
    """A name in a file: where it is defined (`is_def`) or used.

    `kind`: "block", "network", "function" (global names, shared by every file of a program),
    "param", "binding", "level" (a statement's label), "var" (a repeat's `as`), "use" (a
    `use` and the file it names), "kwarg" (a call's keyword: the block's parameter), "op",
    "primitive". `owner` is the definition it belongs to (None for global names), so that
    local names resolve inside it; `target` is the called block for a "kwarg".
    """

    name: str
    span: Span
    kind: str
    is_def: bool
    owner: ast.Definition | ast.Function | None = None
    target: str | None = None


GLOBAL = ("block", "network", "function")
LOCAL = ("param", "binding", "level", "var")


def name_span(span: Span, name: str) -> Span:
    """The first `len(name)` characters of `span`: a parameter's or keyword's name within
    `name = default`."""
    return Span(span.source, span.line, span.column, span.line, span.column + len(name))


def plain(label: ast.Name | None) -> str | None:
    """A label written without interpolation (`body`, not `layer{i}`): a name others use."""
    if label is not None and all(isinstance(p, str) for p in label.parts):
        return "".join(p for p in label.parts if isinstance(p, str))
    return None


@dataclass
class FileIndex:
    """Every name in one file, and every statement with the definition it is in."""

    file: ast.File
    names: list[Occurrence] = field(default_factory=list)
    statements: list[tuple[ast.Stmt, ast.Definition | ast.Function]] = field(
        default_factory=list)

    def at(self, line: int, column: int) -> Occurrence | None:
        """The name under the 1-based `line`:`column` (its end included), innermost first."""
        best: Occurrence | None = None
        for occ in self.names:
            s = occ.span
            if (s.line, s.column) <= (line, column) <= (s.end_line, s.end_column) and (
                best is None or (s.line, s.column) >= (best.span.line, best.span.column)
            ):
                best = occ
        return best

    def statement_at(self, line: int,
                     column: int) -> tuple[ast.Stmt, ast.Definition | ast.Function] | None:
        """The innermost statement whose span holds `line`:`column`."""
        best = None
        for stmt, owner in self.statements:
            s = stmt.span
            if (s.line, s.column) <= (line, column) <= (s.end_line, s.end_column) and (
                best is None or (s.line, s.column) >= (best[0].span.line, best[0].span.column)
            ):
                best = (stmt, owner)
        return best

    def resolve(self, occ: Occurrence) -> Occurrence | None:
        """The definition a local name refers to in this file: the last one of that name
        before it in its definition, or the first after it (a level named further on)."""
        if occ.is_def or occ.kind not in LOCAL:
            return occ if occ.is_def else None
        defs = [d for d in self.names
                if d.is_def and d.owner is occ.owner and d.name == occ.name and d.kind in LOCAL]
        before = [d for d in defs if (d.span.line, d.span.column) <= (occ.span.line,
                                                                       occ.span.column)]
        return before[-1] if before else (defs[0] if defs else None)


class _Indexer:
    def __init__(self, file: ast.File, blocks: Collection[str]) -> None:
        self.index = FileIndex(file)
        self.blocks = blocks
        self.owner: ast.Definition | ast.Function | None = None
        self.locals: set[str] = set()

    def add(self, name: str, span: Span, kind: str, is_def: bool,
            target: str | None = None) -> None:
        owner = None if kind in GLOBAL or kind in ("op", "primitive", "use") else self.owner
        self.index.names.append(Occurrence(name, span, kind, is_def, owner, target))

    def run(self) -> FileIndex:
        f = self.index.file
        for use in f.uses:
            self.add(use.path, use.span, "use", False)
        for fn in f.functions:
            self.owner = fn
            self.locals = {p.name for p in fn.params} | {b.name for b in fn.bindings}
            self.add(fn.name, fn.name_span, "function", True)
            self.params(fn.params)
            for b in fn.bindings:
                self.add(b.name, b.name_span, "binding", True)
                self.expr(b.value)
            self.expr(fn.result)
        for d in (*f.blocks, *f.networks):
            self.owner = d
            self.locals = {p.name for p in d.params} | set(self.local_names(d.body))
            self.add(d.name, d.name_span, d.kind, True)
            self.params(d.params)
            self.body(d.body)
        return self.index

    def local_names(self, body: tuple[ast.Stmt, ...]) -> Iterator[str]:
        for stmt in body:
            if isinstance(stmt, ast.Binding):
                yield stmt.name
            label = getattr(stmt, "label", None)
            name = plain(label) if isinstance(label, ast.Name) else None
            if name is not None:
                yield name
            if isinstance(stmt, ast.RepeatStmt) and stmt.var is not None:
                yield stmt.var
            yield from self.local_names(_bodies(stmt))

    def params(self, params: tuple[ast.Param, ...]) -> None:
        for p in params:
            self.add(p.name, name_span(p.span, p.name), "param", True)
            if p.default is not None:
                self.expr(p.default)

    def body(self, stmts: tuple[ast.Stmt, ...]) -> None:
        for stmt in stmts:
            self.stmt(stmt)

    def label(self, label: ast.Name | None) -> None:
        if label is None:
            return
        name = plain(label)
        if name is not None:
            self.add(name, label.span, "level", True)
        for part in label.parts:
            if not isinstance(part, str):
                self.expr(part)

    def call(self, call: ast.Call) -> None:
        target = call.target
        if target in USER_OPS:
            self.add(target, call.target_span, "op", False)
        elif target in self.locals and target not in self.blocks:
            # `t`: the flow continues from a named tensor (a block of that name wins, as in
            # elaboration).
            self.add(target, call.target_span, "binding", False)
        else:
            self.add(target, call.target_span, "block", False)
        self.args(call.args, target)

    def args(self, args: tuple[ast.Arg, ...], target: str) -> None:
        for arg in args:
            if arg.name is not None:
                self.add(arg.name, name_span(arg.span, arg.name), "kwarg", False, target)
            self.expr(arg.value)

    def stmt(self, stmt: ast.Stmt) -> None:
        assert self.owner is not None
        self.index.statements.append((stmt, self.owner))
        if isinstance(stmt, ast.Binding):
            self.add(stmt.name, stmt.name_span, "binding", True)
            self.expr(stmt.value)
            return
        if isinstance(stmt, ast.InputStmt):
            self.expr(stmt.shape)
            return
        if isinstance(stmt, ast.OutputStmt):
            if stmt.value is not None:
                self.expr(stmt.value)
        else:
            self.label(stmt.label)
        if isinstance(stmt, ast.CallStmt):
            self.call(stmt.call)
        elif isinstance(stmt, (ast.ElementStmt, ast.PathStmt)):
            self.expr(stmt.value)
        elif isinstance(stmt, ast.RepeatStmt):
            self.expr(stmt.count)
            if stmt.var is not None and stmt.var_span is not None:
                self.add(stmt.var, stmt.var_span, "var", True)
        elif isinstance(stmt, ast.PrimitiveStmt):
            self.add(stmt.kind, stmt.kind_span, "primitive", False)
            self.args(stmt.args, stmt.kind)
            for clause in (stmt.shortcut, stmt.transform):
                if clause is None:
                    continue
                self.label(clause.label)
                if clause.call is not None:
                    self.call(clause.call)
                if clause.body is not None:
                    self.body(clause.body)
                if clause.guard is not None:
                    self.expr(clause.guard)
        self.body(_own_body(stmt))
        guard = getattr(stmt, "guard", None)
        if guard is not None:
            self.expr(guard)

    def expr(self, e: ast.Expr) -> None:
        stack: list[ast.Expr] = [e]
        while stack:
            x = stack.pop()
            if isinstance(x, ast.Var):
                self.add(x.name, x.span, "binding", False)
            elif isinstance(x, ast.FuncCall):
                self.add(x.name, x.name_span, "function", False)
                for arg in x.args:
                    if arg.name is not None:
                        self.add(arg.name, name_span(arg.span, arg.name), "kwarg", False,
                                 x.name)
            stack.extend(ast.children(x))


def _own_body(stmt: ast.Stmt) -> tuple[ast.Stmt, ...]:
    if isinstance(stmt, (ast.SeqStmt, ast.RepeatStmt, ast.PrimitiveStmt)):
        return stmt.body
    return ()


def _bodies(stmt: ast.Stmt) -> tuple[ast.Stmt, ...]:
    """A statement's own body and its clauses' bodies."""
    out = _own_body(stmt)
    if isinstance(stmt, ast.PrimitiveStmt):
        for clause in (stmt.shortcut, stmt.transform):
            if clause is not None and clause.body is not None:
                out += clause.body
    return out


def index_file(file: ast.File, blocks: Collection[str] = ()) -> FileIndex:
    """The names of `file`; `blocks` are the blocks visible to it (its program's), besides
    its own."""
    idx = _Indexer(file, {*blocks, *(b.name for b in file.blocks)}).run()
    # A Var that names a parameter, binding, level or repeat variable is that local name;
    # the indexer files every Var as a "binding" use and resolves the kind here.
    kinds = {(id(o.owner), o.name): o.kind for o in idx.names if o.is_def and o.kind in LOCAL}
    idx.names = [
        Occurrence(o.name, o.span, kinds.get((id(o.owner), o.name), o.kind),
                   o.is_def, o.owner, o.target)
        if not o.is_def and o.kind == "binding" else o
        for o in idx.names
    ]
    return idx


# ---------------------------------------------------------------- graphs


@dataclass(frozen=True)
class Instance:
    """One run of a statement in a network's graph: its module path (None where it names
    no level), output shape, and the parameters and MACs of the nodes it created."""

    network: str
    path: str | None
    shape: Shape
    params: int
    macs: int


Key = tuple[str, int, int, int, int]


def key(span: Span) -> Key:
    """A span by its file's path and place, not its source's identity: the graph kept from
    the last build that worked answers for the same place in a newer parse of the buffer."""
    return (os.path.abspath(span.source.path), span.line, span.column, span.end_line,
            span.end_column)


class GraphIndex:
    """Where each statement's nodes and frames are in one network's graph, by span."""

    def __init__(self, result: Result) -> None:
        self.result = result
        graph = result.graph
        self.frames: dict[Key, list[Frame]] = {}
        for f in graph.frames:
            if f.span is not None and f.kind != "iteration" and f.output is not None:
                self.frames.setdefault(key(f.span), []).append(f)
        self.nodes: dict[Key, list[int]] = {}
        for n in graph.nodes():
            if n.span is not None:
                self.nodes.setdefault(key(n.span), []).append(n.id)
        self._sums: tuple[list[int], list[int]] | None = None

    def _prefix(self) -> tuple[list[int], list[int]]:
        """Running totals of parameters and MACs over the nodes, made on first use."""
        if self._sums is None:
            graph = self.result.graph
            params, macs = [0], [0]
            for n in graph.nodes():
                c = node_counts(graph, n)
                params.append(params[-1] + c.params)
                macs.append(macs[-1] + c.macs)
            self._sums = params, macs
        return self._sums

    def _path(self, frame: Frame) -> str | None:
        """A frame's module path, or its nearest named enclosing level's (an unnamed block
        call inside `layer1: repeat ...` is in `layer1.0`)."""
        frames = self.result.graph.frames
        f: Frame | None = frame
        while f is not None and f.path is None:
            f = frames[f.parent] if f.parent is not None else None
        return f.path if f is not None else None

    def instances(self, span: Span) -> list[Instance]:
        graph: Graph = self.result.graph
        name = self.result.network.name
        frames = self.frames.get(key(span))
        if frames:
            params, macs = self._prefix()
            return [
                Instance(name, self._path(f), graph.node(f.output).shape,
                         params[f.end] - params[f.start], macs[f.end] - macs[f.start])
                for f in frames if f.output is not None and f.end is not None
            ]
        out = []
        for nid in self.nodes.get(key(span), ()):
            node = graph.node(nid)
            c = node_counts(graph, node)
            out.append(Instance(name, node.path, node.shape, c.params, c.macs))
        # An op statement makes one node; anything else (a join's internal nodes) is
        # summarised by its last one.
        return out


# ---------------------------------------------------------------- one buffer


@dataclass
class Analysis:
    """The outcome of checking one buffer."""

    path: str
    text: str
    version: int | None
    diagnostics: list[Diagnostic]
    program: Program | None = None
    blocks: Blocks | None = None
    graphs: list[GraphIndex] = field(default_factory=list)
    _indexes: dict[int, FileIndex] = field(default_factory=dict)

    @property
    def file(self) -> ast.File | None:
        return self.program.main if self.program is not None else None

    def index(self, file: ast.File) -> FileIndex:
        idx = self._indexes.get(id(file))
        if idx is None:
            blocks = self.blocks.by_name if self.blocks is not None else ()
            idx = self._indexes[id(file)] = index_file(file, blocks)
        return idx

    def instances(self, span: Span) -> list[Instance]:
        return [i for g in self.graphs for i in g.instances(span)]


def _internal(path: str, text: str) -> Diagnostic:
    """A crash of the compiler, shown at the top of the buffer rather than ending the server."""
    source = Source(path, text)
    return error("E9000", "internal error: this is a bug in resdsl, not a mistake in your spec",
                 source.span(0, 0), notes=(traceback.format_exc(limit=-3).strip(),))


def analyse(path: str, text: str, version: int | None = None) -> Analysis:
    """Check `text` as the spec at `path` and build each of its networks."""
    with collector_paused():
        return _analyse(path, text, version)


def _analyse(path: str, text: str, version: int | None) -> Analysis:
    try:
        program = load_program(path, text)
    except SpecError as exc:
        return Analysis(path, text, version, exc.diagnostics)
    except Exception:  # RecursionError included: a bug, reported, not the server's end
        return Analysis(path, text, version, [_internal(path, text)])
    out = Analysis(path, text, version, [], program)
    try:
        diagnostics, blocks = check_program(program)
        out.blocks = blocks
        out.diagnostics = list(diagnostics)
        if any(d.is_error for d in diagnostics):
            return out
        for net in program.main.networks:
            try:
                result = build_network(program, blocks, net, Options(network=net.name), [])
            except SpecError as exc:
                out.diagnostics += exc.diagnostics
                continue
            out.graphs.append(GraphIndex(result))
    except Exception:
        out.diagnostics.append(_internal(path, text))
    return out
