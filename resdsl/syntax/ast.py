"""The abstract syntax of a .res file: frozen dataclasses, each with the `Span` it came from.

Names here are the language's own (`skip`, `shortcut`, `repeat`, ...), so a reader can go from
the grammar to the AST to the elaborator without a dictionary.
"""

from __future__ import annotations

from dataclasses import dataclass

from resdsl.diagnostics import Source, Span

# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Literal:
    value: int | float | bool | str
    span: Span


@dataclass(frozen=True)
class Var:
    name: str
    span: Span


@dataclass(frozen=True)
class In:
    """`in`: the tensor flowing into the current statement; used as `in.c`, `in.h`, `in.w`."""

    span: Span


@dataclass(frozen=True)
class Attr:
    obj: Expr
    name: str
    span: Span


@dataclass(frozen=True)
class Index:
    obj: Expr
    index: Expr
    span: Span


@dataclass(frozen=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class Unary:
    op: str  # "-", "+", "not"
    operand: Expr
    span: Span


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / // % ** == != < <= > >= and or
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True)
class Cond:
    """`then if test else orelse`."""

    then: Expr
    test: Expr
    orelse: Expr
    span: Span


@dataclass(frozen=True)
class FuncCall:
    """A function call in an expression: a built-in (`min`, `max`, `len`, `int`, `round`)
    or a `def` of the program."""

    name: str
    args: tuple[Arg, ...]
    span: Span
    name_span: Span


Expr = Literal | Var | In | Attr | Index | ListExpr | Unary | Binary | Cond | FuncCall


def children(e: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of `e`, for passes that walk expressions."""
    if isinstance(e, Attr):
        return (e.obj,)
    if isinstance(e, Index):
        return (e.obj, e.index)
    if isinstance(e, ListExpr):
        return e.items
    if isinstance(e, Unary):
        return (e.operand,)
    if isinstance(e, Binary):
        return (e.left, e.right)
    if isinstance(e, Cond):
        return (e.then, e.test, e.orelse)
    if isinstance(e, FuncCall):
        return tuple(a.value for a in e.args)
    return ()

# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class Arg:
    """A call argument: positional when `name` is None."""

    name: str | None
    value: Expr
    span: Span


@dataclass(frozen=True)
class Name:
    """A statement's name; `parts` mixes text and interpolated expressions (`layer{i + 1}`)."""

    parts: tuple[str | Expr, ...]
    span: Span


@dataclass(frozen=True)
class Call:
    """`conv(64, 3, stride = 2)` or `bottleneck(64)` or bare `relu`: an op or a block."""

    target: str
    args: tuple[Arg, ...]
    span: Span
    target_span: Span


@dataclass(frozen=True)
class Binding:
    name: str
    value: Expr
    span: Span
    name_span: Span


@dataclass(frozen=True)
class InputStmt:
    shape: Expr
    span: Span


@dataclass(frozen=True)
class CallStmt:
    label: Name | None
    call: Call
    guard: Expr | None
    span: Span


@dataclass(frozen=True)
class ElementStmt:
    """`t[0]`: the flow continues from an element of a list of tensors (`t = in` inside a
    repeat makes one). A bare `t` is a `CallStmt`: only elaboration tells it from a call."""

    label: Name | None  # refused: a continuation makes no module to name
    value: Index
    guard: Expr | None
    span: Span

    @property
    def root(self) -> Var:
        """The list's name: `t` of `t[0][1]`."""
        obj: Expr = self.value
        while isinstance(obj, Index):
            obj = obj.obj
        assert isinstance(obj, Var)
        return obj


@dataclass(frozen=True)
class SeqStmt:
    """`name: { ... }`, or `{ ... }` unnamed: an unnamed sequence takes a position, unless it
    is guarded (`{ bn; relu } if c`), which only groups its statements under the guard."""

    label: Name | None
    body: tuple[Stmt, ...]
    guard: Expr | None
    span: Span


@dataclass(frozen=True)
class RepeatStmt:
    label: Name | None
    count: Expr
    var: str | None
    body: tuple[Stmt, ...]
    span: Span
    var_span: Span | None
    guard: Expr | None = None


@dataclass(frozen=True)
class Clause:
    """The `shortcut` of skip/weight/dual, or the `transform` of gate."""

    keyword: str
    label: Name | None
    call: Call | None
    body: tuple[Stmt, ...] | None
    guard: Expr | None
    span: Span


@dataclass(frozen=True)
class PrimitiveStmt:
    """`skip`, `weight`, `gate`, `concat`, `group`, `dual`, `scale` or `branch`."""

    label: Name | None
    kind: str
    args: tuple[Arg, ...]
    body: tuple[Stmt, ...]
    shortcut: Clause | None
    transform: Clause | None
    span: Span
    kind_span: Span
    # `skip { F } if c`: when false the connection is dropped and F runs alone.
    guard: Expr | None = None

    @property
    def branches(self) -> tuple[PrimitiveStmt, ...]:
        """The `branch` statements of a multi-branch `weight`, `skip` or `concat`."""
        return tuple(s for s in self.body if isinstance(s, PrimitiveStmt) and s.kind == "branch")


@dataclass(frozen=True)
class PathStmt:
    """`body.c3`, `layer2.c[-1]`: the flow continues from a tensor named inside a level (a
    named sequence, block call or repeat). `value` is the path as an expression: `.` over
    the level's name (`Attr` over `Var`), then any `[i]`."""

    label: Name | None  # refused: a continuation makes no module to name
    value: Expr
    guard: Expr | None
    span: Span


@dataclass(frozen=True)
class OutputStmt:
    """`output out`, `output aux = t if c`, `output "0" = c2`: one of a network's named
    outputs. `value` is None for the flowing tensor; the flow goes on unchanged either way."""

    name: str
    name_span: Span
    value: Expr | None
    guard: Expr | None
    span: Span


Stmt = (Binding | InputStmt | CallStmt | ElementStmt | SeqStmt | RepeatStmt | PrimitiveStmt
        | PathStmt | OutputStmt)

# ---------------------------------------------------------------- definitions


@dataclass(frozen=True)
class Param:
    name: str
    default: Expr | None
    span: Span


@dataclass(frozen=True)
class Definition:
    """A `block` or a `network`: the same shape, different roles."""

    kind: str  # "block" or "network"
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span
    name_span: Span


@dataclass(frozen=True)
class Function:
    """`def f(a, b = 1) { c = a * b; return c + 1 }`: a function of values."""

    name: str
    params: tuple[Param, ...]
    bindings: tuple[Binding, ...]
    result: Expr
    span: Span
    name_span: Span


@dataclass(frozen=True)
class Use:
    path: str
    span: Span


@dataclass(frozen=True)
class File:
    source: Source
    uses: tuple[Use, ...]
    blocks: tuple[Definition, ...]
    networks: tuple[Definition, ...]
    functions: tuple[Function, ...] = ()
