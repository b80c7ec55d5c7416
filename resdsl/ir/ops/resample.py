"""Resampling: `upsample`, PyTorch's `F.interpolate` in its nearest and bilinear modes, by an
integer factor or to the spatial size of another tensor."""

from __future__ import annotations

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
    feature_map,
    fmt_shape,
    int_arg,
)

MODES = ("nearest", "bilinear")


class Upsample(Op):
    """`F.interpolate(x, scale_factor=scale)` or `F.interpolate(x, size=to.shape[-2:])`, with
    `mode` and, for bilinear, `align_corners` (False when not given, as in PyTorch).

    `to` is a tensor argument: the node's second input, read only for its height and width,
    so the generated module reads the size at run time and runs at other input sizes. MACs
    are 0: interpolation is not a multiply-accumulate layer in the convention of the counts
    (torchvision's GFLOPS; `torch.utils.flop_counter` has no rule for it either)."""

    name = "upsample"
    args = (
        ArgSpec("scale", ArgType.POS_INT, None,
                help="`scale` is a whole factor (`upsample(2)`); for any other size, upsample "
                "to the size of a named tensor with `to = t`"),
        ArgSpec("mode", ArgType.STR, "nearest", MODES),
        ArgSpec("align_corners", ArgType.BOOL, None),
        ArgSpec("to", ArgType.TENSOR, None),
    )
    size_only = frozenset({"to"})

    def check(self, a: Args) -> None:
        if a["scale"] is not None and a["to"] is not None:
            raise ArgError(
                "E0315",
                "`upsample` takes `scale` or `to`, not both",
                "give the factor (`upsample(2)`) or the tensor whose size to take "
                "(`upsample(to = t)`)",
                arg="to",
                label="`scale` already sets the size",
            )
        if a["scale"] is None and a["to"] is None:
            raise ArgError(
                "E0402",
                "`upsample` needs `scale` or `to`",
                "give a whole factor (`upsample(2)`) or a named tensor whose height and "
                "width to take (`upsample(to = t)`)",
                label="no size given",
            )
        if a["mode"] == "nearest" and a["align_corners"] is not None:
            raise ArgError(
                "E0315",
                "`align_corners` applies to bilinear upsampling only",
                "drop `align_corners`, or set `mode = \"bilinear\"` (PyTorch refuses "
                "align_corners with mode=\"nearest\")",
                arg="align_corners",
                label="the mode is \"nearest\"",
            )

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        c, h, w = feature_map("upsample", ins[0])
        if a["to"] is None:
            s = int_arg(a, "scale")
            return (c, h * s, w * s)
        ref = ins[int_arg(a, "to")]
        if len(ref) != 3:
            raise ShapeError(
                "E0308",
                f"`upsample` takes the height and width of `to`, but `to` is "
                f"{fmt_shape(ref)}",
                f"`to` is {fmt_shape(ref)}",
                "`to` names a feature map C×H×W: one named before `flatten`",
            )
        return (c, ref[1], ref[2])

    def stride(self, a: Args) -> tuple[Fraction, Fraction] | None:
        # With `to`, the size is `to`'s: features take its stride (a size input's).
        if a["to"] is not None:
            return None
        s = int_arg(a, "scale")
        return (Fraction(1, s), Fraction(1, s))
