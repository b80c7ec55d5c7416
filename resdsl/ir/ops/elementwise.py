"""Elementwise ops: activations, identity, dropout and drop_path. Each keeps its input's shape
and owns no state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from resdsl.ir.ops.base import Args, ArgSpec, ArgType, Op, Shape, ShapeError


class _Elementwise(Op):
    """Ops that keep their input's shape and own no state."""


class Relu(_Elementwise):
    name = "relu"


class Relu6(_Elementwise):
    """min(max(x, 0), 6): torch.nn.ReLU6."""

    name = "relu6"


class Hardswish(_Elementwise):
    """x · relu6(x + 3) / 6: torch.nn.Hardswish (MobileNetV3's h-swish)."""

    name = "hardswish"


class LeakyRelu(_Elementwise):
    """max(x, 0) + negative_slope · min(x, 0): torch.nn.LeakyReLU."""

    name = "leaky_relu"
    args = (ArgSpec("negative_slope", ArgType.FLOAT, 0.01),)


class Sigmoid(_Elementwise):
    name = "sigmoid"


class Silu(_Elementwise):
    name = "silu"


class Gelu(_Elementwise):
    name = "gelu"


class Tanh(_Elementwise):
    name = "tanh"


class Neg(_Elementwise):
    """−x: torch.neg."""

    name = "neg"


class MulConst(_Elementwise):
    """k · x for a constant k (BoTNet's 1/√d on the attention logits): no parameter."""

    name = "mul_const"
    args = (ArgSpec("k", ArgType.FLOAT),)


class Rsqrt(_Elementwise):
    """1 / √(x + eps): torch.rsqrt(x + eps). With `mean` and `mul` it writes the norms that
    divide by a root mean square or a standard deviation of their own axes and keep no
    statistics: EvoNorm's group std, Filter Response Normalization's mean square."""

    name = "rsqrt"
    args = (ArgSpec("eps", ArgType.FLOAT, 0.0),)

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        eps = a["eps"]
        assert isinstance(eps, float)
        if eps < 0:
            raise ShapeError(
                "E0408",
                f"rsqrt's eps must not be negative, not {eps:g}",
                f"eps = {eps:g}",
                "eps is added before the root to keep it away from zero (a variance or a "
                "mean square is never negative): e.g. `rsqrt(eps = 1e-5)`",
            )
        return ins[0]


class Identity(_Elementwise):
    name = "identity"


class _Drop(_Elementwise):
    """Ops that drop with a probability `p` in training: the same range check for both."""

    args = (ArgSpec("p", ArgType.FLOAT, 0.5),)
    # What p is the probability of, and an example call, for the message.
    drops: ClassVar[str] = ""
    example: ClassVar[str] = ""

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        p = a["p"]
        assert isinstance(p, float)
        if not 0.0 <= p <= 1.0:
            raise ShapeError(
                "E0408",
                f"{self.name}'s p must be between 0 and 1, not {p:g}",
                f"p = {p:g}",
                f"p is the probability of {self.drops}, e.g. `{self.example}`",
            )
        return ins[0]


class Dropout(_Drop):
    name = "dropout"
    drops, example = "zeroing a value", "dropout(0.5)"


class DropPath(_Drop):
    """Stochastic depth per sample, as timm's `DropPath` (scale_by_keep=True): in training,
    each sample of the batch is zeroed with probability p and the others are scaled by
    1 / (1 − p); the identity in eval mode and when p = 0. p = 1 zeroes every sample in
    training, as timm does."""

    name = "drop_path"
    args = (ArgSpec("p", ArgType.FLOAT, 0.0),)
    drops, example = "dropping a sample's path", "drop_path(0.1)"


