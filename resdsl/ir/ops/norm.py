"""Normalisation layers: batch norm (learnt and frozen statistics), layer norm over one
axis and group norm."""

from __future__ import annotations

from collections.abc import Sequence

from resdsl.ir.ops.base import (
    Args,
    ArgSpec,
    ArgType,
    Op,
    Shape,
    ShapeError,
    State,
    feature_map,
    float_arg,
    fmt_shape,
    int_arg,
)


class BatchNorm(Op):
    name = "bn"
    args = (ArgSpec("eps", ArgType.FLOAT, 1e-5), ArgSpec("momentum", ArgType.FLOAT, 0.1))

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        if len(ins[0]) > 3:
            # BatchNorm1d and 2d: C, C×L and C×H×W; a rank-4 tensor (after `reshape`) is
            # no layer PyTorch's BatchNorm1d or 2d takes.
            raise ShapeError(
                "E0308",
                f"`bn` needs a tensor C, C×L or C×H×W, but its input is {fmt_shape(ins[0])}",
                f"input is {fmt_shape(ins[0])}",
                "reshape to C×H×W first (`reshape([c, h, w])`)",
            )
        _positive_eps("bn", a)
        return ins[0]

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        c = (ins[0][0],)
        return (
            State("weight", c),
            State("bias", c),
            State("running_mean", c, False),
            State("running_var", c, False),
            State("num_batches_tracked", (), False),
        )


class FrozenBatchNorm(Op):
    """torchvision's `FrozenBatchNorm2d` (detection backbones): y = x·s + (b − mean·s) with
    s = w / sqrt(var + eps), from fixed statistics and affine parameters. All four are
    buffers (no parameters, no `num_batches_tracked`), and it behaves the same in training.
    Feature maps only, as torchvision's reshape to (1, C, 1, 1) implies."""

    name = "frozen_bn"
    args = (ArgSpec("eps", ArgType.FLOAT, 1e-5),)

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        feature_map("frozen_bn", ins[0])
        _positive_eps("frozen_bn", a)
        return ins[0]

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        c = (ins[0][0],)
        return tuple(State(name, c, False)
                     for name in ("weight", "bias", "running_mean", "running_var"))


def _positive_eps(op: str, a: Args) -> None:
    eps = float_arg(a, "eps")
    if eps <= 0:
        raise ShapeError("E0408", f"{op}'s eps must be positive, not {eps:g}", f"eps = {eps:g}",
                         "eps keeps the division by sqrt(var + eps) away from zero; PyTorch's "
                         "default is 1e-5")


class LayerNorm(Op):
    """Layer normalisation over one axis, at every position of the others, with an affine
    `weight` and `bias` of that axis's size: `nn.LayerNorm(C)` over the last axis of a
    channels-last tensor (`axis = -1`), or timm's `LayerNorm2d` over the channels of a
    feature map (`axis = 0`, the default), which permutes to channels-last and back."""

    name = "layer_norm"
    args = (ArgSpec("axis", ArgType.INT, 0), ArgSpec("eps", ArgType.FLOAT, 1e-5))

    @staticmethod
    def axis(shape: Shape, a: Args) -> int:
        axis = int_arg(a, "axis")
        rank = len(shape)
        if not -rank <= axis < rank:
            raise ShapeError(
                "E0321",
                f"`layer_norm` has no axis {axis}: its input {fmt_shape(shape)} has {rank} "
                f"ax{'is' if rank == 1 else 'es'}",
                f"input is {fmt_shape(shape)}",
                "axis 0 normalises the channels at each position (LayerNorm2d), −1 the last "
                "axis (nn.LayerNorm of a channels-last tensor)",
            )
        return axis % rank

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        self.axis(ins[0], a)
        _positive_eps("layer_norm", a)
        return ins[0]

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        n = (ins[0][self.axis(ins[0], a)],)
        return (State("weight", n), State("bias", n))


class GroupNorm(Op):
    """`nn.GroupNorm(groups, C)`: the channels in `groups` groups, each normalised over its
    channels and every position, then an affine `weight` and `bias` per channel."""

    name = "group_norm"
    args = (ArgSpec("groups", ArgType.POS_INT), ArgSpec("eps", ArgType.FLOAT, 1e-5))

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        c, groups = ins[0][0], int_arg(a, "groups")
        if len(ins[0]) < 2:
            raise ShapeError(
                "E0308",
                f"`group_norm` needs a tensor C×L or C×H×W, but its input is "
                f"{fmt_shape(ins[0])}",
                f"input is {fmt_shape(ins[0])}",
                "normalise before `flatten`, or `reshape` to C×1 first",
            )
        if c % groups:
            raise ShapeError(
                "E0304",
                f"groups={groups} does not divide the input channels ({c})",
                f"{groups} groups over {c} channels",
                "choose groups that divide the channels (GroupNorm(32, C) needs C a "
                "multiple of 32)",
            )
        _positive_eps("group_norm", a)
        return ins[0]

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        c = (ins[0][0],)
        return (State("weight", c), State("bias", c))
