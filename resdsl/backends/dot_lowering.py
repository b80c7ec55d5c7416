"""The diagram's look table: for every op of `ir/ops/`, how `resdsl draw` shows it.

Each op has one `Look`: whether it is a layer (a box, or a line in a summary box), a merge
(a small round node with a symbol: the `+` of a residual add, the `×` of a scale), an edge
decoration (a weighted residual's α is written on its edge), or the input; the short text
that describes it ("3×3 conv, 64, s2"); its colour; and, for merges, what each input edge
means (`EdgeKind`), which decides that edge's style. The primitives' looks follow from their
merges: `skip` and `weight` are a `+` with a dashed shortcut, `gate` a σ node with T and 1−T,
`concat` a bus, `dual` a node with a residual and a dense half, `scale` a `×` fed by a dotted
attention path. `EDGE_STYLES` gives each edge kind its style.

`tests/test_draw.py` fails when an op in `OPS` has no entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from resdsl.ir.graph import Node
from resdsl.ir.ops import Conv, Shape, float_arg, int_arg, pair_arg

Role = Literal["layer", "merge", "edge", "input"]
EdgeKind = Literal[
    "main", "shortcut", "zeropad", "bus", "dense", "residual", "transform", "gate", "carry",
    "attention", "weighted", "branch", "dense_shortcut", "size",
]


@dataclass(frozen=True)
class EdgeStyle:
    color: str
    style: str = "solid"
    penwidth: float = 1.0
    # A fixed text on every edge of this kind ("T", "1−T"), before the tensor's shape.
    label: str = ""
    arrowhead: str = "normal"


# Colours are #RRGGBB: Graphviz 2.43 rejects the three-digit form.
EDGE_STYLES: dict[str, EdgeStyle] = {
    "main": EdgeStyle("#444444"),
    "shortcut": EdgeStyle("#1f6fd1", "dashed", 1.4),
    "zeropad": EdgeStyle("#d35400", "dotted", 1.8),
    "bus": EdgeStyle("#17a2b8", penwidth=5.0, arrowhead="none"),
    "dense": EdgeStyle("#2e9e5b", penwidth=1.4),
    "dense_shortcut": EdgeStyle("#2e9e5b", "dashed", 1.4),
    "residual": EdgeStyle("#1f6fd1", penwidth=1.4),
    "transform": EdgeStyle("#8e44ad", "dotted", 1.4),
    "gate": EdgeStyle("#8e44ad", penwidth=1.4, label="T"),
    "carry": EdgeStyle("#8e44ad", "dashed", 1.4, label="1−T"),
    "attention": EdgeStyle("#c0392b", "dotted", 1.6),
    "weighted": EdgeStyle("#1f6fd1", penwidth=1.4),
    "branch": EdgeStyle("#444444", label="softmax(w)ᵢ"),
    # A tensor read only for its size (`upsample(to = t)`).
    "size": EdgeStyle("#888888", "dotted", label="size"),
}


@dataclass(frozen=True)
class Look:
    role: Role
    # The op in a few words, as a paper's table writes it.
    text: Callable[[Node, Sequence[Shape]], str]
    # Fill colour of its box.
    fill: str = "#ffffff"
    # In a summary box, a heavy op (conv, pool, linear) starts a line and light ops (bn,
    # activations) join the line of the op before: "3×3 conv, 64 · BN · ReLU".
    heavy: bool = True
    # Merges: the symbol in the circle.
    symbol: str = ""
    # Merges: what the edge into input `index` means, given the primitive that made the node.
    # Layers with a tensor argument: what the edge into input `index` ≥ 1 means.
    inputs: Callable[[int, str], EdgeKind] = lambda index, primitive: "main"


def _size(value: tuple[int, int]) -> str:
    return f"{value[0]}×{value[1]}"


def _stride(value: tuple[int, int]) -> str:
    if value == (1, 1):
        return ""
    return f", s{value[0]}" if value[0] == value[1] else f", s{value[0]}×{value[1]}"


def conv_text(n: Node, ins: Sequence[Shape]) -> str:
    a = n.args
    text = f"{_size(pair_arg(a, 'kernel'))} conv, {n.shape[0]}{_stride(pair_arg(a, 'stride'))}"
    if int_arg(a, "groups") != 1:
        text += f", g{int_arg(a, 'groups')}"
    dilation = pair_arg(a, "dilation")
    if dilation != (1, 1):
        text += f", d{dilation[0]}" if dilation[0] == dilation[1] else f", d{_size(dilation)}"
    padding = Conv.padding(a)
    kernel = pair_arg(a, "kernel")
    if a["padding"] is not None and padding != (dilation[0] * (kernel[0] // 2),
                                                dilation[1] * (kernel[1] // 2)):
        text += f", p{padding[0]}" if padding[0] == padding[1] else f", p{_size(padding)}"
    return text


def _pool(kind: str) -> Callable[[Node, Sequence[Shape]], str]:
    def text(n: Node, ins: Sequence[Shape]) -> str:
        kernel = pair_arg(n.args, "kernel")
        stride = pair_arg(n.args, "stride") if n.args["stride"] is not None else kernel
        return f"{_size(kernel)} {kind}{_stride(stride)}"

    return text


def _fixed(text: str) -> Callable[[Node, Sequence[Shape]], str]:
    return lambda n, ins: text


def _dropout(n: Node, ins: Sequence[Shape]) -> str:
    return f"dropout {float_arg(n.args, 'p'):g}"


def _drop_path(n: Node, ins: Sequence[Shape]) -> str:
    return f"drop path {float_arg(n.args, 'p'):g}"


def _leaky_relu(n: Node, ins: Sequence[Shape]) -> str:
    return f"LeakyReLU {float_arg(n.args, 'negative_slope'):g}"


def _slice(n: Node, ins: Sequence[Shape]) -> str:
    end = n.args["end"]
    axis = n.args.get("axis", 0)
    where = "channels" if axis == 0 else f"axis {axis}"
    return f"{where} [{int_arg(n.args, 'start')}:{'' if end is None else end}]"


def _zeropad(n: Node, ins: Sequence[Shape]) -> str:
    s = int_arg(n.args, "stride")
    return f"zero-pad → {n.shape[0]}" + (f", s{s}" if s != 1 else "")


def _conv_transpose(n: Node, ins: Sequence[Shape]) -> str:
    a = n.args
    stride = pair_arg(a, "stride")
    text = f"{_size(pair_arg(a, 'kernel'))} transposed conv, {n.shape[0]}{_stride(stride)}"
    if int_arg(a, "groups") != 1:
        text += f", g{int_arg(a, 'groups')}"
    for name, short, default in (("dilation", "d", (1, 1)), ("padding", "p", (0, 0)),
                                 ("output_padding", "op", (0, 0))):
        pair = pair_arg(a, name)
        if pair != default:
            text += f", {short}{pair[0]}" if pair[0] == pair[1] else f", {short}{_size(pair)}"
    return text


def _upsample(n: Node, ins: Sequence[Shape]) -> str:
    a = n.args
    how = f"×{int_arg(a, 'scale')}" if a["to"] is None else f"to {n.shape[1]}×{n.shape[2]}"
    mode = "" if a["mode"] == "nearest" else ", bilinear"
    return f"upsample {how}{mode}" + (", align corners" if a["align_corners"] else "")


def _conv1d(n: Node, ins: Sequence[Shape]) -> str:
    a = n.args
    text = f"conv1d k{int_arg(a, 'kernel')}, {n.shape[0]}"
    if int_arg(a, "stride") != 1:
        text += f", s{int_arg(a, 'stride')}"
    return text


def _linear(n: Node, ins: Sequence[Shape]) -> str:
    axis = n.args["axis"]
    if axis is None:
        return f"linear, {n.shape[0]}"
    assert isinstance(axis, int)
    return f"linear, {n.shape[axis]}, axis {axis}"


def _listed(value: object) -> str:
    items = value if isinstance(value, tuple) else (value,)
    return "[" + ", ".join(str(v) for v in items) + "]"


def _reduce_text(what: str, n: Node) -> str:
    axes = n.args["axes"]
    listed = ", ".join(str(a) for a in axes) if isinstance(axes, tuple) else str(axes)
    return f"{what} over axis {listed}" if not isinstance(axes, tuple) or len(axes) == 1 \
        else f"{what} over axes {listed}"


def _alpha(n: Node, ins: Sequence[Shape]) -> str:
    init = n.init.get("", 0.0)
    which = "per channel" if n.args["per_channel"] else "scalar"
    return f"× α ({which}, init {init:g})"


def _add_inputs(index: int, primitive: str) -> EdgeKind:
    # skip: add(F(x), S(x)); weight: add(S(x), α·F(x)).
    if primitive == "skip":
        return "shortcut" if index == 1 else "main"
    if primitive == "weight":
        return "shortcut" if index == 0 else "weighted"
    return "main"


_CONV = "#dae8fc"
_NORM = "#fff2cc"
_ACT = "#d5e8d4"
_POOL = "#fde9d9"
_FC = "#e1d5e7"
_MISC = "#eeeeee"

LOOKS: dict[str, Look] = {
    "conv": Look("layer", conv_text, _CONV),
    "bn": Look("layer", _fixed("BN"), _NORM, heavy=False),
    "linear": Look("layer", _linear, _FC),
    "maxpool": Look("layer", _pool("maxpool"), _POOL),
    "avgpool": Look("layer", _pool("avgpool"), _POOL),
    "global_avgpool": Look("layer", _fixed("global avgpool"), _POOL),
    "flatten": Look("layer", _fixed("flatten"), _MISC, heavy=False),
    "relu": Look("layer", _fixed("ReLU"), _ACT, heavy=False),
    "relu6": Look("layer", _fixed("ReLU6"), _ACT, heavy=False),
    "hardswish": Look("layer", _fixed("h-swish"), _ACT, heavy=False),
    "leaky_relu": Look("layer", _leaky_relu, _ACT, heavy=False),
    "sigmoid": Look("layer", _fixed("sigmoid"), _ACT, heavy=False),
    "silu": Look("layer", _fixed("SiLU"), _ACT, heavy=False),
    "gelu": Look("layer", _fixed("GELU"), _ACT, heavy=False),
    "tanh": Look("layer", _fixed("tanh"), _ACT, heavy=False),
    "identity": Look("layer", _fixed("identity"), _MISC, heavy=False),
    "dropout": Look("layer", _dropout, _MISC, heavy=False),
    "drop_path": Look("layer", _drop_path, _MISC, heavy=False),
    "slice": Look("layer", _slice, _MISC),
    "zeropad": Look("layer", _zeropad, "#fbe5d6"),
    "input": Look("input", lambda n, ins: "input", "#f2f2f2"),
    "add": Look("merge", _fixed("add"), symbol="+", inputs=_add_inputs),
    "mul": Look("merge", _fixed("scale"), symbol="×",
                inputs=lambda i, p: "attention" if i == 1 else "main"),
    "concat": Look("merge", _fixed("concat"), symbol="‖",
                   inputs=lambda i, p: "bus" if i == 0 else "dense"),
    # `skip(scale = f)`'s constant factor, written on the residual edge like α.
    "rescale": Look("edge", lambda n, ins: f"× {float_arg(n.args, 'factor'):g}"),
    "alpha": Look("edge", _alpha),
    "weighted_sum": Look("merge", _fixed("softmax-weighted sum"), symbol="Σ",
                         inputs=lambda i, p: "branch"),
    "highway": Look("merge", _fixed("highway"), symbol="+",
                    inputs=lambda i, p: ("gate", "main", "carry")[i]),
    "dual": Look("merge", lambda n, ins: f"dual, R = {int_arg(n.args, 'r')}", symbol="+‖",
                 inputs=lambda i, p: "shortcut" if i == 0 else "main"),
    "group_sum": Look("merge", lambda n, ins: f"sum of {int_arg(n.args, 'groups')} branches",
                      symbol="Σ"),
    "conv_transpose": Look("layer", _conv_transpose, _CONV),
    "frozen_bn": Look("layer", _fixed("FrozenBN"), _NORM, heavy=False),
    "upsample": Look("layer", _upsample, _POOL,
                     inputs=lambda i, p: "size" if i == 1 else "main"),
    "neg": Look("layer", _fixed("neg"), _MISC, heavy=False),
    "mul_const": Look("layer", lambda n, ins: f"× {float_arg(n.args, 'k'):g}", _MISC,
                      heavy=False),
    "sub": Look("merge", _fixed("subtract"), symbol="−"),
    "softmax": Look("layer", lambda n, ins: f"softmax, axis {n.args['axis']}", _ACT,
                    heavy=False),
    "mean": Look("layer", lambda n, ins: _reduce_text("mean", n), _POOL),
    "sum": Look("layer", lambda n, ins: _reduce_text("sum", n), _POOL),
    "amax": Look("layer", lambda n, ins: _reduce_text("max", n), _POOL),
    "reshape": Look("layer", lambda n, ins: f"reshape to {'×'.join(map(str, n.shape))}", _MISC,
                    heavy=False),
    "permute": Look("layer", lambda n, ins: f"permute {_listed(n.args['order'])}", _MISC,
                    heavy=False),
    "layer_norm": Look("layer", lambda n, ins: f"LN, axis {n.args['axis']}", _NORM,
                       heavy=False),
    "group_norm": Look("layer", lambda n, ins: f"GN, {n.args['groups']} groups", _NORM,
                       heavy=False),
    # A free parameter reads the flowing tensor for its batch size only.
    "param": Look("layer", lambda n, ins: f"param {'×'.join(map(str, n.shape))}", _FC,
                  inputs=lambda i, p: "size"),
    "conv1d": Look("layer", _conv1d, _CONV),
    "matmul": Look("merge", _fixed("matrix product"), symbol="@"),
    "pad": Look("layer", lambda n, ins: f"pad {n.args['before']}, {n.args['after']}, axis "
                f"{n.args['axis']}", _MISC, heavy=False),
    "std_conv": Look("layer", lambda n, ins: conv_text(n, ins) + ", WS", _CONV),
    "rsqrt": Look("layer", lambda n, ins: f"1/√(x + {float_arg(n.args, 'eps'):g})", _MISC,
                  heavy=False),
}

# A gate's σ: the sigmoid that a `gate` makes for T(x) is drawn as a merge-like σ node.
GATE_SYMBOL = "σ"
