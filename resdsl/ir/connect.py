"""The connection primitives, lowered to graph nodes: one function per primitive.

`Elaborator.primitive` binds a primitive's arguments, opens its module level and frame, and
calls its entry in `CONNECTIONS`; each entry runs the bodies (through the elaborator) and adds
the nodes of the join. DESIGN.md §2 has the equations; docs/language.md §Primitives, the
user's view.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from resdsl.diagnostics import Label, Span, SpecError, fail
from resdsl.ir.evaluate import Env
from resdsl.ir.ops import OPS, PER_CHANNEL, ShapeError, Tensor, Value, fmt_shape
from resdsl.syntax import ast

if TYPE_CHECKING:
    from resdsl.ir.elaborate import Elaborator, _Scope


@dataclass
class Group:
    """Lowering state while inside `group(g) { ... }`."""

    groups: int
    entry: int
    fanned_out: bool = False
    # The per-branch `groups` of every conv lowered so far, by node id.
    branch_groups: dict[int, int] = field(default_factory=dict)


def _arg_int(args: Env, name: str) -> int:
    value = args[name]
    assert isinstance(value, int)
    return value


def _body_span(stmt: ast.PrimitiveStmt) -> Span:
    return stmt.body[-1].span if stmt.body else stmt.kind_span


# ---------------------------------------------------------------------- branches


def branches(
    el: Elaborator, stmt: ast.PrimitiveStmt, x: Tensor, scope: _Scope, env: Env
) -> list[tuple[Tensor, ast.PrimitiveStmt]]:
    """Run each `branch` of a multi-branch join on `x`; bindings between them are shared."""
    local = dict(env)
    outs: list[tuple[Tensor, ast.PrimitiveStmt]] = []
    for sub in stmt.body:
        if isinstance(sub, ast.Binding):
            local[sub.name] = x if isinstance(sub.value, ast.In) else el.eval(
                sub.value, local, x.shape)
            continue
        assert isinstance(sub, ast.PrimitiveStmt)
        inner, path = scope, None
        if sub.label is not None:
            inner = el.child(scope, el.name(sub.label, local, x), "branch", sub.label.span)
            path = inner.path
        fid = el.graph.open_frame("primitive", "branch", path, sub.span, {}, x.node)
        outs.append((el.closed(fid, el.body(sub.body, x, inner, local)), sub))
    return outs


def _same(
    outs: list[tuple[Tensor, ast.PrimitiveStmt]],
    same: Callable[[Tensor, Tensor], bool],
    code: str,
    message: str,
    help: str,
) -> None:
    """Every branch must agree with the first one (shape, or spatial size)."""
    first, first_stmt = outs[0]
    for out, sub in outs[1:]:
        if not same(out, first):
            raise fail(
                code,
                message,
                sub.kind_span,
                f"this branch gives {fmt_shape(out.shape)}",
                secondary=(Label(first_stmt.kind_span,
                                 f"the first gives {fmt_shape(first.shape)}"),),
                help=help,
            )


def _spatial(a: Tensor, b: Tensor) -> bool:
    return len(a.shape) == len(b.shape) == 3 and a.shape[1:] == b.shape[1:]


def _same_shape(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape


def _joined_branches(
    el: Elaborator,
    stmt: ast.PrimitiveStmt,
    x: Tensor,
    scope: _Scope,
    env: Env,
    op: str,
    agree: tuple[Callable[[Tensor, Tensor], bool], str, str, str],
    init: dict[str, float] | None = None,
) -> Tensor:
    """The multi-branch form of `skip`, `weight` and `concat`: run the branches, check that
    they agree (`agree`: the test, then the code, message and help of the error), and join
    them with one `op` node named after the primitive."""
    outs = branches(el, stmt, x, scope, env)
    _same(outs, *agree)
    return el.add(op, {}, tuple(t for t, _ in outs), scope.internal(stmt.kind, stmt.span),
                  stmt.span, init=init)


def _residual(
    el: Elaborator, stmt: ast.PrimitiveStmt, x: Tensor, scope: _Scope, env: Env
) -> tuple[Tensor, Tensor]:
    """F(x) and S(x) of `skip` and `weight` (S the identity without a shortcut), checked to
    have one shape."""
    f = el.body(stmt.body, x, scope, env)
    s = el.clause(stmt.shortcut, x, scope, env)
    _check_residual(el, stmt, f, s if s is not None else x, s is None, stmt.kind)
    return f, s if s is not None else x


# ---------------------------------------------------------------------- primitives


def skip(
    el: Elaborator, stmt: ast.PrimitiveStmt, args: Env, x: Tensor, scope: _Scope, env: Env
) -> Tensor:
    if stmt.branches:
        return _joined_branches(el, stmt, x, scope, env, "add", (
            _same_shape, "E0313", "the branches of a sum have different shapes",
            "every branch of `skip { branch ... }` must give the same shape"))
    f, s = _residual(el, stmt, x, scope, env)
    factor = args["scale"]
    assert isinstance(factor, float)
    if factor != 1.0:
        # x + 0.17·F(x) (Inception-ResNet): a constant, no parameter.
        f = el.add("rescale", {"factor": factor}, (f,), scope.internal("scale", stmt.span),
                   stmt.span)
    return el.add("add", {}, (f, s), scope.internal("skip", stmt.span), stmt.span)


def weight(
    el: Elaborator, stmt: ast.PrimitiveStmt, args: Env, x: Tensor, scope: _Scope, env: Env
) -> Tensor:
    if stmt.branches:
        return _joined_branches(el, stmt, x, scope, env, "weighted_sum", (
            _same_shape, "E0313", "the branches of a weighted sum have different shapes",
            "every branch must give the same shape"), init={"": 0.0})
    f, s = _residual(el, stmt, x, scope, env)
    init = args["init"]
    assert isinstance(init, float)
    alpha = el.add(
        "alpha",
        {"per_channel": args["per_channel"]},
        (f,),
        scope.internal("alpha", stmt.span),
        stmt.span,
        init={"": init},
    )
    return el.add("add", {}, (s, alpha), scope.internal("weight", stmt.span), stmt.span)


def _check_residual(
    el: Elaborator, stmt: ast.PrimitiveStmt, f: Tensor, s: Tensor, identity: bool, what: str
) -> None:
    if f.shape == s.shape:
        return
    body_span = _body_span(stmt)
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
    clause = stmt.shortcut
    # The shortcut's name in the spec (`shortcut proj: ...`), none for an unnamed one, and
    # torchvision's `downsample` when there is no shortcut yet.
    name = (clause.label.span.text if clause.label else None) if clause else "downsample"
    fix = (
        f"`shortcut {name + ': ' if name else ''}{{ conv({f.shape[0]}, 1{strided}); bn }}`"
        if len(f.shape) == 3
        else "a shortcut that gives the body's shape"
    )
    # Either side may be the wrong one: a missing projection, or a body that should have
    # kept the input's shape (a wrong width or stride inside it).
    body_fix = f"or make the body give {fmt_shape(s.shape)}"
    if identity and clause is not None and clause.guard is not None:
        # The user wrote a shortcut, but its guard left it off where the shapes differ.
        differs = (f"in.c != {f.shape[0]}" if not same_c
                   else f"in.h != {f.shape[1]}" if len(f.shape) == 3 else "...")
        help = (f"the shortcut{f' `{name}`' if name else ''} is off here, since "
                f"its guard `{clause.guard.span.text}` is false: make the guard hold where the "
                f"shapes differ, e.g. `if {clause.guard.span.text} or {differs}`; {body_fix}")
    elif same_c:
        help = f"give the shortcut the same stride: {fix}; {body_fix} (stride 1)"
    elif identity:
        help = f"add a projection shortcut: {fix}; {body_fix}"
    else:
        help = f"make the shortcut give {fmt_shape(f.shape)}: {fix}; {body_fix}"
    if same_c:
        raise fail(
            "E0302",
            f"{what}'s residual add joins tensors of different spatial sizes",
            stmt.kind_span,
            label,
            secondary=secondary,
            notes=(f"the body changes the spatial size {fmt_shape(s.shape[1:])} → "
                   f"{fmt_shape(f.shape[1:])}, usually with a stride",),
            help=help,
        )
    raise fail(
        "E0301",
        f"{what}'s residual add joins tensors of different shapes",
        stmt.kind_span,
        label,
        secondary=secondary,
        help=help,
    )


def gate(
    el: Elaborator, stmt: ast.PrimitiveStmt, args: Env, x: Tensor, scope: _Scope, env: Env
) -> Tensor:
    bias = args["bias"]
    assert isinstance(bias, float)
    before = len(el.graph)
    h = el.body(stmt.body, x, scope, env)
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
        t = el.clause(stmt.transform, x, scope, env, "transform")
        assert t is not None
        last = el.graph.node(t.node)
        if last.op not in ("conv", "linear") or not last.args["bias"] or t.node < before:
            raise fail(
                "E0314",
                "a gate's transform must end in a conv or linear layer with a bias",
                stmt.transform.span,
                f"ends in `{last.op}`",
                help="its bias starts at the gate's `bias`; add `bias = true`",
            )
        el.graph.set_init(t.node, {"bias": bias})
    else:
        fid = el.graph.open_frame("clause", "transform", None, stmt.span, {}, x.node)
        t = el.closed(fid, _derive_transform(el, stmt, before, x, scope, bias))
    if t.shape != x.shape:
        raise fail(
            "E0305",
            "a gate's transform must keep its input's shape",
            stmt.transform.span if stmt.transform else stmt.kind_span,
            f"T gives {fmt_shape(t.shape)}, the input is {fmt_shape(x.shape)}",
            help="T(x) weighs H(x) against x element by element, so it has x's shape",
        )
    gate = el.add("sigmoid", {}, (t,), scope.internal("gate", stmt.span), stmt.span)
    return el.add("highway", {}, (gate, h, x), scope.internal("highway", stmt.span),
                    stmt.span)


def _derive_transform(
    el: Elaborator, stmt: ast.PrimitiveStmt, before: int, x: Tensor, scope: _Scope, bias: float
) -> Tensor:
    """W_T: the same kind and shape of layer as H's first layer, with a bias."""
    first = None
    for nid in range(before, len(el.graph)):
        node = el.graph.node(nid)
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
    return el.add(first.op, args, (x,), scope.internal("transform", stmt.span),
                    stmt.span, init={"bias": bias})


