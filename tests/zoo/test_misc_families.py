"""The zoo rows of timm's res2net, resnest, sknet, dpn and densenet modules against timm 1.0.31,
the reference of every number here (resdsl/zoo/families/timm_{res2net,resnest,sknet,dpn,
densenet}.py):

1. the rows name exactly `timm.list_models(module=M)`: every name of the five modules is
   written;
2. every row's spec, with the row's parameters, has timm's state_dict keys in timm's order with
   their shapes, timm's parameter count, and timm's multiply-accumulates at 64×64 (conv and
   linear, counted by forward hooks as tests/test_parity.py counts them). timm's model is
   built and run on the meta device, ours is counted statically (`state_shapes`, `counts`),
   so no weights are allocated on either side (resnest269e has 111M parameters);
3. a fixed sample (each distinct block, stem and shortcut kind of the five families), in eval
   mode with timm's weights copied in (every norm's statistics and affine parameters
   randomised first, tests/zoo/harness.py), gives timm's outputs at 64×64 as a PyTorch module
   and as an ONNX model in ONNX Runtime.

Each sampled reference is built once (module-scoped fixture).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from resdsl.zoo.entry import ZooEntry
from resdsl.zoo.families import (
    timm_densenet,
    timm_dpn,
    timm_res2net,
    timm_resnest,
    timm_sknet,
)

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from tests.zoo.harness import (  # noqa: E402
    Pair,
    assert_matches_meta_reference,
    assert_onnx_outputs,
    assert_torch_outputs,
    make_pair,
)

FAMILIES: dict[str, tuple[ZooEntry, ...]] = {
    "res2net": timm_res2net.ENTRIES,
    "resnest": timm_resnest.ENTRIES,
    "sknet": timm_sknet.ENTRIES,
    "dpn": timm_dpn.ENTRIES,
    "densenet": timm_densenet.ENTRIES,
}
ROWS: dict[str, ZooEntry] = {e.name: e for rows in FAMILIES.values() for e in rows}

# The sample whose outputs are compared: each distinct block, stem and shortcut kind.
SAMPLE = [
    "res2net50_26w_4s",  # Bottle2neck, 7x7 stem, 1x1 projections
    "res2net50d",  # the deep stem, ResNet-D's pooled shortcut
    "res2next50",  # grouped 3x3 convs in the hierarchy
    "resnest14d",  # split attention radix 2, the pool after it
    "resnest50d_1s4x24d",  # radix 1 (a sigmoid), 4 groups, the pool before it
    "skresnet18",  # SelectiveKernelBasic, the input split between the paths
    "skresnet50d",  # SelectiveKernelBottleneck, deep stem, pooled shortcut
    "dpn48b",  # the small DPN with b's split 1x1 and SiLU in the stem and the final BN
    "dpn68",  # the small DPN's plain unit (dpn92's is tests/test_torch_parity.py's)
    "densenet121",  # the 7x7 stem (timm's BatchNormAct2d where torchvision has BN, ReLU)
    "densenetblur121d",  # the deep stem, the max pool at stride 1 and BlurPool2d
]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_rows_are_timms_names(family: str) -> None:
    rows = FAMILIES[family]
    assert all(e.family == family and e.source == "timm" for e in rows)
    assert all(e.spec_path().is_file() for e in rows)
    written = {e.name for e in rows}
    assert len(written) == len(rows)  # no name twice
    assert written == set(timm.list_models(module=family))


@pytest.mark.parametrize("name", sorted(ROWS))
def test_state_dict_parameters_and_macs_are_timms(name: str) -> None:
    """MACs at 64×64: timm's model runs on the meta device (shapes only, no arithmetic)."""
    assert_matches_meta_reference(ROWS[name])


@pytest.fixture(scope="module", params=SAMPLE)
def pair(request: pytest.FixtureRequest) -> Pair:
    return make_pair(ROWS[request.param])


@pytest.mark.parity
def test_sample_macs_are_timms(pair: Pair) -> None:
    assert pair.net.counts().macs == pair.macs


@pytest.mark.parity
def test_torch_outputs_are_timms(pair: Pair) -> None:
    assert_torch_outputs(pair)


@pytest.mark.parity
def test_onnx_outputs_are_timms(pair: Pair, tmp_path: Path) -> None:
    assert_onnx_outputs(pair, tmp_path)
