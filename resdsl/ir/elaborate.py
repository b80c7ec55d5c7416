"""AST → graph: runs a network's statements and lowers each primitive to graph nodes.

Elaboration walks the statements in order with the tensor flowing through them, so `in.c`
and every shape are known at each point, and each node's shape is inferred (by its op's rule
in `ir/ops/`) as the node is created. Mistakes that depend on values or shapes are reported
here, pointing at the statement that caused them.

Naming (the contract with PyTorch's state_dict keys):
- a statement's name opens a level of the module path (`layer1`, `conv1`);
- `name: repeat` numbers its iterations `name.0`, `name.1`, ...;
- an unnamed op takes its position in the enclosing scope, as in `nn.Sequential`;
- an unnamed block call, repeat or primitive is transparent: what it creates is named
  directly in the enclosing scope;
- an unnamed sequence takes its position and opens a level, as a nested `nn.Sequential`;
  a guarded one (`{ bn; relu } if c`) only groups statements under its guard, transparent.

Named or not, every block call, primitive, repeat (and iteration), sequence and clause is also
recorded as a `Frame` of the graph, so the spec's structure survives the lowering.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace

from resdsl.diagnostics import Diagnostic, Label, Span, SpecError, fail
from resdsl.ir import connect
from resdsl.ir.evaluate import Env, Evaluator, not_a_tensor
from resdsl.ir.graph import Graph, Scope
from resdsl.ir.ops import (
    MAX_DIM,
    OPS,
    USER_OPS,
    ArgError,
    ArgSpec,
    ArgType,
    Shape,
    ShapeError,
    Tensor,
    Value,
    a_type,
    coerce,
    fmt_shape,
    fmt_value,
)
from resdsl.ir.preprocessing import preprocessing
from resdsl.ir.primitives import BINARY_JOINS, JOINS, PRIMITIVES
from resdsl.ir.resolve import Blocks, is_tensor_binding, level_tensors, plain_label
from resdsl.syntax import ast

# Limits that keep a hostile spec from exhausting memory; docs/language.md lists them. With
# MAX_STEPS and the evaluator's MAX_OPERATIONS, they are sized so that `resdsl check` and
# `info` finish within 5 s and 1 GB whatever the spec (measured: bench/frontend_limits.py).
MAX_NODES = 20_000
MAX_REPEAT = 100_000
# Bodies (of block calls, sequences, primitives, repeats) inside each other; elaboration
# recurses once per level, so this also keeps it far from Python's recursion limit.
MAX_DEPTH = 100
# Steps run while elaborating: each statement counts one; each body (a block call, a
# repeat iteration, ...) BODY_STEPS, as it costs about that many statements (its frame,
# scope and context), and one more per 64 visible variables, which it copies. So a repeat
# of statements or bodies that create no node, such as guarded-off ones, cannot run long,
# nor copy a large scope a hundred thousand times. The shipped specs take 2 to 6 a node.
MAX_STEPS = 160_000
BODY_STEPS = 4
# A module path (`layer1.0.conv1`), interpolated names included, holds at most this many
# characters: each node keeps its path.
MAX_PATH = 1_000

_NAME_TEXT = re.compile(r"[A-Za-z0-9_-]*")


class _Scope:
    """A module namespace being filled: the names given so far and the position counter."""

    __slots__ = ("containers", "names", "path", "position", "suffixes", "trail", "trails")

    def __init__(self, path: str) -> None:
        self.path = path
        self.names: dict[str, Span | None] = {}
        # The levels that dotted names open (`convs` of `convs.0`): holders of numbered
        # children, like a ModuleList, that are not modules of their own.
        self.containers: set[str] = set()
        self.position = 0
        # The unnamed block calls and repeat iterations being run in this scope (span, block
        # name or "repeat", iteration), and the trail each name was claimed through: they
        # tell which call or repeat made two names collide.
        self.trail: list[tuple[Span, str, int]] = []
        self.trails: dict[str, tuple[tuple[Span, str, int], ...]] = {}
        # The next suffix `internal` tries for each base name: starting from 1 each time made
        # ten thousand unnamed `skip`s in one scope cost fifty million lookups.
        self.suffixes: dict[str, int] = {}

    def full(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def claim(self, name: str, span: Span | None) -> str:
        """Register a child name (a module); two children may not share one. A dotted name
        (`convs.0`) also opens its levels (`convs`), which count as one child."""
        if name in self.names:
            raise self._clash(name, span)
        if name in self.containers:
            raise fail(
                "E0206",
                f"two modules are named `{self.full(name)}`",
                span,
                f"`{name}` already holds numbered modules (`{name}.0`)",
                help="a level that a dotted name opens is not a module of its own: give this "
                "one another name",
            )
        levels = name.split(".")
        for depth in range(1, len(levels)):
            prefix = ".".join(levels[:depth])
            if prefix in self.names:
                raise self._clash(prefix, span)
            if prefix not in self.containers:
                self.containers.add(prefix)
                if depth == 1:
                    self.position += 1
        self.names[name] = span
        self.trails[name] = tuple(self.trail)
        if len(levels) == 1:
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
        name, k = base, self.suffixes.get(base, 1)
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.suffixes[base] = k
        self.names[name] = span
        return self.full(name)


class Elaborator:
    def __init__(self, blocks: Blocks, graph: Graph) -> None:
        self.blocks = blocks
        self.graph = graph
        self.eval = Evaluator(blocks.functions)
        self.group: connect.Group | None = None
        self.depth = 0
        self.steps = 0  # statements run so far; bounded by MAX_STEPS
        # The tensors each level shares (`level_tensors`), by the body's identity: a level
        # inside a repeat runs many times.
        self._shared: dict[int, list[str]] = {}

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
        self.graph.preprocessing = preprocessing(net, params, shape[0])
        root = _Scope("")
        nid = self.graph.add("input", {"shape": fmt_shape(shape)}, (), shape, "input", first.span)
        root.names["input"] = first.span
        x = self.body(tuple(stmts), Tensor(nid, shape), root, env)
        self.graph.output = x.node
        declared = [s for s in stmts if isinstance(s, ast.OutputStmt)]
        if declared and not self.graph.outputs:
            # Returning the final tensor alone instead would change the module's result from
            # a dict to a tensor with a parameter's value.
            raise fail(
                "E0507",
                f"network `{net.name}` has `output` statements, but every one is guarded off",
                declared[0].span,
                "guarded off" + (f", as the {len(declared) - 1:,} after it"
                                 if len(declared) > 1 else ""),
                help="give the network one unguarded output (`output out`), or change the "
                     "parameters its guards read",
            )

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

    def body(
        self,
        stmts: tuple[ast.Stmt, ...],
        x: Tensor,
        scope: _Scope,
        env: Env,
        exports: dict[str, Value] | None = None,
    ) -> Tensor:
        """Run `stmts` on `x`; with `exports`, hand back the body's final bindings."""
        if self.depth >= MAX_DEPTH and stmts:
            raise fail(
                "E0004",
                f"blocks, sequences and primitives are nested more than {MAX_DEPTH} levels deep",
                stmts[0].span,
                "too deep",
                help="flatten the spec: call blocks one after another, not inside each other",
            )
        self.depth += 1
        self.steps += len(stmts) + BODY_STEPS + len(env) // 64
        if self.steps > MAX_STEPS and stmts:
            raise self._too_long(stmts[0].span)
        try:
            local = dict(env)
            for stmt in stmts:
                x = self.stmt(stmt, x, scope, local)
            if exports is not None:
                exports.update(local)
            return x
        finally:
            self.depth -= 1

    def stmt(self, stmt: ast.Stmt, x: Tensor, scope: _Scope, env: dict[str, Value]) -> Tensor:
        if isinstance(stmt, ast.Binding):
            if is_tensor_binding(stmt):
                # `t = in` names the flowing tensor itself; diagrams show the name.
                env[stmt.name] = x
                self.graph.tensor_names.setdefault(x.node, stmt.name)
                return x
            env[stmt.name] = self.eval(stmt.value, env, x.shape)
            return x
        if isinstance(stmt, ast.CallStmt):
            if stmt.guard is not None and not self._guard(stmt.guard, env, x):
                return x
            target = stmt.call.target
            if target in JOINS:
                return self.join(stmt, x, scope, env)
            if target not in USER_OPS and target not in self.blocks.by_name:
                return self.continue_from(target, env[target], stmt.call.span, stmt.span)
            return self.call(stmt.call, stmt.label, x, scope, env, stmt.span)
        if isinstance(stmt, (ast.ElementStmt, ast.PathStmt)):
            if stmt.guard is not None and not self._guard(stmt.guard, env, x):
                return x
            value = self.eval(stmt.value, env, x.shape)
            return self.continue_from(stmt.value.span.text, value, stmt.value.span, stmt.span)
        if isinstance(stmt, ast.OutputStmt):
            if stmt.guard is None or self._guard(stmt.guard, env, x):
                self.output(stmt, x, env)
            return x
        if isinstance(stmt, ast.SeqStmt):
            if stmt.guard is not None and not self._guard(stmt.guard, env, x):
                return x
            if stmt.guard is not None and stmt.label is None:
                # `{ bn; relu } if c` puts statements under one guard, and no more: they run
                # all or none, named as if written without the braces.
                fid = self.graph.open_frame("sequence", "sequence", None, stmt.span, {}, x.node)
                return self.closed(fid, self.body(stmt.body, x, scope, env))
            # An unnamed sequence takes its position, as a nested `nn.Sequential` does.
            label_span = stmt.label.span if stmt.label is not None else stmt.span
            name = self.name(stmt.label, env, x) if stmt.label else str(scope.position)
            child = self.child(scope, name, "sequence", label_span)
            fid = self.graph.open_frame("sequence", name, child.path, stmt.span, {}, x.node)
            final: dict[str, Value] = {}
            y = self.closed(fid, self.body(stmt.body, x, child, env, final))
            self.share(stmt.label, stmt.body, final, env)
            return y
        if isinstance(stmt, ast.RepeatStmt):
            if stmt.guard is not None and not self._guard(stmt.guard, env, x):
                return x
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
        length = 0  # of `text`, checked before each part is built into it
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
                # A `.` would fake a level of the module path; PyTorch refuses such names. A
                # `-` is a name's own (torchvision's RegNet names its blocks `block1-0`).
                raise fail(
                    "E0401",
                    f"a name may hold only letters, digits, `_` and `-`, not {fmt_value(value)}",
                    part.span,
                    f"this is {fmt_value(value)}",
                )
            text.append(str(value))
            length += len(text[-1])
            if length > MAX_PATH:
                raise self._path_too_long(part.span)
        return "".join(text)

    @staticmethod
    def _path_too_long(span: Span | None) -> SpecError:
        return fail(
            "E0404",
            f"this name makes a module path longer than {MAX_PATH:,} characters",
            span,
            "too long",
            help="names are PyTorch module names, such as `layer1` or `conv{i}`",
        )

    def claim(self, scope: _Scope, name: str, span: Span | None) -> str:
        """`scope.claim`, and a `list` level in the graph for each level a dotted name opens."""
        if len(scope.path) + 1 + len(name) > MAX_PATH:
            raise self._path_too_long(span)
        path = scope.claim(name, span)
        if "." in name:
            levels = name.split(".")
            for depth in range(1, len(levels)):
                prefix = scope.full(".".join(levels[:depth]))
                if prefix not in self.graph.scopes:
                    self.graph.add_scope(Scope(prefix, "list", span))
        return path

    def child(self, scope: _Scope, name: str, kind: str, span: Span | None) -> _Scope:
        path = self.claim(scope, name, span)
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
            try:
                op.check(args)
            except ArgError as exc:
                raise fail(exc.code, exc.message, _arg_span(op.args, call, exc.arg),
                           exc.label, help=exc.help) from None
            # Tensor arguments (`upsample(to = t)`) become input edges after the flowing one.
            args, refs = op.take_tensors(args)
            group = self.group
            if group is not None:
                branch_groups = args.get("groups")
                args = connect.lower_in_group(self, op.name, args, x, span)
            path = self.claim(scope, name if name is not None else str(scope.position),
                              label_span)
            y = self.add(op.name, args, (x, *refs), path, span)
            if group is not None and op.name == "conv":
                assert isinstance(branch_groups, int)
                group.branch_groups[y.node] = branch_groups
            return y
        block = self.blocks.by_name[call.target]
        env_b = self.bind_block(block, call, env, x)
        if name is not None:
            child = self.child(scope, name, block.name, label_span)
            final: dict[str, Value] = {}
            with _context(lambda: f"in `{child.path}` ({block.name}), called at {call.span}"):
                fid = self.graph.open_frame("block", block.name, child.path, span, env_b, x.node)
                y = self.closed(fid, self.body(block.body, x, child, env_b, final))
            if isinstance(env, dict):
                self.share(label, block.body, final, env)
            return y
        scope.trail.append((call.span, block.name, 0))
        path = scope.path
        try:
            with _context(lambda: (f"in `{path}`" if path else "at the top level")
                          + f" ({block.name}), called at {call.span}"):
                fid = self.graph.open_frame("block", block.name, None, span, env_b, x.node)
                return self.closed(fid, self.body(block.body, x, scope, env_b))
        finally:
            scope.trail.pop()

    # ------------------------------------------------------------------ named tensors

    def share(self, label: ast.Name | None, body: tuple[ast.Stmt, ...],
              final: Mapping[str, Value], env: dict[str, Value]) -> None:
        """After a named level (`body: { ... }`, `body: backbone()`), make the tensors named
        in it visible as `body.c3` (kept under `.body.c3`, a key no variable can have)."""
        level = plain_label(label)
        if level is None:
            return
        names = self._shared.get(id(body))
        if names is None:
            names = self._shared[id(body)] = level_tensors(body, self.blocks)
        for n in names:
            value = final.get("." + n if "." in n else n)
            if value is not None:
                env[f".{level}.{n}"] = value

    def output(self, stmt: ast.OutputStmt, x: Tensor, env: Env) -> None:
        """`output name` or `output name = t`: one of the network's named outputs."""
        if stmt.value is None or isinstance(stmt.value, ast.In):
            value: Value = x
        else:
            value = self.eval(stmt.value, env, x.shape)
        what = stmt.value.span.text if stmt.value is not None else "in"
        if isinstance(value, tuple) and value and all(isinstance(v, Tensor) for v in value):
            raise not_a_tensor(what, value, stmt.value.span if stmt.value else stmt.span,
                               f"`{what}` holds one tensor from each iteration of a repeat: "
                               f"give one (`{what}[-1]`) or one output each")
        if not isinstance(value, Tensor):
            raise not_a_tensor(what, value, stmt.value.span if stmt.value else stmt.span,
                               "an output is a tensor: `output name` is the flowing one, "
                               "`output name = t` a tensor named with `t = in`")
        first = self.graph.output_spans.get(stmt.name)
        if first is not None:
            raise fail(
                "E0505",
                f"two outputs are named `{stmt.name}`",
                stmt.name_span,
                "the second one",
                secondary=(Label(first, "the first one"),),
                help="an output's name is its key in the module's result: give each its own",
            )
        self.graph.output_spans[stmt.name] = stmt.name_span
        self.graph.outputs[stmt.name] = value.node

    def continue_from(self, what: str, value: Value, span: Span, stmt_span: Span) -> Tensor:
        """`t` or `t[0]`: the statement is a tensor, and the flow continues from it. `what`
        is the statement's text, `value` what it evaluates to."""
        if isinstance(value, tuple) and value and all(isinstance(v, Tensor) for v in value):
            raise not_a_tensor(what, value, span,
                               f"`{what}` holds one tensor from each iteration of a repeat: "
                               f"continue from one (`{what}[0]`, `{what}[-1]`) or join them "
                               f"(`cat({what})`, `add({what})`)")
        if not isinstance(value, Tensor):
            name = what.split("[", 1)[0]
            raise not_a_tensor(what, value, span,
                               f"a statement that is just a tensor continues from it: `{name} "
                               f"= in` names one; inside a repeat, it names a list of them, "
                               f"read with `{name}[0]`")
        if self.group is not None:
            raise self._not_in_group(what, stmt_span)
        return value

    def join(self, stmt: ast.CallStmt, x: Tensor, scope: _Scope, env: Env) -> Tensor:
        """`add(a, b)`, `cat(a, b)`, `mul(x, f)`: one node over named tensors."""
        call = stmt.call
        if self.group is not None:
            raise self._not_in_group(call.target, stmt.span)
        inputs: list[tuple[Tensor, Span]] = []
        for arg in call.args:
            value: Value = x if isinstance(arg.value, ast.In) else self.eval(
                arg.value, env, x.shape)
            items = value if isinstance(value, tuple) else (value,)
            for item in items:
                if not isinstance(item, Tensor):
                    raise fail(
                        "E0401",
                        f"`{call.target}` joins tensors, not {a_type(item)}",
                        arg.span,
                        f"this is {fmt_value(item)}",
                        help="name a tensor with `t = in`; `in` is the flowing one",
                    )
                inputs.append((item, arg.span))
        op = JOINS[call.target]
        if call.target in BINARY_JOINS and len(inputs) != 2:
            raise fail("E0402", f"`{call.target}` takes two tensors, not {len(inputs)}",
                       call.span, "here", help=BINARY_JOINS[call.target])
        try:
            OPS[op].infer([t.shape for t, _ in inputs], {})
        except ShapeError as exc:
            if op == "mul":
                raise _mul_error(call, inputs) from None
            if op in ("sub", "matmul"):
                raise _binary_error(call, inputs, exc) from None
            raise fail(
                exc.code,
                f"`{call.target}` joins tensors of "
                + ("different shapes" if op == "add" else "different spatial sizes"),
                call.target_span,
                ", ".join(fmt_shape(t.shape) for t, _ in inputs),
                secondary=tuple(Label(s, f"gives {fmt_shape(t.shape)}") for t, s in inputs),
                help="every tensor of a sum has the first one's shape, or 1 in a size to "
                "broadcast it (`add(x, ctx)` with ctx C×1×1)" if op == "add"
                else "concatenated tensors have the same height and width",
            ) from None
        name = self.name(stmt.label, env, x) if stmt.label is not None else None
        label_span = stmt.label.span if stmt.label is not None else call.span
        path = self.claim(scope, name if name is not None else str(scope.position), label_span)
        return self.add(op, {}, tuple(t for t, _ in inputs), path, stmt.span)

    @staticmethod
    def _not_in_group(what: str, span: Span) -> SpecError:
        return fail(
            "E0311",
            f"`{what}` cannot appear in a group body",
            span,
            "inside group",
            help="a group body is one path of layers that lowers to grouped convolution; "
            "join tensors before or after the group",
        )

    def closed(self, fid: int, y: Tensor) -> Tensor:
        """Close frame `fid` with its result `y`. A frame is opened just before its statements
        run and closed here when they succeed, so an error leaves it open."""
        self.graph.close_frame(fid, y.node)
        return y

    def repeat(
        self, stmt: ast.RepeatStmt, x: Tensor, scope: _Scope, env: dict[str, Value]
    ) -> Tensor:
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
        # `t = in` in the body: after the repeat, `t` is the list of every iteration's `t`.
        named = [s.name for s in stmt.body if is_tensor_binding(s)]  # type: ignore[union-attr]
        collected: dict[str, list[Value]] = {n: [] for n in named}
        for i in range(count):
            env_i = dict(env)
            if stmt.var is not None:
                env_i[stmt.var] = i
            final: dict[str, Value] = {}
            if stmt.label is not None:
                inner = self.child(outer, str(i), kind, stmt.span)
                where = _iteration_note(inner.path, i, stmt.span)
                with _context(where):
                    it = self.graph.open_frame("iteration", "iteration", inner.path, stmt.span,
                                               {"index": i}, x.node)
                    x = self.closed(it, self.body(stmt.body, x, inner, env_i, final))
            else:
                outer.trail.append((stmt.span, "repeat", i))
                where = _iteration_note(None, i, stmt.span)
                try:
                    with _context(where):
                        it = self.graph.open_frame("iteration", "iteration", None, stmt.span,
                                                   {"index": i}, x.node)
                        x = self.closed(it, self.body(stmt.body, x, outer, env_i, final))
                finally:
                    outer.trail.pop()
            for n in named:
                collected[n].append(final[n])
            if i == 0:
                self._check_projected_size(start, start_steps, count, stmt)
            if self.steps > MAX_STEPS:  # empty bodies count but do not check
                raise self._too_long(stmt.count.span)
        level = plain_label(stmt.label)
        for n, values in collected.items():
            env[n] = tuple(values)
            if level is not None:
                env[f".{level}.{n}"] = env[n]  # `layer2.c`, as the bare `c`
        return self.closed(fid, x)

    def _check_projected_size(
        self, start: int, start_steps: int, count: int, stmt: ast.RepeatStmt
    ) -> None:
        """Refuse a repeat whose first iteration shows it would pass MAX_NODES or MAX_STEPS,
        before spending the time to run it. Nodes first: the likelier mistake to report."""
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
        if start_steps + (self.steps - start_steps) * count > MAX_STEPS:
            raise self._too_long(stmt.count.span)

    @staticmethod
    def _too_long(span: Span) -> SpecError:
        # Statements that create nothing (guarded off, bindings) still take time to run.
        return fail(
            "E0503",
            f"the spec runs more than {MAX_STEPS:,} steps",
            span,
            "the limit is reached here",
            notes=(f"a statement run is one step; a body run (a block call, a repeat "
                   f"iteration) is {BODY_STEPS}",),
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
                           help=spec.help or exc.help) from None
        return out

    def bind_block(self, block: ast.Definition, call: ast.Call, env: Env, x: Tensor) -> Env:
        given = self.eval.arguments(block.params, call.args, env, x.shape)
        return self.eval.with_defaults(block.params, given, x.shape)

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
        if stmt.guard is not None and not self._guard(stmt.guard, env, x):
            # The connection is off: the body runs alone, with the names it has when on.
            fid = self.graph.open_frame("sequence", stmt.kind, path, stmt.span, {}, x.node)
            return self.closed(fid, self.body(stmt.body, x, scope, env))
        lower = connect.CONNECTIONS[stmt.kind]
        fid = self.graph.open_frame("primitive", stmt.kind, path, stmt.span, args, x.node)
        y: Tensor = lower(self, stmt, args, x, scope, env)
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


