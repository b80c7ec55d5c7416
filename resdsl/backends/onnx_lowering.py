"""The ONNX lowering table: for every op of `ir/ops/`, the ONNX nodes it becomes.

It mirrors the PyTorch table (`torch_lowering.LOWERINGS`): one entry per op, and
`tests/test_onnx_backend.py` fails when an op in `OPS` has none. An emitter gets a `Ctx`
(the graph node, its input shapes and input value names, the opset) and adds nodes through
it. This module is plain Python: it imports neither onnx nor numpy's heavier parts, and
`onnx_model.py` turns what it records into protobufs.

Naming: the node that makes an op's output is named after the op's module path
(`layer2.0.conv2`); the helper nodes an op needs besides (the `Split`s of a dual unit) are
`PATH/OpType`. Values are named after the node that makes them (`layer2.0.conv2`),
initializers after their state_dict key (`layer2.0.conv2.weight`), and the constants an op
needs (slice bounds, shapes) `PATH/what`. Ops that compute nothing at inference (identity,
dropout, drop_path, a flatten of a flat tensor) emit no node: their output is their input's
value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from resdsl.ir.graph import Node
from resdsl.ir.ops import (
    Conv,
    Conv1d,
    LayerNorm,
    Linear,
    Pad,
    Shape,
    Slice,
    float_arg,
    int_arg,
    pair_arg,
    resolve_axes,
)

AttrValue = int | float | str | Sequence[int] | Sequence[float]

# The opsets the emitters are written for. 17 (IR version 8) is read by every current
# runtime: ONNX Runtime ≥ 1.13, TensorRT ≥ 8.6, OpenVINO ≥ 2023.0.
MIN_OPSET = 13
MAX_OPSET = 21
DEFAULT_OPSET = 17


@dataclass(frozen=True)
class ONode:
    """One ONNX node, before it is a protobuf."""

    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    name: str
    attrs: Mapping[str, AttrValue] = field(default_factory=dict)


@dataclass
class Ctx:
    """What an emitter sees and the nodes it adds."""

    node: Node
    ins: tuple[Shape, ...]
    # The input value names, in input order.
    x: tuple[str, ...]
    # The name the op's result must have.
    out: str
    opset: int
    state: Mapping[str, np.ndarray]
    # `--fold-bn`: the bn this conv's output goes to, folded into the conv (conv only).
    fold: Node | None = None
    nodes: list[ONode] = field(default_factory=list)
    # Initializers by name: state tensors (by state_dict key) and constants.
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    # Values whose per-sample shape the model states (graph value_info): ONNX's shape
    # inference cannot follow the symbolic batch axis through some ops (Resize).
    declared: dict[str, Shape] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.node.path

    def param(self, suffix: str, value: np.ndarray | None = None) -> str:
        """The initializer of this node's state entry `suffix` ("" for the node's own path):
        named by its state_dict key, holding `value` or the state's tensor."""
        key = f"{self.path}.{suffix}" if suffix else self.path
        self.tensors[key] = self.state[key] if value is None else value
        return key

    def const(self, what: str, value: np.ndarray) -> str:
        """A constant input (slice bounds, a shape, a scalar): `PATH/what`."""
        name = f"{self.path}/{what}"
        self.tensors[name] = value
        return name

    def helper(self, op_type: str, inputs: Sequence[str], n_out: int = 1,
               **attrs: AttrValue) -> tuple[str, ...]:
        """A node besides the op's own, named `PATH/OpType` (numbered when there are
        several), with outputs `PATH/OpType:i`; returns the output names."""
        same = sum(1 for n in self.nodes if n.op_type == op_type)
        name = f"{self.path}/{op_type}" + (f"_{same}" if same else "")
        outs = tuple(f"{name}:{i}" for i in range(n_out))
        self.nodes.append(ONode(op_type, tuple(inputs), outs, name, attrs))
        return outs

    def emit(self, op_type: str, inputs: Sequence[str], **attrs: AttrValue) -> None:
        """The node that makes the op's result: named after the op's path."""
        self.nodes.append(ONode(op_type, tuple(inputs), (self.out,), self.path, attrs))


Emitter = Callable[[Ctx], None]