def concat(
    el: Elaborator, stmt: ast.PrimitiveStmt, args: Env, x: Tensor, scope: _Scope, env: Env
) -> Tensor:
    if stmt.branches:
        # Inception's filter concatenation: [B_1(x), ..., B_n(x)], x itself not included.
        return _joined_branches(el, stmt, x, scope, env, "concat", (
            _spatial, "E0303", "the branches of a concat have different spatial sizes",
            "every branch must give the same height and width (give the reduction branches "
            "the same stride and padding)"))
    f = el.body(stmt.body, x, scope, env)
    if not _spatial(f, x):
        raise fail(
            "E0303",
            "concat joins tensors of different spatial sizes",
            stmt.kind_span,
            f"[x, F(x)] of {fmt_shape(x.shape)} and {fmt_shape(f.shape)}",
            secondary=(Label(_body_span(stmt), f"the body gives {fmt_shape(f.shape)}"),),
            help="a concat body must keep the input's height and width: use stride 1 and "
            "the default padding",
        )
    return el.add("concat", {}, (x, f), scope.internal("concat", stmt.span), stmt.span)


def scale(
    el: Elaborator, stmt: ast.PrimitiveStmt, args: Env, x: Tensor, scope: _Scope, env: Env
) -> Tensor:
    f = el.body(stmt.body, x, scope, env)
    try:
        OPS["mul"].infer([x.shape, f.shape], {})
    except ShapeError as exc:
        body_span = stmt.body[-1].span if stmt.body else stmt.kind_span
        raise fail(exc.code, exc.message, stmt.kind_span, exc.label, help=exc.help,
                   secondary=(Label(body_span, f"the body gives {fmt_shape(f.shape)}"),),
                   ) from None
    return el.add("mul", {}, (x, f), scope.internal("scale", stmt.span), stmt.span)


