"""The base of the op vocabulary: `Op`, its arguments (`ArgSpec`, `ArgType`, `coerce`), its
state (`State`), the per-sample shapes and values ops work on, and the helpers every family
shares (the feature-map check, the sliding-window length, formatting for messages).

Shapes are per sample: `(C, H, W)` for feature maps and `(C,)` after `flatten`. MACs count
convolutions and linear layers only, the convention behind torchvision's published GFLOPS;
every other op reports 0.

The ops themselves live in one module per family beside this one (conv, norm, pool, resample,
elementwise, tensor, join), each importing only this module; `registry.py` gathers them.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Tensor:
    """A tensor of the graph being built: the node that makes it, and its per-sample shape.
    It is a value too: `t = in` names one, `t.c` reads its channels."""

    node: int
    shape: Shape


Value = int | float | bool | str | tuple["Value", ...] | Tensor | None
Args = Mapping[str, Value]

# Every dimension stays below this, so that counts stay exact and backends can use int32 shapes.
MAX_DIM = 2**31 - 1


class ArgType(enum.Enum):
    INT = "integer"
    POS_INT = "positive integer"
    NONNEG_INT = "non-negative integer"
    PAIR = "positive integer or [h, w]"
    NONNEG_PAIR = "non-negative integer or [h, w]"
    FLOAT = "number"
    BOOL = "bool"
    STR = "string"
    ANY = "value"
    # A named tensor (`upsample(to = t)`). It is not kept among the node's arguments: the
    # elaborator makes it an input edge of the node (`Op.take_tensors`), so the graph, the
    # passes and every backend see it as an input, and the argument holds its input's index.
    TENSOR = "tensor"


REQUIRED = object()


@dataclass(frozen=True)
class ArgSpec:
    name: str
    type: ArgType
    default: object = REQUIRED
    choices: tuple[str, ...] = ()
    # What to write instead, for a value of the wrong type or out of range (the generic help
    # of `coerce` is about integers in general).
    help: str | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


class ArgError(Exception):
    """A value does not fit an argument; `code` is E0401 (type), E0403 (integer) or E0408.
    From `Op.check`, also arguments that do not go together (E0315) or a missing choice
    (E0402): `arg` names the argument to point at (None: the call), `label` says what is
    wrong there."""

    def __init__(self, code: str, message: str, help: str | None = None,
                 arg: str | None = None, label: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.help = help
        self.arg = arg
        self.label = label


def type_name(value: Value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, tuple):
        return "list"
    if isinstance(value, Tensor):
        return "tensor"
    return "nothing"


def a_type(value: Value) -> str:
    """`type_name` with its article, for messages: "an integer", "a list"."""
    name = type_name(value)
    return name if name == "nothing" else ("an " if name[0] in "aeiou" else "a ") + name


def fmt_value(value: Value, full: bool = False) -> str:
    """A value as a spec writes it: `true`, `"text"`, `[3, 224, 224]`, `2.5`. Lists of more
    than 12 items are shortened, for messages, unless `full` (for metadata that must be exact)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        if len(value) > 12 and not full:  # messages show a list's ends, not 10,000 items
            head = ", ".join(fmt_value(v) for v in value[:8])
            return f"[{head}, ..., {fmt_value(value[-1])}] ({len(value):,} items)"
        return "[" + ", ".join(fmt_value(v, full) for v in value) + "]"
    if isinstance(value, Tensor):
        return f"a tensor {fmt_shape(value.shape)}"
    return "nothing" if value is None else repr(value)


