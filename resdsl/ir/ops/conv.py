"""Convolution (and its transpose) and linear layers: the ops that own weights and count
MACs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import ClassVar

from resdsl.ir.ops.base import (
    ArgError,
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
    pair_arg,
    window,
)


class Conv(Op):
    name = "conv"
    args: ClassVar[tuple[ArgSpec, ...]] = (
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
        c, h, w = feature_map(self.name, ins[0])
        out, groups = int_arg(a, "out"), int_arg(a, "groups")
        _check_groups(c, out, groups)
        (kh, kw), (sh, sw) = pair_arg(a, "kernel"), pair_arg(a, "stride")
        (dh, dw), (ph, pw) = pair_arg(a, "dilation"), self.padding(a)
        return (
            out,
            window(self.name, h, kh, sh, ph, dh, False, "height"),
            window(self.name, w, kw, sw, pw, dw, False, "width"),
        )

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        kh, kw = pair_arg(a, "kernel")
        weight = State("weight", (out[0], ins[0][0] // int_arg(a, "groups"), kh, kw))
        return (weight, State("bias", (out[0],))) if a["bias"] else (weight,)

    def macs(self, ins: Sequence[Shape], a: Args, out: Shape) -> int:
        kh, kw = pair_arg(a, "kernel")
        return math.prod(out) * (ins[0][0] // int_arg(a, "groups")) * kh * kw

    def stride(self, a: Args) -> tuple[Fraction, Fraction] | None:
        sh, sw = pair_arg(a, "stride")
        return (Fraction(sh), Fraction(sw))


class StdConv(Conv):
    """A conv with Weight Standardization (Qiao et al. 2019), timm's `StdConv2d` (the convs
    of BiT): each filter, its `C/groups · kh · kw` weights, is standardised before every use,
    `(w − mean) / √(var + eps)` with the variance biased. The weight stored is the raw one
    (a checkpoint's), so the state, shape rule and MACs are `conv`'s."""

    name = "std_conv"
    args = (*Conv.args, ArgSpec("eps", ArgType.FLOAT, 1e-6))

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        out = super().infer(ins, a)
        (kh, kw), groups = pair_arg(a, "kernel"), int_arg(a, "groups")
        fan_in = ins[0][0] // groups * kh * kw
        if fan_in < 2:
            # One weight standardised is (w - w) / sqrt(eps) = 0: the conv would be its bias
            # alone (and PyTorch's batch_norm, timm's StdConv2d's, refuses a single value).
            raise ShapeError(
                "E0408",
                f"std_conv's filters hold one weight each ({ins[0][0]} input channel(s) / "
                f"{groups} group(s) × {kh}×{kw}): standardised, every weight is 0",
                f"1 weight per filter from {ins[0][0]} channel(s)",
                "standardise filters of at least two weights: a larger kernel, fewer groups, "
                "or a plain `conv`",
            )
        eps = float_arg(a, "eps")
        if eps <= 0:
            raise ShapeError(
                "E0408",
                f"std_conv's eps must be positive, not {eps:g}",
                f"eps = {eps:g}",
                "eps keeps the division by each filter's standard deviation away from zero; "
                "timm's StdConv2d defaults to 1e-6, BiT's to 1e-8",
            )
        return out


def _check_groups(c: int, out: int, groups: int) -> None:
    if c % groups or out % groups:
        which = f"input channels ({c})" if c % groups else f"output channels ({out})"
        raise ShapeError(
            "E0304",
            f"groups={groups} does not divide the {which}",
            f"{groups} groups over {c} → {out} channels",
            "choose groups that divide both the input and the output channels",
        )


class ConvTranspose(Op):
    """`nn.ConvTranspose2d`, with its arguments, defaults (a bias, unlike `conv`; padding 0)
    and positional order: out, kernel, stride, padding, output_padding, groups, bias,
    dilation."""

    name = "conv_transpose"
    args = (
        ArgSpec("out", ArgType.POS_INT),
        ArgSpec("kernel", ArgType.PAIR),
        ArgSpec("stride", ArgType.PAIR, 1),
        ArgSpec("padding", ArgType.NONNEG_PAIR, 0),
        ArgSpec("output_padding", ArgType.NONNEG_PAIR, 0),
        ArgSpec("groups", ArgType.POS_INT, 1),
        ArgSpec("bias", ArgType.BOOL, True),
        ArgSpec("dilation", ArgType.PAIR, 1),
    )

    def check(self, a: Args) -> None:
        extra, stride, dilation = (pair_arg(a, n) for n in ("output_padding", "stride",
                                                             "dilation"))
        for e, s, d in zip(extra, stride, dilation, strict=True):
            if not (e < s or e < d):
                # PyTorch's rule: the extra rows choose among the output sizes that a
                # stride-s conv maps back to the input's size, and there are s of them.
                raise ArgError(
                    "E0408",
                    f"`conv_transpose`'s output_padding ({e}) must be smaller than its "
                    f"stride ({s}) or its dilation ({d})",
                    "output_padding adds rows to choose among the output sizes that a "
                    "stride-s conv maps to one size: 0 up to stride − 1 (`conv_transpose(64, "
                    "3, stride = 2, padding = 1, output_padding = 1)` doubles the size)",
                    arg="output_padding",
                    label=f"stride {s}, dilation {d}",
                )

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        c, h, w = feature_map("conv_transpose", ins[0])
        out, groups = int_arg(a, "out"), int_arg(a, "groups")
        _check_groups(c, out, groups)
        size = (h, w)
        kernel, stride = pair_arg(a, "kernel"), pair_arg(a, "stride")
        padding, extra = pair_arg(a, "padding"), pair_arg(a, "output_padding")
        dilation = pair_arg(a, "dilation")
        outs: list[int] = []
        for axis in range(2):
            n, k, s, p, e, d = (size[axis], kernel[axis], stride[axis], padding[axis],
                                extra[axis], dilation[axis])
            name = ("height", "width")[axis]
            length = (n - 1) * s - 2 * p + d * (k - 1) + e + 1
            if length < 1:
                raise ShapeError(
                    "E0307",
                    f"`conv_transpose` leaves no {name}: {n} with kernel {k}, stride {s}, "
                    f"padding {p} gives {length}",
                    f"({n} − 1)·{s} − 2·{p} + {d}·({k} − 1) + {e} + 1 = {length}",
                    "padding takes 2·padding rows off the output: use less padding",
                )
            outs.append(length)
        return (out, outs[0], outs[1])

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        # PyTorch's layout: [in, out / groups, kh, kw], the transpose of a conv's.
        kh, kw = pair_arg(a, "kernel")
        weight = State("weight", (ins[0][0], out[0] // int_arg(a, "groups"), kh, kw))
        return (weight, State("bias", (out[0],))) if a["bias"] else (weight,)

    def macs(self, ins: Sequence[Shape], a: Args, out: Shape) -> int:
        # Each input pixel scatters its kernel: in · (out / groups) · kh · kw per input
        # pixel (fvcore's and torch.utils.flop_counter's rule for transposed convolution),
        # not per output pixel as for `conv`; padding crops the output but still counts.
        kh, kw = pair_arg(a, "kernel")
        c, h, w = ins[0]
        return c * (out[0] // int_arg(a, "groups")) * kh * kw * h * w

    def stride(self, a: Args) -> tuple[Fraction, Fraction] | None:
        sh, sw = pair_arg(a, "stride")
        return (Fraction(1, sh), Fraction(1, sw))


class Linear(Op):
    """`nn.Linear` on a flat input C; with `axis`, on that axis of any tensor, at every
    position of the others (a per-position linear layer: ConvNeXt's MLP on a channels-last
    tensor, `axis = -1`). The weight is 2-D, [out, in], either way."""

    name = "linear"
    args = (ArgSpec("out", ArgType.POS_INT), ArgSpec("bias", ArgType.BOOL, True),
            ArgSpec("axis", ArgType.INT, None))

    @staticmethod
    def axis(shape: Shape, a: Args) -> int:
        """The axis it maps, made non-negative (0 for a flat input)."""
        axis = a["axis"]
        if axis is None:
            return 0
        assert isinstance(axis, int)
        rank = len(shape)
        if not -rank <= axis < rank:
            raise ShapeError(
                "E0321",
                f"`linear` has no axis {axis}: its input {fmt_shape(shape)} has {rank} "
                f"ax{'is' if rank == 1 else 'es'}",
                f"input is {fmt_shape(shape)}",
                "axis −1 maps the last axis at every position (a channels-last tensor's "
                "channels), 0 the channels of a feature map",
            )
        return axis % rank

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        if len(ins[0]) != 1 and a["axis"] is None:
            raise ShapeError(
                "E0308",
                f"`linear` needs a flat input, but its input is {fmt_shape(ins[0])}",
                f"input is {fmt_shape(ins[0])}",
                "add `flatten` (after `global_avgpool`) before `linear`",
            )
        out = a["out"]
        assert isinstance(out, int)
        axis = self.axis(ins[0], a)
        return (*ins[0][:axis], out, *ins[0][axis + 1:])

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        axis = self.axis(ins[0], a)
        weight = State("weight", (out[axis], ins[0][axis]))
        return (weight, State("bias", (out[axis],))) if a["bias"] else (weight,)

    def macs(self, ins: Sequence[Shape], a: Args, out: Shape) -> int:
        # in · out at every position of the other axes.
        return math.prod(ins[0]) * out[self.axis(ins[0], a)]




class Conv1d(Op):
    """`nn.Conv1d` on a tensor C×L: a 1-D convolution along L, with `conv`'s arguments and
    defaults (no bias; padding `dilation · (kernel // 2)`, "same" for odd kernels). ECA's
    convolution across the pooled channels is `conv1d(1, k)` on the channels viewed as
    1×C (`reshape([1, c])`)."""

    name = "conv1d"
    keeps_positions = False
    args = (
        ArgSpec("out", ArgType.POS_INT),
        ArgSpec("kernel", ArgType.POS_INT),
        ArgSpec("stride", ArgType.POS_INT, 1),
        ArgSpec("padding", ArgType.NONNEG_INT, None),
        ArgSpec("dilation", ArgType.POS_INT, 1),
        ArgSpec("groups", ArgType.POS_INT, 1),
        ArgSpec("bias", ArgType.BOOL, False),
    )

    @staticmethod
    def padding(a: Args) -> int:
        if a["padding"] is not None:
            return int_arg(a, "padding")
        return int_arg(a, "dilation") * (int_arg(a, "kernel") // 2)

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        if len(ins[0]) != 2:
            raise ShapeError(
                "E0308",
                f"`conv1d` needs a tensor C×L, but its input is {fmt_shape(ins[0])}",
                f"input is {fmt_shape(ins[0])}",
                "view the values as C×L first: `reshape([1, c])` for the C channels of a "
                "pooled map (ECA), `reshape([c, h * w])` for every position",
            )
        c, length = ins[0]
        out, groups = int_arg(a, "out"), int_arg(a, "groups")
        _check_groups(c, out, groups)
        return (out, window("conv1d", length, int_arg(a, "kernel"), int_arg(a, "stride"),
                            self.padding(a), int_arg(a, "dilation"), False, "length"))

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        weight = State("weight", (out[0], ins[0][0] // int_arg(a, "groups"),
                                  int_arg(a, "kernel")))
        return (weight, State("bias", (out[0],))) if a["bias"] else (weight,)

    def macs(self, ins: Sequence[Shape], a: Args, out: Shape) -> int:
        return math.prod(out) * (ins[0][0] // int_arg(a, "groups")) * int_arg(a, "kernel")
