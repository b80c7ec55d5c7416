"""The general tensor ops of issue 17 (item 1), from which attention blocks are written: the
built-in functions `log2`, `exp` and friends; `neg`, `mul_const`; the joins `sub`, `matmul`
and the broadcasting `add`; `softmax`; `mean`, `sum`, `amax`; `reshape`, `permute`, `pad`
and `slice` on any axis; `layer_norm`, `group_norm`; `linear` on an axis; `conv1d`; `param`.

Each op's output is checked against an independent computation in PyTorch (`torch.softmax`,
`nn.LayerNorm`, timm's `LayerNorm2d`, `nn.GroupNorm`, `nn.Conv1d`, plain tensor arithmetic
on the same weights), in the in-memory module, in the standalone source (`--to python`)
executed on its own, and in ONNX Runtime at opsets 13, 17 and 21. The set is shown to be
enough by writing timm 1.0.31's modules with it and comparing keys, shapes and outputs:
EcaModule, CbamModule, SelectiveKernelAttn (3 paths), SplitAttn (radix 4 × cardinality 2,
and 2 × 1), RadixSoftmax, GlobalContext, BottleneckAttn (BoTNet's multi-head self-attention
with relative position logits) and ConvNeXtBlock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import resdsl  # noqa: E402
from resdsl.backends.torch_module import build_module  # noqa: E402
from resdsl.diagnostics import SpecError  # noqa: E402
from resdsl.ir.ops import OPS, PER_CHANNEL, USER_OPS  # noqa: E402
from tests.test_dense_ops import onnx_run, randomised, standalone  # noqa: E402

OPSETS = (13, 17, 21)
Tensors = dict[str, Any]


def load(tmp_path: Path, text: str, **params: Any) -> resdsl.Network:
    path = tmp_path / "spec.res"
    path.write_text(text, encoding="utf-8")
    return resdsl.load(str(path), **params)


def codes(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load(tmp_path, text)
    return [d.code for d in info.value.diagnostics]


def value(tmp_path: Path, expr: str) -> Any:
    """The value of an expression, read back from a conv's width (times 1000, rounded)."""
    net = load(tmp_path, f"network n {{ input [1, 1, 1]; conv(round(1000 * ({expr})), 1) }}")
    return net.output_shape[0] / 1000


