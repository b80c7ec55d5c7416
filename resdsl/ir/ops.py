"""The op vocabulary: every op is defined here once, with its arguments, its shape rule, its
state (parameters and buffers) and its multiply-accumulate count.

Shapes are per sample: `(C, H, W)` for feature maps and `(C,)` after `flatten`. MACs count
convolutions and linear layers only, the convention behind torchvision's published GFLOPS;
every other op reports 0.

Backends look ops up here by name; an op added here and to a backend's lowering table is
available to the language at once.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


REQUIRED = object()


@dataclass(frozen=True)
class ArgSpec:
    name: str
    type: ArgType
    default: object = REQUIRED
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


class ArgError(Exception):
    """A value does not fit an argument; `code` is E0401 (type), E0403 (integer) or E0408."""

    def __init__(self, code: str, message: str, help: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.help = help


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


def _feature_map(op: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(
            "E0308",
            f"`{op}` needs a feature map C×H×W, but its input is {fmt_shape(shape)}",
            f"input is {fmt_shape(shape)}",
            "feature-map ops come before `flatten`",
        )
    c, h, w = shape
    return c, h, w


def _window(
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
            "use a larger input (`--input`), or fewer downsampling steps",
        )
    return out


class Op:
    """An op kind. Subclasses set `name` and `args` and override the rules that apply."""

    name: ClassVar[str]
    args: ClassVar[tuple[ArgSpec, ...]] = ()
    # `False` for the ops that only primitives create (add, concat, ...): a spec cannot call them.
    user: ClassVar[bool] = True
    # How many inputs; None for any number.
    arity: ClassVar[int | None] = 1

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        return ins[0]

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        return ()

    def macs(self, ins: Sequence[Shape], a: Args, out: Shape) -> int:
        return 0

    def params(self, ins: Sequence[Shape], a: Args, out: Shape) -> int:
        return sum(s.size for s in self.state(ins, a, out) if s.learnable)


# ------------------------------------------------------------------------- layers


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
        c, h, w = _feature_map("conv", ins[0])
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
            _window("conv", h, kh, sh, ph, dh, False, "height"),
            _window("conv", w, kw, sw, pw, dw, False, "width"),
        )

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        kh, kw = pair_arg(a, "kernel")
        weight = State("weight", (out[0], ins[0][0] // int_arg(a, "groups"), kh, kw))
        return (weight, State("bias", (out[0],))) if a["bias"] else (weight,)

    def macs(self, ins: Sequence[Shape], a: Args, out: Shape) -> int:
        kh, kw = pair_arg(a, "kernel")
        return math.prod(out) * (ins[0][0] // int_arg(a, "groups")) * kh * kw


class BatchNorm(Op):
    name = "bn"
    args = (ArgSpec("eps", ArgType.FLOAT, 1e-5), ArgSpec("momentum", ArgType.FLOAT, 0.1))

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        eps = a["eps"]
        assert isinstance(eps, float)
        if eps <= 0:
            raise ShapeError("E0408", f"bn's eps must be positive, not {eps:g}")
        return ins[0]

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        c = (ins[0][0],)
        return (
            State("weight", c),
            State("bias", c),
            State("running_mean", c, False),
            State("running_var", c, False),
            State("num_batches_tracked", (), False),
        )


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


class _Pool(Op):
    args: ClassVar[tuple[ArgSpec, ...]] = (
        ArgSpec("kernel", ArgType.PAIR),
        ArgSpec("stride", ArgType.PAIR, None),
        ArgSpec("padding", ArgType.NONNEG_PAIR, 0),
        ArgSpec("ceil_mode", ArgType.BOOL, False),
    )

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        c, h, w = _feature_map(self.name, ins[0])
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
            _window(self.name, h, kh, sh, ph, 1, ceil, "height"),
            _window(self.name, w, kw, sw, pw, 1, ceil, "width"),
        )


class MaxPool(_Pool):
    name = "maxpool"


class AvgPool(_Pool):
    """`count_include_pad`: whether the zeros of `padding` count in each window's divisor
    (PyTorch's AvgPool2d argument; the extra end of a ceil-mode window never counts)."""

    name = "avgpool"
    args = (*_Pool.args, ArgSpec("count_include_pad", ArgType.BOOL, True))


class GlobalAvgPool(Op):
    name = "global_avgpool"

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        c, _, _ = _feature_map("global_avgpool", ins[0])
        return (c, 1, 1)


class Flatten(Op):
    name = "flatten"

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        return (math.prod(ins[0]),)


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
        c, h, w = _feature_map("zeropad", ins[0])
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


# ------------------------------------------------------------- primitive merges


class Input(Op):
    name = "input"
    user = False
    arity = 0
    args = (ArgSpec("shape", ArgType.STR),)  # never bound from a spec; the shape is the output


class Add(Op):
    """`skip` and `weight`: the sum of same-shaped inputs."""

    name = "add"
    user = False
    arity = None

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        if any(s != ins[0] for s in ins):
            raise ShapeError("E0301", "add of different shapes")
        return ins[0]


class Mul(Op):
    """`scale`: `x · F(x)`, the factor broadcast over H and W."""

    name = "mul"
    user = False
    arity = 2

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        x, f = ins
        if len(x) != len(f) or any(fd not in (1, xd) for xd, fd in zip(x, f, strict=True)):
            raise ShapeError(
                "E0309",
                f"scale's factor {fmt_shape(f)} does not broadcast over its input "
                f"{fmt_shape(x)}",
                f"factor is {fmt_shape(f)}, input is {fmt_shape(x)}",
                f"the body must end with {x[0]} channels and 1×1 or the input's spatial size",
            )
        return x


class Concat(Op):
    """`concat`: channel concatenation."""

    name = "concat"
    user = False
    arity = None

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        if any(len(s) != 3 or s[1:] != ins[0][1:] for s in ins):
            raise ShapeError("E0303", "concat of different spatial sizes")
        return (sum(s[0] for s in ins), *ins[0][1:])


class Rescale(Op):
    """`skip(scale = f)`: a constant factor on the residual branch, y = f·x; no state."""

    name = "rescale"
    user = False
    args = (ArgSpec("factor", ArgType.FLOAT),)


class Alpha(Op):
    """`weight`: a learnable scale α·F(x), one scalar or one per channel."""

    name = "alpha"
    user = False
    args = (ArgSpec("init", ArgType.FLOAT, 0.0), ArgSpec("per_channel", ArgType.BOOL, False))

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        if a["per_channel"]:
            return (State("", (out[0],) + (1,) * (len(out) - 1)),)
        return (State("", (1,)),)


class WeightedSum(Op):
    """`weight` over several branches: Σ softmax(w)_i · B_i(x), w initialised to 0."""

    name = "weighted_sum"
    user = False
    arity = None

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        if any(s != ins[0] for s in ins):
            raise ShapeError("E0313", "weighted sum of different shapes")
        return ins[0]

    def state(self, ins: Sequence[Shape], a: Args, out: Shape) -> tuple[State, ...]:
        return (State("", (len(ins),)),)


class Highway(Op):
    """`gate`: y = T·H + (1 − T)·x, with inputs (T, H, x) and T already squashed by σ."""

    name = "highway"
    user = False
    arity = 3

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        if any(s != ins[2] for s in ins):
            raise ShapeError("E0305", "highway of different shapes")
        return ins[2]


class Dual(Op):
    """`dual`: inputs (S(x), F(x)) → [S[:R] + F[:R], S[R:], F[R:]] on channels."""

    name = "dual"
    user = False
    arity = 2
    args = (ArgSpec("r", ArgType.POS_INT),)

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        s, f = ins
        r = a["r"]
        assert isinstance(r, int)
        if len(s) != 3 or len(f) != 3 or s[1:] != f[1:] or r > min(s[0], f[0]):
            raise ShapeError("E0306", "dual merge of incompatible shapes")
        return (s[0] + f[0] - r, *s[1:])


class GroupSum(Op):
    """`group` with a sum merge whose body does not end in a conv: sums the g channel
    groups of a g·C-channel tensor into C channels."""

    name = "group_sum"
    user = False
    args = (ArgSpec("groups", ArgType.POS_INT),)

    def infer(self, ins: Sequence[Shape], a: Args) -> Shape:
        g = a["groups"]
        assert isinstance(g, int)
        return (ins[0][0] // g, *ins[0][1:])


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
    )
}

USER_OPS: dict[str, Op] = {name: op for name, op in OPS.items() if op.user}

# Ops that act on each channel independently; a `group` body may contain them freely.
# Not drop_path: its one mask per sample spans every channel, so in the folded body the g
# branches would be dropped together, where g separate branches draw g masks.
PER_CHANNEL = frozenset({
    "bn", "relu", "relu6", "hardswish", "leaky_relu", "sigmoid", "silu", "gelu", "tanh",
    "identity", "dropout", "rescale", "maxpool", "avgpool",
})
