"""The zoo's timm ResNets (resdsl/zoo/families/timm_resnet.py: specs/resnet50d.res with `-D`
values) against timm 1.0.31's timm/models/resnet.py, every expected number from timm's own
model:

1. the rows are exactly `timm.list_models(module="resnet")`, the 81 names;
2. for every row: the state_dict keys in order with their shapes, the parameter count, and the
   multiply-accumulates at 64×64 (conv and linear, counted by forward hooks as
   tests/test_parity.py counts them, plus ECA's 1-D convs as tests/test_attention_specs.py
   adds them), the reference built on the meta device (resnext101_32x32d has 468 million
   parameters: nothing is allocated on either side);
3. for a sample covering each block, stem, pool, norm and attention kind: eval outputs at
   64×64 with timm's weights copied in (every norm's statistics and affine parameters
   randomised first, so that none is the identity: tests/zoo/harness.py), in PyTorch and in
   ONNX Runtime, and the MACs of the real forward pass. Rows over 100 million parameters
   (senet154) and the deep ones enter the sample with one block per stage: `layers`
   overridden on both sides, timm building the model with its registered arguments and that
   override;
4. blocks/timm_layers.res's `blur_pool` gives timm's BlurPool2d at even and odd sizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import resdsl
from resdsl.zoo.entry import ZooEntry
from resdsl.zoo.families.timm_resnet import ENTRIES

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from tests.zoo.harness import (  # noqa: E402
    Pair,
    assert_matches_meta_reference,
    assert_onnx_outputs,
    assert_torch_outputs,
    make_pair,
)

ROWS: dict[str, ZooEntry] = {e.name: e for e in ENTRIES}
ONE_BLOCK = {"layers": [1, 1, 1, 1]}

# Each kind once: BasicBlock and Bottleneck stages mixed with narrow planes (test_resnet);
# BlurPool2d in the 7x7 stem and a BasicBlock (resnetblur18); pruned widths with ECA keeping the
# unpruned kernels (ecaresnet50d_pruned); GroupNorm (resnet50_gn); the 2x2 average-pool
# anti-aliasing in the deep stem and a BasicBlock (resnetaa34d) and in a grouped Bottleneck with
# SE (seresnextaa101d_32x8d); ResNet-RS's conv stem pool and quarter-width SE (resnetrs50);
# SENet-154's half-width first 1x1 and 3x3 projections (senet154); the tiered stem with ECA
# (ecaresnet26t at full depth is tests/test_attention_specs.py's).
SAMPLE: dict[str, dict[str, Any]] = {
    "test_resnet": {},
    "resnetblur18": {},
    "ecaresnet50d_pruned": {},
    "resnet50_gn": ONE_BLOCK,
    "resnetaa34d": ONE_BLOCK,
    "seresnextaa101d_32x8d": ONE_BLOCK,
    "resnetrs50": ONE_BLOCK,
    "senet154": ONE_BLOCK,
}


def test_rows_are_timms_resnet_module() -> None:
    assert sorted(ROWS) == sorted(timm.list_models(module="resnet"))
    assert len(ENTRIES) == len(ROWS) == 81
    assert {(e.source, e.family, e.spec) for e in ENTRIES} == {("timm", "resnet", "resnet50d.res")}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_row_is_timms(name: str) -> None:
    """Keys in order with shapes, parameters and MACs at 64×64; timm's model on the meta
    device, ours never allocated (static counts)."""
    assert_matches_meta_reference(ROWS[name])


# ---------------------------------------------------------------------- outputs


@pytest.fixture(scope="module", params=sorted(SAMPLE))
def pair(request: pytest.FixtureRequest) -> Pair:
    return make_pair(ROWS[request.param], **SAMPLE[request.param])


@pytest.mark.parity
def test_sample_macs_are_timms(pair: Pair) -> None:
    assert pair.net.counts().macs == pair.macs


@pytest.mark.parity
def test_torch_outputs_are_timms(pair: Pair) -> None:
    assert_torch_outputs(pair)


@pytest.mark.parity
def test_onnx_outputs_are_timms(pair: Pair, tmp_path: Path) -> None:
    assert_onnx_outputs(pair, tmp_path)


# ---------------------------------------------------------------------- blur_pool


@pytest.mark.parametrize(("h", "w"), [(2, 2), (7, 9), (16, 15)])
def test_blur_pool_is_timms(tmp_path: Path, h: int, w: int) -> None:
    """Two 2×2 means equal timm's reflect-padded 3×3 binomial blur at stride 2, edges included."""
    from timm.layers.blur_pool import BlurPool2d

    spec = tmp_path / "blur.res"
    spec.write_text('use "blocks/timm_layers.res"\nnetwork blur() {\n'
                    f"    input [4, {h}, {w}]\n    aa: blur_pool\n}}\n", encoding="utf-8")
    net = resdsl.load(str(spec))
    assert net.counts().params == 0 and net.state_shapes() == {}
    x = torch.randn(2, 4, h, w, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        expected, actual = BlurPool2d(4, stride=2)(x), net.to_torch().eval()(x)
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6)
