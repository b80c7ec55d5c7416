"""Normalisation layers."""

from __future__ import annotations

from collections.abc import Sequence

from resdsl.ir.ops.base import Args, ArgSpec, ArgType, Op, Shape, ShapeError, State


class BatchNorm(Op):
    name = "bn"
    args = (ArgSpec("eps", ArgType.FLOAT, 1e-5), ArgSpec("momentum", ArgType.FLOAT, 0.1))

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        eps = a["eps"]
        assert isinstance(eps, float)
        if eps <= 0:
            raise ShapeError("E0408", f"bn's eps must be positive, not {eps:g}")
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


