"""Joins: the merges that primitives and named-tensor joins make (add, mul, concat, the
weighted and gated sums, the dual merge, a group's sum) and the residual branch's scales
(rescale, alpha). A spec cannot call them by name: primitives create them."""

from __future__ import annotations

import math
from collections.abc import Sequence

from resdsl.ir.ops.base import (
    Args,
    ArgSpec,
    ArgType,
    Op,
    Shape,
    ShapeError,
    State,
    broadcasts,
    fmt_shape,
)


class Add(Op):
    """`skip` and `weight` (inputs of one shape, which the primitives check), and `add(a, b,
    ...)` of named tensors: the first tensor's shape, every other one broadcast over it (a
    global context `add(x, ctx)` with ctx C×1×1)."""

    name = "add"
    user = False
    arity = None

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        if not all(broadcasts(s, ins[0]) for s in ins):
            raise ShapeError("E0301", "add of shapes that do not broadcast")
        return ins[0]


class Sub(Op):
    """`sub(a, b)`: a − b, `b` broadcast over `a` (the result has `a`'s shape)."""

    name = "sub"
    user = False
    arity = 2

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        x, y = ins
        if not broadcasts(y, x):
            raise ShapeError(
                "E0320",
                f"`sub`'s second tensor {fmt_shape(y)} does not broadcast over its first "
                f"{fmt_shape(x)}",
                f"{fmt_shape(x)} − {fmt_shape(y)}",
                "the second tensor has the first one's rank and, in each size, the first "
                "one's or 1: swap the two and negate the result (`neg`) when the first is "
                "the smaller",
            )
        return x


class Mul(Op):
    """`scale`: `x · F(x)`, the factor broadcast over H and W."""

    name = "mul"
    user = False
    arity = 2

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        x, f = ins
        if not broadcasts(f, x):
            raise ShapeError(
                "E0309",
                f"scale's factor {fmt_shape(f)} does not broadcast over its input "
                f"{fmt_shape(x)}",
                f"factor is {fmt_shape(f)}, input is {fmt_shape(x)}",
                f"the body must end with {x[0]} channels and 1×1 or the input's spatial size",
            )
        return x


class Concat(Op):
    """`concat`: channel concatenation."""

    name = "concat"
    user = False
    arity = None

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        if any(len(s) != 3 or s[1:] != ins[0][1:] for s in ins):
            raise ShapeError("E0303", "concat of different spatial sizes")
        return (sum(s[0] for s in ins), *ins[0][1:])


class Rescale(Op):
    """`skip(scale = f)`: a constant factor on the residual branch, y = f·x; no state."""

    name = "rescale"
    user = False
    args = (ArgSpec("factor", ArgType.FLOAT),)


class Alpha(Op):
    """`weight`: a learnable scale α·F(x), one scalar or one per channel."""

    name = "alpha"
    user = False
    args = (ArgSpec("init", ArgType.FLOAT, 0.0), ArgSpec("per_channel", ArgType.BOOL, False))

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        if a["per_channel"]:
            return (State("", (out[0],) + (1,) * (len(out) - 1)),)
        return (State("", (1,)),)


class WeightedSum(Op):
    """`weight` over several branches: Σ softmax(w)_i · B_i(x), w initialised to 0."""

    name = "weighted_sum"
    user = False
    arity = None

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        if any(s != ins[0] for s in ins):
            raise ShapeError("E0313", "weighted sum of different shapes")
        return ins[0]

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        return (State("", (len(ins),)),)


class Highway(Op):
    """`gate`: y = T·H + (1 − T)·x, with inputs (T, H, x) and T already squashed by σ."""

    name = "highway"
    user = False
    arity = 3

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        if any(s != ins[2] for s in ins):
            raise ShapeError("E0305", "highway of different shapes")
        return ins[2]


class Dual(Op):
    """`dual`: inputs (S(x), F(x)) → [S[:R] + F[:R], S[R:], F[R:]] on channels."""

    name = "dual"
    user = False
    arity = 2
    args = (ArgSpec("r", ArgType.POS_INT),)

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        s, f = ins
        r = a["r"]
        assert isinstance(r, int)
        if len(s) != 3 or len(f) != 3 or s[1:] != f[1:] or r > min(s[0], f[0]):
            raise ShapeError("E0306", "dual merge of incompatible shapes")
        return (s[0] + f[0] - r, *s[1:])


class GroupSum(Op):
    """`group` with a sum merge whose body does not end in a conv: sums the g channel
    groups of a g·C-channel tensor into C channels."""

    name = "group_sum"
    user = False
    args = (ArgSpec("groups", ArgType.POS_INT),)

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        g = a["groups"]
        assert isinstance(g, int)
        return (ins[0][0] // g, *ins[0][1:])




class MatMul(Op):
    """`matmul(a, b)`: `a @ b`, the product of the last two axes' matrices (a's rows by b's
    columns) for every index of the axes before them: attention's `q · kᵀ` and `attn · v`,
    with heads as the leading axis. Both have one rank, at least 2; a leading size of 1 in
    either broadcasts. MACs: every multiply-accumulate, `a[-1]` for each output value."""

    name = "matmul"
    user = False
    arity = 2
    keeps_positions = False

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        x, y = ins
        shapes = f"{fmt_shape(x)} · {fmt_shape(y)}"
        if len(x) != len(y) or len(x) < 2:
            raise ShapeError(
                "E0324",
                f"`matmul` multiplies tensors of one rank, at least 2, not {fmt_shape(x)} and "
                f"{fmt_shape(y)}",
                shapes,
                "`reshape` both to [..., rows, columns] first (`reshape([heads, d, -1])`)",
            )
        if x[-1] != y[-2]:
            raise ShapeError(
                "E0324",
                f"`matmul`'s inner sizes differ: {fmt_shape(x)} has {x[-1]} columns, "
                f"{fmt_shape(y)} has {y[-2]} rows",
                shapes,
                "the first tensor's last size is the second's next to last: transpose one "
                "(`permute`, swapping its last two axes)",
            )
        lead: list[int] = []
        for i, (p, q) in enumerate(zip(x[:-2], y[:-2], strict=True)):
            if p != q and 1 not in (p, q):
                raise ShapeError(
                    "E0324",
                    f"`matmul`'s leading sizes differ on axis {i}: {p} and {q}",
                    shapes,
                    "the axes before the last two are equal, or 1 in one tensor",
                )
            lead.append(max(p, q))
        return (*lead, x[-2], y[-1])

    def macs(self, ins: Sequence[Shape], a: Args, out: Shape) -> int:
        return math.prod(out) * ins[0][-1]