def _mul_error(call: ast.Call, inputs: list[tuple[Tensor, Span]]) -> SpecError:
    """`mul(x, f)` whose factor `f` does not broadcast over `x`: which is which, and the
    order that works when the tensors were given the other way round."""
    (x, x_span), (f, f_span) = inputs
    try:
        OPS["mul"].infer([f.shape, x.shape], {})
        swapped = True
    except ShapeError:
        swapped = False
    if swapped and x_span != f_span:
        help = (f"the tensor scaled comes first and the factor second: "
                f"`mul({f_span.text}, {x_span.text})` scales {fmt_shape(f.shape)} by "
                f"{fmt_shape(x.shape)}")
    elif swapped:
        help = "the tensor scaled comes first and the factor second: reverse the list"
    else:
        channels = x.shape[0]
        help = (f"the factor has the first tensor's {channels} channels and, for each other "
                "size, 1 or the first tensor's")
    return fail(
        "E0309",
        f"`mul`'s factor {fmt_shape(f.shape)} does not broadcast over the tensor it scales, "
        f"{fmt_shape(x.shape)}",
        call.target_span,
        f"scales {fmt_shape(x.shape)} by {fmt_shape(f.shape)}",
        secondary=(Label(x_span, f"first, the tensor scaled: {fmt_shape(x.shape)}"),
                   Label(f_span, f"second, the factor: {fmt_shape(f.shape)}")),
        help=help,
    )