def dual(
    el: Elaborator, stmt: ast.PrimitiveStmt, args: Env, x: Tensor, scope: _Scope, env: Env
) -> Tensor:
    r = args["r"]
    assert isinstance(r, int)
    s = el.clause(stmt.shortcut, x, scope, env) or x
    f = el.body(stmt.body, x, scope, env)
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
    return el.add("dual", {"r": r}, (s, f), scope.internal("dual", stmt.span), stmt.span)


def group(
    el: Elaborator, stmt: ast.PrimitiveStmt, args: Env, x: Tensor, scope: _Scope, env: Env
) -> Tensor:
    g = _arg_int(args, "groups")
    ctx = Group(g, x.node)
    el.group = ctx
    try:
        y = el.body(stmt.body, x, scope, env)
    finally:
        el.group = None
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
    last = el.graph.node(y.node)
    if last.op == "conv" and ctx.branch_groups.get(y.node) == 1:
        # Σ_i W_i * x_i over the branches is one dense conv over their concatenation.
        folded = dict(last.args, out=_arg_int(last.args, "out") // g, groups=1)
        shape = OPS["conv"].infer([el.graph.node(last.inputs[0]).shape], folded)
        el.graph.update(y.node, folded, shape)
        return Tensor(y.node, shape)
    return el.add("group_sum", {"groups": g}, (y,), scope.internal("group_sum", stmt.span),
                    stmt.span)


def lower_in_group(
    el: Elaborator, op: str, args: dict[str, Value], x: Tensor, span: Span
) -> dict[str, Value]:
    """Rewrite one layer of a group body into its g-branch, grouped-conv form."""
    ctx = el.group
    assert ctx is not None
    g = ctx.groups
    if op == "conv":
        out, groups = _arg_int(args, "out"), _arg_int(args, "groups")
        if not ctx.fanned_out:
            if x.node != ctx.entry:
                raise _not_first(op, span)
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
            raise _not_first(op, span)
        return args
    raise fail(
        "E0311",
        f"`{op}` cannot appear in a group body",
        span,
        "not a per-channel layer",
        help="a group body holds conv, bn, activations, dropout and pools; put other "
        "layers after the group",
    )


def _not_first(op: str, span: Span) -> SpecError:
    return fail(
        "E0311",
        "a group body must start with a conv",
        span,
        f"`{op}` comes first",
        help="each branch starts with a conv that sees the whole input; move this "
        "layer before the group",
    )


def _stride_between(big: tuple[int, ...], small: tuple[int, ...]) -> int:
    if len(big) == len(small) == 3 and small[1] and big[1] % small[1] == 0:
        return max(1, big[1] // small[1])
    return 1


Connection = Callable[["Elaborator", ast.PrimitiveStmt, Env, Tensor, "_Scope", Env], Tensor]

# Every primitive but `branch` (which only lives inside the multi-branch joins).
CONNECTIONS: dict[str, Connection] = {
    "skip": skip,
    "weight": weight,
    "gate": gate,
    "concat": concat,
    "scale": scale,
    "dual": dual,
    "group": group,
}