def _i64(values: Sequence[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


# ------------------------------------------------------------------ layers


def _conv(c: Ctx) -> None:
    a = c.node.args
    (ph, pw) = Conv.padding(a)
    attrs: dict[str, AttrValue] = {
        "kernel_shape": list(pair_arg(a, "kernel")),
        "strides": list(pair_arg(a, "stride")),
        "pads": [ph, pw, ph, pw],
        "dilations": list(pair_arg(a, "dilation")),
        "group": int_arg(a, "groups"),
    }
    if c.fold is None:
        inputs = [c.x[0], c.param("weight")]
        if a["bias"]:
            inputs.append(c.param("bias"))
        c.emit("Conv", inputs, **attrs)
        return
    # W' = W·s, b' = (b − mean)·s + β with s = γ / sqrt(var + eps), in float64.
    bn = c.fold.path
    eps = float_arg(c.fold.args, "eps")
    gamma, beta = c.state[f"{bn}.weight"], c.state[f"{bn}.bias"]
    mean, var = c.state[f"{bn}.running_mean"], c.state[f"{bn}.running_var"]
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    weight = c.state[f"{c.path}.weight"].astype(np.float64) * scale[:, None, None, None]
    bias = c.state[f"{c.path}.bias"].astype(np.float64) if a["bias"] else 0.0
    folded_bias = (bias - mean) * scale + beta
    inputs = [c.x[0], c.param("weight", weight.astype(np.float32)),
              c.param("bias", np.asarray(folded_bias, dtype=np.float32))]
    c.emit("Conv", inputs, **attrs)


def _bn(c: Ctx) -> None:
    inputs = [c.x[0], c.param("weight"), c.param("bias"), c.param("running_mean"),
              c.param("running_var")]
    c.emit("BatchNormalization", inputs, epsilon=float_arg(c.node.args, "eps"))


def _linear(c: Ctx) -> None:
    if c.node.args["axis"] is None:  # a flat input: one Gemm
        inputs = [c.x[0], c.param("weight")]
        if c.node.args["bias"]:
            inputs.append(c.param("bias"))
        c.emit("Gemm", inputs, transB=1)
        return
    # On one axis at every position: that axis moved last, x · Wᵀ (+ b), and moved back.
    rank = len(c.ins[0]) + 1
    axis = Linear.axis(c.ins[0], c.node.args) + 1
    perm = [d for d in range(rank) if d != axis] + [axis]
    x = c.x[0] if axis == rank - 1 else c.helper("Transpose", [c.x[0]], 1, perm=perm)[0]
    (wt,) = c.helper("Transpose", [c.param("weight")], 1, perm=[1, 0])
    steps: list[tuple[str, list[str]]] = [("MatMul", [x, wt])]
    if c.node.args["bias"]:
        steps.append(("Add", ["", c.param("bias")]))
    if axis != rank - 1:
        back = sorted(range(rank), key=lambda d: perm[d])
        steps.append(("Transpose", [""]))
    y = ""
    for i, (op_type, inputs) in enumerate(steps):
        inputs = [y if v == "" else v for v in inputs]
        attrs: dict[str, AttrValue] = {"perm": back} if op_type == "Transpose" else {}
        if i == len(steps) - 1:
            c.emit(op_type, inputs, **attrs)
        else:
            (y,) = c.helper(op_type, inputs, 1, **attrs)


# ------------------------------------------------------------------ stateless ops


def _pool(op_type: str) -> Emitter:
    def emit(c: Ctx) -> None:
        a = c.node.args
        kernel = pair_arg(a, "kernel")
        stride = pair_arg(a, "stride") if a["stride"] is not None else kernel
        pad = pair_arg(a, "padding")
        x = c.x[0]
        begin = list(pad)
        end = list(pad)
        attrs: dict[str, AttrValue] = {"kernel_shape": list(kernel), "strides": list(stride)}
        # count_include_pad=false (avgpool only): every pad, the ceil-mode end too, is left out
        # of the divisor, which is ONNX's default (count_include_pad=0).
        include = bool(a.get("count_include_pad", True))
        if a["ceil_mode"]:
            # PyTorch's ceil mode (a last, partial window, but never one that starts in the
            # padding) as explicit end padding in floor mode, which every runtime and ONNX's
            # shape inference agree on: the end padding that makes floor mode give the
            # output size. It is less than the kernel.
            size = c.ins[0][1:]
            end = [max(0, (o - 1) * s + k - n - p)
                   for o, s, k, n, p in zip(c.node.shape[1:], stride, kernel, size, pad,
                                            strict=True)]
            if op_type == "AveragePool" and any(pad) and include:
                # PyTorch divides by the window clipped to the symmetrically padded input:
                # it counts `padding` zeros but not the extra end. So: pad with zeros
                # first, then average over what is there (count_include_pad=0, the default).
                ph, pw = pad
                (x,) = c.helper("Pad", [x, c.const("pads", _i64([0, 0, ph, pw,
                                                                 0, 0, ph, pw]))])
                end = [max(0, (o - 1) * s + k - n - 2 * p)
                       for o, s, k, n, p in zip(c.node.shape[1:], stride, kernel, size, pad,
                                                strict=True)]
                begin = [0, 0]
        elif op_type == "AveragePool" and any(pad) and include:
            attrs["count_include_pad"] = 1  # PyTorch's default
        attrs["pads"] = [*begin, *end]
        c.emit(op_type, [x], **attrs)

    return emit


def _unary(op_type: str) -> Emitter:
    return lambda c: c.emit(op_type, [c.x[0]])


def _relu6(c: Ctx) -> None:
    """min(max(x, 0), 6): a Clip, whose bounds are inputs from opset 11."""
    c.emit("Clip", [c.x[0], c.const("min", np.array(0.0, np.float32)),
                    c.const("max", np.array(6.0, np.float32))])


def _hardswish(c: Ctx) -> None:
    """x · relu6(x + 3) / 6: HardSwish from opset 14; before it x · HardSigmoid(x) with
    alpha = 1/6 and beta = 0.5, HardSwish's own definition."""
    if c.opset >= 14:
        c.emit("HardSwish", [c.x[0]])
        return
    (h,) = c.helper("HardSigmoid", [c.x[0]], alpha=1.0 / 6.0, beta=0.5)
    c.emit("Mul", [c.x[0], h])


def _leaky_relu(c: Ctx) -> None:
    c.emit("LeakyRelu", [c.x[0]], alpha=float_arg(c.node.args, "negative_slope"))


def _silu(c: Ctx) -> None:
    (sig,) = c.helper("Sigmoid", [c.x[0]])
    c.emit("Mul", [c.x[0], sig])


def _gelu(c: Ctx) -> None:
    """PyTorch's exact GELU, x·Φ(x): the Gelu op from opset 20, before it the erf form
    0.5·x·(1 + erf(x/√2)), which runtimes fuse back into one kernel."""
    if c.opset >= 20:
        c.emit("Gelu", [c.x[0]])
        return
    (d,) = c.helper("Div", [c.x[0], c.const("sqrt2", np.array(np.sqrt(2.0), np.float32))])
    (e,) = c.helper("Erf", [d])
    (s,) = c.helper("Add", [e, c.const("one", np.array(1.0, np.float32))])
    (m,) = c.helper("Mul", [c.x[0], s])
    c.emit("Mul", [m, c.const("half", np.array(0.5, np.float32))])


def _flatten(c: Ctx) -> None:
    c.emit("Flatten", [c.x[0]], axis=1)


def _slice(c: Ctx) -> None:
    axis, start, stop = Slice.bounds(c.ins[0], c.node.args)
    c.emit("Slice", [c.x[0], c.const("starts", _i64([start])), c.const("ends", _i64([stop])),
                     c.const("axes", _i64([axis + 1]))])


def _pad(c: Ctx) -> None:
    rank = len(c.ins[0]) + 1
    axis = Pad.axis(c.ins[0], c.node.args) + 1
    begin, end = [0] * rank, [0] * rank
    begin[axis], end[axis] = int_arg(c.node.args, "before"), int_arg(c.node.args, "after")
    c.emit("Pad", [c.x[0], c.const("pads", _i64(begin + end))])


def _zeropad(c: Ctx) -> None:
    # Option A: every stride-th row and column, then zero channels appended.
    s = int_arg(c.node.args, "stride")
    extra = c.node.shape[0] - c.ins[0][0]
    _, h, w = c.ins[0]
    x = c.x[0]
    if s != 1:
        inputs = [x, c.const("starts", _i64([0, 0])), c.const("ends", _i64([h, w])),
                  c.const("axes", _i64([2, 3])), c.const("steps", _i64([s, s]))]
        if extra == 0:
            c.emit("Slice", inputs)
            return
        (x,) = c.helper("Slice", inputs)
    c.emit("Pad", [x, c.const("pads", _i64([0, 0, 0, 0, 0, extra, 0, 0]))])


# ------------------------------------------------------------------ primitive merges


def _add(c: Ctx) -> None:
    if len(c.x) == 2:
        c.emit("Add", list(c.x))
    else:
        c.emit("Sum", list(c.x))


def _rescale(c: Ctx) -> None:
    """factor · x: a Mul by a float32 scalar (the model's only float type)."""
    factor = np.array(float_arg(c.node.args, "factor"), np.float32)
    c.emit("Mul", [c.x[0], c.const("factor", factor)])


def _alpha(c: Ctx) -> None:
    c.emit("Mul", [c.param(""), c.x[0]])


def _weighted_sum(c: Ctx) -> None:
    """Σ softmax(w)_i · B_i: the weights split into one scalar per branch."""
    n = len(c.x)
    (w,) = c.helper("Softmax", [c.param("")], axis=0)
    parts = c.helper("Split", [w, c.const("split", _i64([1] * n))], n_out=n, axis=0)
    terms = [c.helper("Mul", [p, x])[0] for p, x in zip(parts, c.x, strict=True)]
    c.emit("Sum", terms)


def _highway(c: Ctx) -> None:
    """y = T·H + (1 − T)·x, as the PyTorch backend computes it."""
    t, h, x = c.x
    (th,) = c.helper("Mul", [t, h])
    (carry,) = c.helper("Sub", [c.const("one", np.array(1.0, np.float32)), t])
    (cx,) = c.helper("Mul", [carry, x])
    c.emit("Add", [th, cx])


def _dual(c: Ctx) -> None:
    """[S[:R] + F[:R], S[R:], F[R:]]: each side split at R channels (a side with only R
    channels is not split), the first parts added, the rest concatenated."""
    r = int_arg(c.node.args, "r")
    heads: list[str] = []
    tails: list[str] = []
    for x, shape in zip(c.x, c.ins, strict=True):
        if shape[0] == r:
            heads.append(x)
            continue
        head, tail = c.helper("Split", [x, c.const(f"split{len(heads)}",
                                                   _i64([r, shape[0] - r]))], n_out=2, axis=1)
        heads.append(head)
        tails.append(tail)
    if not tails:
        c.emit("Add", heads)
        return
    (added,) = c.helper("Add", heads)
    c.emit("Concat", [added, *tails], axis=1)


def _group_sum(c: Ctx) -> None:
    """g·C channels → C: reshape to (N, g, C, ...) and sum over g."""
    g = int_arg(c.node.args, "groups")
    shape = c.ins[0]
    (r,) = c.helper("Reshape", [c.x[0], c.const("shape", _i64([0, g, shape[0] // g,
                                                                *shape[1:]]))])
    c.emit("ReduceSum", [r, c.const("axes", _i64([1]))], keepdims=0)


def _input(c: Ctx) -> None:
    raise AssertionError("the input is the graph's input, not a node")


# ------------------------------------------------------------------ dense prediction


def _conv_transpose(c: Ctx) -> None:
    """PyTorch crops `padding` rows off both ends of the full transposed convolution and
    adds `output_padding` at the end: ONNX's pads, the end one less by output_padding. What
    output_padding exceeds the padding by is ONNX's output_padding, which ONNX Runtime takes
    only below the stride; PyTorch also takes it below the dilation, and then those rows,
    beyond every kernel's reach, hold the bias alone: zeros padded on, then the bias added."""
    a = c.node.args
    stride = pair_arg(a, "stride")
    begin = list(pair_arg(a, "padding"))
    extra = pair_arg(a, "output_padding")
    end = [max(p - e, 0) for p, e in zip(begin, extra, strict=True)]
    beyond = [max(e - p, 0) for p, e in zip(begin, extra, strict=True)]
    attrs: dict[str, AttrValue] = {
        "kernel_shape": list(pair_arg(a, "kernel")),
        "strides": list(stride),
        "pads": [*begin, *end],
        "dilations": list(pair_arg(a, "dilation")),
        "group": int_arg(a, "groups"),
    }
    inputs = [c.x[0], c.param("weight")]  # [in, out / groups, kh, kw], as in PyTorch
    if all(b < s for b, s in zip(beyond, stride, strict=True)):
        if any(beyond):
            attrs["output_padding"] = beyond
        if a["bias"]:
            inputs.append(c.param("bias"))
        c.emit("ConvTranspose", inputs, **attrs)
        return
    (y,) = c.helper("ConvTranspose", inputs, 1, **attrs)
    pads = c.const("pads", _i64([0, 0, 0, 0, 0, 0, *beyond]))
    if not a["bias"]:
        c.emit("Pad", [y, pads])
        return
    (y,) = c.helper("Pad", [y, pads])
    (bias,) = c.helper("Reshape", [c.param("bias"),
                                   c.const("bias_shape", _i64([c.node.shape[0], 1, 1]))])
    c.emit("Add", [y, bias])


def _frozen_bn(c: Ctx) -> None:
    """torchvision's FrozenBatchNorm2d is inference-mode batch norm with its own eps: the
    same BatchNormalization node as `bn` (and `--fold-bn` folds it the same way)."""
    _bn(c)


def torch_nearest_index(size: int, out: int, scale: int | None) -> np.ndarray:
    """The input row (or column) PyTorch's nearest upsampling reads for each output one:
    `min(floor(i · r), size − 1)` in float32, with r = 1/scale when a factor is given and
    size/out otherwise (ATen's `nearest_idx`, which also takes same size and 2× exactly)."""
    i = np.arange(out, dtype=np.int64)
    if out == size:
        return i
    if out == 2 * size:
        return i >> 1
    ratio = np.float32(1.0 / scale) if scale is not None else np.float32(size) / np.float32(out)
    index: np.ndarray = np.minimum(np.floor(i.astype(np.float32) * ratio).astype(np.int64),
                                   size - 1)
    return index


def _upsample(c: Ctx) -> None:
    """F.interpolate as ONNX Resize: bilinear with `half_pixel` (align_corners=False; unlike
    `pytorch_half_pixel` it is also PyTorch's for an output of size 1) or `align_corners`,
    nearest with `asymmetric` and `floor`. By a factor, Resize takes the scales; to a tensor's
    size, the sizes from Shape of both inputs.

    Nearest is exact in Resize only where the output is a whole multiple k of the input and
    PyTorch's float32 index (i · r, rounded down) is i // k on both axes: elsewhere PyTorch's
    rounding differs from the exact one (2 → 82 rows reads row 0 for row 41) and so from any
    runtime's. There it is two Gathers of PyTorch's own indices, constants like every spatial
    size in the model."""
    a = c.node.args
    x = c.x[0]
    (_, h, w), (_, oh, ow) = c.ins[0], c.node.shape
    scale = None if a["to"] is not None else int_arg(a, "scale")
    attrs: dict[str, AttrValue] = {}
    if a["mode"] == "nearest":
        rows, cols = torch_nearest_index(h, oh, scale), torch_nearest_index(w, ow, scale)
        exact = all(o % n == 0 and np.array_equal(idx, np.arange(o) // (o // n))
                    for n, o, idx in ((h, oh, rows), (w, ow, cols)))
        if not exact:
            (y,) = c.helper("Gather", [x, c.const("rows", rows)], axis=2)
            c.emit("Gather", [y, c.const("cols", cols)], axis=3)
            return
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                 "nearest_mode": "floor"}
    else:
        attrs = {"mode": "linear", "coordinate_transformation_mode":
                 "align_corners" if a["align_corners"] else "half_pixel"}
    if scale is not None:
        scales = c.const("scales", np.array([1, 1, scale, scale], np.float32))
        c.emit("Resize", [x, "", scales], **attrs)
        c.declared[c.out] = c.node.shape
        return
    (sx,) = c.helper("Shape", [x])
    (st,) = c.helper("Shape", [c.x[int_arg(a, "to")]])
    zero, two, four = (c.const(f"i{v}", _i64([v])) for v in (0, 2, 4))
    (nc,) = c.helper("Slice", [sx, zero, two])
    (hw,) = c.helper("Slice", [st, two, four])
    (sizes,) = c.helper("Concat", [nc, hw], axis=0)
    c.emit("Resize", [x, "", "", sizes], **attrs)
    c.declared[c.out] = c.node.shape


# ------------------------------------------------------------------ general tensor ops


def _mul_const(c: Ctx) -> None:
    k = np.array(float_arg(c.node.args, "k"), np.float32)
    c.emit("Mul", [c.x[0], c.const("k", k)])


def _rsqrt(c: Ctx) -> None:
    """1 / √(x + eps): Add (where eps is not 0), Sqrt and Reciprocal, at every opset."""
    x = c.x[0]
    eps = float_arg(c.node.args, "eps")
    if eps != 0.0:
        (x,) = c.helper("Add", [x, c.const("eps", np.array(eps, np.float32))])
    (root,) = c.helper("Sqrt", [x])
    c.emit("Reciprocal", [root])


def _axes(c: Ctx, arg: str) -> list[int]:
    """The per-sample axes of argument `arg` as ONNX axes (the batch is axis 0)."""
    value = c.node.args[arg]
    axes = value if isinstance(value, tuple) else (value,)
    return [a + 1 for a in resolve_axes(c.node.op, c.ins[0],
                                        [a for a in axes if isinstance(a, int)])]


def reduce(c: Ctx, op_type: str, x: str, axes: Sequence[int], keepdims: bool,
           final: bool = True) -> str:
    """`op_type` (ReduceMean, ReduceMax, ReduceSum) over `axes`: the axes an input from
    opset 18 (ReduceSum from 13), an attribute before. The op's own node when `final`,
    else a helper; returns its output."""
    as_input = op_type == "ReduceSum" or c.opset >= 18
    inputs = [x, c.const(f"axes{len(c.tensors)}", _i64(axes))] if as_input else [x]
    attrs: dict[str, AttrValue] = {"keepdims": int(keepdims)}
    if not as_input:
        attrs["axes"] = list(axes)
    if final:
        c.emit(op_type, inputs, **attrs)
        return c.out
    (y,) = c.helper(op_type, inputs, 1, **attrs)
    return y


def _reduce(op_type: str) -> Emitter:
    def emit(c: Ctx) -> None:
        reduce(c, op_type, c.x[0], _axes(c, "axes"), bool(c.node.args["keepdim"]))

    return emit


def _reshape(c: Ctx) -> None:
    c.emit("Reshape", [c.x[0], c.const("shape", _i64([0, *c.node.shape]))])


def _permute(c: Ctx) -> None:
    order = c.node.args["order"]
    axes = order if isinstance(order, tuple) else (order,)
    c.emit("Transpose", [c.x[0]], perm=[0, *(a + 1 for a in axes if isinstance(a, int))])


def _normalised(c: Ctx, x: str, axes: Sequence[int]) -> str:
    """(x − mean) / √(var + eps) over `axes` (ONNX axes), the biased variance, as PyTorch's
    layer and group norms compute: in plain nodes, for every opset from 13."""
    mean = reduce(c, "ReduceMean", x, axes, True, final=False)
    (d,) = c.helper("Sub", [x, mean])
    (sq,) = c.helper("Mul", [d, d])
    var = reduce(c, "ReduceMean", sq, axes, True, final=False)
    eps = np.array(float_arg(c.node.args, "eps"), np.float32)
    (ve,) = c.helper("Add", [var, c.const("eps", eps)])
    (sd,) = c.helper("Sqrt", [ve])
    (y,) = c.helper("Div", [d, sd])
    return y


def _affine(c: Ctx, y: str, axis: int) -> None:
    """y · weight + bias, the [n] parameters of per-sample axis `axis` broadcast over the
    axes after it."""
    shape = c.const("affine_shape", _i64([c.ins[0][axis], *[1] * (len(c.ins[0]) - 1 - axis)]))
    (w,) = c.helper("Reshape", [c.param("weight"), shape])
    (b,) = c.helper("Reshape", [c.param("bias"), shape])
    (m,) = c.helper("Mul", [y, w])
    c.emit("Add", [m, b])


def _layer_norm(c: Ctx) -> None:
    axis = LayerNorm.axis(c.ins[0], c.node.args)
    _affine(c, _normalised(c, c.x[0], [axis + 1]), axis)


def _group_norm(c: Ctx) -> None:
    """The channels as [groups, C / groups · positions], normalised over the second, back."""
    groups = int_arg(c.node.args, "groups")
    (r,) = c.helper("Reshape", [c.x[0], c.const("grouped", _i64([0, groups, -1]))])
    y = _normalised(c, r, [2])
    (back,) = c.helper("Reshape", [y, c.const("shape", _i64([0, *c.ins[0]]))])
    _affine(c, back, 0)


def _std_conv(c: Ctx) -> None:
    """The standardisation as nodes over the raw weight's initializer (the checkpoint's
    tensor, under its state_dict key): each filter flattened, normalised as a group norm's
    groups are, and reshaped back; then the conv's Conv. Runtimes fold the constant part."""
    a = c.node.args
    weight = c.param("weight")
    kh, kw = pair_arg(a, "kernel")
    shape = c.const("weight_shape", _i64([c.node.shape[0], c.ins[0][0] // int_arg(a, "groups"),
                                          kh, kw]))
    (rows,) = c.helper("Reshape", [weight, c.const("filters", _i64([0, -1]))])
    (std,) = c.helper("Reshape", [_normalised(c, rows, [1]), shape])
    (ph, pw) = Conv.padding(a)
    inputs = [c.x[0], std]
    if a["bias"]:
        inputs.append(c.param("bias"))
    c.emit("Conv", inputs, kernel_shape=list(pair_arg(a, "kernel")),
           strides=list(pair_arg(a, "stride")), pads=[ph, pw, ph, pw],
           dilations=list(pair_arg(a, "dilation")), group=int_arg(a, "groups"))


def _conv1d(c: Ctx) -> None:
    a = c.node.args
    pad = Conv1d.padding(a)
    inputs = [c.x[0], c.param("weight")]
    if a["bias"]:
        inputs.append(c.param("bias"))
    c.emit("Conv", inputs, kernel_shape=[int_arg(a, "kernel")], strides=[int_arg(a, "stride")],
           pads=[pad, pad], dilations=[int_arg(a, "dilation")], group=int_arg(a, "groups"))


def _param(c: Ctx) -> None:
    """The parameter expanded over the batch of the input (its only use of the input)."""
    (sx,) = c.helper("Shape", [c.x[0]])
    (batch,) = c.helper("Slice", [sx, c.const("i0", _i64([0])), c.const("i1", _i64([1]))])
    (shape,) = c.helper("Concat", [batch, c.const("shape", _i64(list(c.node.shape)))],
                        axis=0)
    c.emit("Expand", [c.param(""), shape])
    c.declared[c.out] = c.node.shape


def is_alias(node: Node, ins: Sequence[Shape]) -> bool:
    """Whether the op computes nothing at inference, so that its output is its input's
    value and it emits no node: identity, dropout and drop_path (eval), a flatten of a flat
    tensor, a zeropad that neither subsamples nor pads."""
    if node.op in ("identity", "dropout", "drop_path"):
        return True
    if node.op == "flatten":
        return len(ins[0]) == 1
    if node.op == "zeropad":
        return node.shape == ins[0]
    return False


EMITTERS: dict[str, Emitter] = {
    "conv": _conv,
    "bn": _bn,
    "linear": _linear,
    "maxpool": _pool("MaxPool"),
    "avgpool": _pool("AveragePool"),
    "global_avgpool": _unary("GlobalAveragePool"),
    "flatten": _flatten,
    "relu": _unary("Relu"),
    "relu6": _relu6,
    "hardswish": _hardswish,
    "leaky_relu": _leaky_relu,
    "sigmoid": _unary("Sigmoid"),
    "tanh": _unary("Tanh"),
    "silu": _silu,
    "gelu": _gelu,
    # Aliases (see is_alias); Identity only when the network is nothing but its input.
    "identity": _unary("Identity"),
    "dropout": _unary("Identity"),
    "drop_path": _unary("Identity"),
    "slice": _slice,
    "zeropad": _zeropad,
    "input": _input,
    "add": _add,
    "mul": lambda c: c.emit("Mul", [c.x[0], c.x[1]]),
    "concat": lambda c: c.emit("Concat", list(c.x), axis=1),
    "rescale": _rescale,
    "alpha": _alpha,
    "weighted_sum": _weighted_sum,
    "highway": _highway,
    "dual": _dual,
    "group_sum": _group_sum,
    "conv_transpose": _conv_transpose,
    "frozen_bn": _frozen_bn,
    "upsample": _upsample,
    "neg": _unary("Neg"),
    "mul_const": _mul_const,
    "sub": lambda c: c.emit("Sub", [c.x[0], c.x[1]]),
    "softmax": lambda c: c.emit("Softmax", [c.x[0]], axis=_axes(c, "axis")[0]),
    "mean": _reduce("ReduceMean"),
    "sum": _reduce("ReduceSum"),
    "amax": _reduce("ReduceMax"),
    "reshape": _reshape,
    "permute": _permute,
    "layer_norm": _layer_norm,
    "group_norm": _group_norm,
    "param": _param,
    "conv1d": _conv1d,
    "matmul": lambda c: c.emit("MatMul", [c.x[0], c.x[1]]),
    "pad": _pad,
    "rsqrt": _rsqrt,
    "std_conv": _std_conv,
}