def _binary_error(call: ast.Call, inputs: list[tuple[Tensor, Span]],
                  exc: ShapeError) -> SpecError:
    """`sub(a, b)` or `matmul(a, b)` whose tensors do not go together: the op's own message
    and fix, with both operands and what each gives."""
    (a, a_span), (b, b_span) = inputs
    return fail(
        exc.code,
        exc.message,
        call.target_span,
        exc.label,
        secondary=(Label(a_span, f"first: {fmt_shape(a.shape)}"),
                   Label(b_span, f"second: {fmt_shape(b.shape)}")),
        help=exc.help,
    )


@contextmanager
def _context(where: Callable[[], str]) -> Iterator[None]:
    """Say which block call or repeat iteration an error inside it came from: the note goes
    under the diagnostic, innermost first, like a call stack."""
    try:
        yield
    except SpecError as exc:
        note = where()  # formatted only on an error: repeats run this for every iteration
        exc.diagnostics[:] = [_with_context(d, note) if d.is_error else d
                              for d in exc.diagnostics]
        raise


# Context notes shown per diagnostic; outer ones are counted, not listed.
MAX_CONTEXT = 4
_MORE = re.compile(r"and (\d+) more enclosing calls? and iterations?")


def _iteration_note(path: str | None, i: int, span: Span) -> Callable[[], str]:
    if path is not None:
        return lambda: f"in `{path}`, iteration {i} of the repeat at {span}"
    return lambda: f"in iteration {i} of the repeat at {span}"


