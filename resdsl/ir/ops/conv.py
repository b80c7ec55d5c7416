"""Convolution and linear layers: the ops that own weights and count MACs."""

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
    feature_map,
    fmt_shape,
    int_arg,
    pair_arg,
    window,
)


class Conv(Op):
    name = "conv"
    args = (
        ArgSpec("out", ArgType.POS_INT),
        ArgSpec("kernel", ArgType.PAIR),
        ArgSpec("stride", ArgType.PAIR, 1),
        ArgSpec("padding", ArgType.NONNEG_PAIR, None),
        ArgSpec("dilation", ArgType.PAIR, 1),
        ArgSpec("groups", ArgType.POS_INT, 1),
        ArgSpec("bias", ArgType.BOOL, False),
    )

    @staticmethod
    def padding(a: Args) -> tuple[int, int]:
        """Explicit padding, or `dilation * (kernel // 2)`: "same" for odd kernels at stride 1."""
        if a["padding"] is not None:
            return pair_arg(a, "padding")
        (kh, kw), (dh, dw) = pair_arg(a, "kernel"), pair_arg(a, "dilation")
        return (dh * (kh // 2), dw * (kw // 2))

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        c, h, w = feature_map("conv", ins[0])
        out, groups = int_arg(a, "out"), int_arg(a, "groups")
        if c % groups or out % groups:
            which = f"input channels ({c})" if c % groups else f"output channels ({out})"
            raise ShapeError(
                "E0304",
                f"groups={groups} does not divide the {which}",
                f"{groups} groups over {c} → {out} channels",
                "choose groups that divide both the input and the output channels",
            )
        (kh, kw), (sh, sw) = pair_arg(a, "kernel"), pair_arg(a, "stride")
        (dh, dw), (ph, pw) = pair_arg(a, "dilation"), self.padding(a)
        return (
            out,
            window("conv", h, kh, sh, ph, dh, False, "height"),
            window("conv", w, kw, sw, pw, dw, False, "width"),
        )

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        kh, kw = pair_arg(a, "kernel")
        weight = State("weight", (out[0], ins[0][0] // int_arg(a, "groups"), kh, kw))
        return (weight, State("bias", (out[0],))) if a["bias"] else (weight,)

    def macs(self, ins: Sequence[Shape], a: Args, out: Shape) -> int:
        kh, kw = pair_arg(a, "kernel")
        return math.prod(out) * (ins[0][0] // int_arg(a, "groups")) * kh * kw



class Linear(Op):
    name = "linear"
    args = (ArgSpec("out", ArgType.POS_INT), ArgSpec("bias", ArgType.BOOL, True))

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        if len(ins[0]) != 1:
            raise ShapeError(
                "E0308",
                f"`linear` needs a flat input, but its input is {fmt_shape(ins[0])}",
                f"input is {fmt_shape(ins[0])}",
                "add `flatten` (after `global_avgpool`) before `linear`",
            )
        out = a["out"]
        assert isinstance(out, int)
        return (out,)

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        weight = State("weight", (out[0], ins[0][0]))
        return (weight, State("bias", out)) if a["bias"] else (weight,)

    def macs(self, ins: Sequence[Shape], a: Args, out: Shape) -> int:
        return ins[0][0] * out[0]


