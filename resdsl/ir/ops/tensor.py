"""Ops that reshape or re-index a tensor without computing on its values: the network's
input, flatten, a channel slice and the zero-pad shortcut."""

from __future__ import annotations

import math
from collections.abc import Sequence

from resdsl.ir.ops.base import Args, ArgSpec, ArgType, Op, Shape, ShapeError, feature_map


class Input(Op):
    name = "input"
    user = False
    arity = 0
    args = (ArgSpec("shape", ArgType.STR),)  # never bound from a spec; the shape is the output


class Flatten(Op):
    name = "flatten"

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        return (math.prod(ins[0]),)


class Slice(Op):
    """Channels `start` up to (not including) `end`: `x[start:end]` on the channel axis."""

    name = "slice"
    args = (ArgSpec("start", ArgType.NONNEG_INT), ArgSpec("end", ArgType.NONNEG_INT, None))

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        c = ins[0][0]
        start, end = a["start"], a["end"]
        assert isinstance(start, int)
        stop = c if end is None else end
        assert isinstance(stop, int)
        if not start < stop <= c:
            raise ShapeError(
                "E0310",
                f"channel slice [{start}:{stop}] is out of range for {c} channels",
                f"input has {c} channels",
                f"the slice needs 0 <= start < end <= {c}",
            )
        return (stop - start, *ins[0][1:])


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


