"""timm's ResNetV2 family (resdsl/zoo/families/timm_resnetv2.py) against timm 1.0.31, the
reference of every number here (timm/models/resnetv2.py, instantiated):

1. every row: the spec with the row's parameters has the timm model's state_dict keys in
   timm's order, with their shapes, its parameter count, and the conv MACs of its forward at
   224x224 (forward hooks as tests/test_parity.py counts them, torchvision's convention); the
   reference is built and run on the meta device (no tensors allocated: the BiT models reach
   936M parameters), and ours is counted statically;
2. a sample covering each unit (bottleneck, basic), stem ("", deep, tiered, fixed), norm (BN,
   GroupNorm, EvoNorm S0, FRN) and conv (plain, weight-standardised): in eval mode, with
   timm's weights copied in after every norm's affine parameters and statistics are
   randomised, PyTorch's and ONNX Runtime's outputs at 64x64.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from resdsl.zoo.families.timm_resnetv2 import ENTRIES

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from tests.zoo.harness import (  # noqa: E402
    Pair,
    assert_matches_meta_reference,
    assert_onnx_outputs,
    assert_torch_outputs,
    make_pair,
)

ROWS = {e.name: e for e in ENTRIES}
# One model of each kind of unit, stem, norm and conv (see the module's docstring).
SAMPLE = ("resnetv2_18d", "resnetv2_50", "resnetv2_50t", "resnetv2_50d_gn", "resnetv2_50d_evos",
          "resnetv2_50d_frn", "resnetv2_50x1_bit")


def test_the_family_is_timms() -> None:
    """One row per model timm registers in the module, and no other."""
    assert sorted(ROWS) == sorted(timm.list_models(module="resnetv2"))
    assert {(e.source, e.family, e.spec) for e in ENTRIES} == {
        ("timm", "resnetv2", "resnetv2_50.res")}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_state_dict_params_and_macs_are_timms(name: str) -> None:
    assert_matches_meta_reference(ROWS[name], shape=(3, 224, 224))


# ---------------------------------------------------------------------- outputs


@pytest.fixture(scope="module", params=SAMPLE)
def pair(request: pytest.FixtureRequest) -> Pair:
    return make_pair(ROWS[request.param])


@pytest.mark.parity
def test_torch_outputs_are_timms(pair: Pair) -> None:
    assert_torch_outputs(pair)


@pytest.mark.parity
def test_onnx_outputs_are_timms(pair: Pair, tmp_path: Path) -> None:
    assert_onnx_outputs(pair, tmp_path)
