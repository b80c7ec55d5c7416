"""The registry: every op by name, in one table that backends, the static checks and the
elaborator look ops up in. An op added to a family module is listed here once."""

from __future__ import annotations

from resdsl.ir.ops.base import Op
from resdsl.ir.ops.conv import Conv, Conv1d, ConvTranspose, Linear, StdConv
from resdsl.ir.ops.elementwise import (
    Dropout,
    DropPath,
    Gelu,
    Hardswish,
    Identity,
    LeakyRelu,
    MulConst,
    Neg,
    Relu,
    Relu6,
    Rsqrt,
    Sigmoid,
    Silu,
    Tanh,
)
from resdsl.ir.ops.join import (
    Add,
    Alpha,
    Concat,
    Dual,
    GroupSum,
    Highway,
    MatMul,
    Mul,
    Rescale,
    Sub,
    WeightedSum,
)
from resdsl.ir.ops.norm import BatchNorm, FrozenBatchNorm, GroupNorm, LayerNorm
from resdsl.ir.ops.pool import AvgPool, GlobalAvgPool, MaxPool
from resdsl.ir.ops.reduce import Amax, Mean, Softmax, Sum
from resdsl.ir.ops.resample import Upsample
from resdsl.ir.ops.tensor import (
    Flatten,
    Input,
    Pad,
    Param,
    Permute,
    Reshape,
    Slice,
    ZeroPad,
)

OPS: dict[str, Op] = {
    op.name: op
    for op in (
        Conv(),
        BatchNorm(),
        Linear(),
        MaxPool(),
        AvgPool(),
        GlobalAvgPool(),
        Flatten(),
        Relu(),
        Relu6(),
        Hardswish(),
        LeakyRelu(),
        Sigmoid(),
        Silu(),
        Gelu(),
        Tanh(),
        Identity(),
        Dropout(),
        DropPath(),
        Slice(),
        ZeroPad(),
        Input(),
        Add(),
        Mul(),
        Concat(),
        Rescale(),
        Alpha(),
        WeightedSum(),
        Highway(),
        Dual(),
        GroupSum(),
        # Dense prediction (issue 16).
        ConvTranspose(),
        FrozenBatchNorm(),
        Upsample(),
        # General tensor ops (issue 17): attention written in the language.
        Neg(),
        MulConst(),
        Sub(),
        Softmax(),
        Mean(),
        Sum(),
        Amax(),
        Reshape(),
        Permute(),
        LayerNorm(),
        GroupNorm(),
        Param(),
        Conv1d(),
        MatMul(),
        Pad(),
        # Norms without statistics (issue 18): EvoNorm, Filter Response Normalization.
        Rsqrt(),
        # BiT's weight-standardised convs (issue 18).
        StdConv(),
    )
}

USER_OPS: dict[str, Op] = {name: op for name, op in OPS.items() if op.user}

# Ops that act on each channel independently; a `group` body may contain them freely.
# Not drop_path: its one mask per sample spans every channel, so in the folded body the g
# branches would be dropped together, where g separate branches draw g masks.
PER_CHANNEL = frozenset({
    "bn", "relu", "relu6", "hardswish", "leaky_relu", "sigmoid", "silu", "gelu", "tanh",
    "identity", "dropout", "rescale", "maxpool", "avgpool", "frozen_bn", "neg", "mul_const",
    "rsqrt",
})
