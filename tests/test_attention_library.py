"""The attention library of issue 17 (item 2), specs/blocks/attention.res: every block is
timm 1.0.31's module written in .res. Each is called as timm names it and compared with timm's
module built with the same arguments: the same state_dict keys in the same order with the same
shapes, the same parameter count, and the same output with every tensor random (norm
statistics and affine parameters included), in the in-memory module, the standalone source
and ONNX Runtime at opsets 13, 17 and 21 (`agrees` of tests/test_tensor_ops.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("timm")

import resdsl  # noqa: E402
from tests.test_tensor_ops import Tensors, agrees, load  # noqa: E402

LIBRARY = Path(__file__).resolve().parents[1] / "specs" / "blocks" / "attention.res"


def spec(call: str, shape: tuple[int, int, int], name: str = "attn") -> str:
    """A network of one library block, called `name` (timm's attribute in its parent)."""
    return (f'use "blocks/attention.res"\n'
            f"network n {{ input [{', '.join(map(str, shape))}]; {name}: {call} }}\n")


def reference_of(module: Any, prefix: str = "attn.") -> Callable[[Any, Tensors], Any]:
    """timm's module in eval mode, loaded with the spec's (random) weights."""
    module.eval()

    def reference(x: Any, w: Tensors) -> Any:
        module.load_state_dict({k.removeprefix(prefix): v for k, v in w.items()})
        return module(x)

    return reference


def same_keys(net: resdsl.Network, module: Any, prefix: str = "attn.") -> None:
    """The spec's state_dict is timm's: keys in order, shapes, parameter count."""
    ours = [(k.removeprefix(prefix), s) for k, s in net.state_shapes().items()]
    assert ours == [(k, tuple(v.shape)) for k, v in module.state_dict().items()]
    assert net.counts().params == sum(p.numel() for p in module.parameters())


def check(tmp_path: Path, call: str, shape: tuple[int, int, int], module: Any,
          atol: float = 1e-5) -> resdsl.Network:
    net = agrees(tmp_path, spec(call, shape), reference_of(module), atol=atol)
    same_keys(net, module)
    return net


def test_the_library_is_written_in_the_language() -> None:
    """No attention module is an op: the library's blocks are .res blocks."""
    from resdsl.ir.ops import OPS

    text = LIBRARY.read_text(encoding="utf-8")
    blocks = ["eca", "cbam", "selective_kernel", "split_attn", "global_context",
              "bottleneck_attn"]
    for block in blocks:
        assert f"block {block}(" in text
        assert block not in OPS


# ------------------------------------------------------------------ squeeze-and-excitation


def test_se_is_reexported_in_the_scale_form(tmp_path: Path) -> None:
    from timm.layers.squeeze_excite import SEModule

    net = agrees(tmp_path, 'use "blocks/attention.res"\n'
                 "network n { input [64, 5, 4]; se_module(64) }\n",
                 reference_of(SEModule(64, rd_ratio=1 / 16), prefix="se."))
    same_keys(net, SEModule(64, rd_ratio=1 / 16), prefix="se.")


# ------------------------------------------------------------------ ECA


@pytest.mark.parametrize(("c", "k"), [(64, 3), (256, 5), (2048, 7)])
def test_eca_equals_timms(tmp_path: Path, c: int, k: int) -> None:
    from timm.layers.eca import EcaModule

    module = EcaModule(c)
    assert module.conv.kernel_size == (k,)
    net = check(tmp_path, "eca()", (c, 3, 2), module)
    assert net.counts().macs == c * k


# ------------------------------------------------------------------ CBAM


@pytest.mark.parametrize(("c", "kwargs", "call"), [
    (32, {}, "cbam()"),
    (48, {"rd_ratio": 1 / 8, "spatial_kernel_size": 5}, "cbam(rd_ratio = 1 / 8, kernel = 5)"),
])
def test_cbam_equals_timms(tmp_path: Path, c: int, kwargs: dict[str, Any], call: str) -> None:
    from timm.layers.cbam import CbamModule

    check(tmp_path, call, (c, 7, 6), CbamModule(c, **kwargs))


# ------------------------------------------------------------------ selective kernel


@pytest.mark.parametrize(("shape", "kwargs", "call"), [
    # timm's defaults: a 3x3 and a dilated 3x3 (for 5x5) on the two halves of the input
    ((16, 6, 5), {}, "selective_kernel(16)"),
    # three paths, strided, grouped, each on the whole input, kernels kept (not 3x3)
    ((12, 7, 6), {"kernel_size": [3, 5, 7], "stride": 2, "groups": 4, "keep_3x3": False,
                  "split_input": False, "rd_divisor": 4},
     "selective_kernel(16, kernels = [3, 5, 7], stride = 2, groups = 4, keep_3x3 = false, "
     "split_input = false, rd_divisor = 4)"),
    # skresnext50_32x4d's: 1/16 and a divisor of 32, the whole input to each path
    ((32, 5, 5), {"groups": 8, "rd_divisor": 32, "split_input": False},
     "selective_kernel(32, groups = 8, rd_divisor = 32, split_input = false)"),
])
def test_selective_kernel_equals_timms(tmp_path: Path, shape: tuple[int, int, int],
                                       kwargs: dict[str, Any], call: str) -> None:
    from timm.layers.selective_kernel import SelectiveKernel

    out = int(call.split("(")[1].split(",")[0].rstrip(")"))
    check(tmp_path, call, shape, SelectiveKernel(shape[0], out, **kwargs))


# ------------------------------------------------------------------ split attention


@pytest.mark.parametrize(("radix", "card", "stride"), [(4, 2, 1), (2, 1, 2), (1, 2, 1),
                                                       (3, 4, 1)])
def test_split_attention_equals_timms(tmp_path: Path, radix: int, card: int,
                                      stride: int) -> None:
    from timm.layers.split_attn import SplitAttn

    module = SplitAttn(24, 24, stride=stride, groups=card, radix=radix,
                       norm_layer=torch.nn.BatchNorm2d)
    check(tmp_path, f"split_attn(24, stride = {stride}, groups = {card}, radix = {radix})",
          (24, 6, 5), module)


def test_split_attention_without_norm_and_with_rd(tmp_path: Path) -> None:
    from timm.layers.split_attn import SplitAttn

    module = SplitAttn(16, 8, radix=2, groups=2, rd_channels=4)  # bn0, bn1: nn.Identity
    check(tmp_path, "split_attn(8, groups = 2, radix = 2, rd = 4, norm = false)",
          (16, 5, 5), module)


# ------------------------------------------------------------------ global context


@pytest.mark.parametrize("kwargs", [
    {},                                        # timm's default: attention pooling, scale
    {"fuse_add": True, "fuse_scale": False},   # "gca", gcresnext26ts's
    {"fuse_add": True, "fuse_scale": True},
    {"use_attn": False, "rd_ratio": 1 / 4},
], ids=["gc", "gca", "both", "mean"])
def test_global_context_equals_timms(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    from timm.layers.global_context import GlobalContext

    args = ", ".join(f"{k} = {str(v).lower() if isinstance(v, bool) else v}"
                     for k, v in kwargs.items())
    check(tmp_path, f"global_context({args})", (24, 5, 4), GlobalContext(24, **kwargs))


# ------------------------------------------------------------------ BoTNet's self-attention


@pytest.mark.parametrize(("c", "kwargs", "call"), [
    (16, {"num_heads": 2}, "bottleneck_attn(heads = 2)"),
    # sebotnet33ts's form: stride 2 (a 2x2 average pool after), 4 heads, dim_out set
    (16, {"dim_out": 32, "stride": 2, "num_heads": 4},
     "bottleneck_attn(dim_out = 32, stride = 2, heads = 4)"),
    # q and k narrower than v, a bias, the relative logits scaled too
    (16, {"num_heads": 2, "qk_ratio": 0.5, "qkv_bias": True, "scale_pos_embed": True},
     "bottleneck_attn(heads = 2, qk_ratio = 0.5, qkv_bias = true, scale_pos_embed = true)"),
])
def test_bottleneck_attention_equals_timms(tmp_path: Path, c: int, kwargs: dict[str, Any],
                                           call: str) -> None:
    from timm.layers.bottleneck_attn import BottleneckAttn

    module = BottleneckAttn(c, feat_size=(4, 6), **kwargs)
    check(tmp_path, call, (c, 4, 6), module, atol=1e-4)


def test_bottleneck_attention_macs_count_the_products(tmp_path: Path) -> None:
    """The qkv conv, q·kᵀ and attn·v (heads · HW · HW · d each) and the relative logits' q·tᵀ
    (heads · HW · (2H − 1) · d and heads · HW · (2W − 1) · d)."""
    net = load(tmp_path, spec("bottleneck_attn(heads = 2)", (16, 4, 6)))
    hw, d, heads = 24, 8, 2
    assert net.counts().macs == (48 * 16 * hw + 2 * heads * hw * hw * d
                                 + heads * hw * (7 + 11) * d)
