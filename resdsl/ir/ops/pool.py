"""Pooling: windows (max and average) and the global average."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import ClassVar

from resdsl.ir.ops.base import (
    Args,
    ArgSpec,
    ArgType,
    Op,
    Shape,
    ShapeError,
    feature_map,
    pair_arg,
    window,
)


class _Pool(Op):
    args: ClassVar[tuple[ArgSpec, ...]] = (
        ArgSpec("kernel", ArgType.PAIR),
        ArgSpec("stride", ArgType.PAIR, None),
        ArgSpec("padding", ArgType.NONNEG_PAIR, 0),
        ArgSpec("ceil_mode", ArgType.BOOL, False),
    )

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        c, h, w = feature_map(self.name, ins[0])
        (kh, kw), (ph, pw) = pair_arg(a, "kernel"), pair_arg(a, "padding")
        # PyTorch's default: the stride is the kernel size.
        sh, sw = pair_arg(a, "stride") if a["stride"] is not None else (kh, kw)
        if 2 * ph > kh or 2 * pw > kw:
            raise ShapeError(
                "E0408",
                f"`{self.name}` padding must be at most half the kernel ({kh}×{kw})",
                f"padding {ph}×{pw}",
            )
        ceil = bool(a["ceil_mode"])
        return (
            c,
            window(self.name, h, kh, sh, ph, 1, ceil, "height"),
            window(self.name, w, kw, sw, pw, 1, ceil, "width"),
        )

    def stride(self, a: Args) -> tuple[Fraction, Fraction] | None:
        sh, sw = pair_arg(a, "stride" if a["stride"] is not None else "kernel")
        return (Fraction(sh), Fraction(sw))

    def ends_feature_maps(self, ins: Sequence[Shape], a: Args) -> bool:
        kh, kw = pair_arg(a, "kernel")
        return len(ins[0]) == 3 and kh >= ins[0][1] and kw >= ins[0][2]


class MaxPool(_Pool):
    name = "maxpool"


class AvgPool(_Pool):
    """`count_include_pad`: whether the zeros of `padding` count in each window's divisor
    (PyTorch's AvgPool2d argument; the extra end of a ceil-mode window never counts)."""

    name = "avgpool"
    args = (*_Pool.args, ArgSpec("count_include_pad", ArgType.BOOL, True))


class GlobalAvgPool(Op):
    name = "global_avgpool"

    def ends_feature_maps(self, ins: Sequence[Shape], a: Args) -> bool:
        return True

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        c, _, _ = feature_map("global_avgpool", ins[0])
        return (c, 1, 1)