def _as_int(value: Value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgError(
            "E0401", f"{what} must be an integer, not {a_type(value)} ({fmt_value(value)})"
        )
    if isinstance(value, float):
        if not value.is_integer():
            raise ArgError(
                "E0403",
                f"{what} is {value:g}, which is not an integer",
                "use `//` for floor division, or `int(...)`",
            )
        value = int(value)
    if abs(value) > MAX_DIM:
        raise ArgError("E0404", f"{what} is {value:,}, above the limit of {MAX_DIM:,}")
    return value


def coerce(spec: ArgSpec, value: Value, what: str) -> Value:
    """Check `value` against `spec` and return it normalised (integral floats become ints)."""
    t = spec.type
    if (value is None and spec.default is None) or t is ArgType.ANY:
        return value
    if t in (ArgType.INT, ArgType.POS_INT, ArgType.NONNEG_INT):
        n = _as_int(value, what)
        if t is ArgType.POS_INT and n < 1:
            raise ArgError("E0408", f"{what} must be at least 1, not {n}")
        if t is ArgType.NONNEG_INT and n < 0:
            raise ArgError("E0408", f"{what} must not be negative, not {n}")
        return n
    if t in (ArgType.PAIR, ArgType.NONNEG_PAIR):
        items = value if isinstance(value, tuple) else (value, value)
        if len(items) != 2:
            raise ArgError("E0401", f"{what} must be one integer or a pair [h, w]")
        low = 0 if t is ArgType.NONNEG_PAIR else 1
        pair = tuple(_as_int(v, what) for v in items)
        if min(pair) < low:
            raise ArgError("E0408", f"{what} must be at least {low}, not {min(pair)}")
        return pair
    if t is ArgType.FLOAT:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ArgError("E0401", f"{what} must be a number, not {a_type(value)}")
        return float(value)
    if t is ArgType.TENSOR:
        if isinstance(value, Tensor):
            return value
        if isinstance(value, tuple) and value and all(isinstance(v, Tensor) for v in value):
            raise ArgError("E0401", f"{what} must be one tensor, not a list of {len(value)}",
                           "a tensor named inside a repeat is the list of every iteration's: "
                           "pick one (`t[-1]`)")
        raise ArgError(
            "E0401",
            f"{what} must be a tensor, not {a_type(value)} ({fmt_value(value)})",
            "name a tensor with `t = in` where it flows (`img = in` right after `input` "
            "names the network's input) and pass its name",
        )
    if t is ArgType.BOOL:
        if not isinstance(value, bool):
            raise ArgError(
                "E0401",
                f"{what} must be `true` or `false`, not {a_type(value)} ({fmt_value(value)})",
            )
        return value
    if not isinstance(value, str):
        raise ArgError("E0401", f"{what} must be a string, not {a_type(value)}")
    if spec.choices and value not in spec.choices:
        options = ", ".join(f'"{c}"' for c in spec.choices)
        raise ArgError("E0408", f'{what} is "{value}"; it must be one of {options}')
    return value


class ShapeError(Exception):
    """An op cannot take its input; the elaborator points it at the statement."""

    def __init__(self, code: str, message: str, label: str = "", help: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.label = label
        self.help = help


@dataclass(frozen=True)
class State:
    """One tensor an op owns: a learnable parameter or a buffer (BN running statistics).

    `name` is the suffix of its state_dict key; an empty name puts the tensor at the node's
    own path (`layer1.0.alpha`), as a bare `nn.Parameter` on the parent module.
    """

    name: str
    shape: Shape
    learnable: bool = True

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def fmt_shape(shape: Shape) -> str:
    return "×".join(str(d) for d in shape)


def int_arg(a: Args, name: str) -> int:
    """A bound argument known (by its ArgSpec) to be an integer."""
    value = a[name]
    assert isinstance(value, int)
    return value


def float_arg(a: Args, name: str) -> float:
    value = a[name]
    assert isinstance(value, float)
    return value


def pair_arg(a: Args, name: str) -> tuple[int, int]:
    """A bound PAIR argument: always normalised to (h, w) by `coerce`."""
    value = a[name]
    assert isinstance(value, tuple) and len(value) == 2
    h, w = value
    assert isinstance(h, int) and isinstance(w, int)
    return h, w


def broadcasts(shape: Shape, over: Shape) -> bool:
    """Whether `shape` broadcasts over `over`: the same rank, and each size `over`'s or 1.
    The joins that broadcast (`add`, `sub`, `mul`) keep their first tensor's shape and
    broadcast the others over it, so the result's shape is always one operand's."""
    return len(shape) == len(over) and all(s in (1, o) for s, o in zip(shape, over, strict=True))


def feature_map(op: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(
            "E0308",
            f"`{op}` needs a feature map C×H×W, but its input is {fmt_shape(shape)}",
            f"input is {fmt_shape(shape)}",
            "feature-map ops come before `flatten`",
        )
    c, h, w = shape
    return c, h, w


def window(
    op: str, size: int, kernel: int, stride: int, pad: int, dilation: int, ceil: bool, axis: str
) -> int:
    """Output length of a sliding window, with PyTorch's rounding."""
    span = dilation * (kernel - 1) + 1
    num = size + 2 * pad - span
    out = (-(-num // stride) if ceil else num // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    if num < 0 or out < 1:
        raise ShapeError(
            "E0307",
            f"`{op}` shrinks the {axis} to zero: {size} with kernel {kernel}, "
            f"stride {stride}, padding {pad}",
            f"{axis} {size} is smaller than the window ({span})",
            "use a larger input (the spec's `input`, or the input shape it is loaded with), "
            "or fewer downsampling steps",
        )
    return out


class Op:
    """An op kind. Subclasses set `name` and `args` and override the rules that apply."""

    name: ClassVar[str]
    args: ClassVar[tuple[ArgSpec, ...]] = ()
    # `False` for the ops that only primitives create (add, concat, ...): a spec cannot call them.
    user: ClassVar[bool] = True
    # How many inputs, besides one per tensor argument given (`input_count`); None for any
    # number.
    arity: ClassVar[int | None] = 1

    # Tensor arguments read only for their size (`upsample(to = t)`): no value flows from
    # them, so they carry no input-to-output path (`resdsl paths`).
    size_only: ClassVar[frozenset[str]] = frozenset()

    # Whether the output's positions are the input's (a C×H×W map stays one, each pixel where
    # it was, up to the op's own `stride`): False for the ops that move values between
    # positions and channels or flatten them (reshape, permute, matmul: attention's view of a
    # map as a sequence), whose output is no feature map even when it is 3-D.
    keeps_positions: ClassVar[bool] = True

    def check(self, a: Args) -> None:
        """Arguments that are each valid but do not go together: raise `ArgError` (with the
        argument to point at). The elaborator calls it once the arguments are bound."""

    def take_tensors(self, a: Mapping[str, Value]) -> tuple[dict[str, Value], tuple[Tensor, ...]]:
        """The bound arguments with each tensor argument replaced by the index of the input
        edge it becomes (after the op's own `arity` inputs, in argument order), and those
        tensors. A node's arguments so stay plain values, and its inputs are all edges."""
        out = dict(a)
        tensors: list[Tensor] = []
        for spec in self.args:
            value = a.get(spec.name)
            if spec.type is ArgType.TENSOR and isinstance(value, Tensor):
                out[spec.name] = (self.arity or 1) + len(tensors)
                tensors.append(value)
        return out, tuple(tensors)

    def input_count(self, a: Args) -> int | None:
        """How many inputs a node of this op has: `arity` and one per tensor argument given
        (None: any number)."""
        if self.arity is None:
            return None
        given = sum(1 for s in self.args if s.type is ArgType.TENSOR and a.get(s.name) is not None)
        return self.arity + given

    def size_inputs(self, a: Args) -> frozenset[int]:
        """The input indices whose size alone the op reads (see `size_only`)."""
        return frozenset(i for name in self.size_only
                         if isinstance(i := a.get(name), int) and not isinstance(i, bool))

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        return ins[0]

    def stride(self, a: Args) -> tuple[Fraction, Fraction] | None:
        """How the op scales a feature map's stride from the input (height, width): 2 for a
        stride-2 conv, ½ for a ×2 upsampling. None: it keeps the stride (padding or cropping
        a map moves its border, not its pitch).
        Backbone features (`ir/features.py`) read it: timm's `feature_info` reductions."""
        return None

    def ends_feature_maps(self, ins: Sequence[Shape], a: Args) -> bool:
        """Whether the op is a global pool, the end of the feature maps (what follows is the
        head, with no stride): `global_avgpool`, or a pool whose one window covers its whole
        input (`avgpool(8)` on 8×8)."""
        return False

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        return ()

    def macs(self, ins: Sequence[Shape], a: Args, out: Shape) -> int:
        return 0

    def params(self, ins: Sequence[Shape], a: Args, out: Shape) -> int:
        return sum(s.size for s in self.state(ins, a, out) if s.learnable)
