"""AST → graph: runs a network's statements and lowers each primitive to graph nodes.

Elaboration walks the statements in order with the tensor flowing through them, so `in.c`
and every shape are known at each point, and each node's shape is inferred (by its op's rule
in `ops.py`) as the node is created. Mistakes that depend on values or shapes are reported
here, pointing at the statement that caused them.

Naming (the contract with PyTorch's state_dict keys):
- a statement's name opens a level of the module path (`layer1`, `conv1`);
- `name: repeat` numbers its iterations `name.0`, `name.1`, ...;
- an unnamed op takes its position in the enclosing scope, as in `nn.Sequential`;
- an unnamed block call, sequence, repeat or primitive is transparent: what it creates is
  named directly in the enclosing scope.

Named or not, every block call, primitive, repeat (and iteration), sequence and clause is also
recorded as a `Frame` of the graph, so the spec's structure survives the lowering.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from resdsl.diagnostics import Label, Span, SpecError, fail
from resdsl.ir.evaluate import Env, Evaluator
from resdsl.ir.graph import Graph, Scope
from resdsl.ir.ops import (
    MAX_DIM,
    OPS,
    PER_CHANNEL,
    USER_OPS,
    ArgError,
    ArgSpec,
    ArgType,
    Shape,
    ShapeError,
    Value,
    a_type,
    coerce,
    fmt_shape,
    fmt_value,
)
from resdsl.ir.primitives import PRIMITIVES
from resdsl.ir.resolve import Blocks
from resdsl.syntax import ast

# Limits that keep a hostile spec from exhausting memory; docs/language.md lists them.
MAX_NODES = 500_000
MAX_REPEAT = 100_000
# Bodies (of block calls, sequences, primitives, repeats) inside each other; elaboration
# recurses once per level, so this also keeps it far from Python's recursion limit.
MAX_DEPTH = 100
# Statements run while elaborating (ten per node, with room to spare): a repeat of statements
# that create no node, such as guarded-off ones, cannot run forever.
MAX_STEPS = 5_000_000

_NAME_TEXT = re.compile(r"[A-Za-z0-9_]*")


@dataclass(frozen=True)
class Tensor:
    node: int
    shape: Shape


class _Scope:
    """A module namespace being filled: the names given so far and the position counter."""

    __slots__ = ("names", "path", "position", "trail", "trails")

    def __init__(self, path: str) -> None:
        self.path = path
        self.names: dict[str, Span | None] = {}
        self.position = 0
        # The unnamed block calls and repeat iterations being run in this scope (span, block
        # name or "repeat", iteration), and the trail each name was claimed through: they
        # tell which call or repeat made two names collide.
        self.trail: list[tuple[Span, str, int]] = []
        self.trails: dict[str, tuple[tuple[Span, str, int], ...]] = {}

    def full(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def claim(self, name: str, span: Span | None) -> str:
        """Register a child name (a module); two children may not share one."""
        if name in self.names:
            raise self._clash(name, span)
        self.names[name] = span
        self.trails[name] = tuple(self.trail)
        self.position += 1
        return self.full(name)

    def _clash(self, name: str, span: Span | None) -> SpecError:
        first, path = self.names[name], self.full(name)
        old, new = self.trails.get(name, ()), tuple(self.trail)
        diverge = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), None)
        if diverge is None and len(old) != len(new):
            diverge = min(len(old), len(new))
        named_here = (Label(span, f"`{name}` is named here"),) if span else ()
        first_label = (Label(first, "the first one"),) if first else ()
        if diverge is None or diverge >= len(new):
            return fail(
                "E0206",
                f"two modules are named `{path}`",
                span,
                "the second one",
                secondary=first_label,
                help="give one of them another name",
            )
        site, kind, _ = new[diverge]
        prev = old[diverge] if diverge < len(old) else None
        if kind == "repeat" and prev is not None and prev[0] == site:
            return fail(
                "E0206",
                f"two modules are named `{path}`",
                site,
                f"every iteration of this unnamed repeat adds `{name}`",
                secondary=named_here,
                help="name the repeat (`layer1: repeat n { ... }`): a named repeat numbers its "
                "iterations `layer1.0`, `layer1.1`, ...",
            )
        what = "repeat" if kind == "repeat" else "call"
        earlier = first_label
        if prev is not None:
            origin = "repeat" if prev[1] == "repeat" else "call"
            earlier = (Label(prev[0], f"the first comes from this {origin}"),)
        return fail(
            "E0206",
            f"two modules are named `{path}`",
            site,
            f"this unnamed {what} adds a second `{name}`",
            secondary=earlier + named_here,
            help=(
                "name the repeat (`layer1: repeat n { ... }`), or rename one of them"
                if kind == "repeat"
                else f"name the calls (`a: {kind}(...)`): an unnamed call puts its layers "
                "directly in the caller"
            ),
        )

    def internal(self, base: str, span: Span | None) -> str:
        """A name for a node a primitive creates (`skip`, `alpha`), made unique."""
        name, k = base, 1
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names[name] = span
        return self.full(name)


@dataclass
class _Group:
    """Lowering state while inside `group(g) { ... }`."""

    groups: int
    entry: int
    fanned_out: bool = False
    # The per-branch `groups` of every conv lowered so far, by node id.
    branch_groups: dict[int, int] = field(default_factory=dict)


class Elaborator:
    def __init__(self, blocks: Blocks, graph: Graph) -> None:
        self.blocks = blocks
        self.graph = graph
        self.eval = Evaluator()
        self.group: _Group | None = None
        self.depth = 0
        self.steps = 0  # statements run so far; bounded by MAX_STEPS

    # ------------------------------------------------------------------ network

    def network(
        self, net: ast.Definition, params: Mapping[str, Value], input_shape: Shape | None
    ) -> None:
        env: dict[str, Value] = dict(params)
        stmts = list(net.body)
        while stmts and isinstance(stmts[0], ast.Binding):
            binding = stmts.pop(0)
            assert isinstance(binding, ast.Binding)
            env[binding.name] = self.eval(binding.value, env, None)
        if not stmts or not isinstance(stmts[0], ast.InputStmt):
            inputs = [s for s in stmts if isinstance(s, ast.InputStmt)]
            if inputs:
                raise fail(
                    "E0502",
                    "statements come before the network's `input`",
                    stmts[0].span,
                    "this runs before there is an input",
                    help="start the network with `input [C, H, W]`",
                )
            raise fail(
                "E0501",
                f"network `{net.name}` has no input",
                net.name_span,
                "no `input` statement",
                help="start the network with its input shape, e.g. `input [3, 224, 224]`",
            )
        first = stmts.pop(0)
        assert isinstance(first, ast.InputStmt)
        shape = input_shape or self._input_shape(first, env)
        root = _Scope("")
        nid = self.graph.add("input", {"shape": fmt_shape(shape)}, (), shape, "input", first.span)
        root.names["input"] = first.span
        x = self.body(tuple(stmts), Tensor(nid, shape), root, env)
        self.graph.output = x.node

    def _input_shape(self, stmt: ast.InputStmt, env: Env) -> Shape:
        value = self.eval(stmt.shape, env, None)
        if (
            not isinstance(value, tuple)
            or len(value) not in (1, 3)
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in value)
        ):
            raise fail(
                "E0401",
                f"an input shape is a list of 1 or 3 integers, not {fmt_value(value)}",
                stmt.shape.span,
                "expected [C, H, W] or [C]",
            )
        for d in value:
            assert isinstance(d, int)
            if not 1 <= d <= MAX_DIM:
                raise fail("E0408", f"input dimension {d} is out of range", stmt.shape.span,
                           f"dimensions run from 1 to {MAX_DIM:,}")
        return tuple(value)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ statements

    def body(self, stmts: tuple[ast.Stmt, ...], x: Tensor, scope: _Scope, env: Env) -> Tensor:
        if self.depth >= MAX_DEPTH and stmts:
            raise fail(
                "E0004",
                f"blocks, sequences and primitives are nested more than {MAX_DEPTH} levels deep",
                stmts[0].span,
                "too deep",
                help="flatten the spec: call blocks one after another, not inside each other",
            )
        self.depth += 1
        self.steps += len(stmts)
        if self.steps > MAX_STEPS:
            raise self._too_long(stmts[0].span)
        try:
            local = dict(env)
            for stmt in stmts:
                x = self.stmt(stmt, x, scope, local)
            return x
        finally:
            self.depth -= 1

    def stmt(self, stmt: ast.Stmt, x: Tensor, scope: _Scope, env: dict[str, Value]) -> Tensor:
        if isinstance(stmt, ast.Binding):
            env[stmt.name] = self.eval(stmt.value, env, x.shape)
            return x
        if isinstance(stmt, ast.CallStmt):
            if stmt.guard is not None and not self._guard(stmt.guard, env, x):
                return x
            return self.call(stmt.call, stmt.label, x, scope, env, stmt.span)
        if isinstance(stmt, ast.SeqStmt):
            if stmt.guard is not None and not self._guard(stmt.guard, env, x):
                return x
            name = self.name(stmt.label, env, x)
            child = self.child(scope, name, "sequence", stmt.label.span)
            fid = self.graph.open_frame("sequence", name, child.path, stmt.span, {}, x.node)
            return self.closed(fid, self.body(stmt.body, x, child, env))
        if isinstance(stmt, ast.RepeatStmt):
            return self.repeat(stmt, x, scope, env)
        if isinstance(stmt, ast.PrimitiveStmt):
            return self.primitive(stmt, x, scope, env)
        raise fail(
            "E0502",
            "a network has exactly one `input`, at its start",
            stmt.span,
            "a second input",
            help="remove this statement",
        )

    def _guard(self, guard: ast.Expr, env: Env, x: Tensor) -> bool:
        return self.eval.condition(guard, env, x.shape, "a guard (`if ...`)")

    def name(self, label: ast.Name, env: Env, x: Tensor) -> str:
        text = []
        for part in label.parts:
            if isinstance(part, str):
                text.append(part)
                continue
            value = self.eval(part, env, x.shape)
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise fail(
                    "E0401",
                    f"a name can include integers and strings, not {a_type(value)}",
                    part.span,
                    f"this is {fmt_value(value)}",
                )
            if isinstance(value, str) and not _NAME_TEXT.fullmatch(value):
                # A `.` would fake a level of the module path; PyTorch refuses such names.
                raise fail(
                    "E0401",
                    f"a name may hold only letters, digits and `_`, not {fmt_value(value)}",
                    part.span,
                    f"this is {fmt_value(value)}",
                )
            text.append(str(value))
        return "".join(text)

    def child(self, scope: _Scope, name: str, kind: str, span: Span | None) -> _Scope:
        path = scope.claim(name, span)
        self.graph.add_scope(Scope(path, kind, span))
        return _Scope(path)

    def call(
        self,
        call: ast.Call,
        label: ast.Name | None,
        x: Tensor,
        scope: _Scope,
        env: Env,
        span: Span,
    ) -> Tensor:
        name = self.name(label, env, x) if label is not None else None
        label_span = label.span if label is not None else call.span
        op = USER_OPS.get(call.target)
        if op is not None:
            args = self.bind(op.args, call.args, call.target, env, x)
            group = self.group
            if group is not None:
                branch_groups = args.get("groups")
                args = self._lower_in_group(op.name, args, x, span)
            path = scope.claim(name if name is not None else str(scope.position), label_span)
            y = self.add(op.name, args, (x,), path, span)
            if group is not None and op.name == "conv":
                assert isinstance(branch_groups, int)
                group.branch_groups[y.node] = branch_groups
            return y
        block = self.blocks.by_name[call.target]
        env_b = self.bind_block(block, call, env, x)
        if name is not None:
            child = self.child(scope, name, block.name, label_span)
            fid = self.graph.open_frame("block", block.name, child.path, span, env_b, x.node)
            return self.closed(fid, self.body(block.body, x, child, env_b))
        scope.trail.append((call.span, block.name, 0))
        try:
            fid = self.graph.open_frame("block", block.name, None, span, env_b, x.node)
            return self.closed(fid, self.body(block.body, x, scope, env_b))
        finally:
            scope.trail.pop()

    def closed(self, fid: int, y: Tensor) -> Tensor:
        """Close frame `fid` with its result `y`. A frame is opened just before its statements
        run and closed here when they succeed, so an error leaves it open."""
        self.graph.close_frame(fid, y.node)
        return y

    def repeat(self, stmt: ast.RepeatStmt, x: Tensor, scope: _Scope, env: Env) -> Tensor:
        count = self.eval(stmt.count, env, x.shape)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise fail(
                "E0406",
                f"a repeat count must be a positive integer, not {fmt_value(count)}",
                stmt.count.span,
                "not positive"
                if isinstance(count, int) and not isinstance(count, bool)
                else f"this is {a_type(count)}",
                help="use `//` for integer division: `/` always gives a number"
                if isinstance(count, float)
                else "a repeat runs its body at least once: check the count, or remove the repeat",
            )
        if count > MAX_REPEAT:
            raise fail(
                "E0503",
                f"repeat count {count:,} is above the limit of {MAX_REPEAT:,}",
                stmt.count.span,
                "too many",
            )
        outer = scope
        if stmt.label is not None:
            name = self.name(stmt.label, env, x)
            outer = self.child(scope, name, f"repeat ×{count}", stmt.label.span)
        fid = self.graph.open_frame("repeat", "repeat", outer.path if stmt.label else None,
                                    stmt.span, {"count": count}, x.node)
        kind = _iteration_kind(stmt)
        start, start_steps = len(self.graph), self.steps
        for i in range(count):
            env_i = dict(env)
            if stmt.var is not None:
                env_i[stmt.var] = i
            if stmt.label is not None:
                inner = self.child(outer, str(i), kind, stmt.span)
                it = self.graph.open_frame("iteration", "iteration", inner.path, stmt.span,
                                           {"index": i}, x.node)
                x = self.closed(it, self.body(stmt.body, x, inner, env_i))
            else:
                outer.trail.append((stmt.span, "repeat", i))
                try:
                    it = self.graph.open_frame("iteration", "iteration", None, stmt.span,
                                               {"index": i}, x.node)
                    x = self.closed(it, self.body(stmt.body, x, outer, env_i))
                finally:
                    outer.trail.pop()
            if i == 0:
                self._check_projected_size(start, start_steps, count, stmt)
        return self.closed(fid, x)

    def _check_projected_size(
        self, start: int, start_steps: int, count: int, stmt: ast.RepeatStmt
    ) -> None:
        """Refuse a repeat whose first iteration shows it would pass MAX_NODES or MAX_STEPS,
        before spending the time to run it."""
        if start_steps + (self.steps - start_steps) * count > MAX_STEPS:
            raise self._too_long(stmt.count.span)
        projected = start + (len(self.graph) - start) * count
        if projected > MAX_NODES:
            raise fail(
                "E0503",
                f"this repeat would make the network about {projected:,} nodes, above the "
                f"limit of {MAX_NODES:,}",
                stmt.count.span,
                f"{count:,} repetitions",
                help="check the repeat counts",
            )

    @staticmethod
    def _too_long(span: Span) -> SpecError:
        # Statements that create nothing (guarded off, bindings) still take time to run.
        return fail(
            "E0503",
            f"the spec runs more than {MAX_STEPS:,} statements",
            span,
            "the limit is reached here",
            help="check the repeat counts",
        )

    # ------------------------------------------------------------------ binding

    def bind(
        self,
        sig: tuple[ArgSpec, ...],
        args: tuple[ast.Arg, ...],
        target: str,
        env: Env,
        x: Tensor,
    ) -> dict[str, Value]:
        """Evaluate and type-check call arguments against an op's or primitive's signature."""
        given: dict[str, tuple[Value, ast.Arg]] = {}
        for i, arg in enumerate(a for a in args if a.name is None):
            given[sig[i].name] = (self.eval(arg.value, env, x.shape), arg)
        for arg in args:
            if arg.name is not None:
                given[arg.name] = (self.eval(arg.value, env, x.shape), arg)
        out: dict[str, Value] = {}
        for spec in sig:
            if spec.name not in given:
                default: Value = spec.default  # type: ignore[assignment]
                out[spec.name] = coerce(spec, default, spec.name) if default is not None else None
                continue
            value, arg = given[spec.name]
            try:
                out[spec.name] = coerce(spec, value, f"`{target}`'s `{spec.name}`")
            except ArgError as exc:
                raise fail(exc.code, exc.message, arg.span, _expected(spec, exc.code),
                           help=exc.help) from None
        return out

    def bind_block(self, block: ast.Definition, call: ast.Call, env: Env, x: Tensor) -> Env:
        given: dict[str, Value] = {}
        for param, arg in zip(block.params, (a for a in call.args if a.name is None), strict=False):
            given[param.name] = self.eval(arg.value, env, x.shape)
        for arg in call.args:
            if arg.name is not None:
                given[arg.name] = self.eval(arg.value, env, x.shape)
        bound: dict[str, Value] = {}
        for param in block.params:
            if param.name in given:
                bound[param.name] = given[param.name]
            else:
                assert param.default is not None
                bound[param.name] = self.eval(param.default, bound, x.shape)
        return bound

    # ------------------------------------------------------------------ nodes

    def add(
        self,
        op: str,
        args: Mapping[str, Value],
        inputs: tuple[Tensor, ...],
        path: str,
        span: Span | None,
        init: Mapping[str, float] | None = None,
    ) -> Tensor:
        try:
            shape = OPS[op].infer([t.shape for t in inputs], args)
        except ShapeError as exc:
            raise fail(exc.code, exc.message, span, exc.label, help=exc.help) from None
        if any(d > MAX_DIM for d in shape):
            raise fail("E0404", f"shape {fmt_shape(shape)} is too large", span,
                       f"dimensions are limited to {MAX_DIM:,}")
        if len(self.graph) >= MAX_NODES:
            raise fail(
                "E0503",
                f"the network has more than {MAX_NODES:,} nodes",
                span,
                "the limit is reached here",
                help="check the repeat counts",
            )
        nid = self.graph.add(op, args, tuple(t.node for t in inputs), shape, path, span, init)
        return Tensor(nid, shape)

    @staticmethod
    def _arg_int(args: Mapping[str, Value], name: str) -> int:
        value = args[name]
        assert isinstance(value, int)
        return value

    # ------------------------------------------------------------------ primitives

    def primitive(self, stmt: ast.PrimitiveStmt, x: Tensor, scope: _Scope, env: Env) -> Tensor:
        if self.group is not None:
            raise fail(
                "E0311",
                f"`{stmt.kind}` cannot appear inside a `group` body",
                stmt.kind_span,
                "inside group",
                help="a group body holds layers (conv, bn, activations, pools) that lower to "
                "grouped convolution",
            )
        args = self.bind(PRIMITIVES[stmt.kind].args, stmt.args, stmt.kind, env, x)
        path = None
        if stmt.label is not None:
            name = self.name(stmt.label, env, x)
            scope = self.child(scope, name, stmt.kind, stmt.label.span)
            path = scope.path
        lower = getattr(self, f"_{stmt.kind}")
        fid = self.graph.open_frame("primitive", stmt.kind, path, stmt.span, args, x.node)
        y: Tensor = lower(stmt, args, x, scope, env)
        return self.closed(fid, y)

    def clause(
        self,
        clause: ast.Clause | None,
        x: Tensor,
        scope: _Scope,
        env: Env,
        role: str = "shortcut",
    ) -> Tensor | None:
        """Run a `shortcut` or `transform` clause (`role`); None when absent or guarded off."""
        if clause is None:
            return None
        if clause.guard is not None and not self._guard(clause.guard, env, x):
            return None
        if clause.call is not None:
            fid = self.graph.open_frame("clause", role, None, clause.span, {}, x.node)
            return self.closed(fid, self.call(clause.call, clause.label, x, scope, env,
                                              clause.span))
        assert clause.body is not None
        inner, path = scope, None
        if clause.label is not None:
            name = self.name(clause.label, env, x)
            inner = self.child(scope, name, "sequence", clause.label.span)
            path = inner.path
        fid = self.graph.open_frame("clause", role, path, clause.span, {}, x.node)
        return self.closed(fid, self.body(clause.body, x, inner, env))

    def _skip(
        self, stmt: ast.PrimitiveStmt, args: Env, x: Tensor, scope: _Scope, env: Env
    ) -> Tensor:
        f = self.body(stmt.body, x, scope, env)
        s = self.clause(stmt.shortcut, x, scope, env)
        self._check_residual(stmt, f, s if s is not None else x, s is None, "skip")
        return self.add("add", {}, (f, s or x), scope.internal("skip", stmt.span), stmt.span)

    def _weight(
        self, stmt: ast.PrimitiveStmt, args: Env, x: Tensor, scope: _Scope, env: Env
    ) -> Tensor:
        branches = [s for s in stmt.body if isinstance(s, ast.PrimitiveStmt)
                    and s.kind == "branch"]
        if branches:
            return self._weighted_branches(stmt, branches, x, scope, env)
        f = self.body(stmt.body, x, scope, env)
        s = self.clause(stmt.shortcut, x, scope, env)
        self._check_residual(stmt, f, s if s is not None else x, s is None, "weight")
        init = args["init"]
        assert isinstance(init, float)
        alpha = self.add(
            "alpha",
            {"per_channel": args["per_channel"]},
            (f,),
            scope.internal("alpha", stmt.span),
            stmt.span,
            init={"": init},
        )
        return self.add("add", {}, (s or x, alpha), scope.internal("weight", stmt.span), stmt.span)

    def _weighted_branches(
        self,
        stmt: ast.PrimitiveStmt,
        branches: list[ast.PrimitiveStmt],
        x: Tensor,
        scope: _Scope,
        env: Env,
    ) -> Tensor:
        local = dict(env)
        outs: list[tuple[Tensor, ast.PrimitiveStmt]] = []
        for sub in stmt.body:
            if isinstance(sub, ast.Binding):
                local[sub.name] = self.eval(sub.value, local, x.shape)
                continue
            assert isinstance(sub, ast.PrimitiveStmt)
            inner, path = scope, None
            if sub.label is not None:
                inner = self.child(scope, self.name(sub.label, local, x), "branch", sub.label.span)
                path = inner.path
            fid = self.graph.open_frame("primitive", "branch", path, sub.span, {}, x.node)
            outs.append((self.closed(fid, self.body(sub.body, x, inner, local)), sub))
        first, first_stmt = outs[0]
        for out, sub in outs[1:]:
            if out.shape != first.shape:
                raise fail(
                    "E0313",
                    "the branches of a weighted sum have different shapes",
                    sub.kind_span,
                    f"this branch gives {fmt_shape(out.shape)}",
                    secondary=(Label(first_stmt.kind_span,
                                     f"the first gives {fmt_shape(first.shape)}"),),
                    help="every branch must give the same shape",
                )
        return self.add(
            "weighted_sum",
            {},
            tuple(t for t, _ in outs),
            scope.internal("weight", stmt.span),
            stmt.span,
            init={"": 0.0},
        )

    def _check_residual(
        self, stmt: ast.PrimitiveStmt, f: Tensor, s: Tensor, identity: bool, what: str
    ) -> None:
        if f.shape == s.shape:
            return
        body_span = stmt.body[-1].span if stmt.body else stmt.kind_span
        shortcut = "the identity shortcut passes" if identity else "the shortcut gives"
        other = (
            Label(stmt.shortcut.span, f"{shortcut} {fmt_shape(s.shape)}")
            if stmt.shortcut is not None
            else None
        )
        secondary: tuple[Label, ...] = (Label(body_span, f"the body gives {fmt_shape(f.shape)}"),)
        if other is not None:
            secondary += (other,)
        label = f"adds {fmt_shape(f.shape)} and {fmt_shape(s.shape)}"
        if identity:
            label += " (identity shortcut)"
        same_c = len(f.shape) == len(s.shape) == 3 and f.shape[0] == s.shape[0]
        stride = _stride_between(s.shape, f.shape)
        strided = f", stride = {stride}" if stride != 1 else ""
        fix = (
            f"`shortcut downsample: {{ conv({f.shape[0]}, 1{strided}); bn }}`"
            if len(f.shape) == 3
            else "a shortcut that gives the body's shape"
        )
        if same_c:
            raise fail(
                "E0302",
                f"{what}'s residual add joins tensors of different spatial sizes",
                stmt.kind_span,
                label,
                secondary=secondary,
                notes=(f"the body changes the spatial size {fmt_shape(s.shape[1:])} → "
                       f"{fmt_shape(f.shape[1:])}, usually with a stride",),
                help=f"give the shortcut the same stride: {fix}",
            )
        raise fail(
            "E0301",
            f"{what}'s residual add joins tensors of different shapes",
            stmt.kind_span,
            label,
            secondary=secondary,
            help=(
                f"add a projection shortcut: {fix}"
                if identity
                else f"make the shortcut give {fmt_shape(f.shape)}: {fix}"
            ),
        )

    def _gate(
        self, stmt: ast.PrimitiveStmt, args: Env, x: Tensor, scope: _Scope, env: Env
    ) -> Tensor:
        bias = args["bias"]
        assert isinstance(bias, float)
        before = len(self.graph)
        h = self.body(stmt.body, x, scope, env)
        body_span = stmt.body[-1].span if stmt.body else stmt.kind_span
        if h.shape != x.shape:
            raise fail(
                "E0305",
                "a gate's body must keep its input's shape",
                stmt.kind_span,
                f"input is {fmt_shape(x.shape)}",
                secondary=(Label(body_span, f"the body gives {fmt_shape(h.shape)}"),),
                help="y = T·H(x) + (1 − T)·x needs H(x) shaped like x; change the width with "
                "a plain layer before the gate",
            )
        if stmt.transform is not None:
            t = self.clause(stmt.transform, x, scope, env, "transform")
            assert t is not None
            last = self.graph.node(t.node)
            if last.op not in ("conv", "linear") or not last.args["bias"] or t.node < before:
                raise fail(
                    "E0314",
                    "a gate's transform must end in a conv or linear layer with a bias",
                    stmt.transform.span,
                    f"ends in `{last.op}`",
                    help="its bias starts at the gate's `bias`; add `bias = true`",
                )
            self.graph.set_init(t.node, {"bias": bias})
        else:
            fid = self.graph.open_frame("clause", "transform", None, stmt.span, {}, x.node)
            t = self.closed(fid, self._derive_transform(stmt, before, x, scope, bias))
        if t.shape != x.shape:
            raise fail(
                "E0305",
                "a gate's transform must keep its input's shape",
                stmt.transform.span if stmt.transform else stmt.kind_span,
                f"T gives {fmt_shape(t.shape)}, the input is {fmt_shape(x.shape)}",
                help="T(x) weighs H(x) against x element by element, so it has x's shape",
            )
        gate = self.add("sigmoid", {}, (t,), scope.internal("gate", stmt.span), stmt.span)
        return self.add("highway", {}, (gate, h, x), scope.internal("highway", stmt.span),
                        stmt.span)

    def _derive_transform(
        self, stmt: ast.PrimitiveStmt, before: int, x: Tensor, scope: _Scope, bias: float
    ) -> Tensor:
        """W_T: the same kind and shape of layer as H's first layer, with a bias."""
        first = None
        for nid in range(before, len(self.graph)):
            node = self.graph.node(nid)
            if node.op in ("conv", "linear"):
                first = node
                break
        if first is None or first.inputs != (x.node,):
            raise fail(
                "E0314",
                "cannot derive the gate's transform: its body does not start with a conv or "
                "linear layer",
                stmt.kind_span,
                "gate here",
                help="give it explicitly: `gate { ... } transform t: conv(C, 3, bias = true)`",
            )
        args = dict(first.args, bias=True)
        return self.add(first.op, args, (x,), scope.internal("transform", stmt.span),
                        stmt.span, init={"bias": bias})

    def _concat(
        self, stmt: ast.PrimitiveStmt, args: Env, x: Tensor, scope: _Scope, env: Env
    ) -> Tensor:
        f = self.body(stmt.body, x, scope, env)
        if len(f.shape) != 3 or len(x.shape) != 3 or f.shape[1:] != x.shape[1:]:
            body_span = stmt.body[-1].span if stmt.body else stmt.kind_span
            raise fail(
                "E0303",
                "concat joins tensors of different spatial sizes",
                stmt.kind_span,
                f"[x, F(x)] of {fmt_shape(x.shape)} and {fmt_shape(f.shape)}",
                secondary=(Label(body_span, f"the body gives {fmt_shape(f.shape)}"),),
                help="a concat body must keep the input's height and width: use stride 1 and "
                "the default padding",
            )
        return self.add("concat", {}, (x, f), scope.internal("concat", stmt.span), stmt.span)

    def _scale(
        self, stmt: ast.PrimitiveStmt, args: Env, x: Tensor, scope: _Scope, env: Env
    ) -> Tensor:
        f = self.body(stmt.body, x, scope, env)
        try:
            OPS["mul"].infer([x.shape, f.shape], {})
        except ShapeError as exc:
            body_span = stmt.body[-1].span if stmt.body else stmt.kind_span
            raise fail(exc.code, exc.message, stmt.kind_span, exc.label, help=exc.help,
                       secondary=(Label(body_span, f"the body gives {fmt_shape(f.shape)}"),),
                       ) from None
        return self.add("mul", {}, (x, f), scope.internal("scale", stmt.span), stmt.span)

    def _dual(
        self, stmt: ast.PrimitiveStmt, args: Env, x: Tensor, scope: _Scope, env: Env
    ) -> Tensor:
        r = args["r"]
        assert isinstance(r, int)
        s = self.clause(stmt.shortcut, x, scope, env) or x
        f = self.body(stmt.body, x, scope, env)
        body_span = stmt.body[-1].span if stmt.body else stmt.kind_span
        if len(s.shape) != 3 or len(f.shape) != 3 or s.shape[1:] != f.shape[1:]:
            raise fail(
                "E0302",
                "a dual unit joins tensors of different spatial sizes",
                stmt.kind_span,
                f"shortcut {fmt_shape(s.shape)}, body {fmt_shape(f.shape)}",
                secondary=(Label(body_span, f"the body gives {fmt_shape(f.shape)}"),),
                help="give the shortcut the body's stride",
            )
        if r > min(s.shape[0], f.shape[0]):
            which, c = ("shortcut", s.shape[0]) if s.shape[0] < f.shape[0] else ("body", f.shape[0])
            raise fail(
                "E0306",
                f"dual's residual width R = {r} is larger than the {which}'s {c} channels",
                stmt.args[0].span if stmt.args else stmt.kind_span,
                f"R = {r}",
                secondary=(Label(body_span, f"the body gives {fmt_shape(f.shape)}"),),
                help=f"R is the added part of [S[:R] + F[:R], S[R:], F[R:]]; it must be at most "
                f"{min(s.shape[0], f.shape[0])}",
            )
        return self.add("dual", {"r": r}, (s, f), scope.internal("dual", stmt.span), stmt.span)

    def _group(
        self, stmt: ast.PrimitiveStmt, args: Env, x: Tensor, scope: _Scope, env: Env
    ) -> Tensor:
        g = self._arg_int(args, "groups")
        ctx = _Group(g, x.node)
        self.group = ctx
        try:
            y = self.body(stmt.body, x, scope, env)
        finally:
            self.group = None
        if not ctx.fanned_out:
            raise fail(
                "E0311",
                "a group body must contain a conv",
                stmt.kind_span,
                "no conv inside",
                help="each branch starts with a conv that sees the whole input",
            )
        if args["merge"] == "concat":
            return y
        last = self.graph.node(y.node)
        if last.op == "conv" and ctx.branch_groups.get(y.node) == 1:
            # Σ_i W_i * x_i over the branches is one dense conv over their concatenation.
            folded = dict(last.args, out=self._arg_int(last.args, "out") // g, groups=1)
            shape = OPS["conv"].infer([self.graph.node(last.inputs[0]).shape], folded)
            self.graph.update(y.node, folded, shape)
            return Tensor(y.node, shape)
        return self.add("group_sum", {"groups": g}, (y,), scope.internal("group_sum", stmt.span),
                        stmt.span)

    def _lower_in_group(
        self, op: str, args: dict[str, Value], x: Tensor, span: Span
    ) -> dict[str, Value]:
        """Rewrite one layer of a group body into its g-branch, grouped-conv form."""
        ctx = self.group
        assert ctx is not None
        g = ctx.groups
        if op == "conv":
            out, groups = self._arg_int(args, "out"), self._arg_int(args, "groups")
            if not ctx.fanned_out:
                if x.node != ctx.entry:
                    raise self._not_first(op, span)
                if groups != 1:
                    raise fail(
                        "E0311",
                        "the first conv of a group body cannot itself be grouped",
                        span,
                        f"groups = {groups}",
                        help="each branch's first conv sees the whole input; drop its `groups`",
                    )
                ctx.fanned_out = True
                return dict(args, out=g * out)
            return dict(args, out=g * out, groups=g * groups)
        if op in PER_CHANNEL:
            if not ctx.fanned_out:
                raise self._not_first(op, span)
            return args
        raise fail(
            "E0311",
            f"`{op}` cannot appear in a group body",
            span,
            "not a per-channel layer",
            help="a group body holds conv, bn, activations, dropout and pools; put other "
            "layers after the group",
        )

    @staticmethod
    def _not_first(op: str, span: Span) -> SpecError:
        return fail(
            "E0311",
            "a group body must start with a conv",
            span,
            f"`{op}` comes first",
            help="each branch starts with a conv that sees the whole input; move this "
            "layer before the group",
        )


def _expected(spec: ArgSpec, code: str) -> str:
    """The label under an argument that does not fit `spec`."""
    if code == "E0408" and spec.choices:
        return "expected " + " or ".join(f'"{c}"' for c in spec.choices)
    if spec.type is ArgType.BOOL:
        return "expected `true` or `false`"
    kind = spec.type.value
    return f"expected {'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _iteration_kind(stmt: ast.RepeatStmt) -> str:
    """A repeated single block call shows as that block (`layer1.0` is a `bottleneck`)."""
    body = [s for s in stmt.body if not isinstance(s, ast.Binding)]
    if len(body) == 1 and isinstance(body[0], ast.CallStmt) and body[0].label is None:
        return body[0].call.target
    return "iteration"


def _stride_between(big: Shape, small: Shape) -> int:
    if len(big) == len(small) == 3 and small[1] and big[1] % small[1] == 0:
        return max(1, big[1] // small[1])
    return 1
