"""Normalisation layers."""

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
