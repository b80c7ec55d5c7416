"""The PyTorch lowering table: for every op of `ir/ops.py`, the module it owns (if any) and
the line of forward code it runs.

The generated code is what a person would write by hand: stateful ops are `nn` modules named
by the spec (their state_dict keys), everything else is a `torch`/`F` call in the forward,
except where the forward is a chain of child modules: there a stateless op is a module too
(the entry's `module`: `nn.ReLU(inplace=True)`, `nn.MaxPool2d(...)`), as in torchvision's
ResNet, because torchvision's IntermediateLayerGetter runs the children in order and nothing
else (`torch_source.py` decides where). Each lowering returns `Code`: a format string whose
`{out}` is the output variable and whose other fields are *holes*, the numbers of the layer
(channels, strides, slice bounds). Holes let structurally identical blocks share one
generated class with those numbers as constructor parameters (`torch_source.py`).

`tests/test_torch_backend.py` fails when an op in `OPS` has no entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from resdsl.ir.graph import Node
from resdsl.ir.ops import (
    Conv,
    Conv1d,
    LayerNorm,
    Linear,
    Pad,
    Shape,
    Slice,
    Value,
    float_arg,
    int_arg,
    pair_arg,
    resolve_axes,
)

HoleValue = int | float | tuple[int, ...]


@dataclass(frozen=True)
class Code:
    """A format string; `{out}` is the output variable, other fields are holes."""

    text: str
    holes: Mapping[str, HoleValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Ctx:
    node: Node
    ins: tuple[Shape, ...]
    # The input variables, in input order.
    x: tuple[str, ...]
    # The expression for this node's own module or parameter (`self.conv1`), if it has one.
    attr: str
    # True when the first input dies here and may be overwritten: the output variable is x[0].
    inplace: bool


@dataclass(frozen=True)
class Lowered:
    # What `attr` is built from in `__init__`: an nn module or an nn.Parameter; None when the
    # op owns no state.
    init: Code | None
    forward: Code


@dataclass(frozen=True)
class Lowering:
    emit: Callable[[Ctx], Lowered]
    # Has an in-place form that overwrites its first input (saves an activation's memory).
    inplace: bool = False
    # Its output is a fresh tensor that autograd does not need to keep as it is, so a later
    # op may overwrite it in place. False for views and aliases (identity, slice, flatten,
    # dropout in eval) and for ops whose backward reads their own output (relu, sigmoid, tanh).
    overwritable: bool = True
    # Module-level definitions the forward code calls (a function the generated file defines
    # once, after its imports, when the network uses the op): the file stays torch-only.
    helpers: tuple[str, ...] = ()
    # Whether a node of the op is its one input under another name (`{out} = x`): `identity`,
    # and a join of one tensor (`add(t)`, `cat(t)`, which continue from `t`). Such a node
    # has no code when its output takes its input's variable, runs nothing in place, and is
    # never overwritten in place (its tensor is its input's).
    alias: Callable[[Node], bool] = lambda node: False
    # The op as an `nn` module of no state, for a stateless op in a chain of child modules
    # (`nn.ReLU(inplace=True)`): its constructor, with the same holes as the forward code; the
    # forward then calls it (`x = self.relu(x)`). None where PyTorch has no such module (or
    # the op reads another tensor, `upsample(to = t)`): the op then ends the chain.
    module: Callable[[Ctx], Code | None] = lambda c: None


def _lit(value: Value) -> str:
    """A Python literal; square pairs print as one number (`3`, not `(3, 3)`)."""
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == value[1]:
            return _lit(value[0])
        return "(" + ", ".join(_lit(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def lit(value: Value) -> str:
    return _lit(value)


def _pair(value: tuple[int, int]) -> HoleValue:
    return value[0] if value[0] == value[1] else value


def _forward(text: str, **holes: HoleValue) -> Lowered:
    return Lowered(None, Code(text, holes))


# ------------------------------------------------------------------ layers


def _conv(c: Ctx) -> Lowered:
    a = c.node.args
    groups, dilation = int_arg(a, "groups"), _pair(pair_arg(a, "dilation"))
    extra = ", dilation={dilation}" if dilation != 1 else ""
    extra += ", groups={groups}" if groups != 1 else ""
    holes: dict[str, HoleValue] = {
        "in_channels": c.ins[0][0],
        "out_channels": c.node.shape[0],
        "kernel_size": _pair(pair_arg(a, "kernel")),
        "stride": _pair(pair_arg(a, "stride")),
        "padding": _pair(Conv.padding(a)),
        "dilation": dilation,
        "groups": groups,
    }
    init = Code(
        "nn.Conv2d({in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}, "
        "padding={padding}" + extra + f", bias={bool(a['bias'])})",
        holes,
    )
    return Lowered(init, Code(f"{{out}} = {c.attr}({c.x[0]})"))


# timm's StdConv2d (timm/layers/std_conv.py), its forward line for line, so the generated
# file needs no timm: the weight standardised per filter by a training-mode batch norm of
# the filters, then the conv.
STD_CONV = '''class StdConv2d(nn.Conv2d):
    """timm's StdConv2d: a conv whose filters are standardised before every use (Weight
    Standardization), (w - mean) / sqrt(var + eps) over each filter, the variance biased."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = False, eps: float = 1e-6) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=padding, dilation=dilation, groups=groups, bias=bias)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1), None, None, training=True,
            momentum=0.0, eps=self.eps).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)'''


def _std_conv(c: Ctx) -> Lowered:
    conv = _conv(c)
    assert conv.init is not None
    text = "StdConv2d" + conv.init.text.removeprefix("nn.Conv2d").removesuffix(")")
    eps = float_arg(c.node.args, "eps")
    init = Code(text + ", eps={eps})", {**conv.init.holes, "eps": eps})
    return Lowered(init, conv.forward)


def _bn(c: Ctx) -> Lowered:
    kind = "BatchNorm2d" if len(c.ins[0]) == 3 else "BatchNorm1d"
    eps, momentum = float_arg(c.node.args, "eps"), float_arg(c.node.args, "momentum")
    extra = (", eps={eps}" if eps != 1e-5 else "") + (
        ", momentum={momentum}" if momentum != 0.1 else ""
    )
    init = Code(f"nn.{kind}({{num_features}}{extra})",
                {"num_features": c.ins[0][0], "eps": eps, "momentum": momentum})
    return Lowered(init, Code(f"{{out}} = {c.attr}({c.x[0]})"))


def _on_axis(c: Ctx, axis: int) -> Code:
    """The forward of a module that acts on the last axis (nn.Linear, nn.LayerNorm), applied
    to per-sample axis `axis`: moved last and back where it is not last (as timm's
    LayerNorm2d permutes a feature map to channels-last and back)."""
    if axis == len(c.ins[0]) - 1:
        return Code(f"{{out}} = {c.attr}({c.x[0]})")
    return Code(f"{{out}} = {c.attr}({c.x[0]}.movedim({{dim}}, -1)).movedim(-1, {{dim}})",
                {"dim": axis + 1})


def _linear(c: Ctx) -> Lowered:
    bias = bool(c.node.args["bias"])
    axis = Linear.axis(c.ins[0], c.node.args)
    init = Code(f"nn.Linear({{in_features}}, {{out_features}}, bias={bias})",
                {"in_features": c.ins[0][axis], "out_features": c.node.shape[axis]})
    return Lowered(init, _on_axis(c, axis))


def _layer_norm(c: Ctx) -> Lowered:
    axis = LayerNorm.axis(c.ins[0], c.node.args)
    eps = float_arg(c.node.args, "eps")
    extra = ", eps={eps}" if eps != 1e-5 else ""
    init = Code(f"nn.LayerNorm({{normalized_shape}}{extra})",
                {"normalized_shape": c.ins[0][axis], "eps": eps})
    return Lowered(init, _on_axis(c, axis))


def _group_norm(c: Ctx) -> Lowered:
    eps = float_arg(c.node.args, "eps")
    extra = ", eps={eps}" if eps != 1e-5 else ""
    init = Code(f"nn.GroupNorm({{num_groups}}, {{num_channels}}{extra})",
                {"num_groups": int_arg(c.node.args, "groups"), "num_channels": c.ins[0][0],
                 "eps": eps})
    return Lowered(init, Code(f"{{out}} = {c.attr}({c.x[0]})"))


def _conv1d(c: Ctx) -> Lowered:
    a = c.node.args
    groups, dilation = int_arg(a, "groups"), int_arg(a, "dilation")
    extra = ", dilation={dilation}" if dilation != 1 else ""
    extra += ", groups={groups}" if groups != 1 else ""
    holes: dict[str, HoleValue] = {
        "in_channels": c.ins[0][0], "out_channels": c.node.shape[0],
        "kernel_size": int_arg(a, "kernel"), "stride": int_arg(a, "stride"),
        "padding": Conv1d.padding(a), "dilation": dilation, "groups": groups,
    }
    init = Code("nn.Conv1d({in_channels}, {out_channels}, kernel_size={kernel_size}, "
                "stride={stride}, padding={padding}" + extra + f", bias={bool(a['bias'])})",
                holes)
    return Lowered(init, Code(f"{{out}} = {c.attr}({c.x[0]})"))


def _param(c: Ctx) -> Lowered:
    # The same tensor for every sample: expanded over the input's batch (a view).
    # The sizes are written out, not read from the parameter, so that torch.fx traces it.
    sizes, holes = _sizes("size", c.node.shape)
    init = Code(f"nn.Parameter(torch.empty{sizes})", holes)
    return Lowered(init, Code(f"{{out}} = {c.attr}.expand({c.x[0]}.shape[0], "
                              f"*{sizes})", holes))


# ------------------------------------------------------------------ stateless ops


def _pool_options(c: Ctx) -> tuple[dict[str, HoleValue], str]:
    """A pool's numbers (holes) and its options past them, the function's and the module's."""
    a = c.node.args
    kernel = _pair(pair_arg(a, "kernel"))
    stride = _pair(pair_arg(a, "stride")) if a["stride"] is not None else kernel
    options = ", ceil_mode=True" if a["ceil_mode"] else ""
    if not a.get("count_include_pad", True):
        options += ", count_include_pad=False"
    return {"kernel": kernel, "stride": stride,
            "padding": _pair(pair_arg(a, "padding"))}, options


def _pool(fn: str) -> Callable[[Ctx], Lowered]:
    def emit(c: Ctx) -> Lowered:
        holes, options = _pool_options(c)
        return _forward(
            f"{{out}} = F.{fn}({c.x[0]}, {{kernel}}, {{stride}}, {{padding}}{options})", **holes)

    return emit


def _pool_module(cls: str) -> Callable[[Ctx], Code]:
    def emit(c: Ctx) -> Code:
        holes, options = _pool_options(c)
        return Code(f"nn.{cls}(kernel_size={{kernel}}, stride={{stride}}, padding={{padding}}"
                    f"{options})", holes)

    return emit


def _fixed(text: str) -> Callable[[Ctx], Code]:
    """A module form with no arguments (`nn.Sigmoid()`)."""
    return lambda c: Code(text)


def _activation_module(cls: str) -> Callable[[Ctx], Code]:
    """`nn.ReLU(inplace=True)` where the forward may overwrite the input, as torchvision's."""
    return lambda c: Code(f"nn.{cls}(inplace=True)" if c.inplace else f"nn.{cls}()")


def _unary(fn: str, module: str) -> Lowering:
    return Lowering(lambda c: _forward(f"{{out}} = {fn}({c.x[0]})"), overwritable=False,
                    module=_fixed(module))


def _relu(c: Ctx) -> Lowered:
    return _forward(f"{{out}} = torch.relu_({c.x[0]})" if c.inplace
                    else f"{{out}} = torch.relu({c.x[0]})")


def _relu6(c: Ctx) -> Lowered:
    inplace = ", inplace=True" if c.inplace else ""
    return _forward(f"{{out}} = F.relu6({c.x[0]}{inplace})")


def _hardswish(c: Ctx) -> Lowered:
    inplace = ", inplace=True" if c.inplace else ""
    return _forward(f"{{out}} = F.hardswish({c.x[0]}{inplace})")


def _leaky_relu(c: Ctx) -> Lowered:
    slope = float_arg(c.node.args, "negative_slope")
    # Autograd refuses the backward of the in-place form with a negative slope.
    inplace = ", inplace=True" if c.inplace and slope >= 0 else ""
    return _forward(f"{{out}} = F.leaky_relu({c.x[0]}, {{negative_slope}}{inplace})",
                    negative_slope=slope)


def _leaky_relu_module(c: Ctx) -> Code:
    slope = float_arg(c.node.args, "negative_slope")
    inplace = ", inplace=True" if c.inplace and slope >= 0 else ""
    return Code(f"nn.LeakyReLU({{negative_slope}}{inplace})", {"negative_slope": slope})


# timm's `drop_path` (timm.layers, scale_by_keep=True), drawing the same random numbers in
# the same order: under one seed the mask is timm's DropPath's.
DROP_PATH = '''def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth (timm's drop_path): in training, each sample is zeroed with
    probability p and the others are scaled by 1 / (1 - p); the identity in eval mode."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    if keep > 0.0:
        mask.div_(keep)
    return x * mask'''


def _drop_path(c: Ctx) -> Lowered:
    return _forward(f"{{out}} = drop_path({c.x[0]}, {{p}}, self.training)",
                    p=float_arg(c.node.args, "p"))


def _dropout(c: Ctx) -> Lowered:
    return _forward(f"{{out}} = F.dropout({c.x[0]}, {{p}}, self.training)",
                    p=float_arg(c.node.args, "p"))


def _dropout_module(c: Ctx) -> Code:
    return Code("nn.Dropout({p})", {"p": float_arg(c.node.args, "p")})


def _slice(c: Ctx) -> Lowered:
    axis, start, stop = Slice.bounds(c.ins[0], c.node.args)
    skip = ":, " * (axis + 1)  # the batch and the axes before
    return _forward(f"{{out}} = {c.x[0]}[{skip}{{start}}:{{stop}}]", start=start, stop=stop)


def _pad(c: Ctx) -> Lowered:
    # F.pad lists (before, after) from the last axis backwards.
    axis = Pad.axis(c.ins[0], c.node.args)
    pads = (0, 0) * (len(c.ins[0]) - 1 - axis) + (int_arg(c.node.args, "before"),
                                                   int_arg(c.node.args, "after"))
    text, holes = _sizes("pad", pads)
    return _forward(f"{{out}} = F.pad({c.x[0]}, {text})", **holes)


def _zeropad(c: Ctx) -> Lowered:
    # Option A (He et al. 2015): subsample by the stride, then append zero channels.
    s = int_arg(c.node.args, "stride")
    sub = f"{c.x[0]}[:, :, ::{{stride}}, ::{{stride}}]" if s != 1 else c.x[0]
    return _forward(f"{{out}} = F.pad({sub}, (0, 0, 0, 0, 0, {{channels}}))",
                    stride=s, channels=c.node.shape[0] - c.ins[0][0])


# ------------------------------------------------------------------ primitive merges


def _one_input(node: Node) -> bool:
    return len(node.inputs) == 1


def _add(c: Ctx) -> Lowered:
    if len(c.x) == 1:  # `add(t)`: continues from `t`
        return _forward(f"{{out}} = {c.x[0]}")
    if c.inplace:
        return _forward("{out} += " + " + ".join(c.x[1:]))
    return _forward("{out} = " + " + ".join(c.x))


def _concat(c: Ctx) -> Lowered:
    if len(c.x) == 1:  # `cat(t)`: continues from `t`
        return _forward(f"{{out}} = {c.x[0]}")
    return _forward(f"{{out}} = torch.cat([{', '.join(c.x)}], 1)")


def _rescale(c: Ctx) -> Lowered:
    # The product's backward needs neither tensor, so it may overwrite its input.
    factor = float_arg(c.node.args, "factor")
    if c.inplace:
        return _forward("{out} *= {factor}", factor=factor)
    return _forward(f"{{out}} = {c.x[0]} * {{factor}}", factor=factor)


def _alpha(c: Ctx) -> Lowered:
    init = Code("nn.Parameter(torch.empty({shape}))", {"shape": c.node.shape[:1] + (1,) * (
        len(c.node.shape) - 1) if c.node.args["per_channel"] else (1,)})
    return Lowered(init, Code(f"{{out}} = {c.attr} * {c.x[0]}"))


def _weighted_sum(c: Ctx) -> Lowered:
    init = Code("nn.Parameter(torch.empty({branches}))", {"branches": (len(c.x),)})
    terms = " + ".join(f"w[{i}] * {x}" for i, x in enumerate(c.x))
    return Lowered(init, Code(f"w = torch.softmax({c.attr}, 0)\n{{out}} = {terms}"))


def _highway(c: Ctx) -> Lowered:
    t, h, x = c.x
    return _forward(f"{{out}} = {t} * {h} + (1 - {t}) * {x}")


def _dual(c: Ctx) -> Lowered:
    s, f = c.x
    return _forward(
        f"{{out}} = torch.cat([{s}[:, :{{r}}] + {f}[:, :{{r}}], {s}[:, {{r}}:], "
        f"{f}[:, {{r}}:]], 1)",
        r=int_arg(c.node.args, "r"),
    )


def _group_sum(c: Ctx) -> Lowered:
    # The g branches' outputs sit side by side on the channel axis; sum them.
    return _forward(f"{{out}} = {c.x[0]}.unflatten(1, ({{groups}}, -1)).sum(1)",
                    groups=int_arg(c.node.args, "groups"))


def _input(c: Ctx) -> Lowered:
    raise AssertionError("the input is the forward's argument, not a statement")


# ------------------------------------------------------------------ dense prediction


def _conv_transpose(c: Ctx) -> Lowered:
    a = c.node.args
    output_padding = _pair(pair_arg(a, "output_padding"))
    groups, dilation = int_arg(a, "groups"), _pair(pair_arg(a, "dilation"))
    # nn.ConvTranspose2d's own order; arguments at their default are left out.
    extra = ", output_padding={output_padding}" if output_padding != 0 else ""
    extra += ", groups={groups}" if groups != 1 else ""
    extra += f", bias={bool(a['bias'])}"
    extra += ", dilation={dilation}" if dilation != 1 else ""
    holes: dict[str, HoleValue] = {
        "in_channels": c.ins[0][0],
        "out_channels": c.node.shape[0],
        "kernel_size": _pair(pair_arg(a, "kernel")),
        "stride": _pair(pair_arg(a, "stride")),
        "padding": _pair(pair_arg(a, "padding")),
        "output_padding": output_padding,
        "groups": groups,
        "dilation": dilation,
    }
    init = Code("nn.ConvTranspose2d({in_channels}, {out_channels}, kernel_size={kernel_size}, "
                "stride={stride}, padding={padding}" + extra + ")", holes)
    return Lowered(init, Code(f"{{out}} = {c.attr}({c.x[0]})"))


# torchvision.ops.misc.FrozenBatchNorm2d, line for line (its forward, its dropping of a
# BatchNorm checkpoint's num_batches_tracked), so the generated file needs no torchvision.
FROZEN_BN = '''class FrozenBatchNorm2d(nn.Module):
    """torchvision's FrozenBatchNorm2d: batch norm with fixed statistics and affine
    parameters, all four buffers; y = x * scale + (bias - running_mean * scale), with
    scale = weight / sqrt(running_var + eps)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # A BatchNorm2d checkpoint loads too: its counter is not a FrozenBatchNorm2d's.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.reshape(1, -1, 1, 1)
        b = self.bias.reshape(1, -1, 1, 1)
        rv = self.running_var.reshape(1, -1, 1, 1)
        rm = self.running_mean.reshape(1, -1, 1, 1)
        scale = w * (rv + self.eps).rsqrt()
        bias = b - rm * scale
        return x * scale + bias

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"'''


def _frozen_bn(c: Ctx) -> Lowered:
    eps = float_arg(c.node.args, "eps")
    extra = ", eps={eps}" if eps != 1e-5 else ""
    init = Code(f"FrozenBatchNorm2d({{num_features}}{extra})",
                {"num_features": c.ins[0][0], "eps": eps})
    return Lowered(init, Code(f"{{out}} = {c.attr}({c.x[0]})"))


def _upsample_options(c: Ctx) -> str:
    options = f', mode="{c.node.args["mode"]}"'
    if c.node.args["mode"] == "bilinear":
        options += f", align_corners={bool(c.node.args['align_corners'])}"
    return options


def _upsample(c: Ctx) -> Lowered:
    a = c.node.args
    options = _upsample_options(c)
    if a["to"] is None:
        return _forward(f"{{out}} = F.interpolate({c.x[0]}, scale_factor={{scale}}{options})",
                        scale=int_arg(a, "scale"))
    # The size is read at run time, so the module runs at other input sizes (as
    # torchvision's FCN upsamples to its input's size).
    ref = c.x[int_arg(a, "to")]
    return _forward(f"{{out}} = F.interpolate({c.x[0]}, size={ref}.shape[-2:]{options})")


def _upsample_module(c: Ctx) -> Code | None:
    if c.node.args["to"] is not None:  # reads a second tensor: no module of one input
        return None
    return Code(f"nn.Upsample(scale_factor={{scale}}{_upsample_options(c)})",
                {"scale": int_arg(c.node.args, "scale")})


# ------------------------------------------------------------------ general tensor ops


def _mul_const(c: Ctx) -> Lowered:
    if c.inplace:
        return _forward("{out} *= {k}", k=float_arg(c.node.args, "k"))
    return _forward(f"{{out}} = {c.x[0]} * {{k}}", k=float_arg(c.node.args, "k"))


def _rsqrt(c: Ctx) -> Lowered:
    if float_arg(c.node.args, "eps") == 0.0:
        return _forward(f"{{out}} = torch.rsqrt({c.x[0]})")
    return _forward(f"{{out}} = torch.rsqrt({c.x[0]} + {{eps}})",
                    eps=float_arg(c.node.args, "eps"))


def _sizes(name: str, values: tuple[int, ...]) -> tuple[str, dict[str, HoleValue]]:
    """A tuple of sizes as one hole per size, `({name}0, {name}1)`: a tuple hole of two
    equal sizes would print as one number (a square kernel's `3`), which a shape is not."""
    holes: dict[str, HoleValue] = {f"{name}{i}": v for i, v in enumerate(values)}
    items = ", ".join(f"{{{k}}}" for k in holes)
    return f"({items}{',' if len(values) == 1 else ''})", holes


def _dims(c: Ctx, arg: str) -> tuple[int, ...]:
    """The per-sample axes of argument `arg` as PyTorch dims (the batch is dim 0)."""
    value = c.node.args[arg]
    axes = value if isinstance(value, tuple) else (value,)
    return tuple(a + 1 for a in resolve_axes(c.node.op, c.ins[0],
                                             [a for a in axes if isinstance(a, int)]))


def _reduce(method: str) -> Callable[[Ctx], Lowered]:
    def emit(c: Ctx) -> Lowered:
        dims = _dims(c, "axes")
        keep = ", keepdim=True" if c.node.args["keepdim"] else ""
        return _forward(f"{{out}} = {c.x[0]}.{method}({{dims}}{keep})",
                        dims=dims[0] if len(dims) == 1 else dims)

    return emit


def _softmax(c: Ctx) -> Lowered:
    return _forward(f"{{out}} = torch.softmax({c.x[0]}, {{dim}})", dim=_dims(c, "axis")[0])


def _reshape(c: Ctx) -> Lowered:
    # The per-sample shape is static; the batch is read from the tensor (flatten, unflatten).
    shape = c.node.shape
    if len(shape) == 1:
        return _forward(f"{{out}} = {c.x[0]}.flatten(1)")
    sizes, holes = _sizes("size", shape)
    return _forward(f"{{out}} = {c.x[0]}.flatten(1).unflatten(1, {sizes})", **holes)


def _permute(c: Ctx) -> Lowered:
    order = c.node.args["order"]
    axes = order if isinstance(order, tuple) else (order,)
    dims = (0, *(a + 1 for a in axes if isinstance(a, int)))
    return _forward(f"{{out}} = {c.x[0]}.permute({{dims}})", dims=dims)


LOWERINGS: dict[str, Lowering] = {
    "conv": Lowering(_conv),
    "bn": Lowering(_bn),
    "linear": Lowering(_linear),
    "maxpool": Lowering(_pool("max_pool2d"), module=_pool_module("MaxPool2d")),
    "avgpool": Lowering(_pool("avg_pool2d"), module=_pool_module("AvgPool2d")),
    "global_avgpool": Lowering(lambda c: _forward(f"{{out}} = F.adaptive_avg_pool2d({c.x[0]}, 1)"),
                               module=_fixed("nn.AdaptiveAvgPool2d(1)")),
    "flatten": Lowering(lambda c: _forward(f"{{out}} = torch.flatten({c.x[0]}, 1)"),
                        overwritable=False, module=_fixed("nn.Flatten()")),
    "relu": Lowering(_relu, inplace=True, overwritable=False, module=_activation_module("ReLU")),
    "relu6": Lowering(_relu6, inplace=True, overwritable=False,
                      module=_activation_module("ReLU6")),
    "hardswish": Lowering(_hardswish, inplace=True, overwritable=False,
                          module=_activation_module("Hardswish")),
    "leaky_relu": Lowering(_leaky_relu, inplace=True, overwritable=False,
                           module=_leaky_relu_module),
    "sigmoid": _unary("torch.sigmoid", "nn.Sigmoid()"),
    "tanh": _unary("torch.tanh", "nn.Tanh()"),
    "silu": Lowering(lambda c: _forward(f"{{out}} = F.silu({c.x[0]})"), module=_fixed("nn.SiLU()")),
    "gelu": Lowering(lambda c: _forward(f"{{out}} = F.gelu({c.x[0]})"), module=_fixed("nn.GELU()")),
    # An alias is no op at all: a chain runs through it without a module.
    "identity": Lowering(lambda c: _forward(f"{{out}} = {c.x[0]}"), overwritable=False,
                         alias=lambda node: True),
    "dropout": Lowering(_dropout, overwritable=False, module=_dropout_module),
    "drop_path": Lowering(_drop_path, overwritable=False, helpers=(DROP_PATH,)),
    "slice": Lowering(_slice, overwritable=False),
    "zeropad": Lowering(_zeropad),
    "input": Lowering(_input, overwritable=False),
    "add": Lowering(_add, inplace=True, alias=_one_input),
    "mul": Lowering(lambda c: _forward(f"{{out}} = {c.x[0]} * {c.x[1]}")),
    "concat": Lowering(_concat, alias=_one_input),
    "rescale": Lowering(_rescale, inplace=True),
    "alpha": Lowering(_alpha),
    "weighted_sum": Lowering(_weighted_sum),
    "highway": Lowering(_highway),
    "dual": Lowering(_dual),
    "group_sum": Lowering(_group_sum),
    "conv_transpose": Lowering(_conv_transpose),
    "frozen_bn": Lowering(_frozen_bn, helpers=(FROZEN_BN,)),
    "upsample": Lowering(_upsample, module=_upsample_module),
    "neg": Lowering(lambda c: _forward(f"{{out}} = -{c.x[0]}")),
    "mul_const": Lowering(_mul_const, inplace=True),
    "sub": Lowering(lambda c: _forward(f"{{out}} = {c.x[0]} - {c.x[1]}")),
    "softmax": Lowering(_softmax, module=lambda c: Code("nn.Softmax({dim})",
                                                        {"dim": _dims(c, "axis")[0]})),
    "mean": Lowering(_reduce("mean")),
    "sum": Lowering(_reduce("sum")),
    "amax": Lowering(_reduce("amax")),
    # Views of their input: never overwritten in place.
    "reshape": Lowering(_reshape, overwritable=False),
    "permute": Lowering(_permute, overwritable=False),
    "layer_norm": Lowering(_layer_norm),
    "group_norm": Lowering(_group_norm),
    # A view of the parameter: never overwritten in place.
    "param": Lowering(_param, overwritable=False),
    "conv1d": Lowering(_conv1d),
    "matmul": Lowering(lambda c: _forward(f"{{out}} = {c.x[0]} @ {c.x[1]}")),
    "pad": Lowering(_pad),
    "rsqrt": Lowering(_rsqrt),
    "std_conv": Lowering(_std_conv, helpers=(STD_CONV,)),
}

# The names the helpers define at the top of a generated file: no generated class may take one.
HELPER_NAMES = frozenset(
    line.split()[1].split("(")[0].rstrip(":")
    for lowering in LOWERINGS.values() for helper in lowering.helpers
    for line in helper.splitlines() if line.startswith(("def ", "class "))
)
