"""Ops that reshape or re-index a tensor without computing on its values: the network's
input, flatten, a channel slice, the zero-pad shortcut, and `reshape` and `permute`, which
take a per-sample shape of any rank (up to MAX_RANK axes)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from resdsl.ir.ops.base import (
    ArgError,
    Args,
    ArgSpec,
    ArgType,
    Op,
    Shape,
    ShapeError,
    State,
    Value,
    a_type,
    feature_map,
    float_arg,
    fmt_shape,
    fmt_value,
    int_arg,
)


class Input(Op):
    name = "input"
    user = False
    arity = 0
    args = (ArgSpec("shape", ArgType.STR),)  # never bound from a spec; the shape is the output


class Flatten(Op):
    name = "flatten"
    keeps_positions = False

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        return (math.prod(ins[0]),)


class Slice(Op):
    """Indices `start` up to (not including) `end` of one axis: `x[start:end]` on the
    channel axis (`axis = 0`, the default), or on any other per-sample axis."""

    name = "slice"
    args = (ArgSpec("start", ArgType.NONNEG_INT), ArgSpec("end", ArgType.NONNEG_INT, None),
            ArgSpec("axis", ArgType.INT, 0))

    @staticmethod
    def bounds(shape: Shape, a: Args) -> tuple[int, int, int]:
        """(axis made non-negative, start, stop), checked against `shape`."""
        axis = a.get("axis", 0)
        assert isinstance(axis, int)
        rank = len(shape)
        if not -rank <= axis < rank:
            raise ShapeError(
                "E0321",
                f"`slice` has no axis {axis}: its input {fmt_shape(shape)} has {rank} "
                f"ax{'is' if rank == 1 else 'es'}",
                f"input is {fmt_shape(shape)}",
                "axes count per sample: 0 is the channels, −1 the last",
            )
        axis %= rank
        size = shape[axis]
        start, end = a["start"], a["end"]
        assert isinstance(start, int)
        stop = size if end is None else end
        assert isinstance(stop, int)
        if not start < stop <= size:
            what = f"{size} channels" if axis == 0 else f"axis {axis} of size {size}"
            raise ShapeError(
                "E0310",
                f"{'channel ' if axis == 0 else ''}slice [{start}:{stop}] is out of range for "
                f"{what}",
                f"input has {what}",
                f"the slice needs 0 <= start < end <= {size}",
            )
        return axis, start, stop

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        axis, start, stop = self.bounds(ins[0], a)
        return (*ins[0][:axis], stop - start, *ins[0][axis + 1:])


class Pad(Op):
    """`before` and `after` zeros at the two ends of one axis (`F.pad`): with `reshape` and
    `slice`, the relative-to-absolute indexing of relative position logits."""

    name = "pad"
    args = (ArgSpec("before", ArgType.NONNEG_INT), ArgSpec("after", ArgType.NONNEG_INT),
            ArgSpec("axis", ArgType.INT, 0))

    @staticmethod
    def axis(shape: Shape, a: Args) -> int:
        axis = a["axis"]
        assert isinstance(axis, int)
        rank = len(shape)
        if not -rank <= axis < rank:
            raise ShapeError(
                "E0321",
                f"`pad` has no axis {axis}: its input {fmt_shape(shape)} has {rank} "
                f"ax{'is' if rank == 1 else 'es'}",
                f"input is {fmt_shape(shape)}",
                "axes count per sample: 0 is the channels, −1 the last",
            )
        return axis % rank

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        axis = self.axis(ins[0], a)
        before, after = a["before"], a["after"]
        assert isinstance(before, int) and isinstance(after, int)
        return (*ins[0][:axis], ins[0][axis] + before + after, *ins[0][axis + 1:])


class ZeroPad(Op):
    """The parameter-free "option A" shortcut of He et al. 2015 (CIFAR ResNets): subsample
    by `stride`, then append zero channels up to `out` (as fb.resnet.torch does)."""

    name = "zeropad"
    args = (ArgSpec("out", ArgType.POS_INT), ArgSpec("stride", ArgType.POS_INT, 1))

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        c, h, w = feature_map("zeropad", ins[0])
        out, s = a["out"], a["stride"]
        assert isinstance(out, int) and isinstance(s, int)
        if out < c:
            raise ShapeError(
                "E0312",
                f"zeropad to {out} channels would drop channels of a {c}-channel input",
                f"input has {c} channels",
                "zeropad only adds channels; use a projection (`conv` + `bn`) to reduce them",
            )
        return (out, -(-h // s), -(-w // s))

    def stride(self, a: Args) -> tuple[Fraction, Fraction] | None:
        s = int_arg(a, "stride")
        return (Fraction(s), Fraction(s))




# A per-sample tensor has at most this many axes (a batch of them, one more): ranks beyond it
# are no network's, and runtimes take them all.
MAX_RANK = 6


def int_list(op: str, arg: str, value: Value, example: str) -> tuple[int, ...]:
    """A list of integers (one integer is a list of one), E0401 otherwise."""
    items = value if isinstance(value, tuple) else (value,)
    if not items or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ArgError("E0401", f"`{op}`'s {arg} must be a list of integers, not "
                       f"{a_type(value)} ({fmt_value(value)})", f"for example `{example}`",
                       arg=arg, label=f"this is {a_type(value)}")
    return tuple(v for v in items if isinstance(v, int))


class Reshape(Op):
    """The per-sample shape `shape` (one size may be −1: what the others leave), the values
    in their order: `x.reshape(N, *shape)`. Splitting channels into groups (`reshape([g, c
    // g, h, w])`), heads (`reshape([heads, d, h * w])`) and back."""

    name = "reshape"
    keeps_positions = False
    args = (ArgSpec("shape", ArgType.ANY),)

    def check(self, a: Args) -> None:
        int_list("reshape", "shape", a["shape"], "reshape([4, 16, 7, 7])")

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        shape = int_list("reshape", "shape", a["shape"], "reshape([4, 16, 7, 7])")
        size = math.prod(ins[0])
        given = f"[{', '.join(str(d) for d in shape)}]"
        if len(shape) > MAX_RANK:
            raise ShapeError("E0322", f"`reshape` to {len(shape)} axes: at most {MAX_RANK}",
                             f"{len(shape)} axes", "merge some sizes into one")
        if any(d < 1 and d != -1 for d in shape) or shape.count(-1) > 1:
            raise ShapeError("E0322", f"`reshape`'s sizes must be positive, with at most one "
                             f"−1, not {given}", f"shape {given}",
                             "−1 stands for what the other sizes leave")
        known = math.prod(d for d in shape if d != -1)
        if -1 in shape and size % known == 0:
            shape = tuple(size // known if d == -1 else d for d in shape)
        if math.prod(shape) != size:
            raise ShapeError(
                "E0322",
                f"`reshape` to {given} needs {known:,} values a sample"
                + (" (or a multiple)" if -1 in shape else "")
                + f", but its input {fmt_shape(ins[0])} holds {size:,}",
                f"input is {fmt_shape(ins[0])}",
                "the sizes' product is the input's (one size may be −1)",
            )
        return shape


class Permute(Op):
    """The per-sample axes in the order `order`: `x.permute(0, *(a + 1 for a in order))`.
    A transpose is the permutation of two axes (`permute([1, 0, 2])`); channels last is
    `permute([1, 2, 0])`."""

    name = "permute"
    keeps_positions = False
    args = (ArgSpec("order", ArgType.ANY),)

    def check(self, a: Args) -> None:
        int_list("permute", "order", a["order"], "permute([1, 2, 0])")

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        order = int_list("permute", "order", a["order"], "permute([1, 2, 0])")
        rank = len(ins[0])
        if sorted(order) != list(range(rank)):
            raise ShapeError(
                "E0323",
                f"`permute`'s order [{', '.join(str(o) for o in order)}] is not an order of "
                f"the {rank} axes of {fmt_shape(ins[0])}",
                f"input is {fmt_shape(ins[0])}",
                f"name each axis 0 to {rank - 1} once: `permute([{_reversed(rank)}])` "
                "reverses them",
            )
        return tuple(ins[0][o] for o in order)


class Param(Op):
    """A free learnable tensor of the per-sample shape `shape`, the same for every sample:
    ConvNeXt's layer scale `gamma` ([C]), BoTNet's relative position tables ([2·H − 1, d]).
    Its state is the parameter at the statement's own path (`blocks.0.gamma`); every element
    starts at `value` plus `std` times a standard normal draw.

    A statement like any other, it takes the flowing tensor as its input, read for its batch
    size only (the parameter is expanded over the batch, a view): so the graph keeps its one
    source, and the parameter carries no path from the input (`size_inputs`)."""

    name = "param"
    args = (ArgSpec("shape", ArgType.ANY), ArgSpec("value", ArgType.FLOAT, 0.0),
            ArgSpec("std", ArgType.FLOAT, 0.0))

    def check(self, a: Args) -> None:
        shape = int_list("param", "shape", a["shape"], "param([64], value = 1e-6)")
        if min(shape) < 1 or len(shape) > MAX_RANK:
            raise ArgError("E0408", f"`param`'s shape must be 1 to {MAX_RANK} positive sizes, "
                           f"not {fmt_value(a['shape'])}",
                           "for example `param([64], value = 1e-6)`", arg="shape",
                           label="not a shape")
        if float_arg(a, "std") < 0:
            raise ArgError("E0408", "`param`'s std must not be negative",
                           "the values start at value + std · N(0, 1)", arg="std",
                           label="negative")

    def size_inputs(self, a: Args) -> frozenset[int]:
        return frozenset({0})

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        return int_list("param", "shape", a["shape"], "param([64])")

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        return (State("", out),)


def _reversed(rank: int) -> str:
    return ", ".join(str(i) for i in reversed(range(rank)))
