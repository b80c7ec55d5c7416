"""Reductions along axes (`mean`, `sum`, `amax`) and `softmax` along one axis: the ops that
combine values across an axis of any per-sample shape.

Axes are per sample, as every shape in resdsl: 0 is the channels, 1 and 2 the height and
width of a feature map, and a negative axis counts from the end (−1 is the last). The batch
axis is never named. MACs are 0, as for pools: torchvision's convention counts convolutions
and linear layers only.
"""

from __future__ import annotations

from collections.abc import Sequence

from resdsl.ir.ops.base import (
    ArgError,
    Args,
    ArgSpec,
    ArgType,
    Op,
    Shape,
    ShapeError,
    Value,
    a_type,
    fmt_shape,
    fmt_value,
)

_AXES_HELP = ("axes count per sample: 0 is the channels, 1 and 2 the height and width of a "
              "C×H×W map, −1 the last")


def axes_value(op: str, arg: str, value: Value) -> tuple[int, ...]:
    """`axes` as given: one integer or a non-empty list of them (E0401 otherwise)."""
    items = value if isinstance(value, tuple) else (value,)
    if not items or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ArgError("E0401",
                       f"`{op}`'s {arg} must be an integer or a list of integers, not "
                       f"{a_type(value)} ({fmt_value(value)})",
                       _AXES_HELP, arg=arg, label=f"this is {a_type(value)}")
    return tuple(v for v in items if isinstance(v, int))


def resolve_axes(op: str, shape: Shape, axes: Sequence[int]) -> tuple[int, ...]:
    """Axes made non-negative and checked against `shape`'s rank (E0321): each in range,
    none twice. Sorted."""
    rank = len(shape)
    out: list[int] = []
    for axis in axes:
        if not -rank <= axis < rank:
            raise ShapeError(
                "E0321",
                f"`{op}` has no axis {axis}: its input {fmt_shape(shape)} has {rank} "
                f"ax{'is' if rank == 1 else 'es'}",
                f"input is {fmt_shape(shape)}",
                f"{_AXES_HELP}; here 0 to {rank - 1}, or −{rank} to −1",
            )
        a = axis % rank
        if a in out:
            raise ShapeError("E0321", f"`{op}` names axis {a} twice", f"axes {list(axes)}",
                             "name each axis once")
        out.append(a)
    return tuple(sorted(out))


class _Reduce(Op):
    """The reduction of `axes`, keeping them as size 1 (`keepdim`, PyTorch's argument) or
    dropping them."""

    args = (ArgSpec("axes", ArgType.ANY), ArgSpec("keepdim", ArgType.BOOL, True))

    def check(self, a: Args) -> None:
        axes_value(self.name, "axes", a["axes"])

    def axes(self, shape: Shape, a: Args) -> tuple[int, ...]:
        return resolve_axes(self.name, shape, axes_value(self.name, "axes", a["axes"]))

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        shape = ins[0]
        axes = self.axes(shape, a)
        if a["keepdim"]:
            return tuple(1 if i in axes else d for i, d in enumerate(shape))
        out = tuple(d for i, d in enumerate(shape) if i not in axes)
        if not out:
            raise ShapeError(
                "E0321",
                f"`{self.name}` with keepdim = false reduces every axis of {fmt_shape(shape)}",
                "nothing left",
                "a tensor keeps at least one axis per sample: keep the axes "
                "(`keepdim = true`, the default), or `flatten` after",
            )
        return out

    def ends_feature_maps(self, ins: Sequence[Shape], a: Args) -> bool:
        # Over the height and width of a C×H×W map it is a global pool (`mean([1, 2])`:
        # timm's SelectAdaptivePool, CBAM's channel attention): no stride after it.
        return len(ins[0]) == 3 and {1, 2} <= set(self.axes(ins[0], a))


class Mean(_Reduce):
    """The mean over `axes`: `x.mean(axes, keepdim)` (CBAM's channel pooling, `mean(0)`)."""

    name = "mean"


class Sum(_Reduce):
    """The sum over `axes` (selective kernel's and split attention's sum of the paths)."""

    name = "sum"


class Amax(_Reduce):
    """The maximum over `axes`: `x.amax(axes, keepdim)`, PyTorch's name for the max that
    returns values only."""

    name = "amax"


class Softmax(Op):
    """`torch.softmax(x, axis)`: along one axis of any shape (selective kernel's over its
    paths, attention's over positions)."""

    name = "softmax"
    args = (ArgSpec("axis", ArgType.INT),)

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        axis = a["axis"]
        assert isinstance(axis, int)
        resolve_axes("softmax", ins[0], (axis,))
        return ins[0]