def agrees(tmp_path: Path, spec: str, reference: Callable[[Any, Tensors], Any],
           batch: int = 2, atol: float = 1e-5) -> resdsl.Network:
    """The network of `spec`, with random weights, computes `reference(x, state)` in the
    in-memory module, the standalone source and ONNX Runtime at every opset."""
    net = load(tmp_path, spec)
    state = randomised(net, seed=1)
    weights = {k: torch.from_numpy(v) for k, v in state.items()}
    x = torch.randn(batch, *net.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = reference(x, weights)
        assert tuple(want.shape) == (batch, *net.output_shape)
        for model in (build_module(net.graph, state), standalone(net)()):
            model.load_state_dict(weights)
            torch.testing.assert_close(model.eval()(x), want, rtol=1e-5, atol=atol)
    for opset in OPSETS:
        y, _ = onnx_run(net, state, x.numpy(), tmp_path, opset)
        np.testing.assert_allclose(y, want.numpy(), rtol=1e-4, atol=10 * atol)
    return net


# ------------------------------------------------------------------ the op table


def test_the_ops_are_in_the_vocabulary() -> None:
    assert {"neg", "mul_const"} <= set(USER_OPS)
    assert {"neg", "mul_const"} <= PER_CHANNEL  # elementwise: a group body may hold them
    assert "sub" in OPS and "sub" not in USER_OPS  # a join: `sub(a, b)` makes it
    assert [a.name for a in OPS["mul_const"].args] == ["k"]


# ------------------------------------------------------------------ built-in functions


def test_math_functions(tmp_path: Path) -> None:
    assert value(tmp_path, "log2(64)") == 6
    assert value(tmp_path, "log(exp(2))") == 2
    assert value(tmp_path, "sqrt(2)") == round(1000 * math.sqrt(2)) / 1000
    assert value(tmp_path, "ceil(2.1) + floor(2.9)") == 5
    # ECA's kernel size from the channels (timm's EcaModule: gamma 2, beta 1), made odd.
    for c, k in ((64, 3), (256, 5), (512, 5), (2048, 7)):
        t = f"int(abs((log2({c}) + 1) / 2))"
        assert value(tmp_path, f"{t} if {t} % 2 == 1 else {t} + 1") == k
    # `ceil` and `floor` give integers, which ops take as counts.
    net = load(tmp_path, "network n { input [1, 4, 4]; repeat ceil(1.5) { conv(floor(8.7), 1) } }")
    assert net.output_shape == (8, 4, 4)


def test_math_function_misuse(tmp_path: Path) -> None:
    head = "network n { input [1, 4, 4]; conv("
    assert codes(tmp_path, head + "log2(0), 1) }") == ["E0408"]
    assert codes(tmp_path, head + "log(-1), 1) }") == ["E0408"]
    assert codes(tmp_path, head + "sqrt(-4), 1) }") == ["E0408"]
    assert codes(tmp_path, head + "exp(1000), 1) }") == ["E0404"]
    assert codes(tmp_path, head + "exp(1, 2), 1) }") == ["E0402"]
    assert codes(tmp_path, head + 'log2("a"), 1) }') == ["E0401"]
    assert codes(tmp_path, head + "lg2(8), 1) }") == ["E0213"]


# ------------------------------------------------------------------ elementwise


def test_neg_and_mul_const(tmp_path: Path) -> None:
    spec = "network n { input [3, 5, 5]; c: conv(4, 3); neg; mul_const(0.25); relu }"
    agrees(tmp_path, spec, lambda x, w: torch.relu(
        -torch.nn.functional.conv2d(x, w["c.weight"], padding=1) * 0.25))


def test_sub_and_a_broadcasting_add(tmp_path: Path) -> None:
    """`sub(a, b)` and `add(a, b)` with b broadcast over a: global context's fusion add
    (`x + ctx`, ctx C×1×1) and a mean subtracted."""
    spec = """network n {
        input [4, 6, 5]
        x = in
        c: conv(4, 1)
        y = in
        global_avgpool
        g = in
        sub(x, g)
        add(in, g)
        z = in
        sub(z, y)
    }"""

    def reference(x: Any, w: Tensors) -> Any:
        y = torch.nn.functional.conv2d(x, w["c.weight"])
        g = y.mean((2, 3), keepdim=True)
        return (x - g + g) - y

    agrees(tmp_path, spec, reference)


def test_elementwise_join_misuse(tmp_path: Path) -> None:
    head = "network n { input [4, 8, 8]; x = in; "
    # The second tensor must broadcast over the first: same rank, its sizes or 1.
    assert codes(tmp_path, head + "global_avgpool; g = in; sub(g, x) }") == ["E0320"]
    assert codes(tmp_path, head + "conv(8, 1); y = in; sub(x, y) }") == ["E0320"]
    assert codes(tmp_path, head + "flatten; y = in; sub(x, y) }") == ["E0320"]
    assert codes(tmp_path, head + "global_avgpool; g = in; add(g, x) }") == ["E0301"]
    assert codes(tmp_path, head + "sub(x, x, x) }") == ["E0402"]
    assert codes(tmp_path, head + "sub(x) }") == ["E0402"]
    with pytest.raises(SpecError) as info:
        load(tmp_path, head + "global_avgpool\n g = in\n sub(g, x) }")
    (d,) = info.value.diagnostics
    assert d.message == "`sub`'s second tensor 4×8×8 does not broadcast over its first 4×1×1"
    assert [s.message for s in d.secondary] == ["first: 4×1×1", "second: 4×8×8"]
    assert d.help is not None and "neg" in d.help


# ------------------------------------------------------------------ softmax and reductions


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_equals_torch_softmax(tmp_path: Path, axis: int) -> None:
    spec = f"network n {{ input [5, 4, 3]; c: conv(6, 1); softmax({axis}) }}"
    agrees(tmp_path, spec, lambda x, w: torch.softmax(
        torch.nn.functional.conv2d(x, w["c.weight"]), axis % 3 + 1))


@pytest.mark.parametrize(("call", "method", "dims", "keep"), [
    ("mean(0)", "mean", (1,), True),            # CBAM's channel mean
    ("amax(0)", "amax", (1,), True),            # and its max
    ("mean([1, 2])", "mean", (2, 3), True),     # a global average
    ("sum([-1, 0], keepdim = false)", "sum", (1, 3), False),
    ("amax(2, keepdim = false)", "amax", (3,), False),
])
def test_reductions_equal_torchs(tmp_path: Path, call: str, method: str,
                                 dims: tuple[int, ...], keep: bool) -> None:
    spec = f"network n {{ input [5, 4, 3]; c: conv(6, 1); {call} }}"
    agrees(tmp_path, spec, lambda x, w: getattr(
        torch.nn.functional.conv2d(x, w["c.weight"]), method)(dims, keepdim=keep))


def test_reduction_and_softmax_misuse(tmp_path: Path) -> None:
    head = "network n { input [4, 8, 8]; "
    assert codes(tmp_path, head + "mean(3) }") == ["E0321"]
    assert codes(tmp_path, head + "mean(-4) }") == ["E0321"]
    assert codes(tmp_path, head + "mean([1, -2]) }") == ["E0321"]  # axis 1 twice
    assert codes(tmp_path, head + "sum([0, 1, 2], keepdim = false) }") == ["E0321"]
    assert codes(tmp_path, head + "flatten; softmax(1) }") == ["E0321"]
    assert codes(tmp_path, head + 'amax("c") }') == ["E0401"]
    assert codes(tmp_path, head + "amax([]) }") == ["E0401"]
    assert codes(tmp_path, head + "softmax(0.5) }") == ["E0403"]
    assert codes(tmp_path, head + "softmax }") == ["E0402"]
    assert load(tmp_path, head + "sum([0, 1, 2]) }").output_shape == (1, 1, 1)


# ------------------------------------------------------------------ reshape and permute


def test_reshape_and_permute_shapes(tmp_path: Path) -> None:
    head = "network n { input [12, 4, 6]; "
    assert load(tmp_path, head + "reshape([3, -1, 24]) }").output_shape == (3, 4, 24)
    assert load(tmp_path, head + "reshape([288]) }").output_shape == (288,)
    assert load(tmp_path, head + "reshape([2, 6, 4, 6]); sum(0, keepdim = false) }"
                ).output_shape == (6, 4, 6)
    assert load(tmp_path, head + "permute([1, 2, 0]) }").output_shape == (4, 6, 12)
    assert load(tmp_path, head + "reshape([12, 24]); permute([1, 0]) }").output_shape == (24, 12)


def test_radix_softmax_equals_timms(tmp_path: Path) -> None:
    """ResNeSt's split attention: the attention logits of `card` groups of `radix` splits,
    softmax over the radix, as timm's RadixSoftmax (`x.view(B, card, radix, -1)
    .transpose(1, 2)`, softmax over dim 1, flattened)."""
    from timm.layers.split_attn import RadixSoftmax

    radix, card, c = 4, 2, 3
    spec = f"""network n {{
        input [{radix * card * c}, 1, 1]
        reshape([{card}, {radix}, -1]); permute([1, 0, 2]); softmax(0)
        reshape([{radix * card * c}, 1, 1])
    }}"""
    agrees(tmp_path, spec, lambda x, w: RadixSoftmax(radix, card)(x).view(x.shape[0], -1, 1, 1))


def test_selective_kernel_attention_equals_timms(tmp_path: Path) -> None:
    """Selective kernel's attention over any number of paths, written with the ops: the
    paths' sum, pooled, reduced, expanded to one logit per path and channel, a softmax over
    the paths, and the paths' sum weighted by it (timm's SelectiveKernelAttn and the sum
    of SelectiveKernel.forward), with 3 paths."""
    from timm.layers.selective_kernel import SelectiveKernelAttn

    paths, c, mid = 3, 4, 8
    spec = f"""network n {{
        input [{paths * c}, 5, 5]
        x = in
        reshape([{paths}, {c}, 5, 5]); sum(0, keepdim = false)   # the paths' sum
        global_avgpool
        fc_reduce: conv({mid}, 1); bn: bn; relu
        fc_select: conv({paths * c}, 1)
        reshape([{paths}, {c}, 1, 1]); softmax(0)
        a = in
        x; reshape([{paths}, {c}, 5, 5])
        mul(in, a)
        sum(0, keepdim = false)
    }}"""
    ref = SelectiveKernelAttn(c, paths, mid).eval()

    def reference(x: Any, w: Tensors) -> Any:
        ref.load_state_dict({k: v for k, v in w.items()})
        stacked = x.view(x.shape[0], paths, c, 5, 5)
        return (stacked * ref(stacked)).sum(1)

    agrees(tmp_path, spec, reference)


def test_reshape_and_permute_misuse(tmp_path: Path) -> None:
    head = "network n { input [12, 4, 6]; "
    assert codes(tmp_path, head + "reshape([5, -1]) }") == ["E0322"]
    assert codes(tmp_path, head + "reshape([12, 4, 5]) }") == ["E0322"]
    assert codes(tmp_path, head + "reshape([-1, -1]) }") == ["E0322"]
    assert codes(tmp_path, head + "reshape([0, 288]) }") == ["E0322"]
    assert codes(tmp_path, head + "reshape([1, 1, 1, 1, 1, 1, 288]) }") == ["E0322"]
    assert codes(tmp_path, head + "reshape(2.5) }") == ["E0401"]
    assert codes(tmp_path, head + "permute([1, 0]) }") == ["E0323"]
    assert codes(tmp_path, head + "permute([0, 1, 1]) }") == ["E0323"]
    assert codes(tmp_path, head + 'permute("hwc") }') == ["E0401"]
    # `.h` and `.w` are a feature map's; `.c` the first size of any tensor.
    assert codes(tmp_path, head + "reshape([12, 24]); conv(in.h, 1) }") == ["E0308"]
    assert load(tmp_path, head + "reshape([2, 6, 24]); reshape([in.c * 144]) }"
                ).output_shape == (288,)
    # Ops of a feature map refuse other ranks; bn takes C, C×L and C×H×W.
    assert codes(tmp_path, head + "reshape([2, 6, 4, 6]); conv(4, 1) }") == ["E0308"]
    assert codes(tmp_path, head + "reshape([2, 6, 4, 6]); bn }") == ["E0308"]
    assert load(tmp_path, head + "reshape([12, 24]); bn }").output_shape == (12, 24)


# ------------------------------------------------------------------ norms, per-position
# linear layers, free parameters

CONVNEXT_BLOCK = """
block convnext_block(c, ls = 1e-6) {
    x = in
    conv_dw: conv(c, 7, groups = c, bias = true)
    permute([1, 2, 0])                          # channels last, H×W×C
    norm: layer_norm(axis = -1, eps = 1e-6)
    mlp: { fc1: linear(4 * c, axis = -1); gelu; fc2: linear(c, axis = -1) }
    permute([2, 0, 1])                          # back to C×H×W
    y = in
    gamma: param([c], value = ls)
    reshape([c, 1, 1])
    g = in
    mul(y, g)
    add(in, x)
}
network n { input [8, 9, 9]; convnext_block(8) }
"""


def test_convnext_block_equals_timms(tmp_path: Path) -> None:
    """timm's ConvNeXtBlock (channels-last MLP, 2-D linear weights, the layer scale `gamma`
    of shape [C]): the same keys in the same order, shapes, parameters and MACs (the
    linears' in · out at every position), and its output with random weights."""
    from timm.models.convnext import ConvNeXtBlock

    ref = ConvNeXtBlock(8, ls_init_value=1e-6).eval()

    def reference(x: Any, w: Tensors) -> Any:
        ref.load_state_dict(w)
        return ref(x)

    net = agrees(tmp_path, CONVNEXT_BLOCK, reference)
    assert list(net.state_shapes().items()) == [
        (k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    assert net.counts().params == sum(p.numel() for p in ref.parameters())
    assert net.counts().macs == 81 * (8 * 49 + 2 * 8 * 32)  # dw conv and the two linears, per pixel
    # The layer scale starts at its value, as timm's.
    assert np.all(net.init_state(0)["gamma"] == np.float32(1e-6))


@pytest.mark.parametrize("eps", [1e-5, 1e-6])
def test_layer_norm_channels_first_equals_timms_layernorm2d(tmp_path: Path, eps: float) -> None:
    from timm.layers.norm import LayerNorm2d

    ref = LayerNorm2d(6, eps=eps)
    spec = f"network n {{ input [6, 5, 4]; ln: layer_norm(eps = {eps}) }}"

    def reference(x: Any, w: Tensors) -> Any:
        ref.load_state_dict({k[3:]: v for k, v in w.items()})
        return ref(x)

    agrees(tmp_path, spec, reference)


def test_layer_norm_channels_last_equals_nn_layernorm(tmp_path: Path) -> None:
    ref = torch.nn.LayerNorm(6)
    spec = "network n { input [6, 5, 4]; permute([1, 2, 0]); ln: layer_norm(axis = -1) }"

    def reference(x: Any, w: Tensors) -> Any:
        ref.load_state_dict({k[3:]: v for k, v in w.items()})
        return ref(x.permute(0, 2, 3, 1))

    agrees(tmp_path, spec, reference)


@pytest.mark.parametrize("shape", [(8, 5, 4), (8, 12)])
def test_group_norm_equals_nn_groupnorm(tmp_path: Path, shape: tuple[int, ...]) -> None:
    ref = torch.nn.GroupNorm(4, 8, eps=1e-3)
    spec = f"network n {{ input [{', '.join(map(str, shape))}]; gn: group_norm(4, eps = 0.001) }}"
    if len(shape) == 2:
        spec = "network n { input [96]; reshape([8, 12]); gn: group_norm(4, eps = 0.001) }"

    def reference(x: Any, w: Tensors) -> Any:
        ref.load_state_dict({k[3:]: v for k, v in w.items()})
        return ref(x.view(x.shape[0], *shape))

    agrees(tmp_path, spec, reference)


def test_linear_on_an_axis_equals_nn_linear(tmp_path: Path) -> None:
    """`linear(n, axis = a)`: nn.Linear on that axis at every position; on the channels of a
    feature map (axis 0) it is a 1×1 conv with a 2-D weight."""
    spec = "network n { input [6, 5, 4]; fc: linear(3, axis = 0); fc2: linear(2, axis = -1) }"

    def reference(x: Any, w: Tensors) -> Any:
        y = torch.einsum("oc,nchw->nohw", w["fc.weight"], x) + w["fc.bias"].view(1, -1, 1, 1)
        return torch.nn.functional.linear(y, w["fc2.weight"], w["fc2.bias"])

    net = agrees(tmp_path, spec, reference)
    assert net.state_shapes() == {"fc.weight": (3, 6), "fc.bias": (3,), "fc2.weight": (2, 4),
                                  "fc2.bias": (2,)}
    assert net.counts().macs == 6 * 3 * 20 + 4 * 2 * 15


def test_param_is_a_free_learnable_tensor(tmp_path: Path) -> None:
    """`param(shape, value, std)`: a parameter of any shape at the statement's path, the
    same for every sample, starting at value + std · N(0, 1)."""
    spec = """network n {
        input [4, 3, 5]
        x = in
        table: param([4, 3, 5], std = 0.02)
        t = in
        x; sub(in, t)
    }"""
    net = agrees(tmp_path, spec, lambda x, w: x - w["table"])
    assert net.state_shapes() == {"table": (4, 3, 5)} and net.counts().params == 60
    start = net.init_state(0)["table"]
    assert 0.005 < float(start.std()) < 0.04 and abs(float(start.mean())) < 0.01
    assert np.all(load(tmp_path, "network n { input [2]; p: param([3], value = 2.5) }"
                       ).init_state(0)["p"] == np.float32(2.5))


def test_norm_linear_and_param_misuse(tmp_path: Path) -> None:
    head = "network n { input [6, 5, 4]; "
    assert codes(tmp_path, head + "layer_norm(axis = 3) }") == ["E0321"]
    assert codes(tmp_path, head + "layer_norm(eps = 0) }") == ["E0408"]
    assert codes(tmp_path, head + "group_norm(4) }") == ["E0304"]
    assert codes(tmp_path, head + "flatten; group_norm(2) }") == ["E0308"]
    assert codes(tmp_path, head + "linear(3) }") == ["E0308"]  # forgot flatten, as before
    assert codes(tmp_path, head + "linear(3, axis = -4) }") == ["E0321"]
    assert codes(tmp_path, head + "param([0, 3]) }") == ["E0408"]
    assert codes(tmp_path, head + "param([3], std = -1) }") == ["E0408"]
    assert codes(tmp_path, head + "param(3.5) }") == ["E0401"]


# ------------------------------------------------------------------ conv1d

ECA = """
# ECA (Wang et al. 2020), timm's EcaModule: a 1-D convolution across the pooled channels,
# its kernel from the channels.
block eca(gamma = 2, beta = 1) {
    c = in.c
    t = int(abs((log2(c) + beta) / gamma))
    k = max(t if t % 2 == 1 else t + 1, 3)
    scale { global_avgpool; reshape([1, c]); conv: conv1d(1, k); sigmoid; reshape([c, 1, 1]) }
}
network n(c = 64) { input [c, 6, 5]; eca() }
"""


@pytest.mark.parametrize(("c", "k"), [(64, 3), (256, 5)])
def test_eca_equals_timms(tmp_path: Path, c: int, k: int) -> None:
    from timm.layers.eca import EcaModule

    ref = EcaModule(c).eval()
    assert ref.conv.kernel_size == (k,)

    def reference(x: Any, w: Tensors) -> Any:
        ref.load_state_dict(w)
        return ref(x)

    net = agrees(tmp_path, ECA.replace("c = 64", f"c = {c}"), reference)
    assert net.state_shapes() == {"conv.weight": (1, 1, k)}
    assert net.counts().macs == c * k  # one output per channel, k taps each


def test_conv1d_equals_nn_conv1d(tmp_path: Path) -> None:
    ref = torch.nn.Conv1d(6, 4, 5, stride=2, padding=1, dilation=2, groups=2, bias=True)
    spec = """network n {
        input [6, 4, 5]
        reshape([6, 20])
        c: conv1d(4, 5, stride = 2, padding = 1, dilation = 2, groups = 2, bias = true)
    }"""

    def reference(x: Any, w: Tensors) -> Any:
        ref.load_state_dict({k[2:]: v for k, v in w.items()})
        return ref(x.view(x.shape[0], 6, 20))

    net = agrees(tmp_path, spec, reference)
    assert net.output_shape == (4, 7)  # (20 + 2 − 2·4 − 1) // 2 + 1
    assert net.counts().macs == 4 * 7 * 3 * 5


def test_conv1d_misuse(tmp_path: Path) -> None:
    head = "network n { input [6, 4, 5]; "
    assert codes(tmp_path, head + "conv1d(4, 3) }") == ["E0308"]
    assert codes(tmp_path, head + "reshape([6, 20]); conv1d(4, 3, groups = 4) }") == ["E0304"]
    assert codes(tmp_path, head + "reshape([6, 20]); conv1d(4, 30, padding = 0) }") == ["E0307"]
    assert codes(tmp_path, head + "reshape([6, 20]); conv1d(4, [1, 3]) }") == ["E0401"]


# ------------------------------------------------------------------ matmul, pad, slice on
# an axis: multi-head self-attention

BOT_ATTN = """
# BoTNet's multi-head self-attention with relative position logits (Srinivas et al. 2021),
# timm's BottleneckAttn at stride 1: heads × positions × d, q·kᵀ/√d plus the relative
# logits of height and width, softmax over the positions, times v.
block rel_logits(q, table, n, m, heads, d, order) {
    # q: heads × n × m × d; table: (2m − 1) × d; → heads × n × m × m, permuted by `order`.
    table; permute([1, 0]); reshape([1, 1, d, 2 * m - 1]); t = in
    matmul(q, t)                                        # heads × n × m × (2m − 1)
    reshape([heads * n, m, 2 * m - 1]); pad(0, 1, axis = -1)
    reshape([heads * n, 2 * m * m]); pad(0, m - 1, axis = -1)
    reshape([heads * n, m + 1, 2 * m - 1])
    slice(0, m, axis = 1); slice(m - 1, 2 * m - 1, axis = 2)
    reshape([heads, n, 1, m, m]); permute(order)
}

block bot_attn(c, heads, h, w) {
    d = c // heads
    qkv: conv(3 * c, 1)
    x = in
    slice(0, c); reshape([heads, d, h * w]); permute([0, 2, 1]); q = in      # heads × hw × d
    x; slice(c, 2 * c); reshape([heads, d, h * w]); k = in                  # heads × d × hw
    x; slice(2 * c, 3 * c); reshape([heads, d, h * w]); permute([0, 2, 1]); v = in
    matmul(q, k); mul_const(d ** -0.5); reshape([heads, h, w, h, w]); logits = in
    q; reshape([heads, h, w, d]); qw = in
    permute([0, 2, 1, 3]); qh = in                                           # heads × w × h × d
    pos_embed.height_rel: param([2 * h - 1, d], std = d ** -0.5); th = in
    pos_embed.width_rel: param([2 * w - 1, d], std = d ** -0.5); tw = in
    rel_logits(qh, th, w, h, heads, d, [0, 3, 1, 4, 2]); rh = in    # heads × h × w × h × 1
    rel_logits(qw, tw, h, w, heads, d, [0, 1, 3, 2, 4]); rw = in    # heads × h × w × 1 × w
    add(logits, rh, rw)
    reshape([heads, h * w, h * w]); softmax(-1); a = in
    matmul(a, v); permute([0, 2, 1]); reshape([c, h, w])
}
network n { input [16, 4, 5]; bot_attn(16, 2, 4, 5) }
"""


def test_botnet_attention_equals_timms(tmp_path: Path) -> None:
    """timm's BottleneckAttn (4×5 positions, 2 heads of 8): its keys and shapes, and its
    output with random weights, relative position tables included. MACs: the qkv conv and
    the two products, q·kᵀ (heads · hw · hw · d) and attn·v, and the relative logits' q·tᵀ."""
    from timm.layers.bottleneck_attn import BottleneckAttn

    ref = BottleneckAttn(16, 16, feat_size=(4, 5), num_heads=2).eval()

    def reference(x: Any, w: Tensors) -> Any:
        ref.load_state_dict(w)
        return ref(x)

    net = agrees(tmp_path, BOT_ATTN, reference, atol=1e-4)
    assert net.state_shapes() == {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert list(net.state_shapes()) == list(ref.state_dict())
    hw, d = 20, 8
    assert net.counts().macs == (48 * 16 * hw + 2 * (2 * hw * hw * d)
                                 + 2 * 4 * 5 * 9 * d + 2 * 5 * 4 * 7 * d)


def test_matmul_pad_and_slice_on_an_axis(tmp_path: Path) -> None:
    spec = """network n {
        input [6, 4, 5]
        x = in
        reshape([2, 3, 20]); a = in
        x; reshape([2, 20, 3]); slice(1, 3, axis = -1); pad(2, 1, axis = 2); b = in   # 2×20×5
        matmul(a, b)                                                                 # 2×3×5
    }"""

    def reference(x: Any, w: Tensors) -> Any:
        a = x.view(-1, 2, 3, 20)
        b = torch.nn.functional.pad(x.view(-1, 2, 20, 3)[..., 1:3], (2, 1))
        return a @ b

    net = agrees(tmp_path, spec, reference)
    assert net.counts().macs == 2 * 3 * 5 * 20


def test_matmul_pad_and_slice_misuse(tmp_path: Path) -> None:
    head = "network n { input [6, 4, 5]; x = in; "
    assert codes(tmp_path, head + "reshape([6, 20]); a = in; matmul(a, x) }") == ["E0324"]
    assert codes(tmp_path, head + "matmul(x, x) }") == ["E0324"]  # 5 columns, 4 rows
    # Leading sizes 3 and 2: neither equal nor 1.
    assert codes(tmp_path, head + "x; reshape([3, 2, 4, 5]); z = in; "
                 "reshape([2, 3, 5, 4]); matmul(z, in) }") == ["E0324"]
    assert codes(tmp_path, head + "matmul(x) }") == ["E0402"]
    plain = "network n { input [6, 4, 5]; "
    assert codes(tmp_path, plain + "flatten; f = in; matmul(f, f) }") == ["E0324"]
    assert codes(tmp_path, plain + "pad(1, 1, axis = 3) }") == ["E0321"]
    assert codes(tmp_path, plain + "pad(-1, 1) }") == ["E0408"]
    assert codes(tmp_path, plain + "slice(0, 6, axis = 2) }") == ["E0310"]
    assert codes(tmp_path, plain + "slice(0, 2, axis = -4) }") == ["E0321"]
    with pytest.raises(SpecError) as info:
        load(tmp_path, head + "matmul(x, x) }")
    (d,) = info.value.diagnostics
    assert [s.message for s in d.secondary] == ["first: 6×4×5", "second: 6×4×5"]
    assert d.help is not None and "permute" in d.help


def test_square_shapes_are_not_pairs(tmp_path: Path) -> None:
    """A shape of two equal sizes stays two sizes in the generated source (a square
    kernel's pair prints as one number; a shape must not): reshape, pad, param."""
    spec = """network n {
        input [4, 4, 1]
        x = in
        reshape([4, 4]); pad(1, 1, axis = 1); slice(1, 5, axis = 1)
        y = in
        t: param([4, 4], std = 1.0)
        add(y, in)
        reshape([4, 4, 1]); z = in
        add(x, z)
    }"""
    agrees(tmp_path, spec, lambda x, w: x + (x.view(-1, 4, 4) + w["t"]).view(-1, 4, 4, 1))


# ------------------------------------------------------------------ the other attention
# modules of issue 17, written with the ops (the set is enough for each)

GC = """
# Global context (Cao et al. 2019), timm's GlobalContext with both fusions: attention
# pooling (a 1×1 conv, softmax over the positions, the map times the weights), then a scale
# and an add of bottleneck MLPs with LayerNorm2d.
block gc(c, rd) {
    h = in.h
    w = in.w
    x = in
    conv_attn: conv(1, 1, bias = true); reshape([1, h * w]); softmax(-1)
    reshape([1, h * w, 1]); a = in
    x; reshape([1, c, h * w]); matmul(in, a); reshape([c, 1, 1]); ctx = in
    mlp_add: { fc1: conv(rd, 1, bias = true); norm: layer_norm(eps = 1e-6); relu
               fc2: conv(c, 1, bias = true) }
    fused = in
    ctx
    mlp_scale: { fc1: conv(rd, 1, bias = true); norm: layer_norm(eps = 1e-6); relu
                 fc2: conv(c, 1, bias = true) }
    sigmoid; s = in
    x; mul(in, s); add(in, fused)
}
network n { input [16, 5, 4]; gc(16, 2) }
"""

CBAM = """
# CBAM (Woo et al. 2018), timm's CbamModule: channel attention (one MLP over the average and
# the maximum of the positions, side by side as a 1×2 map), then spatial attention (a 7×7
# conv over the channels' mean and max).
block cbam(c, rd) {
    channel: {
        x = in
        mean([1, 2]); pad(0, 1, axis = 2); a = in            # c × 1 × 2: (avg, 0)
        x; amax([1, 2]); pad(1, 0, axis = 2)                 # (0, max)
        add(a, in)
        fc1: conv(rd, 1); relu; fc2: conv(c, 1)              # the MLP at both positions
        sum(2); sigmoid; g = in
        x; mul(in, g)
    }
    spatial: {
        y = in
        mean(0); m = in
        y; amax(0); cat(m, in)
        conv: { conv: conv(1, 7); bn: bn }
        sigmoid; s = in
        y; mul(in, s)
    }
}
network n { input [32, 9, 8]; cbam(32, 2) }
"""


def test_global_context_equals_timms(tmp_path: Path) -> None:
    from timm.layers.global_context import GlobalContext

    ref = GlobalContext(16, fuse_add=True, fuse_scale=True, rd_channels=2).eval()

    def reference(x: Any, w: Tensors) -> Any:
        ref.load_state_dict(w)
        return ref(x)

    net = agrees(tmp_path, GC, reference)
    assert list(net.state_shapes().items()) == [
        (k, tuple(v.shape)) for k, v in ref.state_dict().items()]


def test_cbam_equals_timms(tmp_path: Path) -> None:
    from timm.layers.cbam import CbamModule

    ref = CbamModule(32).eval()

    def reference(x: Any, w: Tensors) -> Any:
        ref.load_state_dict(w)
        return ref(x)

    net = agrees(tmp_path, CBAM, reference)
    assert list(net.state_shapes().items()) == [
        (k, tuple(v.shape)) for k, v in ref.state_dict().items()]


SPLAT = """
# ResNeSt's split attention (Zhang et al. 2020), timm's SplitAttn, any radix and cardinality:
# radix splits of a grouped conv, their sum pooled, a grouped MLP, a softmax over the radix
# per cardinal group, and the splits' sum weighted by it.
block splat(out, radix, card, attn, k = 3) {
    conv: conv(out * radix, k, groups = card * radix); bn0: bn; relu
    h = in.h
    w = in.w
    reshape([radix, out, h, w]); xs = in
    sum(0, keepdim = false); mean([1, 2])
    fc1: conv(attn, 1, groups = card, bias = true); bn1: bn; relu
    fc2: conv(out * radix, 1, groups = card, bias = true)
    reshape([card, radix, -1]); permute([1, 0, 2]); softmax(0)
    reshape([radix, out, 1, 1]); a = in
    xs; mul(in, a); sum(0, keepdim = false)
}
network n(radix = 4, card = 2) { input [16, 6, 5]; splat(16, radix, card, 8) }
"""


@pytest.mark.parametrize(("radix", "card"), [(4, 2), (2, 1)])
def test_split_attention_equals_timms(tmp_path: Path, radix: int, card: int) -> None:
    from timm.layers.split_attn import SplitAttn

    ref = SplitAttn(16, 16, radix=radix, groups=card, rd_channels=8 // radix,
                    norm_layer=torch.nn.BatchNorm2d).eval()  # 8 attention channels

    def reference(x: Any, w: Tensors) -> Any:
        ref.load_state_dict(w)
        return ref(x)

    spec = SPLAT.replace("radix = 4, card = 2", f"radix = {radix}, card = {card}")
    net = agrees(tmp_path, spec, reference)
    assert list(net.state_shapes().items()) == [
        (k, tuple(v.shape)) for k, v in ref.state_dict().items()]


def test_a_param_carries_no_path_from_the_input(tmp_path: Path) -> None:
    """`param` reads the flowing tensor for its batch size only: no input-to-output path
    runs through it (one path here, not two), and its tensor counts once."""
    net = load(tmp_path, """network n {
        input [4, 3, 5]
        conv(4, 1)
        y = in
        t: param([4, 3, 5])
        add(y, in)
    }""")
    assert sum(net.paths().counts) == 1
    assert net.counts().params == 16 + 60


@pytest.mark.parametrize("spec", [CONVNEXT_BLOCK, BOT_ATTN, SPLAT],
                         ids=["convnext", "botnet", "splat"])
def test_the_generated_modules_trace_with_fx(tmp_path: Path, spec: str) -> None:
    """torchvision's feature extractors trace with torch.fx: every shape in the generated
    code is static (a free parameter's too), so tracing works and gives the same output."""
    import torch.fx

    net = load(tmp_path, spec)
    state = randomised(net, seed=2)
    model = build_module(net.graph, state).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(3, *net.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))