def _with_context(d: Diagnostic, where: str) -> Diagnostic:
    context = [n for n in d.notes if n.startswith(("in ", "at the top level")) and " at " in n]
    if len(context) < MAX_CONTEXT:
        return replace(d, notes=(*d.notes, where))
    last = _MORE.fullmatch(d.notes[-1])
    count = int(last.group(1)) + 1 if last else 1
    more = f"and {count} more enclosing call{'s' if count > 1 else ''} and iteration" + (
        "s" if count > 1 else "")
    return replace(d, notes=(*(d.notes[:-1] if last else d.notes), more))


def _arg_span(sig: tuple[ArgSpec, ...], call: ast.Call, name: str | None) -> Span:
    """Where argument `name` of `call` is written, by keyword or position; the call itself
    when it is not written (or `name` is None)."""
    positional = [a for a in call.args if a.name is None]
    for i, spec in enumerate(sig):
        if spec.name != name:
            continue
        given = [a for a in call.args if a.name == name]
        if given:
            return given[0].span
        if i < len(positional):
            return positional[i].span
    return call.span


def _expected(spec: ArgSpec, code: str) -> str:
    """The label under an argument that does not fit `spec`."""
    if code == "E0408" and spec.choices:
        return "expected " + " or ".join(f'"{c}"' for c in spec.choices)
    if spec.type is ArgType.BOOL:
        return "expected `true` or `false`"
    if spec.type is ArgType.TENSOR:
        return "expected a named tensor"
    kind = spec.type.value
    return f"expected {'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _iteration_kind(stmt: ast.RepeatStmt) -> str:
    """A repeated single block call shows as that block (`layer1.0` is a `bottleneck`)."""
    body = [s for s in stmt.body if not isinstance(s, ast.Binding)]
    if len(body) == 1 and isinstance(body[0], ast.CallStmt) and body[0].label is None:
        return body[0].call.target
    return "iteration"
