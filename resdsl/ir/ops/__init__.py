"""The op vocabulary: every op is defined once, with its arguments, its shape rule, its state
(parameters and buffers) and its multiply-accumulate count.

The package holds one module per family (`conv`, `norm`, `pool`, `resample`, `elementwise`,
`tensor`, `join`, `reduce`), each importing only `base` (`Op`, arguments, state, shapes, the
shared helpers); `registry` gathers them into `OPS`. Backends look ops up there by name; an op
added to a family, to the registry and to each backend's lowering table is available to the
language at once.
This module re-exports what the rest of resdsl imports.
"""

from __future__ import annotations

from resdsl.ir.ops.base import (
    MAX_DIM,
    REQUIRED,
    ArgError,
    Args,
    ArgSpec,
    ArgType,
    Op,
    Shape,
    ShapeError,
    State,
    Tensor,
    Value,
    a_type,
    coerce,
    float_arg,
    fmt_shape,
    fmt_value,
    int_arg,
    pair_arg,
    type_name,
)
from resdsl.ir.ops.conv import Conv, Conv1d, Linear
from resdsl.ir.ops.norm import GroupNorm, LayerNorm
from resdsl.ir.ops.reduce import resolve_axes
from resdsl.ir.ops.registry import OPS, PER_CHANNEL, USER_OPS
from resdsl.ir.ops.tensor import Pad, Slice

__all__ = [
    "MAX_DIM",
    "OPS",
    "PER_CHANNEL",
    "REQUIRED",
    "USER_OPS",
    "ArgError",
    "ArgSpec",
    "ArgType",
    "Args",
    "Conv",
    "Conv1d",
    "GroupNorm",
    "LayerNorm",
    "Linear",
    "Op",
    "Pad",
    "Shape",
    "ShapeError",
    "Slice",
    "State",
    "Tensor",
    "Value",
    "a_type",
    "coerce",
    "float_arg",
    "fmt_shape",
    "fmt_value",
    "int_arg",
    "pair_arg",
    "resolve_axes",
    "type_name",
]
